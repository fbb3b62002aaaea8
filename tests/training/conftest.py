"""Shared fixtures of the training tests."""

from __future__ import annotations

import pytest

from nodeview.core.io.dicom_write import SeriesSpec, write_series
from training.data.annotations import NoduleAnnotation, ScanRecord, write_records_csv

from ..test_candidates import _chest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Two small synthetic chests with 6 annotated nodules each, as DICOM series and an annotations CSV."""
    root = tmp_path_factory.mktemp("tiny")
    records = []
    for seed in range(2):
        hu, g, centres, diameters, _ = _chest(seed)
        folder = root / f"scan{seed}"
        write_series(hu, folder, SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz),
                                            seed=seed, series_description=f"tiny {seed}"))
        nodules = tuple(NoduleAnnotation(tuple(float(v) for v in c), d, malignant=d >= 10, malignancy_score=d / 30,
                                         source="test") for c, d in zip(centres, diameters, strict=True))
        records.append(ScanRecord(f"scan{seed}", str(folder), nodules))
    return write_records_csv(records, root / "annotations.csv"), root
