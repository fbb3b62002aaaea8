"""Long work off the GUI thread: a QRunnable wrapping a plain core function.

The core function takes ``progress(done, total)`` and ``should_stop()`` callbacks. Results cross
threads only as signals carrying immutable values. Each task has a generation number; the
runner drops results of tasks that are no longer current (a newer request replaced them).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..core.errors import Cancelled, NodeViewError
from ..core.parallel import lower_thread_priority

log = logging.getLogger(__name__)

Work = Callable[[Callable[[int, int], None], Callable[[], bool]], Any]


class TaskSignals(QObject):
    progress = Signal(int, int, int)  # generation, done, total
    finished = Signal(int, object)  # generation, result
    failed = Signal(int, str)  # generation, message
    cancelled = Signal(int)  # generation


class Task(QRunnable):
    """Runs ``work(progress, should_stop)`` in the thread pool."""

    def __init__(self, work: Work, generation: int, signals: TaskSignals) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._work = work
        self.generation = generation
        self.signals = signals
        self.stop_event = threading.Event()
        self.done_event = threading.Event()

    def cancel(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        # Background priority for this pool thread and the threads it starts (array pool,
        # onnxruntime): the work uses every core, yet the GUI thread always gets one when it needs it.
        lower_thread_priority()
        gen = self.generation
        last = [-1]

        def emit(signal_name: str, *args: object) -> bool:
            # The window (and the signals object it owns) can be gone when the app quits with this
            # task still running (e.g. --screenshot): then nobody listens; stop quietly.
            try:
                getattr(self.signals, signal_name).emit(*args)
            except RuntimeError:
                self.stop_event.set()
                return False
            return True

        def progress(done: int, total: int) -> None:
            # Throttle to whole percent steps: thousands of signal emits buy nothing.
            pct = 100 * done // max(total, 1)
            if pct != last[0] or done == total:
                last[0] = pct
                emit("progress", gen, done, total)

        try:
            result = self._work(progress, self.stop_event.is_set)
        except Cancelled:
            emit("cancelled", gen)
        except NodeViewError as exc:
            if self.stop_event.is_set():
                emit("cancelled", gen)
            else:
                emit("failed", gen, str(exc))
        except Exception as exc:  # an internal error: log details, show one line
            log.error("internal error in background task: %s", traceback.format_exc())
            emit("failed", gen, f"internal error: {type(exc).__name__}: {exc}")
        else:
            if self.stop_event.is_set():
                emit("cancelled", gen)
            else:
                emit("finished", gen, result)
        finally:
            self.done_event.set()


class TaskRunner(QObject):
    """Starts one task at a time per runner; a new start cancels the previous one.

    Signals carry only results of the current generation.
    """

    sigProgress = Signal(int, int)
    sigFinished = Signal(object)
    sigFailed = Signal(str)
    sigCancelled = Signal()

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._generation = 0
        self._current: Task | None = None
        self._signals = TaskSignals()
        self._signals.progress.connect(self._on_progress)
        self._signals.finished.connect(self._on_finished)
        self._signals.failed.connect(self._on_failed)
        self._signals.cancelled.connect(self._on_cancelled)

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def generation(self) -> int:
        return self._generation

    def start(self, work: Work) -> int:
        self.cancel()
        self._generation += 1
        task = Task(work, self._generation, self._signals)
        self._current = task
        self._pool.start(task)
        return self._generation

    def cancel(self) -> None:
        if self._current is not None:
            self._current.cancel()

    def wait(self, timeout_s: float = 10.0) -> bool:
        task = self._current
        return True if task is None else task.done_event.wait(timeout_s)

    def _is_current(self, generation: int) -> bool:
        return self._current is not None and generation == self._generation

    def _on_progress(self, generation: int, done: int, total: int) -> None:
        if self._is_current(generation):
            self.sigProgress.emit(done, total)

    def _on_finished(self, generation: int, result: object) -> None:
        if self._is_current(generation):
            self._current = None
            self.sigFinished.emit(result)

    def _on_failed(self, generation: int, message: str) -> None:
        if self._is_current(generation):
            self._current = None
            self.sigFailed.emit(message)

    def _on_cancelled(self, generation: int) -> None:
        if self._is_current(generation):
            self._current = None
            self.sigCancelled.emit()
