"""The Dask worker plugin of a batch: threads per study and one model session per worker process."""

from __future__ import annotations

import logging
import os
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from .worker import detector_for

log = logging.getLogger(__name__)


class NodeViewWorkerPlugin(WorkerPlugin):
    """Sets ``NODEVIEW_THREADS`` and loads the model once per worker process (restarted ones too).

    ``threads`` 0: ``NODEVIEW_THREADS`` when the worker has it, else the worker's cores divided by
    its Dask threads."""

    name = "nodeview-detector"

    def __init__(self, model: str, threads: int) -> None:
        self.model = model
        self.threads = threads

    def setup(self, worker: Any) -> None:
        threads = self.threads or int(os.environ.get("NODEVIEW_THREADS", "0") or 0)
        if not threads:
            threads = max(1, (os.cpu_count() or 1) // max(1, int(getattr(worker.state, "nthreads", 1))))
        os.environ["NODEVIEW_THREADS"] = str(threads)
        try:
            detector_for(self.model, threads)
        except Exception:  # the first study reports it as its failure
            log.warning("nodeview: the worker could not load %s", self.model, exc_info=True)
