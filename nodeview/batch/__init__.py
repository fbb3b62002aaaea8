"""Archive-scale batch detection on Dask distributed (optional extra ``batch``; Qt-free).

``nodeview batch ROOT_OR_LIST --out DIR [--workers N | --scheduler tcp://HOST:8786]``: every CT
series under a folder tree (or the entries of a list file) is one study; each gets an output
folder with its PNG report and findings JSON; ``DIR/summary.csv`` (and ``summary.parquet`` with
pyarrow) lists them all; ``DIR/manifest.jsonl`` makes the batch resumable. See :mod:`.plan`
(what a study is, its content key), :mod:`.worker` (one study), :mod:`.manifest`,
:mod:`.engine` (the Dask side). Importing this package does not import Dask.
"""

from __future__ import annotations

from .engine import EXTRA_MESSAGE, BatchOptions, BatchResult, require_dask, run_batch
from .plan import DEFAULT_MAX_VOXELS, StudyTask, plan

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "EXTRA_MESSAGE",
    "BatchOptions",
    "BatchResult",
    "StudyTask",
    "plan",
    "require_dask",
    "run_batch",
]
