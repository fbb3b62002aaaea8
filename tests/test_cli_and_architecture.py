"""The ``nodeview info`` CLI contract, and the architecture rule: core imports neither Qt nor torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nodeview.cli import main

from .conftest import REPO, ZOO


def test_core_imports_neither_qt_nor_torch():
    code = (
        "import sys, nodeview.core.io.study, nodeview.core.io.dicom, nodeview.core.io.sitk, nodeview.core.geometry,"
        " nodeview.core.report.render;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'torch', 'torchvision')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_viewer_never_imports_torch():
    offenders = [
        p for p in (REPO / "nodeview").rglob("*.py")
        if any(line.strip().startswith(("import torch", "from torch", "import torchvision", "from training"))
               for line in p.read_text().splitlines())
    ]
    assert offenders == []


def test_info_json_on_real_ct(lidc_dir, capsys):
    assert main(["info", str(lidc_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == 262 and report["skipped"] == 1
    (series,) = report["series"]
    assert series["modality"] == "CT" and series["images"] == 261
    assert series["size_zyx"] == [261, 512, 512]
    assert series["spacing_zyx_mm"] == pytest.approx([1.25, 0.6816, 0.6816], abs=1e-4)
    assert report["default_series_uid"] == series["series_uid"]
    default = report["default"]
    assert default["shape_zyx"] == [261, 512, 512] and default["patient_position"] == "FFS"
    assert default["origin_xyz_mm"] == pytest.approx([-175.5, -174.5, -334.5])
    assert "LIDC-IDRI-0002" not in json.dumps(report)  # no patient ID in the output


def test_info_text_lists_warnings(zoo, capsys):
    assert main(["info", str(ZOO / "dicom2nifti-failing-series" / "sliceincrement" / "001")]) == 0
    out = capsys.readouterr().out
    assert "Missing slice" in out and "size zyx (5, 512, 512)" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "/no/such/folder"], "does not exist"),
        (["info", "pyproject.toml"], "no CT images"),
    ],
)
def test_info_bad_input_exit_2_one_line(args, message, capsys):
    import os

    os.chdir(REPO)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_info_not_a_volume_exit_2(zoo, capsys):
    assert main(["info", str(ZOO / "dicom2nifti-failing-series" / "notavolume" / "001")]) == 2
    assert "same position" in capsys.readouterr().err


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "nodeview", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "nodeview" in result.stdout
