"""What a finding is, and how it is measured from the CT (Qt-free).

Measurements come from a segmentation of the nodule around the detector's centre:

* Region: a box of 2x the predicted diameter (at least 12 mm) around the centre.
* Threshold: half-way between the local aerated lung (10th percentile of the box, capped at
  -700 HU) and the nodule's core HU (median of a 2 mm sphere at the centre), but never below
  -750 HU, so ground glass segments too. Only voxels inside the (closed) lung mask count, so
  juxta-pleural nodules do not leak into the chest wall; the result is opened (1 voxel) and
  clipped to a sphere of 0.75x the box, which cuts attached vessels, and the connected
  component at the centre is kept. The box grows (x1.6, up to 40 mm) while the nodule fills
  it. The result is a rough measure for a research tool: check it on the images.
* Volume (mm3) = voxels x voxel volume. Long/short axis (mm): the axial slice with the largest
  cross-section; an ellipse with the same second moments gives the two axes. Mean diameter
  = (long + short) / 2, as Lung-RADS uses.
* Type from HU: calcified if >= 10 % of voxels are above 200 HU; solid if most voxels are
  above -300 HU; part-solid if a solid core (> -300 HU) is at least 15 % of the volume inside
  ground glass; else ground-glass.
* Lung-RADS v2022 category *hint* (baseline screening, size and type only; no growth or
  other features): solid <6 mm 2, 6-8 3, 8-15 4A, >=15 4B; part-solid <6 mm 2, solid part
  <6 mm 3, 6-8 4A, >=8 4B; ground-glass <30 mm 2, >=30 mm 3; calcified 1.
* Side from the patient x of the centre relative to the lungs' midline; zone (upper, middle,
  lower) from thirds of the lungs' z extent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from ..volume import Volume
from .lung import LungMask

NODULE_TYPES = ("solid", "part-solid", "ground-glass", "calcified", "unmeasured")


@dataclass(frozen=True)
class Finding:
    """One detected nodule. Positions in LPS mm (x, y, z)."""

    id: int
    center_xyz_mm: tuple[float, float, float]
    diameter_mm: float  # mean of long and short axis when segmented, else the model's estimate
    bbox_min_xyz_mm: tuple[float, float, float]
    bbox_max_xyz_mm: tuple[float, float, float]
    score: float  # detection score 0-1 (the model's nodule_prob, fused with the proposal rank when the model says so)
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
            "score": round(self.score, 4),
            "malignancy": round(self.malignancy, 4),
            "type": self.type,
            "volume_mm3": round(self.volume_mm3, 1),
            "long_axis_mm": round(self.long_axis_mm, 2),
            "short_axis_mm": round(self.short_axis_mm, 2),
            "lung_rads": self.lung_rads,
            "side": self.side,
            "zone": self.zone,
            "measurement": "segmentation" if self.measured else "model estimate",
        }


def format_score(score: float) -> str:
    """A finding score or threshold as text, with more decimals where scores crowd near 1
    (0.50, 0.924, 0.9878), so that a finding and the threshold it is compared with never print alike
    unless they nearly are."""
    if score < 0.9:
        return f"{score:.2f}"
    return f"{score:.3f}" if score < 0.98 else f"{score:.4f}"


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
    mask = sub > threshold
    mask &= dist <= 0.75 * half_mm + 1.0
    if lung is not None:  # the closed lung mask holds juxta-pleural nodules but not the chest wall
        in_lung = _lung_box(lung, box, sub.shape)
        if in_lung[tuple(c)]:
            mask &= in_lung
    mask = _opening_in_bbox(mask)
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros_like(mask), box
    label_at = labels[tuple(c)]
    if label_at == 0:  # centre fell in a gap: take the component nearest to it
        near = np.where(labels > 0, dist, np.inf)
        label_at = labels[np.unravel_index(np.argmin(near), near.shape)]
    return np.asarray(labels == label_at, dtype=bool), box


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
    if len(jj) < 3:
        d = 2.0 * np.sqrt(max(len(jj), 1) * spacing_yx[0] * spacing_yx[1] / np.pi)
        return d, d
    pts = np.stack([jj * spacing_yx[0], ii * spacing_yx[1]], axis=1)
    cov = np.cov(pts, rowvar=False) + np.eye(2) * (spacing_yx[0] * spacing_yx[1] / 12.0)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    return 4.0 * float(np.sqrt(eig[0])), 4.0 * float(np.sqrt(max(eig[1], 0.0)))


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
    """Measure one finding; with ``segment=False`` the model's diameter stands in (cheap)."""
    g = volume.geometry
    diameter_guess = float(np.clip(model_diameter_mm, 3.0, 40.0))
    mask, box = np.zeros((0, 0, 0), dtype=bool), (slice(0, 0), slice(0, 0), slice(0, 0))
    for _ in range(
        3 if segment else 0
    ):  # grow the region while the nodule fills it to the edge (diameter underestimated)
        mask, box = segment_nodule(volume, centre_xyz_mm, diameter_guess, lung)
        if (
            not mask.any()
            or diameter_guess >= 40.0
            or not _touches_limit(mask, box, volume, centre_xyz_mm, diameter_guess)
        ):
            break
        diameter_guess = min(40.0, diameter_guess * 1.6)
    voxel_mm3 = float(np.prod(g.spacing_zyx))
    if mask.any():
        sub = volume.hu_zyx[box]
        values = sub[mask]
        volume_mm3 = float(mask.sum()) * voxel_mm3
        areas = mask.sum(axis=(1, 2))
        k = int(np.argmax(areas))
        long_axis, short_axis = _axes_mm(mask[k], (float(g.spacing_zyx[1]), float(g.spacing_zyx[2])))
        idx = np.argwhere(mask) + np.array([s.start for s in box])
        corners = g.index_to_mm(np.stack([idx.min(axis=0) - 0.5, idx.max(axis=0) + 0.5]))
        bbox_min = tuple(float(v) for v in corners.min(axis=0))
        bbox_max = tuple(float(v) for v in corners.max(axis=0))
        solid_fraction = float((values > -300).mean())
        if (values > 200).mean() >= 0.10:
            kind = "calcified"
        elif solid_fraction >= 0.5:
            kind = "solid"
        elif solid_fraction >= 0.15:
            kind = "part-solid"
        else:
            kind = "ground-glass"
        mean_d = (long_axis + short_axis) / 2.0
        solid_d = mean_d * solid_fraction ** (1 / 3) if kind == "part-solid" else 0.0
    else:
        volume_mm3 = float(np.pi / 6.0 * diameter_guess**3)
        long_axis = short_axis = mean_d = diameter_guess
        r = diameter_guess / 2.0
        c = np.asarray(centre_xyz_mm)
        bbox_min, bbox_max = tuple(float(v) for v in c - r), tuple(float(v) for v in c + r)
        # nothing denser than aerated lung at the centre, or not segmented: no type, no Lung-RADS hint
        kind, solid_fraction, solid_d = "unmeasured", 0.0, 0.0
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
        lung_rads=lung_rads_hint(kind, float(mean_d), float(solid_d)) if kind != "unmeasured" else "",
        measured=bool(mask.any()),
        side=side,
        zone=zone,
        model_diameter_mm=float(model_diameter_mm),
        solid_fraction=solid_fraction,
    )


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
