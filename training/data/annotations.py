"""What every data source yields: scans with nodule annotations in patient millimetres (LPS).

Coordinates follow ``nodeview.core.geometry``: ``center_xyz_mm`` is DICOM patient (LPS) = LUNA16
world coordinates. Sources: synthetic chest CT (``synth``), nodules inserted into real CT
(``insert``), LUNA16 (``luna16``), LIDC XML ratings (``lidc_xml``), and any DICOM folder plus a
CSV of nodule centres (``csv_source``).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

NODULE_KINDS = ("solid", "part-solid", "ground-glass", "calcified", "unknown")


@dataclass(frozen=True)
class NoduleAnnotation:
    """One nodule.

    Args:
        center_xyz_mm: centre in LPS mm.
        diameter_mm: equivalent diameter in mm.
        malignant: the training label (None when unknown, e.g. LUNA16 without LIDC ratings).
        malignancy_score: the graded evidence behind the label: LIDC mean rating (1-5), or the
            synthetic rule's risk probability (0-1); None when unknown.
        kind: solid, part-solid, ground-glass, calcified or unknown.
        margin: smooth, lobulated, spiculated or unknown.
        location: juxta-pleural, juxta-vascular, isolated or unknown.
        source: where the annotation came from (e.g. "synthetic", "luna16", "lidc-xml").
    """

    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float
    malignant: bool | None = None
    malignancy_score: float | None = None
    kind: str = "unknown"
    margin: str = "unknown"
    location: str = "unknown"
    source: str = ""


@dataclass(frozen=True)
class ScanRecord:
    """A scan that ``nodeview.core.io.study.open_study(path)`` opens, and its nodules.

    ``fold`` splits data for cross-validation (LUNA16: the subset number).
    """

    scan_id: str
    path: str
    nodules: tuple[NoduleAnnotation, ...] = field(default=())
    fold: int = 0
    series_uid: str | None = None
    source: str = ""


CSV_FIELDS = [
    "scan_id",
    "path",
    "fold",
    "x_mm",
    "y_mm",
    "z_mm",
    "diameter_mm",
    "malignant",
    "malignancy_score",
    "kind",
    "margin",
    "location",
    "source",
]


def write_records_csv(records: list[ScanRecord], out: str | Path) -> Path:
    """One row per nodule (scans without nodules get one row with empty nodule fields)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for rec in records:
            base = {"scan_id": rec.scan_id, "path": rec.path, "fold": rec.fold, "source": rec.source}
            if not rec.nodules:
                writer.writerow(base)
            for n in rec.nodules:
                d = asdict(n)
                writer.writerow(
                    {
                        **base,
                        "x_mm": n.center_xyz_mm[0],
                        "y_mm": n.center_xyz_mm[1],
                        "z_mm": n.center_xyz_mm[2],
                        "diameter_mm": n.diameter_mm,
                        "malignant": "" if n.malignant is None else int(n.malignant),
                        "malignancy_score": "" if n.malignancy_score is None else n.malignancy_score,
                        "kind": d["kind"],
                        "margin": d["margin"],
                        "location": d["location"],
                        "source": n.source or rec.source,
                    }
                )
    tmp.replace(out)
    return out


def read_records_csv(path: str | Path) -> list[ScanRecord]:
    """Inverse of :func:`write_records_csv`; relative scan paths resolve against the CSV's folder."""
    path = Path(path)
    scans: dict[str, dict[str, object]] = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            scan_path = Path(row["path"])
            if not scan_path.is_absolute():
                scan_path = path.parent / scan_path
            entry = scans.setdefault(
                row["scan_id"],
                {
                    "path": str(scan_path),
                    "fold": int(row.get("fold") or 0),
                    "source": row.get("source", ""),
                    "nodules": [],
                },
            )
            if row.get("x_mm"):
                entry["nodules"].append(
                    NoduleAnnotation(  # type: ignore[union-attr]
                        center_xyz_mm=(float(row["x_mm"]), float(row["y_mm"]), float(row["z_mm"])),
                        diameter_mm=float(row["diameter_mm"]),
                        malignant=None if row.get("malignant", "") == "" else bool(int(row["malignant"])),
                        malignancy_score=None
                        if row.get("malignancy_score", "") == ""
                        else float(row["malignancy_score"]),
                        kind=row.get("kind") or "unknown",
                        margin=row.get("margin") or "unknown",
                        location=row.get("location") or "unknown",
                        source=row.get("source", ""),
                    )
                )
    return [
        ScanRecord(
            scan_id=sid,
            path=str(e["path"]),
            nodules=tuple(e["nodules"]),
            fold=int(e["fold"]),  # type: ignore[arg-type]
            source=str(e["source"]),
        )
        for sid, e in scans.items()
    ]


def read_table(path: str | Path, columns: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """Rows of a CSV (BOM and whitespace tolerated) that must have ``columns``; NodeView errors otherwise."""
    from nodeview.core.errors import UnreadableFileError, UnsupportedDataError

    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"{what} {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise UnsupportedDataError(
                f"{path.name} lacks column(s) {', '.join(missing)} (expected {','.join(columns)})"
            )
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
