"""LUNA16: ``ROOT/subset0..subset9/<seriesuid>.mhd(+.raw)``, ``annotations.csv`` and candidates.

``annotations.csv`` has ``seriesuid,coordX,coordY,coordZ,diameter_mm``; ``candidates.csv`` (or
``candidates_V2.csv``) ``seriesuid,coordX,coordY,coordZ,class``. LUNA16 world coordinates are
DICOM patient LPS millimetres, NodeView's convention (``nodeview.core.geometry``), so they are used
as they are. ``fold`` = subset number (the LUNA16 10-fold split); :func:`folds` splits by it.

LUNA16 carries no malignancy: ``malignant=None`` unless LIDC consensus nodules are merged in
(``malignancy=``, e.g. from :func:`training.data.lidc_xml.consensus`): an annotation takes the label,
mean rating, kind and margin of the nearest LIDC nodule of the same series within
``max(radius, 5 mm)`` (radius = the larger of the two diameters / 2); its own centre and diameter
are kept.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np

from nodeview.core.errors import NoImagesError, UnreadableFileError, UnsupportedDataError
from training.data.annotations import NoduleAnnotation, ScanRecord, read_table

ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
CANDIDATE_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "class")
#: LIDC nodules closer than this (mm) to a LUNA16 annotation always match it.
MATCH_MIN_MM = 5.0

_SUBSET = re.compile(r"^subset(\d+)$")

Candidate = tuple[tuple[float, float, float], int]


class Luna16Warning(UserWarning):
    """Something in the LUNA16 data was skipped (the message says what and how much)."""


def _read_table(path: Path, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    return read_table(path, columns, f"LUNA16 {what} file")


def _float(row: dict[str, str], key: str, path: Path, line: int) -> float:
    try:
        value = float(row[key])
    except (TypeError, ValueError):
        raise UnsupportedDataError(f"{path.name} line {line}: {key} {row.get(key)!r} is not a number") from None
    if not np.isfinite(value):
        raise UnsupportedDataError(f"{path.name} line {line}: {key} is not finite")
    return value


def read_annotations(path: str | os.PathLike[str]) -> dict[str, list[NoduleAnnotation]]:
    """``annotations.csv`` → series UID → nodules (``source="luna16"``, ``malignant=None``)."""
    path = Path(path)
    out: dict[str, list[NoduleAnnotation]] = defaultdict(list)
    for n, row in enumerate(_read_table(path, ANNOTATION_COLUMNS, "annotations"), start=2):
        diameter = _float(row, "diameter_mm", path, n)
        if diameter <= 0:
            raise UnsupportedDataError(f"{path.name} line {n}: diameter_mm must be positive, got {diameter:g}")
        xyz = (_float(row, "coordX", path, n), _float(row, "coordY", path, n), _float(row, "coordZ", path, n))
        out[row["seriesuid"]].append(NoduleAnnotation(center_xyz_mm=xyz, diameter_mm=diameter, source="luna16"))
    return dict(out)


def read_candidates(path: str | os.PathLike[str]) -> dict[str, list[Candidate]]:
    """``candidates.csv`` / ``candidates_V2.csv`` → series UID → ``[((x, y, z) mm, class 0/1), ...]``."""
    path = Path(path)
    out: dict[str, list[Candidate]] = defaultdict(list)
    for n, row in enumerate(_read_table(path, CANDIDATE_COLUMNS, "candidates"), start=2):
        xyz = (_float(row, "coordX", path, n), _float(row, "coordY", path, n), _float(row, "coordZ", path, n))
        label = row["class"]
        if label not in ("0", "1"):
            raise UnsupportedDataError(f"{path.name} line {n}: class must be 0 or 1, got {label!r}")
        out[row["seriesuid"]].append((xyz, int(label)))
    return dict(out)


def find_scans(root: str | os.PathLike[str]) -> dict[str, tuple[Path, int]]:
    """Series UID → (``.mhd`` path, subset number) for every scan under ``ROOT/subsetN``."""
    root = Path(root)
    if not root.is_dir():
        raise NoImagesError(f"LUNA16 folder {root} does not exist")
    scans: dict[str, tuple[Path, int]] = {}
    for sub in sorted(root.iterdir()):
        m = _SUBSET.match(sub.name)
        if not m or not sub.is_dir():
            continue
        # rglob: archives often unpack as subsetN/subsetN/*.mhd
        for mhd in sorted(sub.rglob("*.mhd")):
            scans.setdefault(mhd.stem, (mhd, int(m.group(1))))
    if not scans:
        raise NoImagesError(f"no subset0..subset9 folders with .mhd scans under {root}")
    return scans


def _default_csv(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for base in (root, root / "CSVFILES", root / "evaluationScript" / "annotations"):
            if (base / name).is_file():
                return base / name
    return None


def merge_malignancy(
    nodules: list[NoduleAnnotation], lidc: list[NoduleAnnotation], min_distance_mm: float = MATCH_MIN_MM
) -> list[NoduleAnnotation]:
    """Give each LUNA16 nodule the label of the nearest LIDC nodule within ``max(radius, 5 mm)``."""
    if not lidc:
        return list(nodules)
    centres = np.asarray([n.center_xyz_mm for n in lidc], dtype=np.float64)
    out = []
    for nod in nodules:
        dist = np.linalg.norm(centres - np.asarray(nod.center_xyz_mm), axis=1)
        radius = np.maximum(nod.diameter_mm, np.asarray([n.diameter_mm for n in lidc])) / 2.0
        ok = dist <= np.maximum(radius, min_distance_mm)
        if not np.any(ok):
            out.append(nod)
            continue
        best = lidc[int(np.argmin(np.where(ok, dist, np.inf)))]
        out.append(
            replace(
                nod,
                malignant=best.malignant,
                malignancy_score=best.malignancy_score,
                kind=best.kind,
                margin=best.margin,
                location=best.location if best.location != "unknown" else nod.location,
                source="luna16+lidc",
            )
        )
    return out


def load_luna16(
    root: str | os.PathLike[str],
    annotations_csv: str | os.PathLike[str] | None = None,
    candidates_csv: str | os.PathLike[str] | None = None,
    malignancy: dict[str, list[NoduleAnnotation]] | None = None,
) -> list[ScanRecord]:
    """Every LUNA16 scan under ``root`` with its nodules (scans without nodules are negatives).

    Args:
        root: folder holding ``subset0`` .. ``subset9``.
        annotations_csv: default ``ROOT/annotations.csv`` (also looked for in ``CSVFILES/``).
        candidates_csv: optional; read and checked (columns, class 0/1, series present) so a bad
            file fails here. The candidates themselves come from :func:`read_candidates` (keyed
            by ``ScanRecord.series_uid``) since a ``ScanRecord`` holds nodules only.
        malignancy: series UID → LIDC consensus nodules whose labels are merged in
            (:func:`merge_malignancy`).

    Returns:
        One record per ``.mhd``, sorted by (fold, series UID): ``scan_id`` = ``series_uid`` =
        the file stem, ``path`` = the ``.mhd``, ``fold`` = subset number, ``source="luna16"``.

    Annotations (and candidates) of series without a ``.mhd`` are skipped with one
    :class:`Luna16Warning` that counts them.
    """
    root = Path(root)
    scans = find_scans(root)
    ann_path = Path(annotations_csv) if annotations_csv is not None else _default_csv(root, ("annotations.csv",))
    if ann_path is None:
        raise UnreadableFileError(f"no annotations.csv in {root}; pass annotations_csv")
    annotations = read_annotations(ann_path)

    missing = sorted(uid for uid in annotations if uid not in scans)
    if missing:
        n_ann = sum(len(annotations[u]) for u in missing)
        warnings.warn(
            f"{n_ann} annotation(s) of {len(missing)} series have no .mhd under {root} and were skipped "
            f"(e.g. {missing[0]})",
            Luna16Warning,
            stacklevel=2,
        )
    if candidates_csv is not None:
        candidates = read_candidates(candidates_csv)
        cand_missing = [uid for uid in candidates if uid not in scans]
        if cand_missing:
            warnings.warn(
                f"{sum(len(candidates[u]) for u in cand_missing)} candidate(s) of {len(cand_missing)} series "
                f"have no .mhd under {root} and were skipped",
                Luna16Warning,
                stacklevel=2,
            )

    records = []
    for uid, (mhd, fold) in scans.items():
        nodules = annotations.get(uid, [])
        if malignancy and uid in malignancy:
            nodules = merge_malignancy(nodules, malignancy[uid])
        records.append(
            ScanRecord(scan_id=uid, path=str(mhd), nodules=tuple(nodules), fold=fold, series_uid=uid, source="luna16")
        )
    return sorted(records, key=lambda r: (r.fold, r.scan_id))


def folds(records: list[ScanRecord], test_fold: int) -> tuple[list[ScanRecord], list[ScanRecord]]:
    """(train, test): the records of ``test_fold`` are the test set, all others train."""
    present = sorted({r.fold for r in records})
    if test_fold not in present:
        raise ValueError(f"no records in fold {test_fold} (folds present: {present})")
    return [r for r in records if r.fold != test_fold], [r for r in records if r.fold == test_fold]
