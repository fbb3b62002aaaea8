"""DICOMweb PACS nodes with dicomweb-client: QIDO-RS echo and query, WADO-RS retrieve, STOW-RS send (Qt-free).

A DICOMweb node is a base URL (``http://pacs.local:8042/dicom-web``). The functions here mirror the
DIMSE ones of :mod:`.net` and return the same result types (:class:`~.records.StudyRow`,
:class:`~.records.SeriesRow`, :class:`~.records.RetrieveResult`, :class:`~.records.SendResult`); a retrieve
writes the same cache layout as C-GET (``folder/<series UID>/<SOP instance UID>.dcm``, atomically),
so the viewer opens it the same way. :mod:`.net`'s ``echo``/``find_studies``/``find_series``/
``retrieve``/``send`` dispatch here when given a :class:`DicomWebNode`.

Text keys (patient name and ID, accession number, description) travel in the query URL, where a
space, ``^``, ``/`` or a non-ASCII letter is percent-escaped, and Orthanc 1.10 with its DICOMweb
plugin 1.7 matches such escapes literally (``PatientID=A%20B`` finds nothing for patient ``A B``).
:func:`qido_key` therefore sends each such character as the wildcard ``?`` (a non-ASCII run as
``*``: Orthanc's ``?`` matches one byte, not one UTF-8 letter), and :func:`find_studies` keeps the
rows whose value matches the key as given (C-FIND wildcards, case ignored as Orthanc does).

Errors are :class:`~.records.PacsError` subclasses with one-line messages: connection refused, timeout,
an HTTP status (404: no DICOMweb service at that path; 401/403: credentials), or an answer that is
not DICOMweb. Messages name the base URL only, never a query URL (its parameters can hold a
patient name); dicomweb-client's and urllib3's loggers (which log whole query URLs at DEBUG) are
held at WARNING.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from ..errors import Cancelled, InputError
from ..progress import ProgressFn, StopFn, never_stop, no_progress
from .records import (
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

log = logging.getLogger(__name__)


def quiet_http_logs() -> None:
    """dicomweb-client and urllib3 log query URLs (patient names in QIDO parameters) at DEBUG."""
    for name in ("dicomweb_client", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


quiet_http_logs()


@dataclass(frozen=True)
class DicomWebNode:
    """A DICOMweb service: its base URL (QIDO/WADO/STOW under it) and a label for menus."""

    url: str
    name: str = ""

    def __post_init__(self) -> None:
        url = self.url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"{self.url!r} is not a DICOMweb URL: write http(s)://HOST[:PORT]/PATH")
        try:
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError as exc:
            raise InputError(f"{self.url!r}: the port is not a number between 0 and 65535") from exc
        if parts.query or parts.fragment:
            raise InputError(f"{self.url!r}: a DICOMweb base URL has no query (?...) or fragment (#...)")
        object.__setattr__(self, "url", url)

    @property
    def label(self) -> str:
        return self.name or self.url

    def __str__(self) -> str:
        return self.url


class _WildcardAdapter(requests.adapters.HTTPAdapter):
    """Send QIDO wildcards ``*`` and ``?`` as themselves: requests escapes them (%2A, %3F), which RFC 3986
    allows in a query, and Orthanc then matches them literally (``PatientName=DOE%2A`` finds nothing)."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if request.url and "?" in request.url:
            base, _, query = request.url.partition("?")
            request.url = base + "?" + query.replace("%2A", "*").replace("%3F", "?")
        return super().send(request, *args, **kwargs)


def _client(node: DicomWebNode, timeout_s: float, read_s: float | None = None) -> DICOMwebClient:
    session = requests.Session()
    adapter = _WildcardAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # (connect, read) timeouts: a silent host fails after timeout_s; a slow answer gets some more
    client = DICOMwebClient(node.url, session=session, timeout=(timeout_s, read_s or max(timeout_s, 30.0)))
    # no silent retries: dicomweb-client retries every failed request (refused ones too) 5 times with
    # exponential back-off, 30 s before "connection refused" is said; the reader retries instead
    client.set_http_retry_params(retry=False)
    return client


@contextlib.contextmanager
def _errors(node: DicomWebNode, what: str, timeout_s: float) -> Iterator[None]:
    """Turn requests' exceptions into one-line :class:`PacsError`s (never quoting a query URL)."""
    host = urlsplit(node.url).netloc
    try:
        yield
    except PacsError:
        raise
    except requests.exceptions.ConnectTimeout as exc:
        raise PacsTimeoutError(
            f"{node.label}: no answer from {host} within {timeout_s:g} s (host, port, firewall?)"
        ) from exc
    except requests.exceptions.ReadTimeout as exc:
        raise PacsTimeoutError(
            f"{node.label}: the {what} got no answer in time (is it an HTTP server? is it stuck?)"
        ) from exc
    except requests.exceptions.ConnectionError as exc:
        text = repr(exc)
        if "Connection refused" in text or "Errno 111" in text:
            raise ConnectionRefusedPacsError(
                f"{node.label}: connection refused at {host} (is the DICOMweb server running, is the port right?)"
            ) from exc
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            raise PacsError(f"{node.label}: unknown host {urlsplit(node.url).hostname!r}") from exc
        raise PacsError(f"{node.label}: the connection to {host} failed during the {what}") from exc
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        if code == 404:
            why = "no DICOMweb service at this URL (check the path, e.g. /dicom-web)"
        elif code in (401, 403):
            why = "the server wants credentials or refuses them"
        else:
            why = exc.response.reason if exc.response is not None and exc.response.reason else "server error"
        raise PacsError(f"{node.label}: the {what} failed (HTTP {code}: {why})") from exc
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"{node.label}: the {what} failed ({type(exc).__name__})") from exc
    except (ValueError, KeyError, TypeError) as exc:  # not JSON, not DICOM JSON, not multipart DICOM
        raise PacsError(f"{node.label}: the answer to the {what} is not DICOMweb ({type(exc).__name__})") from exc


def _datasets(docs: Any) -> list[Dataset]:
    if not isinstance(docs, list):
        raise ValueError("a QIDO answer is a JSON list")
    return [Dataset.from_json(d) for d in docs]


def echo(node: DicomWebNode, timeout_s: float = 10.0) -> float:
    """A QIDO-RS study search for at most one study: proves the service answers DICOMweb; seconds."""
    t0 = time.perf_counter()
    with _errors(node, "QIDO-RS test", timeout_s):
        _datasets(_client(node, timeout_s, timeout_s).search_for_studies(limit=1, fields=["StudyInstanceUID"]))
    return time.perf_counter() - t0


_STUDY_FIELDS = ["StudyDate", "StudyTime", "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                 "NumberOfStudyRelatedInstances", "PatientName", "PatientID", "AccessionNumber"]  # fmt: skip
_SERIES_FIELDS = ["Modality", "SeriesNumber", "SeriesDescription", "NumberOfSeriesRelatedInstances"]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _multi(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


#: characters a URL query carries as themselves (RFC 3986 "unreserved", and the wildcards, sent as is)
_URL_SAFE = re.compile(r"[A-Za-z0-9._~*?-]")
_TEXT_KEYS = ("PatientName", "PatientID", "AccessionNumber", "StudyDescription")


def qido_key(value: str) -> str:
    """A QIDO-RS matching key that any server, Orthanc included, matches for ``value`` (module
    docstring): URL-safe characters and wildcards as they are, another ASCII character ``?``, a run
    of non-ASCII characters ``*``; leading and trailing spaces dropped."""
    out: list[str] = []
    for ch in value.strip():
        if _URL_SAFE.fullmatch(ch):
            out.append(ch)
        elif ord(ch) < 128:
            out.append("?")
        elif not out or out[-1] != "*":
            out.append("*")
    return "".join(out)


def _wildcard(value: str) -> re.Pattern[str]:
    """A C-FIND key (``*`` any run, ``?`` one character) as a case-insensitive regular expression."""
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in value.strip()]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def find_studies(node: DicomWebNode, query: StudyQuery, timeout_s: float = 10.0) -> list[StudyRow]:
    """QIDO-RS studies matching ``query`` (same keys and wildcards as C-FIND), newest first."""
    filters = {
        "PatientName": query.patient_name,
        "PatientID": query.patient_id,
        "StudyDate": query.study_date,
        "ModalitiesInStudy": query.modality,
        "AccessionNumber": query.accession_number,
        "StudyDescription": query.description,
    }
    filters = {k: v for k, v in filters.items() if v}
    widened = {k: _wildcard(v) for k, v in filters.items() if k in _TEXT_KEYS and qido_key(v) != v}
    filters = {k: qido_key(v) if k in widened else v for k, v in filters.items()}
    with _errors(node, "QIDO-RS query", timeout_s):
        found = _datasets(_client(node, timeout_s).search_for_studies(fields=_STUDY_FIELDS, search_filters=filters))
    found = [r for r in found if all(p.fullmatch(str(r.get(k, "")).strip()) for k, p in widened.items())]
    rows = [
        StudyRow(
            study_uid=str(r.get("StudyInstanceUID", "")),
            date=str(r.get("StudyDate", "")),
            time=str(r.get("StudyTime", "")),
            description=str(r.get("StudyDescription", "")),
            modalities=tuple(_multi(r.get("ModalitiesInStudy", ""))),
            n_series=_int(r.get("NumberOfStudyRelatedSeries")),
            n_images=_int(r.get("NumberOfStudyRelatedInstances")),
            patient_name=str(r.get("PatientName", "")),
            patient_id=str(r.get("PatientID", "")),
            accession_number=str(r.get("AccessionNumber", "")),
        )
        for r in found
    ]
    log.info("QIDO-RS studies: %d match(es)", len(rows))
    return sorted(rows, key=lambda r: (r.date, r.time), reverse=True)


def find_series(node: DicomWebNode, study_uid: str, timeout_s: float = 10.0) -> list[SeriesRow]:
    """QIDO-RS series of one study, by series number."""
    with _errors(node, "QIDO-RS series query", timeout_s):
        found = _datasets(_client(node, timeout_s).search_for_series(study_uid, fields=_SERIES_FIELDS))
    rows = [
        SeriesRow(
            study_uid,
            str(r.get("SeriesInstanceUID", "")),
            str(r.get("Modality", "")),
            _int(r.get("SeriesNumber")),
            str(r.get("SeriesDescription", "")),
            _int(r.get("NumberOfSeriesRelatedInstances")),
        )
        for r in found
    ]
    return sorted(rows, key=lambda r: (r.number is None, r.number or 0, r.series_uid))


def retrieve(
    node: DicomWebNode,
    study_uid: str,
    folder: str | os.PathLike[str],
    series_uid: str | None = None,
    timeout_s: float = 10.0,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> RetrieveResult:
    """WADO-RS a study (series by series) or one series into ``folder`` (the C-GET cache layout).

    Instances stream in one by one: progress counts them against the QIDO-RS instance counts, and a
    stop closes the stream and raises :class:`~nodeview.core.errors.Cancelled` (files already
    written stay; the caller does not mark the study complete)."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    series = find_series(node, study_uid, timeout_s)
    if series_uid is not None:
        series = [s for s in series if s.series_uid == series_uid]
        if not series:
            raise PacsError(f"{node.label}: the study has no such series")
    total = sum(s.n_images or 0 for s in series)
    client = _client(node, timeout_s)
    received = failed = 0
    progress(0, total)
    for s in series:
        if should_stop():
            raise Cancelled()
        with _errors(node, "WADO-RS retrieve", timeout_s):
            stream = client.iter_series(study_uid, s.series_uid)
            try:
                for ds in stream:
                    try:
                        write_received(target, ds, _file_meta(ds))
                    except OSError:
                        log.warning("could not store a retrieved instance", exc_info=True)
                        failed += 1
                    else:
                        received += 1
                    progress(received + failed, max(total, received + failed))
                    if should_stop():
                        raise Cancelled()
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()
    log.info("WADO-RS: %d instance(s) received, %d failed", received, failed)
    return RetrieveResult(target, received, failed, "WADO-RS")


def _file_meta(ds: Dataset) -> FileMetaDataset:
    meta = getattr(ds, "file_meta", None)
    if isinstance(meta, FileMetaDataset) and "TransferSyntaxUID" in meta:
        return meta
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def send(
    node: DicomWebNode,
    paths: Sequence[str | os.PathLike[str]],
    timeout_s: float = 10.0,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> SendResult:
    """STOW-RS each file (one request per file, so one refusal does not sink the others); files the
    server refuses are listed with the reason, not fatal."""
    files = [Path(p) for p in paths]
    datasets = []
    for p in files:
        try:
            datasets.append(pydicom.dcmread(p))
        except Exception as exc:
            raise InputError(f"{p.name} is not a DICOM file ({exc})") from exc
    client = _client(node, timeout_s)
    failed: list[str] = []
    sent = 0
    for n, (p, ds) in enumerate(zip(files, datasets, strict=True)):
        if should_stop():
            raise Cancelled()
        with _errors(node, "STOW-RS send", timeout_s):
            try:
                answer = client.store_instances([ds])
            except requests.exceptions.HTTPError as exc:
                code = exc.response.status_code if exc.response is not None else 0
                if code not in (400, 409, 413, 415, 422):  # not about this object: fail the send
                    raise
                failed.append(f"{p.name}: refused (HTTP {code})")
                continue
        refused = [item for item in answer.get("FailedSOPSequence", []) if "FailureReason" in item]
        if refused:
            failed.append(f"{p.name}: refused (failure reason 0x{int(refused[0].FailureReason):04X})")
        else:
            sent += 1
        progress(n + 1, len(files))
    log.info("STOW-RS: %d sent, %d failed", sent, len(failed))
    return SendResult(sent, tuple(failed))


__all__ = ["DicomWebNode", "echo", "find_series", "find_studies", "qido_key", "retrieve", "send"]
