"""Test configuration: headless Qt, and where the shared real data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
LIDC_DIR = SHARED_DATA / "real-ct" / "LIDC-IDRI-0002"
ZOO = SHARED_DATA / "dicom-zoo"
DEMO_DIR = REPO / "resources" / "demo" / "LIDC-IDRI-0002"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")
    return path


@pytest.fixture(scope="session")
def lidc_dir() -> Path:
    return need(LIDC_DIR)


@pytest.fixture(scope="session")
def zoo() -> Path:
    return need(ZOO)


@pytest.fixture(scope="session")
def lidc_volume(lidc_dir: Path):  # type: ignore[no-untyped-def]
    from nodeview.core.io.study import open_study

    return open_study(lidc_dir)
