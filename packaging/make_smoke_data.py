#!/usr/bin/env python3
"""Write the two small CT series the packaging smoke test opens with the frozen app.

    python packaging/make_smoke_data.py OUT_DIR

creates

    OUT_DIR/uncompressed/   40 slices, Implicit VR Little Endian   (1.2.840.10008.1.2, no codec)
    OUT_DIR/jpeg2000/       40 slices, JPEG 2000 lossless  (1.2.840.10008.1.2.4.90, GDCM)
    OUT_DIR/jpegll/         40 slices, JPEG lossless SV1   (1.2.840.10008.1.2.4.70, GDCM)
    OUT_DIR/rle/            40 slices, RLE Lossless        (1.2.840.10008.1.2.5, pydicom's decoder)
    OUT_DIR/deflate/        40 slices, Deflated Explicit VR LE (1.2.840.10008.1.2.1.99, zlib)
    OUT_DIR/expected.json   what each series must look like (shape, spacing, HU range, syntax)

from one synthetic chest-like volume (256 x 256 pixels, 40 slices, 1.4 x 1.4 x 2.5 mm, int16 HU):
air outside, a soft-tissue body with a rim of fat, two lungs at -850 HU, a spine, and three solid
nodules (6-12 mm) in the lungs so that detection has something to find.

Needs only numpy, SimpleITK and pydicom (no nodeview import): it runs with the build venv's python
or any python that has them. The compressed files are written by SimpleITK's GDCM writer; the script
checks with pydicom that each file really carries the compressed transfer syntax and with SimpleITK
that its pixels decode back to the exact HU written (both codecs are lossless). The RLE and deflate
copies are re-encoded from the uncompressed files with pydicom (its own RLE encoder, zlib) and
checked the same way with pydicom's decoder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

SHAPE_ZYX = (40, 256, 256)
SPACING_ZYX = (2.5, 1.4, 1.4)  # mm
ORIGIN_XYZ = (-179.2, -179.2, -150.0)  # centre of voxel [0, 0, 0], LPS mm
INTERCEPT = -1024.0
STUDY_UID = "1.2.826.0.1.3680043.8.498.10000000000000000000000000000001"
FOR_UID = "1.2.826.0.1.3680043.8.498.10000000000000000000000000000002"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

# name -> (GDCM compressor or None, expected transfer syntax, series number)
SERIES = {
    "uncompressed": (None, "1.2.840.10008.1.2", 1),  # GDCM writes Implicit VR Little Endian
    "jpeg2000": ("JPEG2000", "1.2.840.10008.1.2.4.90", 2),
    "jpegll": ("JPEG", "1.2.840.10008.1.2.4.70", 3),
}

# re-encoded by pydicom from the uncompressed series: name -> (None, transfer syntax, series number)
REENCODED = {
    "rle": (None, "1.2.840.10008.1.2.5", 4),
    "deflate": (None, "1.2.840.10008.1.2.1.99", 5),
}


def chest_phantom(seed: int = 7) -> np.ndarray:
    """int16 HU, (z, y, x): body, lungs, spine, three nodules, mild noise."""
    nz, ny, nx = SHAPE_ZYX
    z, y, x = np.meshgrid(
        np.arange(nz) * SPACING_ZYX[0], (np.arange(ny) - ny / 2) * SPACING_ZYX[1],
        (np.arange(nx) - nx / 2) * SPACING_ZYX[2], indexing="ij",
    )
    hu = np.full(SHAPE_ZYX, -1000.0)
    body = (x / 160) ** 2 + (y / 115) ** 2 <= 1
    hu[body] = -90.0  # fat rim
    hu[(x / 150) ** 2 + (y / 105) ** 2 <= 1] = 40.0  # soft tissue
    zc = nz * SPACING_ZYX[0] / 2
    for side in (-1, 1):
        lung = ((x - side * 72) / 58) ** 2 + ((y + 5) / 80) ** 2 + ((z - zc) / 70) ** 2 <= 1
        hu[lung] = -850.0
    hu[(x / 18) ** 2 + ((y - 80) / 18) ** 2 <= 1] = 700.0  # vertebra
    for cx, cy, cz, d in ((-80, -20, zc, 12.0), (70, 20, zc - 10, 9.0), (-60, 40, zc + 15, 6.0)):
        hu[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= (d / 2) ** 2] = 30.0
    rng = np.random.default_rng(seed)
    hu += rng.normal(0.0, 12.0, size=hu.shape)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def write_series(hu: np.ndarray, out: Path, compressor: str | None, number: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    series_uid = f"1.2.826.0.1.3680043.8.498.2000000000000000000000000000000{number}"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetImageIO("GDCMImageIO")
    if compressor:
        writer.SetUseCompression(True)
        writer.SetCompressor(compressor)
    # SimpleITK pixels are the real-world values: GDCM stores (HU - intercept) / slope itself.
    paths = []
    for k in range(hu.shape[0]):
        image = sitk.GetImageFromArray(hu[k])
        image.SetSpacing((SPACING_ZYX[2], SPACING_ZYX[1]))
        position = (ORIGIN_XYZ[0], ORIGIN_XYZ[1], ORIGIN_XYZ[2] + k * SPACING_ZYX[0])
        tags = {
            "0008|0016": CT_IMAGE_STORAGE,
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|0060": "CT",
            "0008|0020": "20240101",
            "0008|0030": "120000",
            "0008|103e": f"smoke {compressor or 'uncompressed'}",
            "0010|0010": "SMOKE^TEST",
            "0010|0020": "SMOKE-0001",
            "0018|0050": f"{SPACING_ZYX[0]:g}",
            "0018|5100": "HFS",
            "0020|000d": STUDY_UID,
            "0020|000e": series_uid,
            "0020|0011": str(number),
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:g}" for v in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0052": FOR_UID,
            "0028|0030": f"{SPACING_ZYX[1]:g}\\{SPACING_ZYX[2]:g}",
            "0028|1050": "-600",
            "0028|1051": "1500",
            "0028|1052": f"{INTERCEPT:g}",
            "0028|1053": "1",
            "0028|1054": "HU",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        path = out / f"{k + 1:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths


def check_series(paths: list[Path], hu: np.ndarray, syntax: str) -> None:
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        got = str(ds.file_meta.TransferSyntaxUID)
        if got != syntax:
            raise SystemExit(f"make_smoke_data: {path} has transfer syntax {got}, expected {syntax}")
        if float(ds.RescaleIntercept) != INTERCEPT or float(ds.RescaleSlope) != 1.0:
            raise SystemExit(f"make_smoke_data: {path} lost its rescale tags")
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(str(path))
        decoded = sitk.GetArrayFromImage(reader.Execute()).reshape(hu.shape[1:])
        if not np.array_equal(decoded.astype(np.int32), hu[k].astype(np.int32)):
            raise SystemExit(f"make_smoke_data: {path} does not decode to the HU written")


def reencode(src: list[Path], out: Path, syntax: str) -> list[Path]:
    """pydicom re-encodes each uncompressed file: RLE Lossless, or the deflated transfer syntax."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in src:
        ds = pydicom.dcmread(path)
        if syntax == RLELossless:
            ds.compress(RLELossless, encoding_plugin="pydicom")
        else:
            assert syntax == DeflatedExplicitVRLittleEndian
            ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.SeriesInstanceUID = ds.SeriesInstanceUID + ("1" if syntax == RLELossless else "2")
        ds.SeriesDescription = f"smoke {'RLE' if syntax == RLELossless else 'deflate'}"
        ds.SOPInstanceUID = ds.SeriesInstanceUID + "." + str(ds.InstanceNumber)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        dest = out / path.name
        ds.save_as(dest, enforce_file_format=True)
        paths.append(dest)
    return paths


def check_pydicom(paths: list[Path], hu: np.ndarray, syntax: str) -> None:
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        if str(ds.file_meta.TransferSyntaxUID) != syntax:
            raise SystemExit(f"make_smoke_data: {path} has transfer syntax {ds.file_meta.TransferSyntaxUID}")
        got = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        if not np.array_equal(got, hu[k].astype(np.int32)):
            raise SystemExit(f"make_smoke_data: {path} does not decode to the HU written")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = Path(argv[0])
    hu = chest_phantom()
    expected: dict[str, object] = {}
    written: dict[str, list[Path]] = {}
    for name, (compressor, syntax, number) in {**SERIES, **REENCODED}.items():
        if name in SERIES:
            paths = written[name] = write_series(hu, out / name, compressor, number)
            check_series(paths, hu, syntax)
        else:
            paths = reencode(written["uncompressed"], out / name, syntax)
            check_pydicom(paths, hu, syntax)
        size = sum(p.stat().st_size for p in paths)
        expected[name] = {
            "transfer_syntax": syntax,
            "shape_zyx": list(SHAPE_ZYX),
            "spacing_zyx_mm": list(SPACING_ZYX),
            "hu_range": [int(hu.min()), int(hu.max())],
            "bytes": size,
        }
        print(f"make_smoke_data: {name}: {len(paths)} slices, {syntax}, {size / 1e6:.2f} MB", file=sys.stderr)
    (out / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
