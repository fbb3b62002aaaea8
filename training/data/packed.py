"""Packed patch shards (``pack_patches.py`` writes them): read and written with numpy alone.

A GPU machine has torch and numpy but not the viewer's DICOM stack, so ``train_packed.py`` reads
the shards through this module only. A shard is an LZMA-compressed ``.npz`` of the arrays in
:data:`FIELDS` (patches as uint8, :func:`quantise`) with a ``.json`` beside it listing its scan ids.
"""

from __future__ import annotations

import io
import json
import lzma
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FIELDS = ("patches", "nodule", "malignant", "diameter_mm", "scan", "nodule_id", "from_proposal", "rank_score")


def quantise(patches: NDArray[np.floating]) -> NDArray[np.uint8]:
    """[-1, 1] patch values to 0..255 (about 5.5 HU a step over the default window)."""
    return np.clip(np.rint((patches.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def dequantise(q: NDArray[np.uint8]) -> NDArray[np.float32]:
    """0..255 back to [-1, 1]."""
    return q.astype(np.float32) / 127.5 - 1.0


def write_shard(path: Path, arrays: dict[str, NDArray[Any]]) -> int:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    data = lzma.compress(buf.getvalue(), preset=6)
    path.write_bytes(data)
    return len(data)


def read_shard(path: Path) -> dict[str, NDArray[Any]]:
    with np.load(io.BytesIO(lzma.decompress(Path(path).read_bytes()))) as z:
        return {k: z[k] for k in z.files}


def read_pack(folders: list[Path]) -> tuple[dict[str, NDArray[Any]], list[str]]:
    """All shards of the given folders, concatenated; scan indices made global; and the scan ids."""
    out: dict[str, list[NDArray[Any]]] = {f: [] for f in FIELDS}
    scan_ids: list[str] = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*.npz.xz")):
            shard = read_shard(path)
            ids = json.loads(path.with_name(path.name.replace(".npz.xz", ".json")).read_text())["scan_ids"]
            for f in FIELDS:
                out[f].append(shard[f] + len(scan_ids) if f == "scan" else shard[f])
            scan_ids.extend(ids)
    return {f: np.concatenate(v) for f, v in out.items()}, scan_ids
