"""The loader against synthetic series whose truth is known: ordering, orientation, irregular
stacks, several series in one folder, codecs, progress/cancel, bad files, untouched inputs."""

from __future__ import annotations

import hashlib
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from nodeview.core.errors import Cancelled, NoImagesError
from nodeview.core.io.dicom import discover, load_series
from nodeview.core.io.study import open_study
from nodeview.core.views import ViewKind, planes_for

from . import synthetic_series as syn

EXACT = ["plain", "shuffled_names", "feet_first", "descending_z", "mr_series", "enhanced_multiframe",
         "compressed_rle", "deflated", "duplicate_positions"]


def _hashes(paths):
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


@pytest.mark.parametrize("name", EXACT)
def test_exact_scenarios_match_truth(tmp_path, name):
    paths, truth = syn.SCENARIOS[name](tmp_path)
    before = _hashes(paths)
    volume = open_study(tmp_path)
    np.testing.assert_array_equal(volume.hu_zyx, truth.hu_zyx)
    assert volume.geometry.isclose(truth.geometry, atol=1e-4), (volume.geometry.to_dict(), truth.geometry.to_dict())
    expected = syn.NODULE_HU if truth.modality == "CT" else truth.hu_zyx[truth.geometry.mm_to_voxel(truth.nodule_xyz)]
    assert volume.hu_at_mm(truth.nodule_xyz) == expected
    assert volume.patient_position == truth.patient_position
    assert _hashes(paths) == before  # input files are never modified


def test_feet_first_displays_like_head_first(tmp_path):
    _, _ = syn.plain(tmp_path / "hfs")
    _, _ = syn.feet_first(tmp_path / "ffs")
    hfs, ffs = open_study(tmp_path / "hfs"), open_study(tmp_path / "ffs")
    assert ffs.geometry.axis_labels() == ("I", "P", "R")
    for kind in ViewKind:
        a, b = planes_for(hfs.geometry)[kind], planes_for(ffs.geometry)[kind]
        centre_mm = hfs.geometry.index_to_mm((10, 30, 33))  # a voxel centre, not a half-index
        ia = round(a.index_to_display(hfs.geometry.mm_to_index(centre_mm))[2])
        ib = round(b.index_to_display(ffs.geometry.mm_to_index(centre_mm))[2])
        np.testing.assert_array_equal(a.extract(hfs.hu_zyx, ia), b.extract(ffs.hu_zyx, ib))


def test_descending_instances_sorted_by_position_not_instance_number(tmp_path):
    _, _truth = syn.descending_z(tmp_path)
    series = discover(tmp_path).default_series()
    assert [f.instance_number for f in (series.frames[i] for i in series.plan.order)][:3] == [20, 19, 18]
    assert np.all(np.diff(load_series(series).geometry.index_to_mm([[0, 0, 0], [1, 0, 0]])[:, 2]) > 0)


def test_gantry_tilt_resampled_to_orthogonal_grid(tmp_path):
    _, truth = syn.gantry_tilt(tmp_path)
    volume = open_study(tmp_path)
    assert any("Gantry tilt of 15.0 degrees" in w for w in volume.warnings)
    d = volume.geometry.direction
    np.testing.assert_allclose(d.T @ d, np.eye(3), atol=1e-9)
    assert volume.spacing_zyx[0] == pytest.approx(1.25 * np.cos(np.radians(15)), abs=1e-6)
    # anatomy stays where it is in patient space: the nodule centre still reads nodule density
    assert abs(volume.hu_at_mm(truth.nodule_xyz) - syn.NODULE_HU) < 60
    # and a sample of voxels agrees with the truth's sheared geometry (linear interpolation)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(200):
        idx = rng.uniform([2, 10, 10], np.asarray(truth.hu_zyx.shape) - [3, 11, 11]).round()
        xyz = truth.geometry.index_to_mm(idx)
        k, j, i = (int(v) for v in idx)
        errors.append(abs(volume.hu_at_mm(xyz) - int(truth.hu_zyx[k, j, i])))
    assert np.median(errors) < 5


def test_missing_slice_filled_and_reported(tmp_path):
    _, truth = syn.missing_slice(tmp_path)
    volume = open_study(tmp_path)
    assert volume.shape_zyx == truth.hu_zyx.shape
    assert volume.interpolated_slices == truth.interpolated_slices
    assert np.abs(volume.hu_zyx.astype(int) - truth.hu_zyx.astype(int)).max() <= 1
    (warning,) = [w for w in volume.warnings if "Missing slice" in w]
    assert "interpolation" in warning


def test_duplicates_reported(tmp_path):
    syn.duplicate_positions(tmp_path)
    volume = open_study(tmp_path)
    assert any("share a slice position" in w for w in volume.warnings)


def test_localizer_split_out_and_not_default(tmp_path):
    _paths, truth = syn.with_localizer(tmp_path)
    d = discover(tmp_path)
    assert len(d.series) == 2
    localizer = next(s for s in d.series if s.is_localizer)
    assert localizer.n_images == 1
    assert d.default_series().series_uid == truth.series_uid


def test_thin_series_is_default(tmp_path):
    _, truth = syn.thin_and_thick(tmp_path)
    d = discover(tmp_path)
    assert sorted(s.n_images for s in d.series) == [8, 40]
    default = d.default_series()
    assert default.series_uid == truth.series_uid and default.n_images == 40
    thick = d.find(truth.other_series[0].series_uid)
    np.testing.assert_array_equal(load_series(thick).hu_zyx, truth.other_series[0].hu_zyx)


def test_mr_warns_not_ct(tmp_path):
    syn.mr_series(tmp_path)
    assert any("not CT" in w for w in open_study(tmp_path).warnings)


def test_stray_files_skipped_and_counted(tmp_path):
    syn.plain(tmp_path)
    (tmp_path / "notes.xml").write_text("<xml/>")
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / "empty.dcm").write_bytes(b"")
    d = discover(tmp_path)
    assert d.n_files == 23 and len(d.skipped) == 3
    assert {s.reason for s in d.skipped} == {"not a DICOM file"}


def test_one_truncated_file_among_many_is_left_out(tmp_path):
    paths, truth = syn.plain(tmp_path)
    bad = paths[7]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) - 3000])
    volume = open_study(tmp_path)
    assert volume.shape_zyx == truth.hu_zyx.shape
    assert any("could not be read" in w and "truncated" in w for w in volume.warnings)
    assert 7 in volume.interpolated_slices
    np.testing.assert_array_equal(volume.hu_zyx[8:], truth.hu_zyx[8:])


def test_empty_folder_and_no_images(tmp_path):
    with pytest.raises(NoImagesError, match="holds no files"):
        discover(tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(NoImagesError, match="no CT images"):
        discover(tmp_path)


def test_progress_and_cancel(tmp_path):
    syn.plain(tmp_path)
    calls: list[tuple[int, int]] = []
    open_study(tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (1000, 1000) and all(b[0] >= a[0] for a, b in itertools.pairwise(calls))
    seen = []

    def stop_after_5() -> bool:
        return len(seen) >= 5

    with pytest.raises(Cancelled):
        open_study(tmp_path, progress=lambda d, t: seen.append(d), should_stop=stop_after_5)


def test_research_formats_same_geometry(tmp_path):
    """A volume written as .mhd / .nii.gz / .nrrd reads back with the same HU and LPS geometry."""
    import SimpleITK as sitk

    from nodeview.core.io.sitk import read_image_file, volume_to_sitk

    syn.feet_first(tmp_path / "dcm")
    volume = open_study(tmp_path / "dcm")
    for name in ["vol.mhd", "vol.nii.gz", "vol.nrrd"]:
        sitk.WriteImage(volume_to_sitk(volume), str(tmp_path / name))
        back = read_image_file(tmp_path / name)
        np.testing.assert_array_equal(back.hu_zyx, volume.hu_zyx)
        assert back.geometry.isclose(volume.geometry, atol=1e-4), name


def test_missing_mhd_data_file_is_clear(tmp_path):
    (tmp_path / "x.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_SHORT\n"
                                    "ElementDataFile = x.raw\n")
    from nodeview.core.errors import UnreadableFileError

    with pytest.raises(UnreadableFileError, match=r"could not be read|data file x\.raw of x\.mhd is missing"):
        open_study(tmp_path / "x.mhd")
    shutil.rmtree(tmp_path)
