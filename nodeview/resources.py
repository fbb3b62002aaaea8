"""Where bundled resources live: the repository's ``resources/`` when run from source, the
PyInstaller bundle's copy when frozen. ``NODEVIEW_RESOURCES`` overrides both."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    override = os.environ.get("NODEVIEW_RESOURCES")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def demo_study_dir() -> Path:
    return resources_dir() / "demo" / "LIDC-IDRI-0002"


def demo_attribution() -> str:
    path = resources_dir() / "demo" / "ATTRIBUTION"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return "LIDC-IDRI (The Cancer Imaging Archive), CC BY 3.0."
