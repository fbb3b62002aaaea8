"""What a batch has to do: the studies under a folder tree or in a list file (no Dask, no Qt).

A *study* here is one image series (the batch's unit of work, one output folder each): every
CT series that core discovery (:func:`nodeview.core.io.dicom.discover`) finds under the input,
localizers and non-CT series left out, or one research-format volume file (.mhd, .nii, .nrrd).

Content key
    Each study is keyed by a SHA-256 over what it holds, not where it lies: for DICOM, the
    SeriesInstanceUID and the sorted (SOPInstanceUID, frame, file size) of its images (headers
    only, so planning reads no pixels); for a volume file, its bytes (and those of a MetaImage's
    data file). A copied or moved study keeps its key; a study whose files changed gets a new
    one. The manifest (:mod:`.manifest`) remembers keys already done.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import NodeViewError
from ..core.io.dicom import SeriesInfo, discover
from ..core.io.sitk import sitk_format_of

LIST_SUFFIXES = (".txt", ".list", ".lst")
#: Default voxel budget: a 1,024-slice 512 x 512 scan. Larger series are refused before loading.
DEFAULT_MAX_VOXELS = 1024 * 512 * 512


@dataclass(frozen=True)
class StudyTask:
    """One unit of work, sent to a worker (small and picklable: paths, not pixels)."""

    key: str  #: content key (see the module docstring)
    files: tuple[str, ...]  #: the files to open (one series' images, or one volume file)
    series: str  #: the discovery key of the series ("" for a volume file)
    source: str  #: where it was found, as given (a folder or file path)
    slices: int
    voxels: int  #: 0 when unknown before loading (volume files)

    @property
    def short(self) -> str:
        return self.key[:12]


@dataclass(frozen=True)
class PlanProblem:
    """An input entry that yields no study (missing path, no images): reported, never fatal."""

    key: str
    source: str
    reason: str


@dataclass(frozen=True)
class Plan:
    tasks: tuple[StudyTask, ...]
    problems: tuple[PlanProblem, ...]
    skipped_series: int  #: localizers and non-CT series left out
    files: int


def series_key(series: SeriesInfo) -> str:
    """The content key of a discovered series (SOP instance UIDs and file sizes; headers only)."""
    h = hashlib.sha256(f"series\0{series.series_uid}\0{series.key}\0".encode())
    sizes: dict[str, int] = {}
    items = []
    for fr in series.frames:
        if fr.path not in sizes:
            sizes[fr.path] = os.path.getsize(fr.path)
        items.append((fr.sop_instance_uid, fr.frame, sizes[fr.path]))
    for uid, frame, size in sorted(items):
        h.update(f"{uid}\0{frame}\0{size}\n".encode())
    return h.hexdigest()


def file_key(path: str | os.PathLike[str]) -> str:
    """The content key of a volume file: its bytes, and a MetaImage header's data file."""
    h = hashlib.sha256(b"file\0")
    p = Path(path)
    parts = [p]
    if p.suffix.lower() == ".mhd":
        m = re.search(r"^\s*ElementDataFile\s*=\s*(\S.*?)\s*$", p.read_text(errors="replace"), re.MULTILINE)
        if m and m.group(1) != "LOCAL" and (p.parent / m.group(1)).is_file():
            parts.append(p.parent / m.group(1))
    for part in parts:
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def problem_key(source: str) -> str:
    return hashlib.sha256(f"problem\0{os.path.abspath(source)}".encode()).hexdigest()


def is_list_file(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path) and Path(path).suffix.lower() in LIST_SUFFIXES


def read_list_file(path: str | os.PathLike[str]) -> list[str]:
    """The entries of a list file: one path a line (relative to the list's folder), ``#`` comments."""
    base = Path(path).parent
    out = []
    for line in Path(path).read_text().splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            out.append(str(base / entry) if not os.path.isabs(entry) else entry)
    return out


def _label(entry: str, files: tuple[str, ...]) -> str:
    """Where a series lies: its folder relative to the input entry (the entry itself when it is that folder)."""
    common = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    base = os.path.abspath(entry)
    if os.path.isdir(base) and (common == base or common.startswith(base + os.sep)):
        rel = os.path.relpath(common, base)
        return entry if rel == "." else os.path.join(entry, rel)
    return common


def _entry_tasks(entry: str) -> tuple[list[StudyTask], int, int]:
    """Tasks of one input entry: (tasks, series skipped, files seen). Raises NodeViewError."""
    if os.path.isfile(entry) and sitk_format_of(entry) is not None:
        return [StudyTask(file_key(entry), (entry,), "", entry, 0, 0)], 0, 1
    found = discover(entry)
    tasks, skipped = [], 0
    for s in found.series:
        if s.is_localizer or not s.is_ct:
            skipped += 1
            continue
        n, rows, cols = s.shape_zyx
        files = tuple(sorted({fr.path for fr in s.frames}))
        tasks.append(StudyTask(series_key(s), files, s.key, _label(entry, files), n, n * rows * cols))
    return tasks, skipped, found.n_files


def plan(source: str | os.PathLike[str]) -> Plan:
    """The studies under ``source``: a folder tree, one DICOM/volume file, or a list file.

    Each list entry is planned on its own (a missing entry or one without images becomes a
    :class:`PlanProblem`, the others go on). A study found twice (the same content) runs once.
    """
    src = os.fspath(source)
    if not os.path.exists(src):
        raise NodeViewError(f"{src} does not exist")
    entries = read_list_file(src) if is_list_file(src) else [src]
    tasks: dict[str, StudyTask] = {}
    problems: list[PlanProblem] = []
    skipped = files = 0
    for entry in entries:
        try:
            found, n_skipped, n_files = _entry_tasks(entry)
        except NodeViewError as exc:
            problems.append(PlanProblem(problem_key(entry), entry, str(exc)))
            continue
        except OSError as exc:
            problems.append(PlanProblem(problem_key(entry), entry, f"cannot be read ({exc.strerror or exc})"))
            continue
        skipped += n_skipped
        files += n_files
        for t in found:
            tasks.setdefault(t.key, t)
    return Plan(tuple(tasks.values()), tuple(problems), skipped, files)


__all__ = [
    "DEFAULT_MAX_VOXELS",
    "Plan",
    "PlanProblem",
    "StudyTask",
    "file_key",
    "is_list_file",
    "plan",
    "read_list_file",
    "series_key",
]
