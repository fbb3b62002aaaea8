"""Small synthetic studies for the batch tests and benchmark: a folder tree of DICOM series."""

from __future__ import annotations

from pathlib import Path

import pydicom

from nodeview.core.io.dicom_write import SeriesSpec, write_series

from ..synthetic_series import plain
from ..test_candidates import _chest


def write_chest(folder: Path, seed: int) -> Path:
    """A 80 x 160 x 160 chest with six nodules (detections to compare), as one DICOM series."""
    hu, g, *_ = _chest(seed)
    write_series(hu, folder, SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz),
                                        seed=seed, series_description=f"chest {seed}"))
    return folder


def write_broken(folder: Path) -> Path:
    """A series whose images all claim one position: discovery lists it, loading refuses it."""
    paths, _ = plain(folder, seed=99)
    first = pydicom.dcmread(paths[0]).ImagePositionPatient
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.ImagePositionPatient = first
        ds.save_as(p)
    return folder


def archive(root: Path, chests: int = 3, phantoms: int = 8, broken: int = 1) -> Path:
    """``root/patientK/...``: chests, small phantoms (20 x 64 x 64) and broken series; 12 by default."""
    for k in range(chests):
        write_chest(root / f"p{k:02d}" / "ct", k)
    for k in range(phantoms):
        plain(root / f"p{chests + k:02d}" / "ct", seed=k)
    for k in range(broken):
        write_broken(root / f"p{chests + phantoms + k:02d}" / "ct")
    return root
