"""The bundled demo study (resources/demo) is a lossless, codec-free copy of LIDC-IDRI-0002."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_ROOT = REPO_ROOT / "resources" / "demo"
DEMO_SERIES = DEMO_ROOT / "LIDC-IDRI-0002"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
ORIGINAL_SERIES = SHARED_DATA / "real-ct" / "LIDC-IDRI-0002"

# Transfer syntaxes pydicom decodes without any extra codec package
CODEC_FREE = {DeflatedExplicitVRLittleEndian, RLELossless}
# File meta elements that necessarily change with the transfer syntax
META_CHANGED = {0x00020000, 0x00020010}  # group length, transfer syntax UID
PIXEL_DATA = 0x7FE00010
N_SLICES = 261


def _dicom_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.rglob("*.dcm")}


def _hu(ds: pydicom.Dataset) -> np.ndarray:
    px = ds.pixel_array
    hu = px.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return np.rint(hu).astype(np.int32)


@pytest.fixture(scope="module")
def demo_files() -> dict[str, Path]:
    if not DEMO_SERIES.is_dir():
        pytest.fail(f"demo study missing: {DEMO_SERIES} (run scripts/make_demo_study.py)")
    return _dicom_files(DEMO_SERIES)


def test_demo_bundle_is_complete(demo_files: dict[str, Path]) -> None:
    assert len(demo_files) == N_SLICES
    assert (DEMO_SERIES / "071.xml").is_file()
    attribution = DEMO_ROOT / "ATTRIBUTION"  # CC BY 3.0: must travel with any copy
    assert attribution.is_file()
    assert "LIDC" in attribution.read_text(encoding="utf-8")
    assert (DEMO_ROOT / "README.md").is_file()
    assert (DEMO_ROOT / "LIDC-IDRI-0002-readers.csv").is_file()


def test_demo_slices_are_codec_free(demo_files: dict[str, Path]) -> None:
    syntaxes = set()
    for path in demo_files.values():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        syntaxes.add(ds.file_meta.TransferSyntaxUID)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert syntaxes <= CODEC_FREE, syntaxes
    middle = pydicom.dcmread(sorted(demo_files.values())[N_SLICES // 2])
    assert middle.pixel_array.shape == (512, 512)


def test_demo_equals_original(demo_files: dict[str, Path]) -> None:
    if not ORIGINAL_SERIES.is_dir():
        pytest.skip(f"original LIDC-IDRI-0002 not found at {ORIGINAL_SERIES}; cannot compare demo with source")
    originals = _dicom_files(ORIGINAL_SERIES)
    assert sorted(originals) == sorted(demo_files)

    for name, orig_path in sorted(originals.items()):
        orig = pydicom.dcmread(orig_path)
        demo = pydicom.dcmread(demo_files[name])

        # Header: every data set element except Pixel Data, same VR and value
        orig_tags = [e.tag for e in orig if e.tag != PIXEL_DATA]
        demo_tags = [e.tag for e in demo if e.tag != PIXEL_DATA]
        assert demo_tags == orig_tags, name
        for tag in orig_tags:
            assert demo[tag].VR == orig[tag].VR, (name, tag)
            assert demo[tag].value == orig[tag].value, (name, tag)

        # File meta: only the transfer syntax (and so the group length) may differ
        orig_meta = {e.tag: e.value for e in orig.file_meta if e.tag not in META_CHANGED}
        demo_meta = {e.tag: e.value for e in demo.file_meta if e.tag not in META_CHANGED}
        assert demo_meta == orig_meta, name

        # Pixels: identical stored values and identical HU
        assert demo.pixel_array.dtype == orig.pixel_array.dtype, name
        np.testing.assert_array_equal(_hu(demo), _hu(orig), err_msg=name)
