"""A headless DICOM node for automatic CAD (Qt-free): ``nodeview node``.

A storage SCP receives images (from a scanner, or a PACS routing rule). A series is *complete* when
no new image of it arrived for ``settle_s`` seconds; it is then queued, and one worker thread runs
detection on each queued series in turn, exports the TID 1500 SR and the SEG (and, optionally, the
report pages as Secondary Capture) with :mod:`nodeview.core.export`, and sends them to the
destination node with C-STORE.

The queue lives on disk, so the node resumes after a restart::

    WORK/series/<key>/            key = sha1(StudyInstanceUID|SeriesInstanceUID)[:16]
        state.json                status, UIDs, modality, attempts, last error (no patient data)
        images/<SOP UID>.dcm      received images (removed once the series is done, unless kept)
        out/                      the SR/SEG written for it

Statuses: ``receiving`` -> ``queued`` -> ``processing`` -> ``done`` | ``failed`` | ``skipped`` (not
CT). A series found ``processing`` at start-up was interrupted and is queued again. The queue is
bounded: while ``max_pending`` series are receiving, queued or processing, images of a *new* series
are refused with status 0xA700 (out of resources), so the sender retries later; images of series
already accepted are always taken. One series failing (bad images, send refused) is marked
``failed`` with its reason and the node goes on with the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from ..errors import NodeViewError
from .net import STORAGE_CLASSES, LocalAE, PacsNode, send

log = logging.getLogger(__name__)

ACTIVE = ("receiving", "queued", "processing")
OUT_OF_RESOURCES = 0xA700


@dataclass(frozen=True)
class NodeEvent:
    """What the node did with one series (for the console and tests)."""

    key: str
    status: str
    detail: str


class CadNode:
    """The storage SCP and its detection worker.

    Args:
        work_dir: the on-disk queue (see the module docstring).
        local: AE title and port to listen on.
        send_to: where SR and SEG go (None: only written under ``work_dir``).
        settle_s: a series is complete after this many seconds without a new image.
        max_pending: bound of the queue (series receiving, queued or processing).
        model: ONNX model (default: the bundled one).
        secondary_capture: also send the report pages as Secondary Capture images.
        keep_images: keep received images after a series is done.
        on_event: called (from the worker thread) after each series is done, failed or skipped.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str],
        local: LocalAE,
        send_to: PacsNode | None,
        settle_s: float = 10.0,
        max_pending: int = 20,
        model: str | None = None,
        secondary_capture: bool = False,
        keep_images: bool = False,
        on_event: Callable[[NodeEvent], None] | None = None,
    ) -> None:
        self.root = Path(work_dir)
        self.local = local
        self.send_to = send_to
        self.settle_s = float(settle_s)
        self.max_pending = int(max_pending)
        self.model = model
        self.secondary_capture = secondary_capture
        self.keep_images = keep_images
        self.on_event = on_event or (lambda e: None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: Any = None
        self._worker: threading.Thread | None = None
        self._detector: Any = None
        (self.root / "series").mkdir(parents=True, exist_ok=True)

    # ---- state on disk -----------------------------------------------------------------------
    def series_dir(self, key: str) -> Path:
        return self.root / "series" / key

    def state(self, key: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.series_dir(key) / "state.json").read_text()))
        except (OSError, ValueError):
            return {}

    def _write_state(self, key: str, **changes: Any) -> dict[str, Any]:
        state = {**self.state(key), **changes}
        path = self.series_dir(key) / "state.json"
        tmp = path.with_name(f".state.json.tmp-{threading.get_ident()}")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, path)
        return state

    def series_keys(self) -> list[str]:
        folder = self.root / "series"
        return sorted(p.name for p in folder.iterdir() if (p / "state.json").is_file()) if folder.is_dir() else []

    def pending(self) -> int:
        return sum(1 for k in self.series_keys() if self.state(k).get("status") in ACTIVE)

    # ---- receiving ---------------------------------------------------------------------------
    @staticmethod
    def key_of(study_uid: str, series_uid: str) -> str:
        return hashlib.sha1(f"{study_uid}|{series_uid}".encode()).hexdigest()[:16]

    def _on_store(self, event: Any) -> int:
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            key = self.key_of(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID))
            with self._lock:
                state = self.state(key)
                if not state or state.get("status") not in ("receiving", "queued"):
                    if state.get("status") in ("processing",):
                        return OUT_OF_RESOURCES  # being processed: the sender retries later
                    if not state and self.pending() >= self.max_pending:
                        log.warning("queue full (%d series): refusing a new series", self.max_pending)
                        return OUT_OF_RESOURCES
                    self.series_dir(key).mkdir(parents=True, exist_ok=True)
                    state = self._write_state(
                        key, status="receiving", study_uid=str(ds.StudyInstanceUID),
                        series_uid=str(ds.SeriesInstanceUID), modality=str(ds.get("Modality", "")),
                        attempts=int(state.get("attempts", 0)), error="", received=time.time(),
                    )  # fmt: skip
                    log.info("series %s: receiving", key)
                elif state.get("status") == "queued":
                    self._write_state(key, status="receiving")
            images = self.series_dir(key) / "images"
            images.mkdir(exist_ok=True)
            name = re.sub(r"[^0-9.]", "_", str(ds.SOPInstanceUID)) + ".dcm"
            tmp = images / f".{name}.tmp-{threading.get_ident()}"
            ds.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, images / name)
            os.utime(self.series_dir(key))  # last image time = the series folder's mtime
        except Exception:
            log.warning("could not store a received image", exc_info=True)
            return OUT_OF_RESOURCES
        return 0x0000

    # ---- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Resume the queue from disk, listen, and start the worker."""
        for key in self.series_keys():
            if self.state(key).get("status") == "processing":
                self._write_state(key, status="queued")
                log.info("series %s: interrupted, queued again", key)
        ae = AE(ae_title=self.local.ae_title)
        ae.add_supported_context(Verification)
        for uid in STORAGE_CLASSES:
            ae.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
        ae.maximum_associations = 8
        self._ae = ae
        self._server = ae.start_server(
            ("0.0.0.0", self.local.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="nodeview-cad-worker", daemon=True)
        self._worker.start()
        log.info("CAD node %s listening on port %d", self.local.ae_title, self.local.port)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop listening; the worker finishes the series it is on (or it is resumed next start)."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._worker is not None:
            self._worker.join(timeout_s)
            self._worker = None

    def run_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    # ---- the worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            key = self.next_ready()
            if key is None:
                self._stop.wait(0.5)
                continue
            self.process(key)

    def next_ready(self) -> str | None:
        """Promote settled series to ``queued``; the oldest queued series, if any."""
        now = time.time()
        queued: list[tuple[float, str]] = []
        with self._lock:
            for key in self.series_keys():
                state = self.state(key)
                status = state.get("status")
                mtime = self.series_dir(key).stat().st_mtime
                if status == "receiving" and now - mtime >= self.settle_s:
                    self._write_state(key, status="queued")
                    status = "queued"
                if status == "queued":
                    queued.append((mtime, key))
        return min(queued)[1] if queued else None

    def process(self, key: str) -> NodeEvent:
        """Detect, export and send one series; its final status is written to disk."""
        with self._lock:
            state = self._write_state(key, status="processing", attempts=int(self.state(key).get("attempts", 0)) + 1)
        folder = self.series_dir(key)
        try:
            if state.get("modality") not in ("CT", ""):
                event = NodeEvent(key, "skipped", f"not CT ({state.get('modality')})")
            else:
                event = self._detect_export_send(key, folder)
        except NodeViewError as exc:
            event = NodeEvent(key, "failed", str(exc))
        except Exception as exc:  # an internal error: this series fails, the node goes on
            log.warning("series %s: internal error", key, exc_info=True)
            event = NodeEvent(key, "failed", f"internal error: {type(exc).__name__}")
        with self._lock:
            self._write_state(key, status=event.status, error="" if event.status == "done" else event.detail)
        if event.status in ("done", "skipped") and not self.keep_images:
            for p in (folder / "images").glob("*.dcm"):
                with contextlib.suppress(OSError):
                    p.unlink()
        log.info("series %s: %s (%s)", key, event.status, event.detail)
        self.on_event(event)
        return event

    def _detect_export_send(self, key: str, folder: Path) -> NodeEvent:
        from ..detect.detector import Detector
        from ..export import export_dicom, read_source_series
        from ..io.study import open_study

        images = folder / "images"
        volume = open_study(images)
        if self._detector is None:
            if self.model is None:
                from ..detect.models import default_model_path

                self.model = default_model_path()
            self._detector = Detector(self.model)
        result = self._detector.detect(volume, min_score=0.0)
        threshold = self._detector.info.threshold
        source = read_source_series([images], volume)
        out = folder / "out" / f"attempt-{self.state(key).get('attempts', 1)}"
        export = export_dicom(out, volume, result, {}, threshold, source, secondary_capture=self.secondary_capture)
        detail = f"{len(export.findings)} finding(s)"
        if self.send_to is not None:
            sent = send(self.send_to, export.paths, self.local)
            if sent.failed:
                raise NodeViewError(f"{self.send_to.label} refused {len(sent.failed)} object(s): {sent.failed[0]}")
            detail += f", {sent.n_sent} object(s) sent to {self.send_to.label}"
        return NodeEvent(key, "done", detail)
