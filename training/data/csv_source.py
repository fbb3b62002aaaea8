"""Any folder of DICOM studies (or research volumes) plus a CSV of nodule centres in patient mm.

Columns (header names, case-sensitive, any order):

* ``study`` (required): a DICOM folder or a ``.mhd/.nii/.nrrd`` file, relative to the CSV's folder
  or absolute; or a SeriesInstanceUID found under ``root`` (DICOM headers are read once).
* ``x_mm, y_mm, z_mm, diameter_mm`` (required): centre in DICOM patient LPS mm (LUNA16 world
  coordinates are the same), diameter in mm. Left empty, the row lists a scan without nodules
  (a negative).
* optional: ``malignant`` (1/0, true/false, yes/no, malignant/benign, empty = unknown),
  ``malignancy_score``, ``kind`` (solid, part-solid, ground-glass, calcified, unknown),
  ``margin``, ``location``, ``fold`` (integer, default 0), ``series_uid`` (which series of a
  folder holding several).

Rows of the same study become one :class:`~training.data.annotations.ScanRecord`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nodeview.core.errors import NoImagesError, UnsupportedDataError
from training.data.annotations import NODULE_KINDS, NoduleAnnotation, ScanRecord, read_table

REQUIRED_COLUMNS = ("study", "x_mm", "y_mm", "z_mm", "diameter_mm")
MARGINS = ("smooth", "lobulated", "spiculated", "unknown")
LOCATIONS = ("juxta-pleural", "juxta-vascular", "isolated", "unknown")
_TRUE = {"1", "true", "yes", "y", "malignant"}
_FALSE = {"0", "false", "no", "n", "benign"}


def parse_malignant(value: str) -> bool | None:
    """1/0, true/false, yes/no, malignant/benign (any case) → bool; empty → None."""
    v = value.strip().lower()
    if not v:
        return None
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"malignant must be 1/0, true/false, yes/no or malignant/benign, got {value!r}")


def _series_folders(root: Path) -> dict[str, tuple[Path, str]]:
    """SeriesInstanceUID → (folder holding its files, uid), from DICOM headers under ``root``."""
    from nodeview.core.io.dicom import discover

    found: dict[str, tuple[Path, str]] = {}
    for s in discover(root).series:
        if not s.series_uid:
            continue
        parents = {str(Path(f.path).parent) for f in s.frames}
        folder = Path(os.path.commonpath(sorted(parents)))
        found.setdefault(s.series_uid, (folder, s.series_uid))
    return found


def load_csv_source(csv_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> list[ScanRecord]:
    """Scan records of a nodule CSV (see the module docstring).

    Args:
        csv_path: the CSV file.
        root: where to look up ``study`` values that are SeriesInstanceUIDs, not paths.

    Returns:
        One record per study in first-seen order: ``scan_id`` = the ``study`` value, ``path`` =
        the absolute folder/file, ``series_uid`` when the study was a UID or a ``series_uid``
        column gives it, ``source="csv"``.
    """
    csv_path = Path(csv_path)
    rows = read_table(csv_path, REQUIRED_COLUMNS, "nodule CSV")

    uid_index: dict[str, tuple[Path, str]] | None = None
    studies: dict[str, dict[str, object]] = {}
    for line, row in enumerate(rows, start=2):
        study = row["study"]
        if not study:
            raise UnsupportedDataError(f"{csv_path.name} line {line}: empty study")
        if study not in studies:
            series_uid = row.get("series_uid") or None
            candidate = Path(study) if Path(study).is_absolute() else csv_path.parent / study
            if candidate.exists():
                path = candidate.resolve()
            else:
                if root is not None and uid_index is None:
                    if not Path(root).is_dir():
                        raise NoImagesError(f"DICOM root {root} does not exist")
                    uid_index = _series_folders(Path(root))
                if uid_index is None or study not in uid_index:
                    where = (
                        f" nor a SeriesInstanceUID under {root}" if root is not None else " (no root given for UIDs)"
                    )
                    raise NoImagesError(
                        f"{csv_path.name} line {line}: study {study!r} is neither a path relative to the CSV{where}"
                    )
                path, series_uid = uid_index[study][0].resolve(), study
            studies[study] = {
                "path": str(path),
                "series_uid": series_uid,
                "fold": _fold(row, csv_path, line),
                "nodules": [],
            }
        nodule = _nodule(row, csv_path, line)
        if nodule is not None:
            studies[study]["nodules"].append(nodule)  # type: ignore[attr-defined]
    return [
        ScanRecord(
            scan_id=study,
            path=str(e["path"]),
            nodules=tuple(e["nodules"]),  # type: ignore[arg-type]
            fold=int(e["fold"]),  # type: ignore[call-overload]
            series_uid=e["series_uid"],  # type: ignore[arg-type]
            source="csv",
        )
        for study, e in studies.items()
    ]


def _fold(row: dict[str, str], path: Path, line: int) -> int:
    try:
        return int(row.get("fold") or 0)
    except ValueError:
        raise UnsupportedDataError(f"{path.name} line {line}: fold {row['fold']!r} is not an integer") from None


def _nodule(row: dict[str, str], path: Path, line: int) -> NoduleAnnotation | None:
    coords = [row[k] for k in ("x_mm", "y_mm", "z_mm", "diameter_mm")]
    if not any(coords):
        return None
    try:
        x, y, z, d = (float(v) for v in coords)
    except ValueError:
        raise UnsupportedDataError(
            f"{path.name} line {line}: x_mm, y_mm, z_mm and diameter_mm must be numbers"
        ) from None
    if not np.all(np.isfinite([x, y, z, d])) or d <= 0:
        raise UnsupportedDataError(f"{path.name} line {line}: coordinates must be finite and diameter_mm positive")
    try:
        malignant = parse_malignant(row.get("malignant", ""))
        score = float(row["malignancy_score"]) if row.get("malignancy_score") else None
    except ValueError as exc:
        raise UnsupportedDataError(f"{path.name} line {line}: {exc}") from None
    fields = {"kind": NODULE_KINDS, "margin": MARGINS, "location": LOCATIONS}
    values = {}
    for name, allowed in fields.items():
        value = (row.get(name) or "unknown").lower()
        if value not in allowed:
            raise UnsupportedDataError(f"{path.name} line {line}: {name} {value!r} is not one of {', '.join(allowed)}")
        values[name] = value
    return NoduleAnnotation(
        center_xyz_mm=(x, y, z),
        diameter_mm=d,
        malignant=malignant,
        malignancy_score=score,
        source="csv",
        **values,
    )
