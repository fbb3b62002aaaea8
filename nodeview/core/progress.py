"""Progress and cancel callbacks for long work that runs in a worker thread.

Core loops call ``progress(done, total)`` after each step and check ``should_stop()`` between
steps; they raise :class:`~nodeview.core.errors.Cancelled` when it returns True. Neither callback
knows anything of Qt.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import Cancelled

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], bool]


def no_progress(done: int, total: int) -> None:
    """Default progress callback: does nothing."""


def never_stop() -> bool:
    """Default cancel callback: never asks to stop."""
    return False


def check_cancel(should_stop: StopFn) -> None:
    if should_stop():
        raise Cancelled()
