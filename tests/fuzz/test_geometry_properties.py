"""Property-based layer of the fuzz suite: Hypothesis draws header values for the geometry code.

* :func:`_frames_from_header` on any ImagePositionPatient / ImageOrientationPatient / PixelSpacing /
  RescaleSlope / RescaleIntercept / Rows / Columns / NumberOfFrames text either skips the file with
  a reason or yields frames whose numbers are finite and plausible (or marked with a problem);
* grouping and stack planning on any set of slice positions never interpolates a gap larger than
  the limit, never plans past the voxel budget, and refuses only with a NodeView error;
* the voxel-to-millimetre mapping of any valid geometry round-trips.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodeview.core import limits as L
from nodeview.core.errors import NodeViewError
from nodeview.core.geometry import Geometry
from nodeview.core.io import dicom as D

from .corpus import put_raw

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-30, 1e30, -1e30, 1e5, 0.7, 1.0, -1.0]),
)
number_text = st.one_of(
    numbers.map(lambda v: repr(float(v))),
    st.text(alphabet="0123456789.-+eEnaif ", max_size=12),
    st.just(""),
)


def multi(n: int) -> st.SearchStrategy[bytes]:
    return st.lists(number_text, min_size=0, max_size=n + 1).map(lambda vs: "\\".join(vs).encode("latin-1"))


def _dataset(values: dict[str, bytes | None], rows: int, cols: int, frames: bytes | None) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.Modality = "CT"
    ds.SeriesInstanceUID = "1.2.3.4"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation, ds.SamplesPerPixel = 16, 16, 1, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    for keyword, value in values.items():
        put_raw(ds, keyword, "DS", value)
    if frames is not None:
        put_raw(ds, "NumberOfFrames", "IS", frames)
    return ds


@SETTINGS
@given(
    ipp=multi(3),
    iop=multi(6),
    spacing=multi(2),
    slope=multi(1),
    intercept=multi(1),
    rows=st.integers(0, 65535),
    cols=st.integers(0, 65535),
    frames=st.one_of(st.none(), st.integers(-5, 2**31 - 1).map(lambda v: str(v).encode()), number_text.map(str.encode)),
)
def test_any_header_values_give_plausible_frames_or_a_skip(ipp, iop, spacing, slope, intercept, rows, cols, frames):
    values = {
        "ImagePositionPatient": ipp,
        "ImageOrientationPatient": iop,
        "PixelSpacing": spacing,
        "RescaleSlope": slope,
        "RescaleIntercept": intercept,
    }
    ds = _dataset(values, rows, cols, frames)
    try:
        out, _meta = D._frames_from_header(Path("x.dcm"), ds, 1000, {}, 1000 + 2 * rows * cols)
    except D._Skip as skip:
        assert skip.reason and "\n" not in skip.reason
        return
    assert 1 <= len(out) <= L.MAX_FRAMES_PER_FILE
    for fr in out:
        assert L.MIN_IMAGE_SIZE <= fr.rows <= L.MAX_IMAGE_SIZE and L.MIN_IMAGE_SIZE <= fr.columns <= L.MAX_IMAGE_SIZE
        assert all(math.isfinite(v) and abs(v) <= L.MAX_ABS_POSITION_MM * 2 for v in fr.position_xyz)
        row, col = np.asarray(fr.orientation[:3]), np.asarray(fr.orientation[3:])
        assert abs(np.linalg.norm(row) - 1) < 1e-6 and abs(np.linalg.norm(col) - 1) < 1e-6
        if fr.problem is None:
            assert abs(float(row @ col)) <= 0.011
            lo, hi = L.PIXEL_SPACING_RANGE_MM
            assert all(lo <= v <= hi for v in fr.pixel_spacing)
            assert math.isfinite(fr.slope) and fr.slope != 0 and math.isfinite(fr.intercept)


def _frame(path: str, z: float, x: float = 0.0, for_uid: str = "1.2", rows: int = 64) -> D.FrameRef:
    return D.FrameRef(
        path=path,
        frame=0,
        n_frames_in_file=1,
        position_xyz=(x, 0.0, z),
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        rows=rows,
        columns=rows,
        pixel_spacing=(0.7, 0.7),
        slice_thickness=1.0,
        slope=1.0,
        intercept=-1024.0,
        instance_number=None,
        transfer_syntax="1.2.840.10008.1.2.1",
        bits_allocated=16,
        bits_stored=16,
        pixel_representation=1,
        pixel_offset=None,
        series_uid="1.2.3",
        frame_of_reference=for_uid,
    )


def _meta() -> dict[str, dict[str, object]]:
    from nodeview.core.volume import PatientInfo

    return {
        "1.2.3": {
            "series_uid": "1.2.3",
            "group_uid": "1.2.3",
            "modality": "CT",
            "description": "",
            "series_number": 1,
            "patient_position": "HFS",
            "patient": PatientInfo(),
        }
    }


@SETTINGS
@given(
    zs=st.lists(
        st.one_of(st.floats(-1e5, 1e5, allow_nan=False), st.integers(-200, 200).map(float)), min_size=1, max_size=60
    ),
    lateral=st.lists(st.floats(-50, 50, allow_nan=False), min_size=0, max_size=3),
    for_split=st.integers(0, 60),
)
def test_stack_plans_never_interpolate_large_gaps_or_exceed_the_budget(zs, lateral, for_split):
    frames = [
        _frame(f"f{k}", z, lateral[k] if k < len(lateral) else 0.0, "1.2" if k < for_split else "9.9")
        for k, z in enumerate(zs)
    ]
    try:
        series = list(D._group_series(frames, _meta()))
    except NodeViewError:
        return
    assert sum(s.n_images for s in series) <= len(frames)
    for s in series:
        plan = s.plan
        assert len({f.frame_of_reference for f in s.frames}) == 1  # never merged across frames of reference
        if plan.error:
            continue
        n_unique = len(plan.order)
        # interpolation fills at most MAX_GAP_STEPS - 1 slices per gap (plus rounding of uneven steps)
        assert plan.n_slices <= max(1, (n_unique - 1) * math.ceil(L.MAX_GAP_STEPS + 1) + 1)
        assert plan.n_slices * s.rows * s.columns <= L.max_voxels()
        t = np.asarray(plan.t_mm)
        if len(t) > 1:
            assert np.all(np.diff(t) <= max(L.MAX_GAP_MM, 1.5 * plan.step_mm) + 1e-6) or np.all(
                np.diff(t) <= max(L.MAX_GAP_STEPS * plan.step_mm, 1.5 * plan.step_mm) + 1e-6
            )


@SETTINGS
@given(
    spacing=st.tuples(*[st.floats(1e-3, 100.0)] * 3),
    origin=st.tuples(*[st.floats(-1e5, 1e5)] * 3),
    angles=st.tuples(*[st.floats(-math.pi, math.pi)] * 3),
    index=st.tuples(*[st.floats(-10, 600)] * 3),
)
def test_voxel_mm_round_trip(spacing, origin, angles, index):
    a, b, c = angles
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    g = Geometry((10, 20, 30), np.asarray(spacing), np.asarray(origin), rz @ ry @ rx)
    back = g.mm_to_index(g.index_to_mm(index))
    scale = max(1.0, max(abs(v) for v in origin) / min(spacing))
    np.testing.assert_allclose(back, index, atol=1e-6 * scale)


@pytest.mark.parametrize("n_slices, rows", [(300, 4096), (5000, 4096), (10**6, 512)])
def test_budget_refuses_absurd_volumes_before_allocation(n_slices, rows):
    message = L.budget_error(n_slices, rows, rows)
    assert message is not None and "NODEVIEW_MAX_VOXELS" in message and "GiB" in message
    assert L.budget_error(300, 512, 512) is None
