"""The onnxruntime CPU session every NodeView model file runs in (the nodule model, the re-ranker).

Threads default to :func:`~.parallel.thread_count` (every core); idle inference threads sleep
rather than spin, so the GUI thread keeps its core when it has work. onnxruntime is imported on
first use (it is slow to import; the app prewarms it in the background). Its telemetry events
are turned off before the first session (:func:`disable_telemetry`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from ..errors import NodeViewError
from ..parallel import thread_count


def disable_telemetry(ort: Any) -> None:
    """Turn onnxruntime's telemetry events off (where the build has them): NodeView sends nothing."""
    off = getattr(ort, "disable_telemetry_events", None)
    if callable(off):
        with contextlib.suppress(Exception):  # an old or unusual build: nothing to turn off
            off()


def cpu_session(
    path: str | os.PathLike[str], threads: int | None, error: type[NodeViewError], what: str
) -> tuple[Any, Any]:
    """``(InferenceSession, RunOptions)`` for ``path``; ``error`` (naming ``what``) when the file is
    missing or not a readable ONNX model."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before the import (nodeview/__init__ sets it too)
    import onnxruntime as ort

    disable_telemetry(ort)
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} file {p} does not exist")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or thread_count()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise error(f"{p.name} is not a readable ONNX model ({type(exc).__name__})") from exc
    return session, ort.RunOptions()
