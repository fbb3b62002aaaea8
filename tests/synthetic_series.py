"""Small synthetic DICOM scenarios for tests (a helper module, not a test file).

Each builder writes one scenario into a given folder with :mod:`nodeview.core.io.dicom_write` and
returns ``(paths, truth)``: the files written and a :class:`Truth` saying what a correct loader
must produce. Truth follows :mod:`nodeview.core.geometry`: ``hu_zyx`` is in ascending order along
the slice normal of the series' ImageOrientationPatient, ``origin_xyz`` is the LPS mm centre of
voxel ``[0, 0, 0]`` of that array, ``direction`` has columns i, j, k.

The phantom is asymmetric in all three axes so any flip is detectable: the right lung (patient
right = -x = low i in HFS) is larger than the left, the spine is posterior, the liver sits right
and inferior, and one bright nodule sits in the left upper lung, anterior. :attr:`Truth.nodule_xyz`
gives the nodule centre in LPS mm: a correct loader shows ~30 HU there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless, generate_uid

from nodeview.core.geometry import Geometry, direction_from_orientation
from nodeview.core.io.dicom_write import SeriesSpec, write_enhanced_multiframe, write_localizer, write_series

DEFAULT_SHAPE: tuple[int, int, int] = (20, 64, 64)
SPACING_ZYX: tuple[float, float, float] = (1.25, 0.7, 0.7)
#: z (LPS mm) of the inferior boundary of the phantom's first slice.
Z_BOTTOM_MM = -100.0

AIR_HU = -1000
BODY_HU = 40
LUNG_HU = -850
NODULE_HU = 30
SPINE_HU = 400
LIVER_HU = 60

# Phantom anatomy in normalised coordinates: each axis runs -1..1 over the volume's extent,
# +x = patient left (increasing i), +y = posterior (increasing j), +z = superior (increasing k).
_NODULE_CENTER_N = (0.45, -0.12, 0.45)  # (x, y, z)
_NODULE_RADIUS_N = 0.15


@dataclass(frozen=True, eq=False)
class Truth:
    """What a correct loader must produce for one scenario.

    Args:
        hu_zyx: int16 HU (MR: raw intensities), ascending along the slice normal.
        origin_xyz: LPS mm of the centre of voxel ``[0, 0, 0]`` of ``hu_zyx``.
        spacing_zyx: mm between slice centres, rows, columns.
        direction: 3x3, columns are the LPS unit vectors of i, j, k.
        series_uid: SeriesInstanceUID of the series to load.
        modality: DICOM Modality.
        patient_position: DICOM PatientPosition.
        source_format: "dicom" or "dicom-multiframe".
        slice_thickness_mm: nominal SliceThickness.
        interpolated_slices: k indices absent from the files that a loader must fill.
        expect_warning: True when a correct loader should tell the user something.
        nodule_xyz: LPS mm of the nodule centre.
        notes: what the scenario tests and what else is acceptable.
        other_series: further volumes written into the same folder.
    """

    hu_zyx: NDArray[np.int16]
    origin_xyz: tuple[float, float, float]
    spacing_zyx: tuple[float, float, float]
    direction: NDArray[np.float64]
    series_uid: str
    modality: str = "CT"
    patient_position: str = "HFS"
    source_format: str = "dicom"
    slice_thickness_mm: float | None = None
    interpolated_slices: tuple[int, ...] = ()
    expect_warning: bool = False
    nodule_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    notes: str = ""
    other_series: tuple[Truth, ...] = field(default=())

    @property
    def geometry(self) -> Geometry:
        nz, ny, nx = (int(v) for v in self.hu_zyx.shape)
        return Geometry((nz, ny, nx), np.asarray(self.spacing_zyx), np.asarray(self.origin_xyz), self.direction)


Builder = Callable[..., tuple[list[Path], Truth]]


# ---- phantom ----------------------------------------------------------------------------------
def _normalised_grid(shape: tuple[int, int, int]) -> tuple[NDArray[np.float64], ...]:
    nz, ny, nx = shape
    z = (2.0 * (np.arange(nz) + 0.5) / nz - 1.0)[:, None, None]
    y = (2.0 * (np.arange(ny) + 0.5) / ny - 1.0)[None, :, None]
    x = (2.0 * (np.arange(nx) + 0.5) / nx - 1.0)[None, None, :]
    return z, y, x


def phantom(shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0) -> NDArray[np.int16]:
    """An int16 chest-like HU phantom, asymmetric along x, y and z.

    Air -1000 outside an elliptic body (~40 HU); two lungs (~-850), the right one larger; a
    posterior spine (400); a liver (60) right and inferior; a nodule sphere (30) in the left upper
    lung. Anatomy is defined on the normalised extent, so volumes of the same physical extent but
    different slice counts show the same anatomy. ``seed`` adds ±4 HU noise inside the body.
    """
    z, y, x = _normalised_grid(shape)
    hu = np.full(shape, AIR_HU, dtype=np.float64)
    body = (x / (0.86 - 0.08 * np.clip(z, 0, 1))) ** 2 + ((y - 0.05) / 0.62) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = BODY_HU
    liver = body & np.broadcast_to((x < 0.25) & (z < -0.45) & (y < 0.35), shape)
    hu[liver] = LIVER_HU
    spine = np.broadcast_to(x**2 + (y - 0.47) ** 2 <= 0.1**2, shape)
    hu[spine] = SPINE_HU
    right_lung = ((x + 0.40) / 0.30) ** 2 + ((y - 0.00) / 0.42) ** 2 + ((z - 0.10) / 0.85) ** 2 <= 1.0
    left_lung = ((x - 0.42) / 0.24) ** 2 + ((y - 0.02) / 0.38) ** 2 + ((z - 0.15) / 0.80) ** 2 <= 1.0
    hu[right_lung | left_lung] = LUNG_HU
    cx, cy, cz = _NODULE_CENTER_N
    nodule = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= _NODULE_RADIUS_N**2
    hu[nodule] = NODULE_HU
    rng = np.random.default_rng(seed)
    noise = rng.integers(-4, 5, size=shape)
    hu = np.where(body, hu + noise, hu)
    return hu.astype(np.int16)


def nodule_index_zyx(shape: tuple[int, int, int] = DEFAULT_SHAPE) -> tuple[float, float, float]:
    """Fractional voxel index (k, j, i) of the nodule centre in :func:`phantom` of ``shape``."""
    cx, cy, cz = _NODULE_CENTER_N
    nz, ny, nx = shape
    return ((cz + 1) / 2 * nz - 0.5, (cy + 1) / 2 * ny - 0.5, (cx + 1) / 2 * nx - 0.5)


# ---- helpers ----------------------------------------------------------------------------------
def _uid(*parts: object) -> str:
    return str(generate_uid(entropy_srcs=["nodeview-tests", *map(str, parts)]))


def _base_origin(shape: tuple[int, int, int], spacing_zyx: tuple[float, float, float]) -> tuple[float, float, float]:
    """Origin putting the phantom's x/y centre at 0 and its inferior boundary at Z_BOTTOM_MM."""
    _, ny, nx = shape
    sz, sy, sx = spacing_zyx
    return (-(nx - 1) / 2 * sx, -(ny - 1) / 2 * sy, Z_BOTTOM_MM + sz / 2)


def _spec(name: str, shape: tuple[int, int, int], seed: int, **changes: object) -> SeriesSpec:
    values: dict[str, object] = {
        "spacing_zyx": SPACING_ZYX,
        "origin_xyz": _base_origin(shape, SPACING_ZYX),
        "series_uid": _uid(name, seed, "series"),
        "study_uid": _uid(name, seed, "study"),
        "frame_of_reference_uid": _uid(name, seed, "for"),
        "series_description": f"Synthetic CT {name}",
        "seed": seed,
    }
    values.update(changes)
    return SeriesSpec(**values)  # type: ignore[arg-type]


def _truth(hu: NDArray[np.int16], spec: SeriesSpec, **changes: object) -> Truth:
    """Truth of a regular series written in ascending order with ``spec``'s origin and spacing."""
    direction = direction_from_orientation(spec.orientation)
    values: dict[str, object] = {
        "hu_zyx": hu,
        "origin_xyz": tuple(float(v) for v in spec.origin_xyz),
        "spacing_zyx": tuple(float(v) for v in spec.spacing_zyx),
        "direction": direction,
        "series_uid": str(spec.series_uid),
        "modality": spec.modality,
        "patient_position": spec.patient_position,
        "slice_thickness_mm": spec.slice_thickness if spec.slice_thickness is not None else spec.spacing_zyx[0],
    }
    values.update(changes)
    truth = Truth(**values)  # type: ignore[arg-type]
    if "nodule_xyz" not in changes:
        nz, ny, nx = (int(v) for v in hu.shape)
        idx = nodule_index_zyx((nz, ny, nx))
        truth = _with(truth, nodule_xyz=tuple(float(v) for v in truth.geometry.index_to_mm(idx)))
    return truth


def _with(truth: Truth, **changes: object) -> Truth:
    values = {name: getattr(truth, name) for name in truth.__dataclass_fields__}
    values.update(changes)
    return Truth(**values)


def _regular(
    name: str, out_dir: str | Path, shape: tuple[int, int, int], seed: int, notes: str, **spec_changes: object
) -> tuple[list[Path], Truth]:
    hu = phantom(shape, seed)
    spec = _spec(name, shape, seed, **spec_changes)
    paths = write_series(hu, out_dir, spec)
    return paths, _truth(hu, spec, notes=notes)


# ---- scenarios --------------------------------------------------------------------------------
def plain(out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0) -> tuple[list[Path], Truth]:
    """Axial HFS series, IM0001.dcm... in ascending z, Explicit VR Little Endian."""
    return _regular("plain", out_dir, shape, seed, "Baseline: axial HFS, ascending z.")


def shuffled_names(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """Random file names written in random order: a loader must sort by position, not by name."""
    return _regular(
        "shuffled",
        out_dir,
        shape,
        seed,
        "File names and write order are random; sort by ImagePositionPatient along the normal.",
        file_names="shuffled",
    )


def feet_first(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """FFS as scanners write it: IOP (-1,0,0, 0,1,0), normal -z; same anatomy as :func:`plain`."""
    ph = phantom(shape, seed)
    nz, _, nx = shape
    sz, _, sx = SPACING_ZYX
    ox, oy, oz = _base_origin(shape, SPACING_ZYX)
    hu = np.ascontiguousarray(ph[::-1, :, ::-1])  # i towards patient right, k towards the feet
    spec = _spec(
        "feet_first",
        shape,
        seed,
        orientation=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        origin_xyz=(ox + (nx - 1) * sx, oy, oz + (nz - 1) * sz),
        patient_position="FFS",
    )
    paths = write_series(hu, out_dir, spec)
    lps_truth = _truth(ph, _spec("feet_first", shape, seed))
    truth = _truth(
        hu,
        spec,
        nodule_xyz=lps_truth.nodule_xyz,
        notes=(
            "Feet first: row direction -x, normal -z. In the geometry convention the array keeps the "
            "IOP axes (direction diag(-1, 1, -1)); flipping k and i gives phantom() with the plain "
            "origin. The nodule must stay at the same LPS position as in plain()."
        ),
    )
    return paths, truth


def descending_z(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """Instance numbers 1..n go with decreasing z (scan from head to feet)."""
    hu = phantom(shape, seed)
    ref = _spec("descending_z", shape, seed)
    sz = SPACING_ZYX[0]
    ox, oy, oz = ref.origin_xyz
    positions = [(ox, oy, oz + k * sz) for k in range(shape[0])][::-1]
    spec = _spec("descending_z", shape, seed, positions_xyz=positions)
    paths = write_series(np.ascontiguousarray(hu[::-1]), out_dir, spec)
    return paths, _truth(
        hu, spec, notes="Instance 1 is the most superior slice; the loaded volume is still ascending along +z."
    )


def gantry_tilt(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0, tilt_deg: float = 15.0
) -> tuple[list[Path], Truth]:
    """Tilted gantry: IOP (1,0,0, 0,cos t,-sin t), positions stepping purely along z by spacing."""
    hu = phantom(shape, seed)
    t = math.radians(tilt_deg)
    c, s = math.cos(t), math.sin(t)
    ref = _spec("gantry_tilt", shape, seed)
    ox, oy, oz = ref.origin_xyz
    sz, sy, sx = SPACING_ZYX
    positions = [(ox, oy, oz + k * sz) for k in range(shape[0])]
    spec = _spec("gantry_tilt", shape, seed, orientation=(1.0, 0.0, 0.0, 0.0, c, -s), positions_xyz=positions)
    paths = write_series(hu, out_dir, spec)
    direction = np.array([[1.0, 0.0, 0.0], [0.0, c, 0.0], [0.0, -s, 1.0]])  # columns: row, col, step
    truth = _truth(
        hu,
        spec,
        direction=direction,
        spacing_zyx=(sz, sy, sx),
        expect_warning=True,
        notes=(
            f"Gantry tilt {tilt_deg} deg: slice normal (0, sin t, cos t) but slices step along +z, so the "
            "grid is sheared. The exact voxel->mm map is this truth's non-orthogonal geometry "
            f"(k column (0,0,1), spacing_z {sz}). Spacing along the normal is {sz * c:.6f} mm; each slice "
            f"shifts {sz * s:.6f} mm along -column. A loader must either keep the sheared affine, "
            "resample onto an orthogonal grid, or warn that positions are approximate."
        ),
    )
    return paths, truth


def missing_slice(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """One interior slice (k = nz // 2) is not written."""
    hu = phantom(shape, seed)
    k_miss = shape[0] // 2
    ref = _spec("missing_slice", shape, seed)
    ox, oy, oz = ref.origin_xyz
    sz = SPACING_ZYX[0]
    keep = [k for k in range(shape[0]) if k != k_miss]
    spec = _spec("missing_slice", shape, seed, positions_xyz=[(ox, oy, oz + k * sz) for k in keep])
    paths = write_series(np.ascontiguousarray(hu[keep]), out_dir, spec)
    expected = hu.copy()
    mean = (hu[k_miss - 1].astype(np.float64) + hu[k_miss + 1].astype(np.float64)) / 2.0
    expected[k_miss] = np.rint(mean).astype(np.int16)
    truth = _truth(
        expected,
        spec,
        origin_xyz=ref.origin_xyz,
        interpolated_slices=(k_miss,),
        expect_warning=True,
        notes=(
            f"Slice k={k_miss} is missing (gap of {2 * sz} mm). A loader keeps the regular grid, fills "
            f"k={k_miss} by linear interpolation (truth holds the neighbours' mean, ±1 HU for rounding) "
            "and reports it; every other slice must match exactly."
        ),
    )
    return paths, truth


def duplicate_positions(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """Slice k = nz // 3 is written twice: same position and pixels, different SOPInstanceUID."""
    hu = phantom(shape, seed)
    k_dup = shape[0] // 3
    ref = _spec("duplicate_positions", shape, seed)
    ox, oy, oz = ref.origin_xyz
    sz = SPACING_ZYX[0]
    order = [*range(k_dup + 1), k_dup, *range(k_dup + 1, shape[0])]
    spec = _spec("duplicate_positions", shape, seed, positions_xyz=[(ox, oy, oz + k * sz) for k in order])
    paths = write_series(np.ascontiguousarray(hu[order]), out_dir, spec)
    truth = _truth(
        hu,
        spec,
        origin_xyz=ref.origin_xyz,
        expect_warning=True,
        notes=(
            f"{len(order)} files, {shape[0]} distinct positions: slice k={k_dup} appears twice (identical "
            "pixels, different SOPInstanceUID). A loader keeps one and says so."
        ),
    )
    return paths, truth


def with_localizer(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """Axial series plus one coronal localizer (own series UID, same study and frame of reference).

    The localizer's path is the last element of the returned paths.
    """
    hu = phantom(shape, seed)
    spec = _spec("with_localizer", shape, seed, series_number=2)
    paths = write_series(hu, out_dir, spec)
    nz, _, _ = shape
    sz, _, sx = SPACING_ZYX
    ox, _, oz = spec.origin_xyz
    scout = np.rint(hu.astype(np.float64).mean(axis=1))[::-1].astype(np.int16)  # row 0 = superior
    loc = write_localizer(
        np.ascontiguousarray(scout),
        out_dir,
        series_uid=_uid("with_localizer", seed, "localizer"),
        study_uid=spec.study_uid,
        frame_of_reference_uid=spec.frame_of_reference_uid,
        spec=spec,
        pixel_spacing_yx=(sz, sx),
        position_xyz=(ox, 0.0, oz + (nz - 1) * sz),
        series_number=1,
    )
    truth = _truth(
        hu,
        spec,
        notes=(
            "The folder also holds a coronal LOCALIZER (ImageType ORIGINAL\\PRIMARY\\LOCALIZER, its own "
            "series UID): a loader must ignore it and load only the axial series."
        ),
    )
    return [*paths, loc], truth


def thin_and_thick(out_dir: str | Path, seed: int = 0, ny: int = 64, nx: int = 64) -> tuple[list[Path], Truth]:
    """The same anatomy as a 1 mm series of 40 slices and a 5 mm series of 8 slices, one folder.

    Truth describes the thin series; ``truth.other_series[0]`` the thick one. Returned paths are
    the thin series' files followed by the thick series' files.
    """
    results: list[tuple[list[Path], Truth]] = []
    for nz, step, number in ((40, 1.0, 3), (8, 5.0, 4)):
        shape = (nz, ny, nx)
        spacing = (step, SPACING_ZYX[1], SPACING_ZYX[2])
        hu = phantom(shape, seed)
        spec = _spec(
            f"thin_and_thick_{step:g}mm",
            shape,
            seed,
            spacing_zyx=spacing,
            origin_xyz=_base_origin(shape, spacing),
            study_uid=_uid("thin_and_thick", seed, "study"),
            frame_of_reference_uid=_uid("thin_and_thick", seed, "for"),
            series_number=number,
            series_description=f"Synthetic CT {step:g} mm",
            slice_thickness=step,
            file_names="uid",  # both series share one folder
        )
        paths = write_series(hu, out_dir, spec)
        results.append((paths, _truth(hu, spec)))
    (thin_paths, thin), (thick_paths, thick) = results
    thin = _with(
        thin,
        other_series=(_with(thick, notes="The 5 mm series of thin_and_thick (8 slices)."),),
        notes=(
            "Two series of one study covering the same 40 mm: 40 x 1 mm and 8 x 5 mm, different series "
            "UIDs. A loader must not mix them; it offers both and defaults to the thin one."
        ),
    )
    return [*thin_paths, *thick_paths], thin


def mr_series(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """An MR series (MR Image Storage); values are intensities (phantom + 1000), not HU."""
    values = np.clip(phantom(shape, seed).astype(np.int32) + 1000, 0, None).astype(np.int16)
    spec = _spec(
        "mr_series",
        shape,
        seed,
        modality="MR",
        image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
        series_description="Synthetic T1",
        rescale_intercept=0.0,
    )
    paths = write_series(values, out_dir, spec)
    truth = _truth(
        values,
        spec,
        expect_warning=True,
        notes="Modality MR: values are not Hounsfield units. A CT viewer must say so (or refuse).",
    )
    return paths, truth


def enhanced_multiframe(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """One Enhanced CT Image Storage file (ENHANCED.dcm) holding every slice as a frame."""
    hu = phantom(shape, seed)
    spec = _spec("enhanced_multiframe", shape, seed)
    path = write_enhanced_multiframe(hu, Path(out_dir) / "ENHANCED.dcm", spec)
    truth = _truth(
        hu,
        spec,
        source_format="dicom-multiframe",
        notes="Enhanced CT: geometry in Shared/Per-Frame Functional Groups, rescale in the shared group.",
    )
    return [path], truth


def compressed_rle(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """RLE Lossless transfer syntax (decodable by pydicom without plugins)."""
    return _regular(
        "compressed_rle", out_dir, shape, seed, "RLE Lossless pixel data.", transfer_syntax=str(RLELossless)
    )


def deflated(
    out_dir: str | Path, shape: tuple[int, int, int] = DEFAULT_SHAPE, seed: int = 0
) -> tuple[list[Path], Truth]:
    """Deflated Explicit VR Little Endian: the whole data set after the file meta is zlib-deflated."""
    return _regular(
        "deflated",
        out_dir,
        shape,
        seed,
        "Deflated Explicit VR Little Endian.",
        transfer_syntax=str(DeflatedExplicitVRLittleEndian),
    )


#: Every builder by name, for parametrised tests.
SCENARIOS: dict[str, Builder] = {
    "plain": plain,
    "shuffled_names": shuffled_names,
    "feet_first": feet_first,
    "descending_z": descending_z,
    "gantry_tilt": gantry_tilt,
    "missing_slice": missing_slice,
    "duplicate_positions": duplicate_positions,
    "with_localizer": with_localizer,
    "thin_and_thick": thin_and_thick,
    "mr_series": mr_series,
    "enhanced_multiframe": enhanced_multiframe,
    "compressed_rle": compressed_rle,
    "deflated": deflated,
}
