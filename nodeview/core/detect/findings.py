"""What a finding is, and how it is measured from the CT (Qt-free).

One finding per lesion. The detector segments the lesion around each finding near the operating
point (:func:`segment_lesion`) and groups the findings that fall in one lesion
(:func:`group_lesions`: a centre inside the lesion, or masks that share 30 % of the smaller);
each lesion is measured once, on the union of its members' masks (:func:`measure_lesion`),
placed at its centroid, and keeps its best-scoring member's score, malignancy and model
diameter.

* Region: a box of 2x the predicted diameter (at least 12 mm) around the centre, grown x1.6
  while the lesion fills it, up to :data:`MAX_REGION_MM` (a 62 mm sphere).
* Threshold: half-way between the local aerated lung (10th percentile of the box, capped at
  -700 HU) and the lesion's core HU (median of a 2 mm sphere at the centre), but never below
  -750 HU, so ground glass segments too. Only voxels inside the (closed) lung mask count, so
  juxta-pleural nodules do not leak into the chest wall; the result is opened (1 voxel) and
  clipped to a sphere of 0.75x the box, which cuts attached vessels, and the connected
  component at the centre is kept. A lesion whose centre the closed lung mask leaves out (a
  broad base on the chest wall) is held to the lung's convex hull, slice by slice, in its box.
  What hangs on the lesion by a neck narrower than a ball of half its depth (vessels, pleura)
  is cut off by an opening with that ball (at most 4 mm; ground-glass lobes stay). When the
  core is dense (a part-solid nodule's solid part), the ground glass around it joins: the
  component of the smoothed image above :data:`GROUND_GLASS_HU` that holds the core, if it
  adds at least half the core's volume beyond a 2-voxel rim and that addition is ground glass
  (median < -400 HU). The result is a rough measure for a research tool: check it on the images.
* Volume (mm3) = voxels x voxel volume. Long/short axis (mm): the axial slice with the largest
  cross-section; an ellipse with the same second moments gives the two axes. Mean diameter
  = (long + short) / 2, as Lung-RADS uses. A lesion with a mean diameter over
  :data:`MASS_MM` (30 mm) is a mass (``category``).
* Type from HU: calcified if >= 10 % of voxels are above 200 HU; solid if most voxels are
  above -300 HU; part-solid if the solid voxels are at least 15 % of the volume or its largest
  solid part is at least :data:`PART_SOLID_CORE_MM` wide; else ground-glass. The solid
  component's size is the mean diameter of that largest solid part.
* Lung-RADS v2022 category *hint* (baseline screening, size and type only; no growth or
  other features) from the whole lesion's mean diameter: solid <6 mm 2, 6-8 3, 8-15 4A,
  >=15 4B; part-solid <6 mm 2, solid part <6 mm 3, 6-8 4A, >=8 4B; ground-glass <30 mm 2,
  >=30 mm 3; calcified 1.
* Side from the patient x of the centre relative to the lungs' midline; zone (upper, middle,
  lower) from thirds of the lungs' z extent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..volume import Volume
from .lung import LungMask

NODULE_TYPES = ("solid", "part-solid", "ground-glass", "calcified", "unmeasured")
#: A lesion whose mean diameter is above this is a mass (Fleischner glossary: > 3 cm), not a nodule.
MASS_MM = 30.0
#: Ground glass is denser than this (aerated lung is about -850 HU): the lower threshold that takes
#: the halo of a part-solid nodule when the half-way threshold of its core would leave it out.
GROUND_GLASS_HU = -650.0
#: The halo counts when it adds at least this fraction of the core's volume (beyond a 2-voxel rim).
GROUND_GLASS_MIN_FRACTION = 0.5
#: A lesion under half solid is part-solid when its largest solid part (> -300 HU) is at least this
#: wide (its short axis: a vessel crossing ground glass is narrower), or is 15 % of its volume.
PART_SOLID_CORE_MM = 3.0
#: The segmentation region grows (x1.6) while the lesion fills it, up to a box of this half-size.
MAX_REGION_MM = 40.0
#: Attachments are cut by an opening with a ball of this fraction of the lesion's depth (its largest
#: inscribed radius near the centre): a vessel or a band of pleura narrower than the ball's
#: diameter is not lesion. At most :data:`CUT_MAX_MM`; none when the ball is below 1.5 in-plane voxels.
CUT_DEPTH_FRACTION = 0.5
CUT_MAX_MM = 4.0
#: A piece cut off by that opening stays when it is ground glass (median HU below this).
CUT_KEEP_BELOW_HU = -400.0
#: A mass's territory (:func:`mass_territory`, for grouping only) takes, on its own slices, tissue denser
#: than this (smoothed in-plane, 1 mm) that lies within the lung's local slice hulls: the part of a
#: tumour broad-based on the pleura or the mediastinum that the closed lung mask leaves out.
MASS_TISSUE_HU = -400.0
#: ... up to this far (mm) beyond the lesion inside the lung, in-plane ...
MASS_GROW_MM = 30.0
#: ... cutting what is joined to it through a neck narrower than a ball of this radius (mm): an
#: opening of the grown tissue (vessels at the hilum, a band of pleura).
MASS_NECK_MM = 5.0
#: Bone (smoothed HU above this) never joins a mass.
MASS_BONE_HU = 300.0


@dataclass(frozen=True)
class Finding:
    """One detected nodule. Positions in LPS mm (x, y, z)."""

    id: int
    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float  # mean of long and short axis when segmented, else the model's estimate
    bbox_min_xyz_mm: tuple[float, float, float]
    bbox_max_xyz_mm: tuple[float, float, float]
    score: float  # finding score 0-1 (:mod:`.scores`: the fused log-odds of the cascade, tempered; ranks findings)
    malignancy: float  # malignancy probability (see the model card)
    type: str
    volume_mm3: float
    long_axis_mm: float
    short_axis_mm: float
    lung_rads: str
    side: str  # right, left
    zone: str  # upper, middle, lower
    model_diameter_mm: float
    solid_fraction: float = 0.0
    measured: bool = True  # False: sizes are the model's estimate (no segmentation)
    category: str = "nodule"  # "mass": mean diameter > MASS_MM
    solid_diameter_mm: float = 0.0  # part-solid: mean diameter of the solid component
    #: candidates merged into this finding (the lesion's proposals that scored)
    n_candidates: int = 1
    #: the lesion's voxels it was measured on (sorted flat indices of the detection volume; None:
    #: not segmented); the DICOM SEG export writes exactly these
    voxels: NDArray[np.int64] | None = field(default=None, compare=False, repr=False)

    def with_id(self, new_id: int) -> Finding:
        return replace(self, id=new_id)

    @property
    def location(self) -> str:
        return f"{self.side} {self.zone}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "center_xyz_mm": [round(v, 2) for v in self.center_xyz_mm],
            "diameter_mm": round(self.diameter_mm, 2),
            "bbox_xyz_mm": [[round(v, 2) for v in self.bbox_min_xyz_mm], [round(v, 2) for v in self.bbox_max_xyz_mm]],
            "score": float(self.score),  # full precision: the scores of the top findings differ in late digits
            "malignancy": round(self.malignancy, 4),
            "type": self.type,
            "volume_mm3": round(self.volume_mm3, 1),
            "long_axis_mm": round(self.long_axis_mm, 2),
            "short_axis_mm": round(self.short_axis_mm, 2),
            "lung_rads": self.lung_rads,
            "side": self.side,
            "zone": self.zone,
            "measurement": "segmentation" if self.measured else "model estimate",
            "category": self.category,
            "solid_diameter_mm": round(self.solid_diameter_mm, 2),
            "n_candidates": self.n_candidates,
        }


def format_score(score: float) -> str:
    """A finding score or threshold as text: always three decimals (the finding score of
    :mod:`.scores` spreads strong findings over 0.8-0.999, so three decimals separate them; the
    JSON keeps full precision)."""
    return f"{score:.3f}"


def lung_rads_hint(kind: str, mean_diameter_mm: float, solid_diameter_mm: float = 0.0) -> str:
    """Lung-RADS v2022 baseline category from size and type only (a hint, not a reading)."""
    d = mean_diameter_mm
    if kind == "calcified":
        return "1"
    if kind == "solid":
        return "2" if d < 6 else "3" if d < 8 else "4A" if d < 15 else "4B"
    if kind == "part-solid":
        if d < 6:
            return "2"
        s = solid_diameter_mm
        return "3" if s < 6 else "4A" if s < 8 else "4B"
    return "2" if d < 30 else "3"  # ground-glass


def segment_nodule(
    volume: Volume, centre_xyz_mm: tuple[float, float, float], diameter_mm: float, lung: LungMask | None = None
) -> tuple[NDArray[np.bool_], tuple[slice, slice, slice]]:
    """Mask of the nodule in a box around the centre, and the box (array slices)."""
    g = volume.geometry
    half_mm = max(diameter_mm, 6.0)
    centre = g.mm_to_index(centre_xyz_mm)
    half = np.ceil(half_mm / g.spacing_zyx).astype(int)
    lo = np.maximum(np.floor(centre).astype(int) - half, 0)
    hi = np.minimum(np.ceil(centre).astype(int) + half + 1, g.shape_zyx)
    box = (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])), slice(int(lo[2]), int(hi[2])))
    sub = volume.hu_zyx[box].astype(np.float32)
    if sub.size == 0:
        return np.zeros((0, 0, 0), bool), box
    c = np.clip(np.rint(centre - lo).astype(int), 0, np.asarray(sub.shape) - 1)
    # distance (mm) from the centre voxel, by broadcasting three 1D axes (no full-size meshgrid)
    zz, yy, xx = ((np.arange(n) - c[a]) * g.spacing_zyx[a] for a, n in enumerate(sub.shape))
    dist = np.sqrt(zz[:, None, None] ** 2 + yy[None, :, None] ** 2 + xx[None, None, :] ** 2)
    core = sub[dist <= 2.0]
    core_hu = float(np.median(core)) if core.size else float(sub[tuple(c)])
    background = min(float(np.percentile(sub, 10)), -700.0)
    threshold = max((core_hu + background) / 2.0, -750.0)
    allowed = dist <= 0.75 * half_mm + 1.0
    if lung is not None:  # the closed lung mask holds juxta-pleural nodules but not the chest wall
        in_lung = _lung_box(lung, box, sub.shape)
        if in_lung[tuple(c)]:
            allowed &= in_lung
        else:  # a broad-based lesion on the pleura that the closing left out: the lung's local hull holds it
            hull = _slice_hulls(in_lung)
            if hull[tuple(c)]:
                allowed &= hull
    solid = _component_at(_opening_in_bbox((sub > threshold) & allowed), dist)
    solid = _cut_attachments(solid, sub, dist, half_mm, g.spacing_zyx, keep_faint=threshold <= GROUND_GLASS_HU)
    if threshold <= GROUND_GLASS_HU or not solid.any():
        return solid, box
    # A dense core (a part-solid nodule's solid part, or a candidate on it) splits the lesion at the
    # half-way threshold: take the ground glass around it when there is a real halo, not just the
    # partial-volume rim of a solid nodule or an attached vessel (denser than ground glass).
    # smoothed (sigma 1 mm): the noise of aerated lung on a sharp kernel reaches -650 HU, ground glass
    # is a region of it
    smooth = ndimage.gaussian_filter(sub, sigma=tuple(1.0 / g.spacing_zyx))
    low = _opening_in_bbox((smooth > GROUND_GLASS_HU) & allowed)
    labels, _ = ndimage.label(low)
    ids = np.unique(labels[solid & (labels > 0)])
    if ids.size == 0:
        return solid, box
    whole = np.isin(labels, ids)
    extra = whole & ~ndimage.binary_dilation(solid, iterations=2)
    voxel_mm3 = float(np.prod(g.spacing_zyx))
    values = sub[extra]
    if (
        values.size * voxel_mm3 >= max(GROUND_GLASS_MIN_FRACTION * float(solid.sum()) * voxel_mm3, 15.0)
        and float(np.median(values)) < -400.0
        and float(np.percentile(values, 90)) < -250.0
    ):
        return _cut_attachments(np.asarray(whole | solid, dtype=bool), sub, dist, half_mm, g.spacing_zyx, False), box
    return solid, box


def _slice_hulls(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Slice by slice, the convex hull of ``mask`` (the lung in a region around a lesion): a lesion
    that indents the lung from the chest wall lies in the hull, the wall beyond the pleura does
    not (the lung is convex against the ribs). Slices with under 3 non-collinear points keep ``mask``."""
    from scipy.spatial import ConvexHull, QhullError

    out = mask.copy()
    ny, nx = mask.shape[1:]
    jj, ii = np.mgrid[0:ny, 0:nx]
    grid = np.stack([jj.ravel(), ii.ravel()], axis=1).astype(np.float64)
    for k in range(mask.shape[0]):
        pts = np.argwhere(mask[k])
        if len(pts) < 3 or len(pts) == ny * nx:
            continue
        try:
            eq = ConvexHull(pts.astype(np.float64)).equations
        except QhullError:
            continue
        inside = np.all(grid @ eq[:, :2].T + eq[:, 2] <= 0.5, axis=1)  # half a pixel of slack
        out[k] = inside.reshape(ny, nx) | mask[k]
    return out


def _cut_attachments(
    mask: NDArray[np.bool_],
    hu: NDArray[np.float32],
    dist: NDArray[np.floating],
    half_mm: float,
    spacing_zyx: NDArray[np.float64],
    keep_faint: bool,
) -> NDArray[np.bool_]:
    """The lesion without what is attached to it through a neck narrower than a ball of
    :data:`CUT_DEPTH_FRACTION` of its depth (vessels, a band of pleura or chest wall inside the
    closed lung mask, a neighbouring structure): a morphological opening with that ball (erosion
    and dilation by distance transforms in mm, so thick slices are handled), then the component at
    the centre. The depth is the largest inscribed radius within half the region of the centre
    (a large attached structure elsewhere does not set the ball). Unchanged when the ball would be
    under 1.5 in-plane voxels (small nodules) or erodes the lesion away.

    With ``keep_faint`` (a ground-glass threshold), when what is kept is ground glass itself
    (median below :data:`CUT_KEEP_BELOW_HU`), a cut piece that is ground glass stays: vessels and
    pleura are denser, while the lobes of a ground-glass nodule hang together by thin lacy necks.
    (Around a part-solid core the halo is taken whole and opened like the core.)"""
    if not mask.any():
        return mask
    # everything below happens in the mask's bounding box plus one voxel (the distance transforms
    # dominate the cost; the eroded core lies inside the mask, so its distances there are exact)
    lo = [max(int(np.flatnonzero(mask.any(axis=a)).min()) - 1, 0) for a in ((1, 2), (0, 2), (0, 1))]
    hi = [int(np.flatnonzero(mask.any(axis=a)).max()) + 2 for a in ((1, 2), (0, 2), (0, 1))]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    m, d_box = mask[box], dist[box]
    depth = np.asarray(ndimage.distance_transform_edt(m, sampling=spacing_zyx), dtype=np.float64)
    near = m & (d_box <= 0.5 * half_mm + 1.0)
    if not near.any():
        return mask
    radius = min(CUT_DEPTH_FRACTION * float(depth[near].max()), CUT_MAX_MM)
    if radius < 1.5 * float(min(spacing_zyx[1], spacing_zyx[2])):
        return mask
    core = _component_at(depth > radius, np.where(m, d_box, np.inf))
    if not core.any():
        return mask
    # points within the radius of the eroded core (+ half a voxel: the distances are to voxel centres)
    reach = ndimage.distance_transform_edt(~core, sampling=spacing_zyx)
    opened = m & (reach <= radius + 0.5 * float(min(spacing_zyx)))
    kept = _component_at(opened, d_box)
    if not kept.any():
        return mask
    faint_lesion = keep_faint and float(np.median(hu[box][kept])) < CUT_KEEP_BELOW_HU
    pieces, n = ndimage.label(m & ~kept) if faint_lesion else (None, 0)
    if pieces is not None and n:
        median = ndimage.median(hu[box], pieces, index=np.arange(1, n + 1))
        faint = np.zeros(n + 1, dtype=bool)
        faint[1:] = np.asarray(median) < CUT_KEEP_BELOW_HU
        kept |= faint[pieces]
    out = np.zeros_like(mask)
    out[box] = kept
    return out


def _component_at(mask: NDArray[np.bool_], dist: NDArray[np.floating]) -> NDArray[np.bool_]:
    """The connected component of ``mask`` at the box centre (``dist`` 0), or the one nearest to it."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask)
    c = np.unravel_index(np.argmin(dist), dist.shape)
    label_at = labels[c]
    if label_at == 0:  # centre fell in a gap: take the component nearest to it
        near = np.where(labels > 0, dist, np.inf)
        label_at = labels[np.unravel_index(np.argmin(near), near.shape)]
    return np.asarray(labels == label_at, dtype=bool)


def _opening_in_bbox(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """``ndimage.binary_opening(mask)`` computed on the bounding box of ``mask`` plus 2 voxels.

    The same result (erosion can only shrink the set, the dilation after it grows it by one
    voxel, and outside the box everything is 0 either way), at a fraction of the cost: the mask
    is clipped to a sphere well inside its region box.
    """
    if not mask.any():
        return mask.copy()
    lo, hi = [], []
    for axes in ((1, 2), (0, 2), (0, 1)):
        idx = np.flatnonzero(mask.any(axis=axes))
        lo.append(max(int(idx[0]) - 2, 0))
        hi.append(int(idx[-1]) + 3)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    out = np.zeros_like(mask)
    out[box] = ndimage.binary_opening(mask[box])
    return out


def _lung_box(lung: LungMask, box: tuple[slice, slice, slice], shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """The lung mask (upsampled to the volume grid) inside ``box``."""
    f = lung.factor
    k = np.arange(box[0].start, box[0].stop)
    j = np.minimum(np.arange(box[1].start, box[1].stop) // f, lung.mask_zyx.shape[1] - 1)
    i = np.minimum(np.arange(box[2].start, box[2].stop) // f, lung.mask_zyx.shape[2] - 1)
    if not (len(k) and len(j) and len(i)):
        return np.zeros(shape, dtype=bool)
    # slice the coarse block (j and i never decrease), then gather inside it: np.ix_ on the whole mask is slower
    block = lung.mask_zyx[k[0] : k[-1] + 1, j[0] : j[-1] + 1, i[0] : i[-1] + 1]
    out = block[:, j - j[0]][:, :, i - i[0]]
    return np.asarray(out[: shape[0], : shape[1], : shape[2]], dtype=bool)


def _touches_limit(
    mask: NDArray[np.bool_],
    box: tuple[slice, slice, slice],
    volume: Volume,
    centre_xyz_mm: tuple[float, float, float],
    diameter_mm: float,
) -> bool:
    """Whether the segmented region reaches the clipping sphere of :func:`segment_nodule`."""
    g = volume.geometry
    idx = np.argwhere(mask) + np.array([s.start for s in box])
    dist = np.linalg.norm((idx - g.mm_to_index(centre_xyz_mm)) * g.spacing_zyx, axis=1)
    limit = 0.75 * max(diameter_mm, 6.0) + 1.0
    return bool((dist > limit - 1.5 * float(g.spacing_zyx.max())).mean() > 0.05)


def _axes_mm(mask2d: NDArray[np.bool_], spacing_yx: tuple[float, float]) -> tuple[float, float]:
    """Long and short axis (mm) of the ellipse with the same second moments as the 2D mask."""
    jj, ii = np.nonzero(mask2d)
    return _axes_points_mm(jj, ii, spacing_yx)


def _axes_points_mm(jj: NDArray[np.intp], ii: NDArray[np.intp], spacing_yx: tuple[float, float]) -> tuple[float, float]:
    """Long and short axis (mm) of the ellipse with the same second moments as the pixels (jj, ii)."""
    if len(jj) < 3:
        d = 2.0 * np.sqrt(max(len(jj), 1) * spacing_yx[0] * spacing_yx[1] / np.pi)
        return d, d
    pts = np.stack([jj * spacing_yx[0], ii * spacing_yx[1]], axis=1)
    cov = np.cov(pts, rowvar=False) + np.eye(2) * (spacing_yx[0] * spacing_yx[1] / 12.0)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    return 4.0 * float(np.sqrt(eig[0])), 4.0 * float(np.sqrt(max(eig[1], 0.0)))


def segment_lesion(
    volume: Volume, lung: LungMask | None, centre_xyz_mm: tuple[float, float, float], model_diameter_mm: float
) -> NDArray[np.int64]:
    """The lesion around a centre as sorted flat voxel indices of the volume (empty: nothing denser
    than aerated lung there).

    :func:`segment_nodule` in a region of twice the model's diameter (at least 6 mm), grown x1.6
    while the lesion fills it to the edge, up to :data:`MAX_REGION_MM` (a sphere of 62 mm): a
    mass is segmented whole, or as far as that sphere, whatever size the model guessed. The
    closed lung mask holds the mediastinum on many slices, so a lesion touching it is not always
    separated from it: masses are measured roughly (check them on the images). Nor does the mask hold
    the bulk of a tumour broad-based on the pleura or the mediastinum, deeper than its closing
    reaches: such a mass is measured on its part inside the lung.
    """
    guess = float(np.clip(model_diameter_mm, 3.0, MAX_REGION_MM))
    mask, box = segment_nodule(volume, centre_xyz_mm, guess, lung)
    for _ in range(8):
        if not mask.any() or guess >= MAX_REGION_MM or not _touches_limit(mask, box, volume, centre_xyz_mm, guess):
            break
        guess = min(MAX_REGION_MM, guess * 1.6)
        mask, box = segment_nodule(volume, centre_xyz_mm, guess, lung)
    if not mask.any():
        return np.zeros(0, dtype=np.int64)
    idx = np.argwhere(mask) + np.array([sl.start for sl in box])
    return np.asarray(np.ravel_multi_index(idx.T, volume.shape_zyx), dtype=np.int64)  # C order: sorted


def _mass_sized(volume: Volume, idx: NDArray[np.intp]) -> bool:
    """Whether the lesion (voxel indices (N, 3) zyx) measures over :data:`MASS_MM` on its largest
    axial section (the mean of its axes, as :func:`measure_lesion` sizes it)."""
    g = volume.geometry
    long_axis, short_axis = _largest_section_axes(idx, (float(g.spacing_zyx[1]), float(g.spacing_zyx[2])))
    return (long_axis + short_axis) / 2.0 > MASS_MM


def territory_if_mass(volume: Volume, lung: LungMask, voxels: NDArray[np.int64]) -> NDArray[np.int64]:
    """:func:`mass_territory` of a lesion over :data:`MASS_MM` (:func:`_mass_sized`); empty for a
    smaller one or none."""
    if len(voxels) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.stack(np.unravel_index(voxels, volume.shape_zyx), axis=1)
    if not _mass_sized(volume, idx):
        return np.zeros(0, dtype=np.int64)
    return mass_territory(volume, lung, voxels, idx)


def mass_territory(
    volume: Volume, lung: LungMask, voxels: NDArray[np.int64], idx: NDArray[np.intp] | None = None
) -> NDArray[np.int64]:
    """A mass segmented inside the lung mask and the tissue next to it that the closed mask left out.

    A tumour that lies broad-based on the pleura or the mediastinum indents the lung deeper than the
    mask's closing reaches, so its bulk lies outside the mask and the segmentation keeps the part
    inside (on Lung-PET-CT-Dx-A0001 the spiculated lateral part of a tumour whose solid bulk lies
    against the spine). On the lesion's own slices, within :data:`MASS_GROW_MM` of it in-plane and
    inside the lung's local slice hulls (:func:`_slice_hulls`: the chest wall beyond the ribs' curve
    stays out), tissue denser than :data:`MASS_TISSUE_HU` and below bone, opened by a ball of
    :data:`MASS_NECK_MM` (what hangs on by a narrower neck goes), joins where it touches the lesion.

    The territory only groups findings (:func:`group_lesions`: a finding on the tumour's bulk joins
    the tumour); the mass is measured on its voxels inside the lung. Growing the measurement into
    the territory was tried and withdrawn: next to the heart the territory takes the heart's edge,
    and a 22 mm juxta-cardiac nodule became a large "solid mass" off its centre (training/README.md).

    Args:
        volume: the study.
        lung: its lung mask.
        voxels: the lesion as sorted flat voxel indices (at least one).
        idx: the same voxels as (N, 3) zyx indices, when the caller has them.

    Returns:
        Sorted flat voxel indices: the lesion and the tissue that joined it.
    """
    g = volume.geometry
    spacing = np.asarray(g.spacing_zyx, dtype=np.float64)
    if idx is None:
        idx = np.stack(np.unravel_index(voxels, volume.shape_zyx), axis=1)
    grow = np.array([0, *np.ceil(MASS_GROW_MM / spacing[1:]).astype(int)])
    lo = np.maximum(idx.min(axis=0) - grow, 0)
    hi = np.minimum(idx.max(axis=0) + grow + 1, volume.shape_zyx)
    box = (slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])), slice(int(lo[2]), int(hi[2])))
    sub = volume.hu_zyx[box].astype(np.float32)
    lesion = np.zeros(sub.shape, dtype=bool)
    lesion[tuple((idx - lo).T)] = True
    smooth = ndimage.gaussian_filter(sub, sigma=(0.0, 1.0 / spacing[1], 1.0 / spacing[2]))
    hull = _slice_hulls(_lung_box(lung, box, sub.shape))
    near = ndimage.distance_transform_edt(~lesion, sampling=(1e6, spacing[1], spacing[2])) <= MASS_GROW_MM
    tissue = (smooth > MASS_TISSUE_HU) & (smooth < MASS_BONE_HU) & hull & near & ~lesion
    if not tissue.any():
        return voxels
    # an opening by a ball of MASS_NECK_MM (distance transforms in mm), in-plane: slices up to 5 mm thick
    depth = ndimage.distance_transform_edt(tissue, sampling=(1e6, spacing[1], spacing[2]))
    reach = ndimage.distance_transform_edt(depth <= MASS_NECK_MM, sampling=(1e6, spacing[1], spacing[2]))
    opened = tissue & (reach <= MASS_NECK_MM + 0.5 * float(spacing[1:].min()))
    labels, _ = ndimage.label(opened | lesion)
    ids = np.unique(labels[lesion])
    grown = np.isin(labels, ids[ids > 0]) | lesion
    out = np.argwhere(grown) + lo
    return np.asarray(np.ravel_multi_index(out.T, volume.shape_zyx), dtype=np.int64)


def measure_lesion(
    volume: Volume,
    lung: LungMask,
    voxels: NDArray[np.int64],
    score: float,
    malignancy: float,
    model_diameter_mm: float,
    finding_id: int = 0,
    centre_xyz_mm: tuple[float, float, float] | None = None,
) -> Finding:
    """Measure one segmented lesion (sorted flat voxel indices, at least one): sizes, type, the
    Lung-RADS hint and location, placed at the lesion's centroid (or ``centre_xyz_mm``)."""
    g = volume.geometry
    idx = np.stack(np.unravel_index(voxels, volume.shape_zyx), axis=1)
    values = volume.hu_zyx.reshape(-1)[voxels]
    volume_mm3 = float(len(voxels)) * float(np.prod(g.spacing_zyx))
    spacing_yx = (float(g.spacing_zyx[1]), float(g.spacing_zyx[2]))
    long_axis, short_axis = _largest_section_axes(idx, spacing_yx)
    corners = g.index_to_mm(np.stack([idx.min(axis=0) - 0.5, idx.max(axis=0) + 0.5]))
    bbox_min = tuple(float(v) for v in corners.min(axis=0))
    bbox_max = tuple(float(v) for v in corners.max(axis=0))
    solid_fraction = float((values > -300).mean())
    solid_d, solid_short = 0.0, 0.0
    if 0.0 < solid_fraction < 0.5:
        solid_d, solid_short = _solid_component_axes(idx, values, spacing_yx)
    if (values > 200).mean() >= 0.10:
        kind = "calcified"
    elif solid_fraction >= 0.5:
        kind = "solid"
    elif solid_fraction >= 0.15 or solid_short >= PART_SOLID_CORE_MM:
        kind = "part-solid"
    else:
        kind = "ground-glass"
    mean_d = (long_axis + short_axis) / 2.0
    if kind != "part-solid":
        solid_d = 0.0
    if centre_xyz_mm is None:
        c = g.index_to_mm(idx.mean(axis=0))
        centre_xyz_mm = (float(c[0]), float(c[1]), float(c[2]))
    side, zone = _location(lung, volume, centre_xyz_mm)
    return Finding(
        id=finding_id,
        center_xyz_mm=(float(centre_xyz_mm[0]), float(centre_xyz_mm[1]), float(centre_xyz_mm[2])),
        diameter_mm=float(mean_d),
        bbox_min_xyz_mm=bbox_min,  # type: ignore[arg-type]
        bbox_max_xyz_mm=bbox_max,  # type: ignore[arg-type]
        score=score,
        malignancy=malignancy,
        type=kind,
        volume_mm3=volume_mm3,
        long_axis_mm=float(long_axis),
        short_axis_mm=float(short_axis),
        lung_rads=lung_rads_hint(kind, float(mean_d), float(solid_d)),
        measured=True,
        side=side,
        zone=zone,
        model_diameter_mm=float(model_diameter_mm),
        solid_fraction=solid_fraction,
        category="mass" if mean_d > MASS_MM else "nodule",
        solid_diameter_mm=float(solid_d),
        voxels=voxels,
    )


def _largest_section_axes(idx: NDArray[np.intp], spacing_yx: tuple[float, float]) -> tuple[float, float]:
    """Long and short axis (mm) of the axial section with the most voxels (indices (N, 3) zyx)."""
    k = idx[:, 0]
    counts = np.bincount(k - k.min())
    section = idx[k == k.min() + int(np.argmax(counts))]
    return _axes_points_mm(section[:, 1], section[:, 2], spacing_yx)


def _solid_component_axes(
    idx: NDArray[np.intp], values: NDArray[np.int16], spacing_yx: tuple[float, float]
) -> tuple[float, float]:
    """Mean diameter and short axis (mm) of the largest solid (> -300 HU) part of a lesion, on its
    largest section."""
    solid = idx[values > -300]
    if len(solid) == 0:
        return 0.0, 0.0
    lo = solid.min(axis=0)
    mask = np.zeros(tuple(solid.max(axis=0) - lo + 1), dtype=bool)
    mask[tuple((solid - lo).T)] = True
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    long_axis, short_axis = _largest_section_axes(np.argwhere(mask), spacing_yx)
    return (long_axis + short_axis) / 2.0, short_axis


def measure_finding(
    volume: Volume,
    lung: LungMask,
    centre_xyz_mm: tuple[float, float, float],
    model_diameter_mm: float,
    score: float,
    malignancy: float,
    finding_id: int = 0,
    segment: bool = True,
) -> Finding:
    """Measure one finding on :func:`segment_lesion` (placed at the lesion's centroid); with
    ``segment=False``, or where nothing segments, the model's diameter stands in (cheap) and the
    finding stays at ``centre_xyz_mm``."""
    if segment:
        voxels = segment_lesion(volume, lung, centre_xyz_mm, model_diameter_mm)
        if len(voxels):
            return measure_lesion(volume, lung, voxels, score, malignancy, model_diameter_mm, finding_id)
    return unmeasured_finding(volume, lung, centre_xyz_mm, model_diameter_mm, score, malignancy, finding_id)


def unmeasured_finding(
    volume: Volume,
    lung: LungMask,
    centre_xyz_mm: tuple[float, float, float],
    model_diameter_mm: float,
    score: float,
    malignancy: float,
    finding_id: int = 0,
) -> Finding:
    """A finding sized by the model's diameter estimate: no type, no Lung-RADS hint."""
    d = float(np.clip(model_diameter_mm, 3.0, 40.0))
    r = d / 2.0
    c = np.asarray(centre_xyz_mm, dtype=np.float64)
    side, zone = _location(lung, volume, centre_xyz_mm)
    return Finding(
        id=finding_id,
        center_xyz_mm=(float(c[0]), float(c[1]), float(c[2])),
        diameter_mm=d,
        bbox_min_xyz_mm=tuple(float(v) for v in c - r),  # type: ignore[arg-type]
        bbox_max_xyz_mm=tuple(float(v) for v in c + r),  # type: ignore[arg-type]
        score=score,
        malignancy=malignancy,
        type="unmeasured",
        volume_mm3=float(np.pi / 6.0 * d**3),
        long_axis_mm=d,
        short_axis_mm=d,
        lung_rads="",
        measured=False,
        side=side,
        zone=zone,
        model_diameter_mm=float(model_diameter_mm),
    )


#: A segmented finding joins a lesion when their masks share at least this fraction of the smaller
#: (or its centre lies in the lesion): :func:`group_lesions`.
LESION_OVERLAP = 0.1


def group_lesions(
    centres_flat: NDArray[np.int64],
    masks: Sequence[NDArray[np.int64]],
    territories: Sequence[NDArray[np.int64]] | None = None,
) -> list[list[int]]:
    """One group per lesion, from findings ordered best first.

    Args:
        centres_flat: each finding's centre as a flat voxel index of the volume (-1: outside).
        masks: each finding's :func:`segment_lesion` voxels (sorted flat indices; empty: not
            segmented).
        territories: each finding's :func:`mass_territory` when its lesion is a mass (sorted flat
            indices; empty or None: none), for grouping only.

    Returns:
        Groups of finding indices, best first, the best finding first in each (it may be
        unsegmented when a later member's mask holds its centre). A finding joins
        the best lesion it belongs to: its centre lies in the lesion's voxels (the union of its
        members' masks) or its territory, its mask or territory holds the lesion's first centre,
        or its mask shares at least :data:`LESION_OVERLAP` of the smaller of the two masks with
        the lesion (then its mask joins the union). A finding that belongs to several lesions so
        far joins them into one (a mass whose fragments were reached apart). Fragments of one
        lesion (a candidate on a part-solid nodule's core and one on its halo, several on a mass,
        one on a tumour's bulk outside the lung mask) thus become one finding, while a nodule
        beside another keeps its own: separate nodules' masks are separate components.
    """
    empty = np.zeros(0, dtype=np.int64)
    own = [np.asarray(t, dtype=np.int64) for t in territories] if territories is not None else [empty] * len(masks)
    groups: list[list[int] | None] = []
    unions: list[NDArray[np.int64]] = []
    reaches: list[NDArray[np.int64]] = []  # the union of the members' territories
    for i, (centre, mask) in enumerate(zip(centres_flat, masks, strict=True)):
        hits: list[tuple[int, bool]] = []  # the lesions it belongs to, and whether its mask joins
        for g, union in enumerate(unions):
            members = groups[g]
            if members is None:
                continue
            first_centre = int(centres_flat[members[0]])
            holds_first = _holds(mask, first_centre) or _holds(own[i], first_centre)
            if len(union) == 0:  # an unsegmented lesion: a mask (or territory) holding its centre takes it in
                if holds_first or _holds(reaches[g], int(centre)):
                    hits.append((g, True))
                continue
            # the lesion's first mask (its best segmented member)
            lead = next((masks[n] for n in members if len(masks[n])), masks[members[0]])
            overlap = len(mask) > 0 and len(np.intersect1d(mask, union, assume_unique=True)) >= LESION_OVERLAP * min(
                len(mask), max(len(lead), 1)
            )
            if overlap or holds_first or _holds(union, int(centre)) or _holds(reaches[g], int(centre)):
                hits.append((g, overlap))
        if not hits:
            groups.append([i])
            unions.append(np.asarray(mask, dtype=np.int64))
            reaches.append(own[i])
            continue
        g0, joins = hits[0]
        first = groups[g0]
        assert first is not None
        first.append(i)
        if joins:  # by overlap, or it took in an unsegmented lesion
            unions[g0] = np.union1d(unions[g0], mask)
        if len(own[i]):
            reaches[g0] = np.union1d(reaches[g0], own[i])
        for g, _ in hits[1:]:  # its lesion bridges two: one lesion (a mass its fragments reached apart)
            other = groups[g]
            assert other is not None
            first.extend(other)
            unions[g0] = np.union1d(unions[g0], unions[g])
            reaches[g0] = np.union1d(reaches[g0], reaches[g])
            groups[g] = None
        first.sort()
    return [members for members in groups if members is not None]


def _holds(voxels: NDArray[np.int64], flat: int) -> bool:
    """Whether the sorted flat indices ``voxels`` hold ``flat`` (-1: never)."""
    if flat < 0 or len(voxels) == 0:
        return False
    at = int(np.searchsorted(voxels, flat))
    return at < len(voxels) and int(voxels[at]) == flat


def _location(lung: LungMask, volume: Volume, centre_xyz_mm: tuple[float, float, float]) -> tuple[str, str]:
    g = volume.geometry
    extent = lung.extent_zyx
    if extent is not None:
        (k0, k1), _, (i0, i1) = extent
        f = lung.factor
        ends = g.index_to_mm(np.array([[k0, 0, i0 * f], [k1, 0, i1 * f]], dtype=float))
        mid_x = float(ends[:, 0].mean())
        z_lo, z_hi = float(ends[:, 2].min()), float(ends[:, 2].max())
    else:
        c = g.center_mm()
        mid_x = float(c[0])
        corners = g.index_to_mm(np.array([[0, 0, 0], [g.shape_zyx[0] - 1, 0, 0]], dtype=float))
        z_lo, z_hi = float(corners[:, 2].min()), float(corners[:, 2].max())
    side = "left" if centre_xyz_mm[0] > mid_x else "right"  # LPS: +x is the patient's left
    t = (centre_xyz_mm[2] - z_lo) / max(z_hi - z_lo, 1e-6)
    zone = "lower" if t < 1 / 3 else "middle" if t < 2 / 3 else "upper"
    return side, zone
