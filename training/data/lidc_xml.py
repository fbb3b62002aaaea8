"""LIDC-IDRI reader annotations (the per-series XML files) → reader marks → consensus nodules.

An LIDC XML file (namespace ``http://www.nih.gov``) holds up to four ``readingSession`` elements,
one per radiologist. Each ``unblindedReadNodule`` is one reader's nodule: ``characteristics``
(ratings 1-5/6, only for nodules >= 3 mm) and one ``roi`` per slice (``imageZposition``,
``imageSOP_UID``, ``inclusion`` and the outline as ``edgeMap`` pixel ``xCoord`` = column,
``yCoord`` = row). Nodules < 3 mm are a single point with no ratings; ``nonNodule`` elements
mark other findings with a ``locus`` point.

Pixels become LPS mm through a :class:`~nodeview.core.geometry.Geometry` (of the DICOM series,
or of the LUNA16 ``.mhd`` of the same series: same grid), the ``Volume`` itself, or any callable
``(cols, rows, z_mm) -> (n, 3) xyz``. ``imageZposition`` gives z; the slice index is solved
from it, so the geometry must be the series the XML belongs to (checked: a mark outside the
volume raises :class:`~nodeview.core.errors.GeometryError`).

Per reader mark (:class:`ReaderNodule`): each ROI outline is filled (even-odd rule on pixel
centres, the outline pixels included), ``inclusion=FALSE`` outlines are cut out of the same
slice; the centroid is the mean of the filled voxels in mm; ``volume_mm3`` = filled pixel area x
slice spacing summed over slices; ``diameter_mm`` = diameter of the sphere of that volume;
``max_extent_mm`` = largest in-plane distance between outline points.

Consensus (:func:`consensus`): marks of different readers whose centroids lie within
``max(d1 / 2, d2 / 2, 5 mm)`` are one nodule (a reader contributes at most one mark per nodule).
The consensus centre and diameter (equivalent, or ``diameter="max_extent"``) are the means over
readers. Label rule (mean malignancy
rating of the readers who rated it, LIDC scale 1 = highly unlikely .. 5 = highly suspicious):

* mean >= 4           → ``malignant=True``
* mean <= 2           → ``malignant=False``
* 2 < mean < 4 (e.g. 3, "indeterminate") → ``malignant=None`` (``indeterminate=`` overrides)
* no rating           → ``malignant=None``

``malignancy_score`` is the mean rating. ``kind``: ``calcified`` when most readers rated
calcification != 6 (6 = absent), else by mean texture: < 2.5 ground-glass (1-2), < 4.5
part-solid (3-4), else solid (5). ``margin``: spiculated when mean spiculation >= 3, else
lobulated when mean lobulation >= 3, else smooth.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nodeview.core.errors import GeometryError, UnreadableFileError, UnsupportedDataError
from nodeview.core.geometry import Geometry
from training.data.annotations import NoduleAnnotation

LIDC_NAMESPACE = "http://www.nih.gov"

#: The rating elements of ``characteristics``, in file order.
CHARACTERISTICS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)

#: Reader marks of different readers closer than this (mm) always count as the same nodule.
MIN_MATCH_DISTANCE_MM = 5.0

#: ``(cols, rows, z_mm) -> (n, 3)`` LPS mm; cols/rows are pixel indices (LIDC xCoord, yCoord).
PixelToMm = Callable[[NDArray[np.float64], NDArray[np.float64], float], NDArray[np.float64]]


@dataclass(frozen=True)
class ReaderNodule:
    """One reader's mark.

    Args:
        reader: ``servicingRadiologistID`` (or ``session<N>`` when absent).
        session: index of the reading session in the file (0..3).
        nodule_id: ``noduleID`` / ``nonNoduleID``.
        category: ``nodule`` (>= 3 mm, outlined), ``small`` (< 3 mm, one point) or ``non-nodule``.
        center_xyz_mm: centroid in LPS mm.
        diameter_mm: equivalent-sphere diameter of the outlined volume (0 for point marks).
        max_extent_mm: largest in-plane distance between outline points (0 for point marks).
        volume_mm3: outlined volume.
        n_slices: slices with an inclusion outline.
        ratings: the ``characteristics`` present (name → integer rating).
        series_uid: ``SeriesInstanceUid`` of the file ("" when absent).
    """

    reader: str
    session: int
    nodule_id: str
    category: str
    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float
    max_extent_mm: float
    volume_mm3: float
    n_slices: int
    ratings: dict[str, int] = field(default_factory=dict)
    series_uid: str = ""

    @property
    def malignancy(self) -> int | None:
        return self.ratings.get("malignancy")


@dataclass(frozen=True)
class NoduleCluster:
    """Marks of the same nodule by different readers."""

    readers: tuple[ReaderNodule, ...]

    @property
    def n_readers(self) -> int:
        return len(self.readers)

    @property
    def center_xyz_mm(self) -> tuple[float, float, float]:
        c = np.mean([r.center_xyz_mm for r in self.readers], axis=0)
        return float(c[0]), float(c[1]), float(c[2])

    @property
    def diameter_mm(self) -> float:
        """Mean equivalent-sphere diameter over the readers."""
        return float(np.mean([r.diameter_mm for r in self.readers]))

    @property
    def max_extent_mm(self) -> float:
        """Mean largest in-plane extent over the readers."""
        return float(np.mean([r.max_extent_mm for r in self.readers]))

    def mean_rating(self, name: str) -> float | None:
        values = [r.ratings[name] for r in self.readers if name in r.ratings]
        return float(np.mean(values)) if values else None

    def annotation(
        self,
        malignant_at: float = 4.0,
        benign_at: float = 2.0,
        indeterminate: bool | None = None,
        diameter: str = "equivalent",
    ) -> NoduleAnnotation:
        """The consensus annotation; ``diameter`` is ``equivalent`` (sphere of the outlined volume)
        or ``max_extent`` (largest in-plane extent, what a reader measures with calipers)."""
        if diameter not in ("equivalent", "max_extent"):
            raise ValueError(f"diameter must be 'equivalent' or 'max_extent', not {diameter!r}")
        score = self.mean_rating("malignancy")
        size = self.diameter_mm if diameter == "equivalent" else self.max_extent_mm
        return NoduleAnnotation(
            center_xyz_mm=tuple(round(v, 3) for v in self.center_xyz_mm),  # type: ignore[arg-type]
            diameter_mm=round(size, 3),
            malignant=malignancy_label(score, malignant_at, benign_at, indeterminate),
            malignancy_score=None if score is None else round(score, 4),
            kind=self._kind(),
            margin=self._margin(),
            source="lidc-xml",
        )

    def _kind(self) -> str:
        calc = [r.ratings["calcification"] for r in self.readers if "calcification" in r.ratings]
        if calc and sum(v != 6 for v in calc) * 2 > len(calc):
            return "calcified"
        texture = self.mean_rating("texture")
        if texture is None:
            return "unknown"
        if texture < 2.5:
            return "ground-glass"
        return "part-solid" if texture < 4.5 else "solid"

    def _margin(self) -> str:
        spic, lob = self.mean_rating("spiculation"), self.mean_rating("lobulation")
        if spic is None and lob is None:
            return "unknown"
        if spic is not None and spic >= 3:
            return "spiculated"
        if lob is not None and lob >= 3:
            return "lobulated"
        return "smooth"


def malignancy_label(
    mean_rating: float | None, malignant_at: float = 4.0, benign_at: float = 2.0, indeterminate: bool | None = None
) -> bool | None:
    """The training label of a mean LIDC malignancy rating (see the module docstring)."""
    if mean_rating is None:
        return None
    if mean_rating >= malignant_at:
        return True
    if mean_rating <= benign_at:
        return False
    return indeterminate


# ---- parsing ----------------------------------------------------------------------------------
def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: ET.Element, name: str) -> str:
    c = _child(el, name)
    return (c.text or "").strip() if c is not None else ""


def _points(el: ET.Element, name: str) -> NDArray[np.float64]:
    pts = []
    for p in _children(el, name):
        x, y = _text(p, "xCoord"), _text(p, "yCoord")
        if x and y:
            pts.append((float(x), float(y)))
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _ratings(el: ET.Element) -> dict[str, int]:
    chars = _child(el, "characteristics")
    out: dict[str, int] = {}
    if chars is None:
        return out
    for name in CHARACTERISTICS:
        value = _text(chars, name)
        if value:
            try:
                out[name] = int(float(value))
            except ValueError:
                continue
    return out


def _fill(points: NDArray[np.float64]) -> NDArray[np.int64]:
    """Integer (col, row) pixels inside a closed outline (even-odd on pixel centres) plus the outline."""
    pts = np.rint(points).astype(np.int64)
    if len(pts) < 3:
        return np.unique(pts, axis=0)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    gx, gy = np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
    px, py = gx.ravel().astype(np.float64), gy.ravel().astype(np.float64)
    ax, ay = points[:, 0], points[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    # Ray to +x from every pixel centre; count crossings of each edge (half-open in y).
    cond = (ay[None, :] > py[:, None]) != (by[None, :] > py[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = ax[None, :] + (py[:, None] - ay[None, :]) * (bx - ax)[None, :] / (by - ay)[None, :]
    inside = (np.count_nonzero(cond & (px[:, None] < xcross), axis=1) % 2) == 1
    filled = np.stack([px[inside], py[inside]], axis=1).astype(np.int64)
    return np.unique(np.concatenate([filled, pts]), axis=0)


def _max_extent(points: NDArray[np.float64]) -> float:
    if len(points) < 2:
        return 0.0
    d = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((d**2).sum(-1)).max())


def geometry_pixel_to_mm(geometry: Geometry) -> PixelToMm:
    """The pixel → mm mapping of an axial series: slice index solved from ``imageZposition``."""
    d, s, o = geometry.direction, geometry.spacing_xyz, geometry.origin_xyz
    dz = d[2, 2] * s[2]
    if abs(d[2, 2]) < 0.5:
        raise UnsupportedDataError("LIDC outlines need an axial series; this geometry is not axial")
    nz = geometry.shape_zyx[0]

    def to_mm(cols: NDArray[np.float64], rows: NDArray[np.float64], z_mm: float) -> NDArray[np.float64]:
        k = (z_mm - o[2] - d[2, 0] * s[0] * cols - d[2, 1] * s[1] * rows) / dz
        if np.any(k < -1.5) or np.any(k > nz + 0.5):
            lo = geometry.index_to_mm((0, 0, 0))[2]
            hi = geometry.index_to_mm((nz - 1, 0, 0))[2]
            raise GeometryError(
                f"LIDC mark at z = {z_mm:.2f} mm lies outside the CT (z {min(lo, hi):.1f}..{max(lo, hi):.1f} mm): "
                "wrong series for this XML?"
            )
        idx = np.stack([k, rows, cols], axis=-1)
        return geometry.index_to_mm(idx)

    return to_mm


def parse_lidc_xml(
    path: str | os.PathLike[str],
    geometry: Any,
    *,
    include_small: bool = False,
    slice_spacing_mm: float | None = None,
) -> list[ReaderNodule]:
    """Every reader's nodule mark in one LIDC XML file.

    Args:
        path: the ``.xml`` file.
        geometry: a :class:`Geometry`, a ``Volume`` (its series UID must match the XML's) or a
            :data:`PixelToMm` callable.
        include_small: also return ``small`` (< 3 mm) and ``non-nodule`` marks (as points).
        slice_spacing_mm: slice step for volumes; default: the geometry's, or (for a callable) the
            median step between the distinct ``imageZposition`` values in the file.

    Returns:
        Marks in file order (``category`` tells nodules from small marks and non-nodules).
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"LIDC XML file {path} does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise UnreadableFileError(f"{path.name} is not a readable XML file ({exc})") from exc
    sessions = [el for el in root.iter() if _local(el.tag) == "readingSession"]
    if not sessions:
        raise UnsupportedDataError(f"{path.name} holds no LIDC readingSession (not an LIDC-IDRI CT read?)")
    header = _child(root, "ResponseHeader")
    series_uid = _text(header, "SeriesInstanceUid") if header is not None else ""

    vol_uid = getattr(geometry, "series_uid", None)
    if isinstance(vol_uid, str) and vol_uid and series_uid and vol_uid != series_uid:
        raise GeometryError(f"{path.name} annotates series {series_uid}, not the given series {vol_uid}")
    geom = getattr(geometry, "geometry", geometry)
    if isinstance(geom, Geometry):
        to_mm = geometry_pixel_to_mm(geom)
        spacing = slice_spacing_mm or float(geom.spacing_zyx[0] * abs(geom.direction[2, 2]))
    elif callable(geometry):
        to_mm = geometry
        spacing = slice_spacing_mm or _spacing_from_file(root)
    else:
        raise TypeError("geometry must be a Geometry, a Volume or a (cols, rows, z_mm) -> xyz callable")
    # Pixel size (mm) from the mapping itself: one column and one row step.
    base = to_mm(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0]), _first_z(root))
    px_area = float(np.linalg.norm(np.cross(base[1] - base[0], base[2] - base[0])))

    out: list[ReaderNodule] = []
    for s_i, session in enumerate(sessions):
        reader = _text(session, "servicingRadiologistID") or f"session{s_i}"
        for el in _children(session, "unblindedReadNodule"):
            mark = _reader_nodule(el, reader, s_i, series_uid, to_mm, spacing, px_area)
            if mark is not None and (include_small or mark.category == "nodule"):
                out.append(mark)
        if include_small:
            for el in _children(session, "nonNodule"):
                pts = _points(el, "locus")
                z = _text(el, "imageZposition")
                if len(pts) and z:
                    xyz = to_mm(pts[:, 0], pts[:, 1], float(z)).mean(axis=0)
                    out.append(
                        ReaderNodule(
                            reader=reader,
                            session=s_i,
                            nodule_id=_text(el, "nonNoduleID"),
                            category="non-nodule",
                            center_xyz_mm=_xyz(xyz),
                            diameter_mm=0.0,
                            max_extent_mm=0.0,
                            volume_mm3=0.0,
                            n_slices=1,
                            series_uid=series_uid,
                        )
                    )
    return out


def _xyz(v: NDArray[np.float64]) -> tuple[float, float, float]:
    return round(float(v[0]), 3), round(float(v[1]), 3), round(float(v[2]), 3)


def _first_z(root: ET.Element) -> float:
    for el in root.iter():
        if _local(el.tag) == "imageZposition" and (el.text or "").strip():
            return float(el.text)  # type: ignore[arg-type]
    raise UnsupportedDataError("the LIDC XML file holds no imageZposition")


def _spacing_from_file(root: ET.Element) -> float:
    zs = sorted({round(float(el.text), 3) for el in root.iter() if _local(el.tag) == "imageZposition" and el.text})
    steps = np.diff(zs)
    steps = steps[steps > 1e-3]
    if not len(steps):
        raise UnsupportedDataError("cannot tell the slice spacing from the LIDC XML; pass slice_spacing_mm")
    return float(np.min(steps))


def _reader_nodule(
    el: ET.Element,
    reader: str,
    session: int,
    series_uid: str,
    to_mm: PixelToMm,
    spacing: float,
    px_area: float,
) -> ReaderNodule | None:
    include: dict[float, set[tuple[int, int]]] = {}
    exclude: dict[float, set[tuple[int, int]]] = {}
    extent = 0.0
    all_points = 0
    for roi in _children(el, "roi"):
        z_text = _text(roi, "imageZposition")
        pts = _points(roi, "edgeMap")
        if not z_text or not len(pts):
            continue
        z = round(float(z_text), 4)
        all_points = max(all_points, len(pts))
        pix = {(int(c), int(r)) for c, r in _fill(pts)}
        if _text(roi, "inclusion").upper() == "FALSE":
            exclude.setdefault(z, set()).update(pix)
        else:
            include.setdefault(z, set()).update(pix)
            if len(pts) > 1:
                mm = to_mm(pts[:, 0], pts[:, 1], z)
                extent = max(extent, _max_extent(mm))
    if not include:
        return None
    nodule_id = _text(el, "noduleID")
    ratings = _ratings(el)
    centres, weights = [], []
    for z, pix in include.items():
        keep = pix - exclude.get(z, set())
        if not keep:
            continue
        arr = np.asarray(sorted(keep), dtype=np.float64)
        centres.append(to_mm(arr[:, 0], arr[:, 1], z).mean(axis=0))
        weights.append(len(arr))
    if not centres:
        return None
    centre = np.average(np.asarray(centres), axis=0, weights=np.asarray(weights, dtype=np.float64))
    if all_points <= 2 and not ratings:  # a point mark: nodule < 3 mm
        return ReaderNodule(
            reader=reader,
            session=session,
            nodule_id=nodule_id,
            category="small",
            center_xyz_mm=_xyz(centre),
            diameter_mm=0.0,
            max_extent_mm=0.0,
            volume_mm3=0.0,
            n_slices=len(include),
            series_uid=series_uid,
        )
    volume = float(sum(weights)) * px_area * spacing
    diameter = (6.0 * volume / math.pi) ** (1.0 / 3.0)
    return ReaderNodule(
        reader=reader,
        session=session,
        nodule_id=nodule_id,
        category="nodule",
        center_xyz_mm=_xyz(centre),
        diameter_mm=round(diameter, 3),
        max_extent_mm=round(extent, 3),
        volume_mm3=round(volume, 2),
        n_slices=len(include),
        ratings=ratings,
        series_uid=series_uid,
    )


# ---- consensus --------------------------------------------------------------------------------
def cluster_readers(
    readers: Iterable[ReaderNodule], min_distance_mm: float = MIN_MATCH_DISTANCE_MM
) -> list[NoduleCluster]:
    """Group marks of the same nodule (see the module docstring); only ``nodule`` marks count.

    Greedy, largest marks first: a mark joins the nearest cluster whose mean centre lies within
    ``max(its radius, the cluster's mean radius, min_distance_mm)`` and that has no mark of the
    same reader yet, else it starts a new cluster. Marks of different series never merge.
    """
    marks = sorted(
        (r for r in readers if r.category == "nodule"), key=lambda r: (-r.diameter_mm, r.session, r.nodule_id)
    )
    groups: list[list[ReaderNodule]] = []
    for m in marks:
        best, best_d = None, math.inf
        for g in groups:
            if any(x.reader == m.reader and x.session == m.session for x in g) or g[0].series_uid != m.series_uid:
                continue
            centre = np.mean([x.center_xyz_mm for x in g], axis=0)
            radius = float(np.mean([x.diameter_mm for x in g])) / 2.0
            dist = float(np.linalg.norm(centre - np.asarray(m.center_xyz_mm)))
            if dist <= max(radius, m.diameter_mm / 2.0, min_distance_mm) and dist < best_d:
                best, best_d = g, dist
        if best is None:
            groups.append([m])
        else:
            best.append(m)
    clusters = [NoduleCluster(tuple(sorted(g, key=lambda x: x.session))) for g in groups]
    return sorted(clusters, key=lambda c: (-c.n_readers, -c.diameter_mm))


def consensus(
    readers: Sequence[ReaderNodule],
    min_readers: int = 1,
    *,
    malignant_at: float = 4.0,
    benign_at: float = 2.0,
    indeterminate: bool | None = None,
    min_distance_mm: float = MIN_MATCH_DISTANCE_MM,
    diameter: str = "equivalent",
) -> list[NoduleAnnotation]:
    """One annotation per nodule marked by at least ``min_readers`` readers (most agreed first).

    The label rule (``malignant_at``, ``benign_at``, ``indeterminate``) is described in the module
    docstring; :func:`cluster_readers` gives the agreement count of each nodule. ``diameter``:
    ``equivalent`` (default, equivalent-sphere diameter) or ``max_extent`` (in-plane extent).
    """
    return [
        c.annotation(malignant_at, benign_at, indeterminate, diameter)
        for c in cluster_readers(readers, min_distance_mm)
        if c.n_readers >= min_readers
    ]


def find_lidc_xml(folder: str | os.PathLike[str]) -> list[Path]:
    """The LIDC read XML files under ``folder`` (recursively), sorted."""
    return sorted(p for p in Path(folder).rglob("*.xml") if p.is_file())


#: LUNA16: a finding within this distance of a reader's mark of a nodule < 3 mm or a non-nodule is irrelevant.
IRRELEVANT_RADIUS_MM = 5.0


def lidc_irrelevant_marks(folder: Path) -> list[tuple[float, float, float]]:
    """Centres of the LIDC readers' marks that LUNA16 counts as irrelevant findings: nodules < 3 mm
    (one point) and non-nodules, from the series' LIDC XML (none when the folder has no XML)."""
    from nodeview.core.io.study import open_study

    xmls = find_lidc_xml(folder)
    if not xmls:
        return []
    vol = open_study(str(folder))
    marks: list[tuple[float, float, float]] = []
    for xml in xmls:
        for m in parse_lidc_xml(xml, vol, include_small=True):
            if m.category in ("small", "non-nodule"):
                marks.append(tuple(float(v) for v in m.center_xyz_mm))  # type: ignore[arg-type]
    return marks


def near_any(centre: Any, marks: list[tuple[float, float, float]], radius_mm: float) -> bool:
    """Whether ``centre`` lies within ``radius_mm`` of one of ``marks``."""
    if not marks:
        return False
    d = np.linalg.norm(np.asarray(marks, dtype=np.float64) - np.asarray(centre, dtype=np.float64), axis=1)
    return bool(np.min(d) <= radius_mm)
