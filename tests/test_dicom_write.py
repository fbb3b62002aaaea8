"""Invariants of nodeview.core.io.dicom_write, checked by re-reading with pydicom (and SimpleITK) only."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from numpy.typing import NDArray
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from nodeview.core.io.dicom_write import (
    CT_IMAGE_STORAGE,
    ENHANCED_CT_IMAGE_STORAGE,
    IMPLEMENTATION_CLASS_UID,
    MR_IMAGE_STORAGE,
    SUPPORTED_TRANSFER_SYNTAXES,
    SeriesSpec,
    expected_hu,
    write_enhanced_multiframe,
    write_localizer,
    write_series,
)

from . import synthetic_series as synth

ALL_TS = [
    str(ExplicitVRLittleEndian),
    str(ImplicitVRLittleEndian),
    str(DeflatedExplicitVRLittleEndian),
    str(RLELossless),
]
SMALL = (6, 12, 16)


@pytest.fixture(autouse=True)
def _strict_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any value pydicom considers invalid for its VR fails the test instead of warning."""
    monkeypatch.setattr(pydicom_config.settings, "writing_validation_mode", pydicom_config.RAISE)
    monkeypatch.setattr(pydicom_config.settings, "reading_validation_mode", pydicom_config.RAISE)


def _hu(shape: tuple[int, int, int] = SMALL, seed: int = 0, lo: int = -1024, hi: int = 1023) -> NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    hu = rng.integers(lo, hi + 1, size=shape).astype(np.int16)
    hu.flat[0], hu.flat[1] = lo, hi  # both extremes present
    return hu


def _decoded(ds: Dataset) -> NDArray[np.float64]:
    return np.asarray(ds.pixel_array, dtype=np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _normal(iop: Any) -> NDArray[np.float64]:
    v = np.asarray([float(x) for x in iop]).reshape(2, 3)
    return np.asarray(np.cross(v[0], v[1]), dtype=np.float64)


def _no_temp_files(folder: Path) -> None:
    leftovers = [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]
    assert leftovers == []


# ---- geometry tags ------------------------------------------------------------------------------
def test_default_series_tags_match_spec(tmp_path: Path) -> None:
    hu = _hu()
    spec = SeriesSpec()
    paths = write_series(hu, tmp_path, spec)
    assert [p.name for p in paths] == [f"IM{k:04d}.dcm" for k in range(1, SMALL[0] + 1)]
    sop_uids = set()
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        expected_ipp = np.asarray(spec.origin_xyz) + k * spec.spacing_zyx[0] * np.array([0.0, 0.0, 1.0])
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected_ipp, atol=1e-9)
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], spec.orientation)
        assert [float(v) for v in ds.PixelSpacing] == [spec.spacing_zyx[1], spec.spacing_zyx[2]]
        assert float(ds.SliceThickness) == spec.spacing_zyx[0]
        assert float(ds.SliceLocation) == pytest.approx(expected_ipp[2])
        assert (ds.Rows, ds.Columns) == SMALL[1:]
        assert int(ds.InstanceNumber) == k + 1
        assert ds.Modality == "CT" and ds.SOPClassUID == CT_IMAGE_STORAGE
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
        assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert ds.PatientPosition == "HFS"
        assert "WindowCenter" in ds and "WindowWidth" in ds
        assert ds.FrameOfReferenceUID and ds.StudyInstanceUID and ds.SeriesInstanceUID
        sop_uids.add(ds.SOPInstanceUID)
        np.testing.assert_array_equal(_decoded(ds), hu[k])
    assert len(sop_uids) == len(paths)


def test_file_meta_and_preamble(tmp_path: Path) -> None:
    paths = write_series(_hu(), tmp_path)
    raw = paths[0].read_bytes()
    assert raw[:128] == b"\x00" * 128 and raw[128:132] == b"DICM"
    for path in paths:
        ds = pydicom.dcmread(path)  # no force=True: a valid Part 10 file
        meta = ds.file_meta
        assert meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
        assert meta.FileMetaInformationVersion == b"\x00\x01"


def test_oblique_orientation_positions_follow_normal(tmp_path: Path) -> None:
    a = math.radians(30)
    iop = (math.cos(a), math.sin(a), 0.0, 0.0, 0.0, -1.0)  # coronal-ish, rotated about z
    spec = SeriesSpec(orientation=iop, spacing_zyx=(2.0, 0.5, 0.8), origin_xyz=(10.0, -20.0, 30.0))
    paths = write_series(_hu(), tmp_path, spec)
    normal = _normal(iop)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        np.testing.assert_allclose(
            [float(v) for v in ds.ImagePositionPatient], np.asarray(spec.origin_xyz) + 2.0 * k * normal, atol=1e-9
        )
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], iop, atol=1e-12)
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.8]


def test_explicit_positions_and_instance_numbers(tmp_path: Path) -> None:
    positions = [(0.0, 0.0, 10.0), (0.0, 0.0, 5.0), (0.0, 0.0, 5.0), (0.0, 0.0, -7.5), (1.0, 2.0, 3.0), (0, 0, 0)]
    spec = SeriesSpec(positions_xyz=positions, instance_numbers=[6, 5, 4, 3, 2, 1])
    paths = write_series(_hu(), tmp_path, spec)
    got = [pydicom.dcmread(p) for p in paths]
    np.testing.assert_allclose([[float(v) for v in ds.ImagePositionPatient] for ds in got], positions)
    assert [int(ds.InstanceNumber) for ds in got] == [6, 5, 4, 3, 2, 1]
    assert len({ds.SOPInstanceUID for ds in got}) == len(got)


# ---- pixel encoding -----------------------------------------------------------------------------
@pytest.mark.parametrize("transfer_syntax", ALL_TS)
@pytest.mark.parametrize(
    ("bits_stored", "pixel_representation", "intercept"),
    [(16, 0, -1024.0), (16, 1, -1024.0), (16, 1, 0.0), (12, 0, -1024.0), (12, 1, 0.0)],
)
def test_hu_roundtrip(
    tmp_path: Path, transfer_syntax: str, bits_stored: int, pixel_representation: int, intercept: float
) -> None:
    hu = _hu()
    spec = SeriesSpec(
        transfer_syntax=transfer_syntax,
        bits_stored=bits_stored,
        pixel_representation=pixel_representation,
        rescale_intercept=intercept,
    )
    paths = write_series(hu, tmp_path, spec)
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == transfer_syntax
        assert (ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (
            bits_stored,
            bits_stored - 1,
            pixel_representation,
        )
        assert ds.pixel_array.dtype.kind == ("i" if pixel_representation else "u")
        np.testing.assert_array_equal(_decoded(ds), hu[k])
    _no_temp_files(tmp_path)


def test_slope_rounding_and_clipping(tmp_path: Path) -> None:
    hu = _hu(lo=-3000, hi=3000)
    spec = SeriesSpec(rescale_slope=2.0, rescale_intercept=-1024.0, bits_stored=12)
    paths = write_series(hu, tmp_path, spec)
    decoded = np.stack([_decoded(pydicom.dcmread(p)) for p in paths])
    expected = expected_hu(hu, spec)
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.min() == -1024.0  # unsigned: HU below the intercept clip to it
    assert np.all(np.abs(decoded - hu)[(hu >= -1024) & (hu <= 7000)] <= 1.0)


# ---- SimpleITK ----------------------------------------------------------------------------------
def _sitk_read(folder: Path, series_uid: str | None = None) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    if series_uid is None:
        names = reader.GetGDCMSeriesFileNames(str(folder))
    else:
        names = reader.GetGDCMSeriesFileNames(str(folder), series_uid)
    reader.SetFileNames(names)
    return reader.Execute()


@pytest.mark.parametrize("file_names", ["instance", "shuffled", "uid", "noext"])
def test_simpleitk_reads_plain_series(tmp_path: Path, file_names: str) -> None:
    hu = _hu((8, 20, 24))
    spec = SeriesSpec(spacing_zyx=(2.5, 0.6, 0.8), origin_xyz=(-100.0, -50.0, 25.0), file_names=file_names)
    write_series(hu, tmp_path, spec)
    img = _sitk_read(tmp_path)
    np.testing.assert_allclose(img.GetSpacing(), (0.8, 0.6, 2.5))  # SimpleITK: (x, y, z)
    np.testing.assert_allclose(img.GetOrigin(), spec.origin_xyz)
    np.testing.assert_allclose(img.GetDirection(), np.eye(3).ravel(), atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), hu)


def test_simpleitk_reads_feet_first_and_descending(tmp_path: Path) -> None:
    paths, truth = synth.feet_first(tmp_path / "ffs", shape=(8, 16, 20))
    img = _sitk_read(paths[0].parent)
    np.testing.assert_allclose(img.GetOrigin(), truth.origin_xyz, atol=1e-6)
    np.testing.assert_allclose(img.GetSpacing(), truth.spacing_zyx[::-1])
    np.testing.assert_allclose(np.reshape(img.GetDirection(), (3, 3)), truth.direction, atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), truth.hu_zyx)

    paths, truth = synth.descending_z(tmp_path / "desc", shape=(8, 16, 20))
    img = _sitk_read(paths[0].parent)
    np.testing.assert_allclose(img.GetOrigin(), truth.origin_xyz, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), truth.hu_zyx)


# ---- enhanced multi-frame ---------------------------------------------------------------------
@pytest.mark.parametrize("transfer_syntax", ALL_TS)
def test_enhanced_multiframe(tmp_path: Path, transfer_syntax: str) -> None:
    hu = _hu()
    spec = SeriesSpec(spacing_zyx=(1.5, 0.75, 0.5), transfer_syntax=transfer_syntax)
    path = write_enhanced_multiframe(hu, tmp_path / "sub" / "enh.dcm", spec)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == ENHANCED_CT_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    assert int(ds.NumberOfFrames) == SMALL[0]
    shared = ds.SharedFunctionalGroupsSequence[0]
    measures = shared.PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == [0.75, 0.5]
    assert float(measures.SliceThickness) == 1.5
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == list(spec.orientation)
    transform = shared.PixelValueTransformationSequence[0]
    assert transform.RescaleType == "HU"
    slope, intercept = float(transform.RescaleSlope), float(transform.RescaleIntercept)
    frames = ds.PerFrameFunctionalGroupsSequence
    assert len(frames) == SMALL[0]
    for k, item in enumerate(frames):
        ipp = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(ipp, np.asarray(spec.origin_xyz) + np.array([0.0, 0.0, 1.5 * k]))
        assert int(item.FrameContentSequence[0].InStackPositionNumber) == k + 1
    pixels = np.asarray(ds.pixel_array, dtype=np.float64) * slope + intercept
    assert pixels.shape == SMALL
    np.testing.assert_array_equal(pixels, hu)


def test_enhanced_descending_positions_rank_in_stack(tmp_path: Path) -> None:
    n = SMALL[0]
    positions = [(0.0, 0.0, -2.0 * k) for k in range(n)]
    path = write_enhanced_multiframe(_hu(), tmp_path / "e.dcm", SeriesSpec(positions_xyz=positions))
    ds = pydicom.dcmread(path)
    ranks = [int(f.FrameContentSequence[0].InStackPositionNumber) for f in ds.PerFrameFunctionalGroupsSequence]
    assert ranks == list(range(n, 0, -1))


# ---- file names, atomicity, overwrite ---------------------------------------------------------
def test_shuffled_names_complete_and_deterministic(tmp_path: Path) -> None:
    hu = _hu((12, 8, 8))
    spec = SeriesSpec(file_names="shuffled", seed=3)
    paths = write_series(hu, tmp_path / "a", spec)
    names = [p.name for p in paths]
    assert len(set(names)) == len(names)
    assert not any(n.startswith("IM") for n in names)
    assert names != sorted(names)  # name order is not slice order
    z = sorted(float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in (tmp_path / "a").iterdir())
    np.testing.assert_allclose(z, [spec.origin_xyz[2] + 1.25 * k for k in range(12)])
    again = write_series(hu, tmp_path / "b", spec)
    assert [p.name for p in again] == names
    other = write_series(hu, tmp_path / "c", SeriesSpec(file_names="shuffled", seed=4))
    assert [p.name for p in other] != names


def test_uid_and_noext_names(tmp_path: Path) -> None:
    paths = write_series(_hu(), tmp_path / "uid", SeriesSpec(file_names="uid"))
    for p in paths:
        assert p.name == pydicom.dcmread(p).SOPInstanceUID + ".dcm"
    paths = write_series(_hu(), tmp_path / "noext", SeriesSpec(file_names="noext"))
    assert all(p.suffix == "" for p in paths)
    assert pydicom.dcmread(paths[0]).InstanceNumber == 1


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    paths = write_series(_hu(), tmp_path / "new" / "deep")  # out_dir created
    path = write_enhanced_multiframe(_hu(), tmp_path / "new" / "deep" / "enh.dcm")
    loc = write_localizer(_hu()[:, 0, :], tmp_path / "new" / "deep")
    assert sorted(p.name for p in (tmp_path / "new" / "deep").iterdir()) == sorted(
        [p.name for p in paths] + [path.name, loc.name]
    )
    _no_temp_files(tmp_path)


def test_failed_replace_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_series(_hu(), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_rewrite_identical_is_fine_different_raises(tmp_path: Path) -> None:
    hu = _hu()
    first = write_series(hu, tmp_path)
    before = [p.read_bytes() for p in first]
    assert write_series(hu, tmp_path) == first  # byte-identical: nothing to do
    assert [p.read_bytes() for p in first] == before
    changed = hu.copy()
    changed[0, 0, 0] += 1
    with pytest.raises(FileExistsError):
        write_series(changed, tmp_path)
    assert [p.read_bytes() for p in first] == before
    with pytest.raises(FileExistsError):
        write_enhanced_multiframe(hu, first[0])
    _no_temp_files(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "array"),
    [
        ({"positions_xyz": [(0.0, 0.0, 0.0)]}, None),
        ({"instance_numbers": [1, 2]}, None),
        ({"transfer_syntax": "1.2.840.10008.1.2.4.50"}, None),
        ({"file_names": "random"}, None),
        ({"orientation": (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)}, None),
        ({"spacing_zyx": (0.0, 1.0, 1.0)}, None),
        ({"pixel_representation": 2}, None),
        ({"bits_stored": 17}, None),
        ({"rescale_slope": 0.0}, None),
        ({}, np.zeros((2, 3, 4), dtype=np.float32)),
        ({}, np.zeros((3, 4), dtype=np.int16)),
    ],
)
def test_invalid_input_raises(tmp_path: Path, kwargs: dict[str, Any], array: NDArray[Any] | None) -> None:
    with pytest.raises(ValueError):
        write_series(_hu() if array is None else array, tmp_path, SeriesSpec(**kwargs))
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_supported_transfer_syntaxes_listed() -> None:
    assert set(SUPPORTED_TRANSFER_SYNTAXES) == set(ALL_TS)


# ---- localizer and MR ---------------------------------------------------------------------------
def test_localizer(tmp_path: Path) -> None:
    spec = SeriesSpec(series_number=2)
    axial = write_series(_hu(), tmp_path, spec)
    scout = _hu((1, 30, 16))[0]
    loc = write_localizer(scout, tmp_path, spec=spec, pixel_spacing_yx=(2.0, 0.7), position_xyz=(-5.0, 0.0, 40.0))
    ds = pydicom.dcmread(loc)
    ax = pydicom.dcmread(axial[0])
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert [float(v) for v in ds.ImageOrientationPatient] == [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    assert [float(v) for v in ds.PixelSpacing] == [2.0, 0.7]
    assert [float(v) for v in ds.ImagePositionPatient] == [-5.0, 0.0, 40.0]
    assert ds.SOPClassUID == CT_IMAGE_STORAGE
    assert ds.SeriesInstanceUID != ax.SeriesInstanceUID
    assert ds.StudyInstanceUID == ax.StudyInstanceUID and ds.FrameOfReferenceUID == ax.FrameOfReferenceUID
    np.testing.assert_array_equal(_decoded(ds), scout)
    # SimpleITK keeps the series apart.
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(tmp_path))
    assert sorted(uids) == sorted([ds.SeriesInstanceUID, ax.SeriesInstanceUID])


def test_mr_uses_mr_storage(tmp_path: Path) -> None:
    paths, truth = synth.mr_series(tmp_path, shape=(4, 16, 16))
    ds = pydicom.dcmread(paths[0])
    assert ds.Modality == "MR" and ds.SOPClassUID == MR_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
    np.testing.assert_array_equal(_decoded(ds), truth.hu_zyx[0])


# ---- synthetic scenarios: the truth agrees with the files -------------------------------------
def _frames(paths: list[Path], series_uid: str) -> list[tuple[NDArray[np.float64], NDArray[np.float64], Dataset]]:
    """(IPP, decoded HU, dataset) of every frame of one series, pydicom only, unsorted."""
    out: list[tuple[NDArray[np.float64], NDArray[np.float64], Dataset]] = []
    for path in paths:
        ds = pydicom.dcmread(path)
        if ds.SeriesInstanceUID != series_uid:
            continue
        if "PerFrameFunctionalGroupsSequence" in ds:
            t = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
            pixels = np.asarray(ds.pixel_array, dtype=np.float64) * float(t.RescaleSlope) + float(t.RescaleIntercept)
            for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, pixels, strict=True):
                ipp = np.asarray([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
                out.append((ipp, frame, ds))
        else:
            out.append((np.asarray([float(v) for v in ds.ImagePositionPatient]), _decoded(ds), ds))
    return out


@pytest.mark.parametrize("name", sorted(synth.SCENARIOS))
def test_scenario_truth_matches_files(tmp_path: Path, name: str) -> None:
    paths, truth = synth.SCENARIOS[name](tmp_path)
    assert all(p.parent == tmp_path for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for t in (truth, *truth.other_series):
        geometry = t.geometry  # validates shape / spacing / direction
        frames = _frames(paths, t.series_uid)
        assert frames, f"no files of series {t.series_uid}"
        seen: set[int] = set()
        for ipp, pixels, ds in frames:
            k = float(geometry.mm_to_index(ipp)[0])
            assert abs(k - round(k)) < 1e-6, f"{name}: slice at {ipp} is not on the truth grid"
            k_int = round(k)
            np.testing.assert_allclose(geometry.index_to_mm((k_int, 0, 0)), ipp, atol=1e-6)
            np.testing.assert_array_equal(pixels, t.hu_zyx[k_int])
            assert ds.Modality == t.modality and ds.PatientPosition == t.patient_position
            seen.add(k_int)
        assert seen == set(range(t.hu_zyx.shape[0])) - set(t.interpolated_slices)
        if t.modality == "CT":
            k, j, i = np.rint(geometry.mm_to_index(t.nodule_xyz)).astype(int)
            assert t.hu_zyx[k, j, i] == pytest.approx(synth.NODULE_HU, abs=4)
    _no_temp_files(tmp_path)


def test_scenario_specifics(tmp_path: Path) -> None:
    _, plain = synth.plain(tmp_path / "plain")
    _, ffs = synth.feet_first(tmp_path / "ffs")
    np.testing.assert_array_equal(ffs.hu_zyx[::-1, :, ::-1], plain.hu_zyx)
    np.testing.assert_allclose(ffs.nodule_xyz, plain.nodule_xyz)
    assert ffs.geometry.orientation_code() == "RPI"

    paths, _ = synth.duplicate_positions(tmp_path / "dup")
    ipps = [tuple(pydicom.dcmread(p).ImagePositionPatient) for p in paths]
    assert len(ipps) == len(set(ipps)) + 1
    assert len({pydicom.dcmread(p).SOPInstanceUID for p in paths}) == len(paths)

    paths, truth = synth.descending_z(tmp_path / "desc")
    zs = [float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in paths]
    inst = [int(pydicom.dcmread(p).InstanceNumber) for p in paths]
    assert inst == sorted(inst) and zs == sorted(zs, reverse=True)

    paths, truth = synth.gantry_tilt(tmp_path / "tilt")
    tilt_ipps = np.asarray([[float(v) for v in pydicom.dcmread(p).ImagePositionPatient] for p in paths])
    np.testing.assert_allclose(np.diff(tilt_ipps, axis=0), [[0.0, 0.0, 1.25]] * (len(paths) - 1), atol=1e-9)
    assert float(pydicom.dcmread(paths[0]).GantryDetectorTilt) == pytest.approx(15.0)

    paths, truth = synth.with_localizer(tmp_path / "loc")
    assert list(pydicom.dcmread(paths[-1]).ImageType)[2] == "LOCALIZER"

    paths, truth = synth.thin_and_thick(tmp_path / "tt")
    (thick,) = truth.other_series
    assert truth.hu_zyx.shape[0] == 40 and thick.hu_zyx.shape[0] == 8
    assert truth.series_uid != thick.series_uid
    np.testing.assert_allclose(truth.nodule_xyz, thick.nodule_xyz)
    for t in (truth, thick):  # same 40 mm of anatomy
        g = t.geometry
        lo = g.index_to_mm((-0.5, 0, 0))[2]
        hi = g.index_to_mm((t.hu_zyx.shape[0] - 0.5, 0, 0))[2]
        assert (lo, hi) == pytest.approx((synth.Z_BOTTOM_MM, synth.Z_BOTTOM_MM + 40.0))


def test_phantom_is_asymmetric() -> None:
    ph = synth.phantom()
    assert ph.dtype == np.int16 and ph.shape == synth.DEFAULT_SHAPE
    for axis in range(3):
        assert not np.array_equal(np.flip(ph, axis), ph)
    k, j, i = np.rint(synth.nodule_index_zyx()).astype(int)
    assert abs(int(ph[k, j, i]) - synth.NODULE_HU) <= 4
    assert ph.min() == synth.AIR_HU
    assert np.array_equal(synth.phantom(seed=1) == synth.AIR_HU, ph == synth.AIR_HU)
