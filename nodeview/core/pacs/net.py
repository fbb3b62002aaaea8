"""DICOM networking with pynetdicom: C-ECHO, study/series C-FIND, C-GET (C-MOVE fallback), C-STORE (Qt-free).

Conventions
    A PACS is a :class:`PacsNode` (AE title, host, port); NodeView is a :class:`LocalAE` (its AE
    title and the port of its own storage SCP, used by C-MOVE). Every call opens one association
    and closes it. Failures raise :class:`PacsError` subclasses whose one-line messages say what
    happened in a reader's words: the connection was refused (nothing listens there), it timed out
    (host unreachable or slow), the association was rejected (the PACS does not know our AE title
    or its own: "unknown AE"), or an operation failed with a DIMSE status.

Privacy
    Nothing here logs patient data: log lines carry counts, statuses and UIDs only. pynetdicom's own
    logger (which dumps identifiers at DEBUG) is held at WARNING by :func:`quiet_pynetdicom`.

Long work (retrieve, send) takes ``progress(done, total)`` and ``should_stop()`` like the rest of
``nodeview.core``; a cancelled C-GET/C-MOVE is cancelled on the PACS (C-CANCEL) and the association
released, then :class:`~nodeview.core.errors.Cancelled` is raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from ..errors import Cancelled, InputError
from ..progress import ProgressFn, StopFn, never_stop, no_progress
from .records import (
    AssociationRejectedError,
    ConnectionRefusedPacsError,
    PacsError,
    PacsTimeoutError,
    RetrieveResult,
    SendResult,
    SeriesRow,
    StudyQuery,
    StudyRow,
    write_received,
)

if TYPE_CHECKING:
    from .dicomweb import DicomWebNode

log = logging.getLogger(__name__)

#: SOP classes NodeView retrieves and sends: CT and MR images, the SR/SEG/Secondary Capture it writes
STORAGE_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image",
}
_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")  # default character repertoire, no backslash
DATE_PRESETS = ("any", "today", "yesterday", "last 7 days", "between")


def quiet_pynetdicom() -> None:
    """pynetdicom logs whole identifiers (patient names) at DEBUG/INFO: keep its logger at WARNING."""
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)


quiet_pynetdicom()


# ---- nodes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PacsNode:
    """A remote DICOM node. ``name`` is a label for menus (defaults to the AE title)."""

    ae_title: str
    host: str
    port: int
    name: str = ""

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title)
        if not self.host.strip():
            raise InputError("the PACS host is empty")
        if not 1 <= int(self.port) <= 65535:
            raise InputError(f"port {self.port} is not between 1 and 65535")

    @property
    def label(self) -> str:
        return self.name or self.ae_title

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> PacsNode:
        """``HOST:PORT:AET`` (as ``nodeview node --send-to``) or ``AET@HOST:PORT``."""
        text = text.strip()
        m = re.fullmatch(r"(?P<aet>[^@]+)@(?P<host>[^:]+):(?P<port>\d+)", text) or re.fullmatch(
            r"(?P<host>[^:]+):(?P<port>\d+):(?P<aet>.+)", text
        )
        if m is None:
            raise InputError(f"{text!r} is not a DICOM node: write HOST:PORT:AET (e.g. pacs.local:4242:ORTHANC)")
        return cls(m["aet"], m["host"], int(m["port"]))


@dataclass(frozen=True)
class LocalAE:
    """NodeView's own AE title and the port its storage SCP listens on (C-MOVE destination)."""

    ae_title: str = "NODEVIEW"
    port: int = 11112

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title)
        if not 0 <= int(self.port) <= 65535:
            raise InputError(f"port {self.port} is not between 0 and 65535")


def check_ae_title(title: str) -> None:
    if not _AE_TITLE.fullmatch(title) or not title.strip():
        raise InputError(f"{title!r} is not a valid AE title (1-16 characters, no backslash)")


# ---- associations --------------------------------------------------------------------------------
def _ae(local: LocalAE, timeout_s: float) -> AE:
    ae = AE(ae_title=local.ae_title)
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = max(timeout_s, 30.0)
    ae.network_timeout = max(timeout_s, 30.0)
    ae.connection_timeout = timeout_s
    return ae


def _probe(node: PacsNode, timeout_s: float) -> None:
    """Tell "nothing listens" from "unreachable" before pynetdicom hides the difference."""
    try:
        with socket.create_connection((node.host, node.port), timeout=timeout_s):
            pass
    except ConnectionRefusedError as exc:
        raise ConnectionRefusedPacsError(
            f"{node.label}: connection refused at {node.host}:{node.port} (is the PACS running, is the port right?)"
        ) from exc
    except TimeoutError as exc:
        raise PacsTimeoutError(
            f"{node.label}: no answer from {node.host}:{node.port} within {timeout_s:g} s (host, port, firewall?)"
        ) from exc
    except socket.gaierror as exc:
        raise PacsError(f"{node.label}: unknown host {node.host!r}") from exc
    except OSError as exc:
        raise PacsError(f"{node.label}: cannot connect to {node.host}:{node.port} ({exc.strerror or exc})") from exc


#: extra attempts after an association is aborted within half its timeout (see :func:`associate`)
_ABORT_RETRIES = 2


@contextlib.contextmanager
def associate(
    node: PacsNode,
    local: LocalAE,
    contexts: Sequence[tuple[str, Sequence[str] | None]],
    timeout_s: float = 10.0,
    roles: Sequence[str] = (),
    handlers: Sequence[tuple[Any, Callable[..., Any]]] = (),
) -> Iterator[Any]:
    """An established association (released on exit), or a :class:`PacsError` saying why not.

    Args:
        contexts: (abstract syntax, transfer syntaxes or None for the default ones).
        roles: abstract syntaxes NodeView also takes the SCP role for (C-GET storage).
        handlers: pynetdicom event handlers (``evt.EVT_C_STORE`` for C-GET).
    """
    _probe(node, timeout_s)
    ae = _ae(local, timeout_s)
    for syntax, transfer in contexts:
        if transfer is None:
            ae.add_requested_context(syntax)
        else:
            ae.add_requested_context(syntax, list(transfer))
    ext: list[Any] = [build_role(s, scp_role=True) for s in roles]
    started = time.monotonic()
    for attempt in range(_ABORT_RETRIES + 1):
        assoc = ae.associate(
            node.host, node.port, ae_title=node.ae_title, ext_neg=ext or None, evt_handlers=list(handlers) or None
        )
        quick_abort = (
            not assoc.is_established and not assoc.is_rejected and time.monotonic() - started < timeout_s * 0.5
        )
        if not quick_abort or attempt == _ABORT_RETRIES:
            break
        # A PACS that rejects an association (an unknown called AE title, say) sends A-ASSOCIATE-RJ and
        # closes at once; when its close overtakes the reject on the wire (a TCP reset discards the unread
        # reply) the reject reads as an abort. Asking again recovers the real reason.
        time.sleep(0.2 * (attempt + 1))
    if not assoc.is_established:
        if assoc.is_rejected:
            raise AssociationRejectedError(_rejection(node, assoc))
        if time.monotonic() - started >= timeout_s * 0.9:
            raise PacsTimeoutError(f"{node.label}: no DICOM answer within {timeout_s:g} s (is it a DICOM port?)")
        raise PacsError(f"{node.label}: the association was aborted (is {node.host}:{node.port} a DICOM port?)")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _rejection(node: PacsNode, assoc: Any) -> str:
    rsp = getattr(getattr(assoc, "acceptor", None), "primitive", None)
    reason = getattr(rsp, "reason_str", "") or ""
    diagnostic = str(getattr(rsp, "result_str", "") or "")
    code = getattr(rsp, "diagnostic", None)
    if code == 7 or "called" in reason.lower():
        why = f"it does not know the called AE title {node.ae_title!r} (unknown AE)"
    elif code == 3 or "calling" in reason.lower():
        why = "it does not accept our AE title (add NodeView's AE title to the PACS's known modalities)"
    else:
        why = reason or "no reason given"
    return f"{node.label}: association rejected ({diagnostic.lower() or 'rejected'}): {why}"


def echo(node: PacsNode | DicomWebNode, local: LocalAE = LocalAE(), timeout_s: float = 10.0) -> float:
    """C-ECHO (a QIDO-RS search for a DICOMweb node); the round-trip time in seconds, or a :class:`PacsError`."""
    if not isinstance(node, PacsNode):
        from . import dicomweb

        return dicomweb.echo(node, timeout_s)
    t0 = time.perf_counter()
    with associate(node, local, [(Verification, None)], timeout_s) as assoc:
        status = assoc.send_c_echo()
        if not status or int(getattr(status, "Status", -1)) != 0:
            raise PacsError(f"{node.label}: C-ECHO failed (status {_status(status)})")
    return time.perf_counter() - t0


def _status(status: Any) -> str:
    return f"0x{int(status.Status):04X}" if status is not None and "Status" in status else "none: connection lost"


# ---- query ---------------------------------------------------------------------------------------
def date_range(preset: str, today: date | None = None, start: date | None = None, end: date | None = None) -> str:
    """A DICOM date range (``YYYYMMDD-YYYYMMDD``, "" for any) for a :data:`DATE_PRESETS` choice."""
    today = today or date.today()
    if preset == "any":
        return ""
    if preset == "today":
        return f"{today:%Y%m%d}"
    if preset == "yesterday":
        return f"{today - timedelta(days=1):%Y%m%d}"
    if preset == "last 7 days":
        return f"{today - timedelta(days=6):%Y%m%d}-{today:%Y%m%d}"
    if preset == "between":
        lo = f"{start:%Y%m%d}" if start else ""
        hi = f"{end:%Y%m%d}" if end else ""
        if start and end and start > end:
            raise InputError("the start date is after the end date")
        return f"{lo}-{hi}" if (lo or hi) else ""
    raise InputError(f"unknown date choice {preset!r} (one of {', '.join(DATE_PRESETS)})")


def parse_date_option(text: str, today: date | None = None) -> str:
    """``today``, ``yesterday``, ``last7``, ``YYYYMMDD`` or ``YYYYMMDD-YYYYMMDD`` (CLI) as a DICOM range."""
    presets = {"today": "today", "yesterday": "yesterday", "last7": "last 7 days", "any": "any"}
    if text in presets:
        return date_range(presets[text], today)
    if re.fullmatch(r"\d{8}|\d{8}?-\d{8}?", text):
        return text
    raise InputError(f"date {text!r}: use today, yesterday, last7, YYYYMMDD or YYYYMMDD-YYYYMMDD")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _find(node: PacsNode, local: LocalAE, identifier: Dataset, timeout_s: float) -> list[Dataset]:
    out: list[Dataset] = []
    with associate(node, local, [(StudyRootQueryRetrieveInformationModelFind, None)], timeout_s) as assoc:
        for status, found in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            if status is None or "Status" not in status:
                raise PacsError(f"{node.label}: the query was interrupted (connection lost or timed out)")
            code = int(status.Status)
            if code in (0xFF00, 0xFF01) and found is not None:
                out.append(found)
            elif code != 0:
                raise PacsError(f"{node.label}: the query failed (status 0x{code:04X})")
    log.info("C-FIND %s: %d match(es)", identifier.QueryRetrieveLevel, len(out))
    return out


def find_studies(
    node: PacsNode | DicomWebNode, query: StudyQuery, local: LocalAE = LocalAE(), timeout_s: float = 10.0
) -> list[StudyRow]:
    """Studies matching ``query``, newest first (C-FIND; QIDO-RS for a DICOMweb node)."""
    if not isinstance(node, PacsNode):
        from . import dicomweb

        return dicomweb.find_studies(node, query, timeout_s)
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = query.patient_name
    ds.PatientID = query.patient_id
    ds.StudyDate = query.study_date
    ds.StudyTime = ""
    ds.AccessionNumber = query.accession_number
    ds.StudyDescription = query.description
    ds.ModalitiesInStudy = query.modality
    ds.StudyInstanceUID = ""
    ds.NumberOfStudyRelatedSeries = ""
    ds.NumberOfStudyRelatedInstances = ""
    rows = [
        StudyRow(
            study_uid=str(r.get("StudyInstanceUID", "")),
            date=str(r.get("StudyDate", "")),
            time=str(r.get("StudyTime", "")),
            description=str(r.get("StudyDescription", "")),
            modalities=tuple(str(m) for m in _multi(r.get("ModalitiesInStudy", ""))),
            n_series=_int(r.get("NumberOfStudyRelatedSeries")),
            n_images=_int(r.get("NumberOfStudyRelatedInstances")),
            patient_name=str(r.get("PatientName", "")),
            patient_id=str(r.get("PatientID", "")),
            accession_number=str(r.get("AccessionNumber", "")),
        )
        for r in _find(node, local, ds, timeout_s)
    ]
    return sorted(rows, key=lambda r: (r.date, r.time), reverse=True)


def _multi(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]


def find_series(
    node: PacsNode | DicomWebNode, study_uid: str, local: LocalAE = LocalAE(), timeout_s: float = 10.0
) -> list[SeriesRow]:
    """The series of one study, by series number (C-FIND; QIDO-RS for a DICOMweb node)."""
    if not isinstance(node, PacsNode):
        from . import dicomweb

        return dicomweb.find_series(node, study_uid, timeout_s)
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = ""
    ds.Modality = ""
    ds.SeriesNumber = ""
    ds.SeriesDescription = ""
    ds.NumberOfSeriesRelatedInstances = ""
    rows = [
        SeriesRow(
            study_uid,
            str(r.get("SeriesInstanceUID", "")),
            str(r.get("Modality", "")),
            _int(r.get("SeriesNumber")),
            str(r.get("SeriesDescription", "")),
            _int(r.get("NumberOfSeriesRelatedInstances")),
        )
        for r in _find(node, local, ds, timeout_s)
    ]
    return sorted(rows, key=lambda r: (r.number is None, r.number or 0, r.series_uid))


# ---- retrieve ------------------------------------------------------------------------------------
def _store_handler(folder: Path, counter: dict[str, int]) -> Callable[[Any], int]:
    def handle(event: Any) -> int:
        try:
            ds = event.dataset
            write_received(folder, ds, event.file_meta)
        except Exception:  # disk full, bad data: tell the sender, keep the association
            log.warning("could not store a received instance", exc_info=True)
            counter["failed"] += 1
            return 0xA700
        counter["received"] += 1
        return 0x0000

    return handle


def _retrieve_identifier(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _drive(
    node: PacsNode,
    assoc: Any,
    responses: Iterator[tuple[Any, Any]],
    model: str,
    counter: dict[str, int],
    progress: ProgressFn,
    should_stop: StopFn,
    what: str,
) -> None:
    """Run a C-GET/C-MOVE's responses: progress from the sub-operation counts, C-CANCEL on stop."""
    cancelled = False
    for status, _ in responses:
        if should_stop() and not cancelled:
            cancelled = True
            with contextlib.suppress(Exception):
                assoc.send_c_cancel(1, query_model=model)
        if status is None or "Status" not in status:
            raise PacsError(f"{node.label}: the {what} was interrupted (connection lost or timed out)")
        code = int(status.Status)
        done = sum(_int(status.get(k)) or 0 for k in ("NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
                                                       "NumberOfWarningSuboperations"))  # fmt: skip
        left = _int(status.get("NumberOfRemainingSuboperations"))
        if left is not None:
            progress(done, done + left)
        if code == 0xFE00 or cancelled:
            raise Cancelled()
        if code in (0xFF00, 0xFF01):
            continue
        failed = _int(status.get("NumberOfFailedSuboperations")) or 0
        if code == 0x0000:
            return
        if code == 0xB000:  # some sub-operations failed
            counter["failed"] = max(counter["failed"], failed)
            return
        if code == 0xA801:
            raise PacsError(f"{node.label}: it does not know our AE title as a move destination (C-MOVE)")
        raise PacsError(f"{node.label}: the {what} failed (status 0x{code:04X})")


def retrieve(
    node: PacsNode | DicomWebNode,
    study_uid: str,
    folder: str | os.PathLike[str],
    local: LocalAE = LocalAE(),
    series_uid: str | None = None,
    method: str = "auto",
    timeout_s: float = 10.0,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> RetrieveResult:
    """Retrieve a study (or one series) into ``folder``.

    Args:
        method: "get" (C-GET), "move" (C-MOVE to NodeView's own storage SCP on ``local.port``) or
            "auto" (C-GET; C-MOVE when the PACS refuses C-GET). A DICOMweb node retrieves with
            WADO-RS ("auto" or "wado").
    """
    if not isinstance(node, PacsNode):
        from . import dicomweb

        if method not in ("auto", "wado"):
            raise InputError(f"{node.label} is a DICOMweb node: it retrieves with WADO-RS, not {method!r}")
        return dicomweb.retrieve(node, study_uid, folder, series_uid, timeout_s, progress, should_stop)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    if method in ("get", "auto"):
        try:
            return _retrieve_get(node, study_uid, series_uid, target, local, timeout_s, progress, should_stop)
        except _GetRefused as exc:
            if method == "get":
                raise PacsError(f"{node.label}: it does not offer C-GET ({exc}); use C-MOVE") from exc
            log.info("C-GET refused (%s); trying C-MOVE", exc)
    if method not in ("get", "move", "auto"):
        raise InputError(f"unknown retrieve method {method!r}")
    return _retrieve_move(node, study_uid, series_uid, target, local, timeout_s, progress, should_stop)


class _GetRefused(Exception):
    pass


def _retrieve_get(
    node: PacsNode,
    study_uid: str,
    series_uid: str | None,
    folder: Path,
    local: LocalAE,
    timeout_s: float,
    progress: ProgressFn,
    should_stop: StopFn,
) -> RetrieveResult:
    counter = {"received": 0, "failed": 0}
    contexts: list[tuple[str, Sequence[str] | None]] = [(StudyRootQueryRetrieveInformationModelGet, None)]
    contexts += [(uid, ALL_TRANSFER_SYNTAXES) for uid in STORAGE_CLASSES]
    handlers = [(evt.EVT_C_STORE, _store_handler(folder, counter))]
    with associate(node, local, contexts, timeout_s, roles=list(STORAGE_CLASSES), handlers=handlers) as assoc:
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        if StudyRootQueryRetrieveInformationModelGet not in accepted:
            raise _GetRefused("the C-GET model was not accepted")
        responses = assoc.send_c_get(
            _retrieve_identifier(study_uid, series_uid), StudyRootQueryRetrieveInformationModelGet
        )
        _drive(node, assoc, responses, StudyRootQueryRetrieveInformationModelGet, counter, progress, should_stop,
               "C-GET")  # fmt: skip
    log.info("C-GET: %d instance(s) received, %d failed", counter["received"], counter["failed"])
    return RetrieveResult(folder, counter["received"], counter["failed"], "C-GET")


def _retrieve_move(
    node: PacsNode,
    study_uid: str,
    series_uid: str | None,
    folder: Path,
    local: LocalAE,
    timeout_s: float,
    progress: ProgressFn,
    should_stop: StopFn,
) -> RetrieveResult:
    counter = {"received": 0, "failed": 0}
    scp = AE(ae_title=local.ae_title)
    for uid in STORAGE_CLASSES:
        scp.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
    try:
        server = scp.start_server(
            ("0.0.0.0", local.port), block=False, evt_handlers=[(evt.EVT_C_STORE, _store_handler(folder, counter))]
        )
    except OSError as exc:
        raise PacsError(f"cannot listen on port {local.port} for C-MOVE ({exc.strerror or exc})") from exc
    try:
        with associate(node, local, [(StudyRootQueryRetrieveInformationModelMove, None)], timeout_s) as assoc:
            responses = assoc.send_c_move(
                _retrieve_identifier(study_uid, series_uid), local.ae_title, StudyRootQueryRetrieveInformationModelMove
            )
            _drive(node, assoc, responses, StudyRootQueryRetrieveInformationModelMove, counter, progress,
                   should_stop, "C-MOVE")  # fmt: skip
    finally:
        assert server is not None
        server.shutdown()
        scp.shutdown()
    log.info("C-MOVE: %d instance(s) received, %d failed", counter["received"], counter["failed"])
    return RetrieveResult(folder, counter["received"], counter["failed"], "C-MOVE")


# ---- send ----------------------------------------------------------------------------------------
def send(
    node: PacsNode | DicomWebNode,
    paths: Sequence[str | os.PathLike[str]],
    local: LocalAE = LocalAE(),
    timeout_s: float = 10.0,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> SendResult:
    """C-STORE each file (one association for all; STOW-RS for a DICOMweb node); files the PACS
    refuses are listed, not fatal."""
    if not isinstance(node, PacsNode):
        from . import dicomweb

        return dicomweb.send(node, paths, timeout_s, progress, should_stop)
    files = [Path(p) for p in paths]
    headers = []
    for p in files:
        try:
            headers.append(pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"]))
        except Exception as exc:
            raise InputError(f"{p.name} is not a DICOM file ({exc})") from exc
    classes = sorted({str(h.SOPClassUID) for h in headers})
    if len(classes) > 120:
        raise InputError("too many different SOP classes to send in one association")
    failed: list[str] = []
    sent = 0
    with associate(node, local, [(uid, ALL_TRANSFER_SYNTAXES) for uid in classes], timeout_s) as assoc:
        for n, p in enumerate(files):
            if should_stop():
                raise Cancelled()
            try:
                status = assoc.send_c_store(p)
            except ValueError as exc:  # no accepted context for this SOP class / transfer syntax
                failed.append(f"{p.name}: {exc}")
                continue
            if status is None or "Status" not in status:
                raise PacsError(f"{node.label}: the connection was lost while sending {p.name}")
            code = int(status.Status)
            if code == 0 or 0xB000 <= code <= 0xBFFF:
                sent += 1
            else:
                failed.append(f"{p.name}: refused (status 0x{code:04X})")
            progress(n + 1, len(files))
    log.info("C-STORE: %d sent, %d failed", sent, len(failed))
    return SendResult(sent, tuple(failed))
