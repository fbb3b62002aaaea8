"""The onnxruntime CPU session every NodeView model file runs in (the nodule model, the re-ranker).

Threads default to :func:`~.parallel.thread_count` (every core); idle inference threads sleep
rather than spin, so the GUI thread keeps its core when it has work. onnxruntime is imported on
first use (it is slow to import; the app prewarms it in the background).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import NodeViewError
from ..parallel import thread_count


def cpu_session(
    path: str | os.PathLike[str], threads: int | None, error: type[NodeViewError], what: str
) -> tuple[Any, Any]:
    """``(InferenceSession, RunOptions)`` for ``path``; ``error`` (naming ``what``) when the file is
    missing or not a readable ONNX model."""
    import onnxruntime as ort

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
