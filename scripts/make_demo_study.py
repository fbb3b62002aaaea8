#!/usr/bin/env python3
"""Build the bundled demo study by re-encoding a DICOM series losslessly.

Every DICOM file found (recursively) under ``--src`` is re-encoded into ``--dst``
(flat, original file names kept) with a transfer syntax that pydicom decodes on
its own, without any extra codec package:

* ``deflate`` - Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99).
  The source's Explicit VR Little Endian data set bytes are copied verbatim and
  zlib-deflated (level 9); only the file meta Transfer Syntax UID (and hence
  the group length) changes.
* ``rle`` - RLE Lossless (1.2.840.10008.1.2.5). Pixel Data is RLE encoded and
  encapsulated (VR OB, undefined length, as the encoding requires); every other
  element is kept, including the SOP Instance UID.

Each written file is decoded again and compared with its source (pixels and
every header element) before it is atomically moved into place
(temporary file + ``os.replace``). Non-DICOM files in the series folder (the
LIDC XML annotation) are copied byte for byte. ``ATTRIBUTION`` (required by the
CC BY 3.0 licence) and ``<series>-readers.csv`` are copied from the parent of
``--src`` to the parent of ``--dst``.

The source folder is only ever opened for reading.

Usage (from the repository root)::

    python scripts/make_demo_study.py \\
        --src ../shared/data/real-ct/LIDC-IDRI-0002 \\
        --dst resources/demo/LIDC-IDRI-0002 --syntax deflate
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RLELossless,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SRC = REPO_ROOT.parent / "shared" / "data" / "real-ct" / "LIDC-IDRI-0002"
DEFAULT_DST = REPO_ROOT / "resources" / "demo" / "LIDC-IDRI-0002"
SYNTAXES = {"deflate": DeflatedExplicitVRLittleEndian, "rle": RLELossless}
DEFLATE_LEVEL = 9
PREAMBLE_LEN = 128
# (0002,0000) UL, explicit VR little endian: tag, "UL", 2-byte length (4)
GROUP_LENGTH_PREFIX = b"\x02\x00\x00\x00UL\x04\x00"
# Meta elements that necessarily change with the transfer syntax
META_ALLOWED_TO_CHANGE = {0x00020000, 0x00020010}
PIXEL_DATA = 0x7FE00010
_UMASK = os.umask(0)
os.umask(_UMASK)


def is_dicom(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(PREAMBLE_LEN + 4)
    return len(head) == PREAMBLE_LEN + 4 and head[PREAMBLE_LEN:] == b"DICM"


def iter_files(src: Path) -> Iterator[Path]:
    for path in sorted(src.rglob("*")):
        if path.is_file():
            yield path


def atomic_write(dst: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``dst``, then ``os.replace`` it."""
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def meta_with_syntax(raw_meta: FileMetaDataset, syntax: str) -> bytes:
    meta = FileMetaDataset(raw_meta)
    meta.TransferSyntaxUID = syntax
    buf = DicomBytesIO()
    buf.is_little_endian = True
    buf.is_implicit_VR = False
    write_file_meta_info(buf, meta, enforce_standard=True)
    return buf.getvalue()


def encode_deflate(raw: bytes, src_ds: Dataset) -> bytes:
    ts = src_ds.file_meta.TransferSyntaxUID
    if ts != ExplicitVRLittleEndian:
        raise ValueError(f"deflate needs an Explicit VR Little Endian source, got {ts.name}")
    start = PREAMBLE_LEN + 4
    if raw[start : start + 8] != GROUP_LENGTH_PREFIX:
        raise ValueError("file meta lacks a leading (0002,0000) group length")
    (group_len,) = struct.unpack("<I", raw[start + 8 : start + 12])
    body = raw[start + 12 + group_len :]
    if body[:2] == b"\x02\x00":
        raise ValueError("file meta group length does not cover the whole meta group")
    comp = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = comp.compress(body) + comp.flush()
    if len(deflated) % 2:  # PS3.5 A.5: pad an odd-length deflated stream with one NUL
        deflated += b"\x00"
    return raw[:PREAMBLE_LEN] + b"DICM" + meta_with_syntax(src_ds.file_meta, DeflatedExplicitVRLittleEndian) + deflated


def encode_rle(raw: bytes, src_ds: Dataset) -> bytes:
    ds = pydicom.dcmread(DicomBytesIO(raw))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        raise ValueError("rle needs an uncompressed source")
    ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def verify(src_ds: Dataset, encoded: bytes, syntax: str) -> None:
    """Raise if ``encoded`` does not reproduce ``src_ds`` exactly."""
    new = pydicom.dcmread(DicomBytesIO(encoded))
    if new.file_meta.TransferSyntaxUID != syntax:
        raise AssertionError("wrong transfer syntax written")
    old_meta = {e.tag: e.value for e in src_ds.file_meta if e.tag not in META_ALLOWED_TO_CHANGE}
    new_meta = {e.tag: e.value for e in new.file_meta if e.tag not in META_ALLOWED_TO_CHANGE}
    if old_meta != new_meta:
        raise AssertionError("file meta changed")
    old_tags = [e.tag for e in src_ds if e.tag != PIXEL_DATA]
    new_tags = [e.tag for e in new if e.tag != PIXEL_DATA]
    if old_tags != new_tags:
        raise AssertionError(f"element set changed: {set(old_tags) ^ set(new_tags)}")
    for tag in old_tags:
        a, b = src_ds[tag], new[tag]
        if a.VR != b.VR or a.value != b.value:
            raise AssertionError(f"element {tag} changed")
    a_px, b_px = src_ds.pixel_array, new.pixel_array
    if a_px.dtype != b_px.dtype or not np.array_equal(a_px, b_px):
        raise AssertionError("pixel data changed")


def copy_file(src: Path, dst: Path) -> None:
    with src.open("rb") as fh:
        atomic_write(dst, fh.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help=f"source series (default {DEFAULT_SRC})")
    parser.add_argument("--dst", type=Path, default=DEFAULT_DST, help=f"output folder (default {DEFAULT_DST})")
    parser.add_argument("--syntax", choices=sorted(SYNTAXES), default="deflate")
    args = parser.parse_args(argv)

    src: Path = args.src.resolve()
    dst: Path = args.dst.resolve()
    syntax = SYNTAXES[args.syntax]
    if not src.is_dir():
        parser.error(f"source folder not found: {src}")
    if dst == src or src in dst.parents or dst in src.parents:
        parser.error("--dst must not overlap --src (the source is never modified)")

    files = list(iter_files(src))
    names: dict[str, Path] = {}
    for path in files:
        if path.name in names:
            parser.error(f"duplicate file name {path.name!r}: {names[path.name]} and {path}")
        names[path.name] = path

    attribution = src.parent / "ATTRIBUTION"
    if not attribution.is_file():
        parser.error(f"{attribution} is missing; the CC BY 3.0 licence requires it beside any copy")

    dst.mkdir(parents=True, exist_ok=True)
    encode = encode_deflate if syntax == DeflatedExplicitVRLittleEndian else encode_rle
    n_dicom = n_other = size_in = size_out = 0
    for path in files:
        out = dst / path.name
        if not is_dicom(path):
            copy_file(path, out)
            n_other += 1
            continue
        with path.open("rb") as fh:
            raw = fh.read()
        src_ds = pydicom.dcmread(DicomBytesIO(raw))
        encoded = encode(raw, src_ds)
        verify(src_ds, encoded, syntax)
        atomic_write(out, encoded)
        n_dicom += 1
        size_in += len(raw)
        size_out += len(encoded)

    copy_file(attribution, dst.parent / attribution.name)
    readers = src.parent / f"{src.name}-readers.csv"
    if readers.is_file():
        copy_file(readers, dst.parent / readers.name)

    print(
        f"{n_dicom} DICOM files re-encoded as {syntax.name} ({size_in / 1e6:.1f} MB -> {size_out / 1e6:.1f} MB, "
        f"{size_out / max(size_in, 1):.1%}), {n_other} other files copied, into {dst}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
