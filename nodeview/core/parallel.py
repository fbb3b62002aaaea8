"""Splitting array work over threads (Qt-free).

The heavy scipy.ndimage and numpy calls the detector makes (``map_coordinates``, Gaussian and
rank filters, binary morphology, percentiles) release the GIL, so a small thread pool runs them
on several cores at once. Work is split into contiguous chunks whose results are joined in
order, so the answer does not depend on the number of threads.

``NODEVIEW_THREADS`` caps the pool (default: every core, at most :data:`MAX_THREADS`); 1 runs
everything on the calling thread.

In the GUI, background work uses every core but must leave the GUI thread a core whenever it
needs one: :func:`lower_thread_priority` raises the calling worker thread's nice value (Linux),
and the threads it then starts (this pool's, onnxruntime's) inherit it, so the scheduler always
prefers the GUI thread (``benchmarks/detect.py`` measures the event-loop stalls).
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_THREADS = 8
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_pid = 0
_lock = threading.Lock()
_PREFIX = "nodeview-array"


def thread_count() -> int:
    """Threads to use for array work: ``NODEVIEW_THREADS`` or the CPU count, at most ``MAX_THREADS``."""
    env = os.environ.get("NODEVIEW_THREADS", "").strip()
    if env:
        try:
            return max(1, min(int(env), MAX_THREADS))
        except ValueError:
            pass
    return max(1, min(os.cpu_count() or 1, MAX_THREADS))


#: Nice increment for background work (Linux: 0 normal, 19 lowest).
BACKGROUND_NICE = 10


def _thread_nice() -> int | None:
    """The calling thread's nice value (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except (OSError, AttributeError):
        return None


def _nice_at_least(target: int) -> bool:
    """Raise the calling thread's nice value to ``target`` (Linux; never lowers it)."""
    current = _thread_nice()
    if current is None:
        return False
    try:
        if current < target:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, target))
        return True
    except OSError:
        return False


def lower_thread_priority(increment: int = BACKGROUND_NICE) -> bool:
    """Lower the OS scheduling priority of the calling thread (not the process) to the process's
    nice value plus ``increment``; threads it starts afterwards inherit it, and pool threads
    running its work (:func:`map_ordered`) take it on.

    Linux only (a thread is a task with its own nice value there); returns False elsewhere or
    when the OS refuses. Never raises the priority: an unprivileged process cannot take it back.
    """
    if _thread_nice() is None:
        return False
    try:
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())  # the main thread's
    except OSError:
        return False
    return _nice_at_least(base + increment)


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size, _pool_pid
    with _lock:
        # a forked child (a training DataLoader worker) inherits the pool object but not its threads
        if _pool is None or _pool_size != n or _pool_pid != os.getpid():
            if _pool is not None and _pool_pid == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=_PREFIX)
            _pool_size = n
            _pool_pid = os.getpid()
        return _pool


def chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into at most ``parts`` contiguous (start, stop) pieces of near-equal size."""
    parts = max(1, min(parts, n))
    bounds = [n * p // parts for p in range(parts + 1)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def map_ordered(fn: Callable[[T], R], items: Sequence[T], threads: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, spread over the pool; results in input order.

    Runs on the calling thread when there is one item or one thread (no pool overhead), or when
    called from a pool thread; an exception in any call is raised here.
    """
    n = thread_count() if threads is None else max(1, threads)
    # a call from inside the pool runs serially: waiting on the pool from a pool thread could deadlock
    if n == 1 or len(items) <= 1 or threading.current_thread().name.startswith(_PREFIX):
        return [fn(x) for x in items]
    nice = _thread_nice()
    if nice is None:
        return list(_executor(n).map(fn, items))

    def call(item: T) -> R:
        _nice_at_least(nice)  # work for a background thread runs at its priority
        return fn(item)

    return list(_executor(n).map(call, items))


def map_chunks(fn: Callable[[int, int], R], n_items: int, min_chunk: int = 1, threads: int | None = None) -> list[R]:
    """``fn(start, stop)`` over contiguous chunks of ``range(n_items)`` (at least ``min_chunk``
    items each, one chunk per thread), results in order."""
    n = thread_count() if threads is None else max(1, threads)
    parts = max(1, min(n, n_items // max(min_chunk, 1)))
    return map_ordered(lambda ab: fn(ab[0], ab[1]), chunks(n_items, parts), threads=n)


__all__ = ["chunks", "lower_thread_priority", "map_chunks", "map_ordered", "thread_count"]
