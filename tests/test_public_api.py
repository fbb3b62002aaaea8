"""The public face for Python users and notebooks: ``nodeview.open_study`` and ``nodeview.detect``."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import nodeview
from nodeview.core.errors import NodeViewError
from nodeview.core.io.dicom_write import SeriesSpec, expected_hu, write_series
from nodeview.core.volume import Volume

from .conftest import REPO
from .test_candidates import _chest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from .test_detector import make_model  # noqa: E402


@pytest.fixture(scope="module")
def study(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("public")
    hu, g, centres, diameters, _ = _chest(0)
    spec = SeriesSpec(spacing_zyx=tuple(g.spacing_zyx), origin_xyz=tuple(g.origin_xyz))
    write_series(hu, root / "ct", spec)
    return root / "ct", make_model(root / "m.onnx"), expected_hu(hu, spec), (centres, diameters)


def test_import_nodeview_is_cheap() -> None:
    """``import nodeview`` loads neither numpy, Qt, onnxruntime nor the core."""
    code = (
        "import sys, nodeview; heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('numpy', 'PySide6', 'pyqtgraph', 'onnxruntime', 'torch', 'scipy') or m.startswith('nodeview.')]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert callable(nodeview.open_study) and callable(nodeview.detect) and nodeview.detect.__doc__


def test_open_study_reads_the_folder(study) -> None:  # type: ignore[no-untyped-def]
    folder, _, hu, _ = study
    volume = nodeview.open_study(folder)
    assert isinstance(volume, Volume)
    np.testing.assert_array_equal(volume.hu_zyx, hu)
    with pytest.raises(NodeViewError):
        nodeview.open_study(folder.parent / "nothing-here")


def test_detect_from_a_volume_or_a_path_at_the_operating_threshold(study) -> None:  # type: ignore[no-untyped-def]
    from nodeview.core.detect.detector import Detector

    folder, model, _, (centres, diameters) = study
    volume = nodeview.open_study(folder)
    result = nodeview.detect(volume, model=model)
    assert result.findings and all(f.score >= result.model.threshold == 0.5 for f in result.findings)
    same = Detector(model).detect(volume, min_score=0.5)
    assert [f.center_xyz_mm for f in result.findings] == [f.center_xyz_mm for f in same.findings]
    from_path = nodeview.detect(folder, model=str(model))
    assert [f.score for f in from_path.findings] == [f.score for f in result.findings]
    everything = nodeview.detect(volume, model=model, min_score=0.0)
    # min_score 0 lists every scored lesion: a superset of the operating point's findings
    assert len(everything.findings) >= len(result.findings)
    kept = {f.center_xyz_mm for f in everything.findings}
    assert all(f.center_xyz_mm in kept for f in result.findings)
    assert min(f.score for f in everything.findings) <= min(f.score for f in result.findings)
    # the solid nodule of the phantom is among the findings (within its radius, as in test_detector)
    assert min(np.linalg.norm(np.subtract(f.center_xyz_mm, centres[3])) for f in result.findings) <= diameters[3] / 2


@pytest.mark.slow
def test_detect_with_the_bundled_model_matches_the_golden_findings(lidc_dir) -> None:  # type: ignore[no-untyped-def]
    from tests.golden_findings import GOLDEN

    golden = json.loads(GOLDEN.read_text())
    result = nodeview.detect(lidc_dir)
    expected = [g for g in golden["findings"] if g["score"] >= golden["threshold"]]
    assert result.model.threshold == pytest.approx(golden["threshold"], abs=1e-9)
    assert len(result.findings) == len(expected) > 0
    for f, g in zip(result.findings, expected, strict=True):
        np.testing.assert_allclose(f.center_xyz_mm, g["center_xyz_mm"], atol=1e-6)
        assert f.score == pytest.approx(g["score"], abs=1e-6)
