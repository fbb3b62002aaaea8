"""Every real-world odd or broken file in ../shared/data/dicom-zoo either loads or raises a
NodeView error with a clear message; none crashes or hangs, and none is modified."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from nodeview.core.errors import GeometryError, NodeViewError, UnreadableFileError
from nodeview.core.io.dicom import discover, load_series
from nodeview.core.io.study import open_study, scan

from .conftest import ZOO

ALL_FILES = sorted(p for p in ZOO.rglob("*") if p.is_file()) if ZOO.exists() else []
ALL_DIRS = sorted(p for p in ZOO.rglob("*") if p.is_dir()) if ZOO.exists() else []


def _try_everything(path: Path) -> list[str]:
    """Scan, then load every series found. Returns one outcome line per series (or the error)."""
    try:
        source = scan(path)
    except NodeViewError as exc:
        assert str(exc) and "\n" not in str(exc)
        return [f"error: {exc}"]
    outcomes = []
    for series in source.discovery.series if source.discovery else []:
        try:
            volume = load_series(series)
        except NodeViewError as exc:
            assert str(exc) and "\n" not in str(exc)
            outcomes.append(f"error: {exc}")
        else:
            assert volume.hu_zyx.dtype == np.int16
            assert volume.hu_zyx.shape == volume.geometry.shape_zyx
            outcomes.append("ok")
    return outcomes


@pytest.mark.timeout(60)
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ZOO)))
def test_every_file_loads_or_raises_nodeview_error(path):
    assert _try_everything(path)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ALL_DIRS, ids=lambda p: str(p.relative_to(ZOO)))
def test_every_folder_loads_or_raises_nodeview_error(path):
    assert _try_everything(path)


def test_zoo_files_unmodified_after_loading(zoo):
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in zoo.rglob("*") if p.is_file()}
    for d in ALL_DIRS:
        _try_everything(d)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in zoo.rglob("*") if p.is_file()}
    assert before == after


NEMA = ZOO / "nema-wg04-ct-compression-samples" / "CT"


@pytest.mark.parametrize("image", ["CT1", "CT2"])
@pytest.mark.parametrize("syntax", ["RLE", "JPLL", "JLSL", "J2KR"])
def test_lossless_syntaxes_pixel_identical_to_uncompressed(zoo, image, syntax):
    reference = open_study(NEMA / f"{image}_UNC.dcm")
    compressed = open_study(NEMA / f"{image}_{syntax}.dcm")
    np.testing.assert_array_equal(compressed.hu_zyx, reference.hu_zyx)
    assert compressed.geometry.isclose(reference.geometry)
    assert reference.hu_zyx.min() < -1000 < 0 < reference.hu_zyx.max()  # real HU, not raw values


@pytest.mark.parametrize("syntax, tolerance", [("JLSN", 8), ("J2KI", 600)])
def test_lossy_syntaxes_load_close_to_uncompressed(zoo, syntax, tolerance):
    reference = open_study(NEMA / "CT1_UNC.dcm").hu_zyx.astype(int)
    lossy = open_study(NEMA / f"CT1_{syntax}.dcm").hu_zyx.astype(int)
    assert np.abs(lossy - reference).max() <= tolerance
    assert np.abs(lossy - reference).mean() < 40  # J2KI is visibly lossy: mean 26 HU here


def _pydicom_hu(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path, force=True)
        arr = ds.pixel_array.astype(np.float64)
    return np.rint(arr * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0))


NATIVE_SINGLE_FRAME = [
    "dcm_qa_12bit/In/12bitSigned_0x0F0F.dcm",
    "dcm_qa_12bit/In/12bitUnsigned.dcm",
    "dcm_qa_12bit/In/12bitUnsigned_0x0F0F.dcm",
    "pydicom-ct-singles/693_UNCI.dcm",
    "pydicom-ct-singles/693_UNCR.dcm",
    "pydicom-ct-singles/CT_small.dcm",
    "dcmqi-ct3slice-with-seg/01.dcm",
    "lungmask-testdata-2slices/0.dcm",
    "nema-wg04-ct-compression-samples/dicom-ts-issues/54-implicit-file-meta-info.dcm",
    "pydicom-robustness/pydicom_wheel/MR_small_padded.dcm",
    "pydicom-robustness/pydicom_wheel/MR_small_implicit.dcm",
    "pydicom-robustness/pydicom_wheel/MR_small_bigendian.dcm",
]


@pytest.mark.parametrize("rel", NATIVE_SINGLE_FRAME)
def test_direct_pixel_read_matches_pydicom(zoo, rel):
    """The fast native reader honours BitsStored, sign and rescale exactly as pydicom does."""
    volume = open_study(zoo / rel)
    np.testing.assert_array_equal(volume.hu_zyx[0], _pydicom_hu(zoo / rel))


def test_12bit_junk_high_bits_are_masked(zoo):
    junk = open_study(zoo / "dcm_qa_12bit/In/12bitUnsigned_0x0F0F.dcm").hu_zyx
    assert junk.min() >= 0 and junk.max() <= 4095
    signed = open_study(zoo / "dcm_qa_12bit/In/12bitSigned_0x0F0F.dcm").hu_zyx
    assert signed.min() >= -2048 and signed.max() <= 2047


def test_specific_outcomes(zoo):
    fs = ZOO / "dicom2nifti-failing-series"
    with pytest.raises(GeometryError, match="same position"):
        open_study(fs / "notavolume" / "001")
    tilt = open_study(fs / "gantrytilting" / "001")
    assert any("Gantry tilt of 14.0 degrees" in w for w in tilt.warnings)
    np.testing.assert_allclose(tilt.geometry.direction.T @ tilt.geometry.direction, np.eye(3), atol=1e-6)
    gap = open_study(fs / "sliceincrement" / "001")
    assert gap.shape_zyx[0] == 5 and gap.interpolated_slices == (3,)
    assert any("Missing slice" in w and "28.1" in w and "38.1" in w for w in gap.warnings)
    mixed = discover(fs / "sliceorientation" / "001")
    assert len(mixed.series) == 2 and all("split into 2 parts" in s.warnings[0] for s in mixed.series)
    few = open_study(fs / "slicecount" / "001")
    assert any("Only 2 slices" in w for w in few.warnings) and any("not CT" in w for w in few.warnings)
    enhanced = open_study(ZOO / "pydicom-ct-singles" / "eCT_Supplemental.dcm")
    assert enhanced.shape_zyx[0] == 2 and enhanced.source_format == "dicom-multiframe"
    for mf in sorted((fs / "_ok_enhanced_multiframe").iterdir()):
        assert open_study(mf).shape_zyx[0] == 8
    with pytest.raises(UnreadableFileError, match="truncated"):
        open_study(ZOO / "pydicom-robustness" / "pydicom_wheel" / "MR_truncated.dcm")
    with pytest.raises(NodeViewError, match="colour image"):
        open_study(ZOO / "pydicom-robustness" / "deid_data_sdist" / "ctbrain1.dcm")
    with pytest.raises(NodeViewError, match="SEG object"):
        open_study(ZOO / "dcmqi-ct3slice-with-seg" / "liver_SEG.dcm")
    seg_folder = discover(ZOO / "dcmqi-ct3slice-with-seg")
    assert [s.n_images for s in seg_folder.series] == [3]
    wrong_ts = open_study(ZOO / "nema-wg04-ct-compression-samples/dicom-ts-issues/20-wrong-transfer-syntax.dcm")
    assert any("holds uncompressed pixels" in w for w in wrong_ts.warnings)
    no_modality = open_study(ZOO / "lungmask-testdata-2slices")
    assert no_modality.shape_zyx == (2, 512, 512) and any("no Modality" in w for w in no_modality.warnings)


def test_compressed_multiframe_variants_equal(zoo):
    base = ZOO / "pydicom-robustness" / "pydicom_data_wheel"
    ref = open_study(base / "emri_small.dcm").hu_zyx
    for name in ["emri_small_RLE.dcm", "emri_small_big_endian.dcm", "emri_small_jpeg_2k_lossless.dcm",
                 "emri_small_jpeg_ls_lossless.dcm"]:
        np.testing.assert_array_equal(open_study(base / name).hu_zyx, ref)


def test_compressed_series_variants_equal(zoo):
    base = ZOO / "dicom2nifti-failing-series" / "_ok_compressed_variants"
    ref = open_study(base / "compressed").hu_zyx
    for name in ["compressed_j2k", "compressed_jpegls", "compressed_rle"]:
        np.testing.assert_array_equal(open_study(base / name).hu_zyx, ref)
