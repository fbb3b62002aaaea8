"""Shared by the DICOM export / PACS / node tests (issue 23): a small synthetic chest CT written as
DICOM, the default detector, and dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from nodeview.core.io.dicom_write import SeriesSpec, write_series

from .test_candidates import _chest

PATIENT = {"patient_name": "DOE^JANE", "patient_id": "PAT-12345", "patient_birth_date": "19511231",
           "accession_number": "ACC-778899"}  # fmt: skip
IDENTIFYING = (b"DOE^JANE", b"PAT-12345", b"19511231", b"ACC-778899")


def write_chest(out_dir: Path, seed: int = 0, **spec: object) -> Path:
    """The synthetic chest of test_candidates (80 x 160 x 160, six nodules) as a DICOM series."""
    hu, g, _, _, _ = _chest(seed)
    write_series(
        hu, out_dir,
        SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz), seed=seed, **{**PATIENT, **spec}),
    )  # fmt: skip
    return out_dir


def default_detector():  # type: ignore[no-untyped-def]
    from nodeview.core.detect.detector import Detector
    from nodeview.core.detect.models import default_model_path

    return Detector(default_model_path())


def dciodvfy_errors(path: Path) -> tuple[list[str], list[str]]:
    """(Error lines, Warning lines) of ``dciodvfy path``."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed; scripts/bootstrap.sh installs it")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]
