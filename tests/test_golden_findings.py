"""Behaviour unchanged: the default model's findings on LIDC-IDRI-0002 equal the golden file.

The golden (``tests/golden/lidc-0002-findings.json``) was computed before the core was moved into
rooms (issue 26); see :mod:`tests.golden_findings` for how to regenerate it after retraining.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from tests.golden_findings import GOLDEN, REGENERATE, bundled_models, compute

TOL = 1e-6


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))


def test_golden_names_the_bundled_models() -> None:
    """A retrained model or re-ranker needs a new golden: say how to make it."""
    golden = json.loads(GOLDEN.read_text())
    now = bundled_models()
    for key in ("model_sha256", "reranker_sha256"):
        assert now[key] == golden[key], (
            f"the bundled {golden[key.replace('sha256', 'file')]} changed ({key} {now[key][:12]}..., golden "
            f"{golden[key][:12]}...): check the new findings, then regenerate the golden with `{REGENERATE}`"
        )


@pytest.mark.slow
def test_default_model_findings_on_lidc_0002_are_unchanged(lidc_dir) -> None:  # type: ignore[no-untyped-def]
    golden = json.loads(GOLDEN.read_text())
    assert bundled_models()["model_sha256"] == golden["model_sha256"], f"model changed: run `{REGENERATE}`"
    now = compute(lidc_dir)
    assert now["model"] == golden["model"]
    assert now["n_candidates"] == golden["n_candidates"]
    assert _close(now["threshold"], golden["threshold"])
    assert len(now["findings"]) == len(golden["findings"])
    for i, (f, g) in enumerate(zip(now["findings"], golden["findings"], strict=True)):
        where = f"finding {i + 1} of {len(golden['findings'])}"
        assert f["measured"] == g["measured"], where
        for key in ("diameter_mm", "score", "malignancy"):
            assert _close(f[key], g[key]), f"{where}: {key} {f[key]} != golden {g[key]}"
        for axis, (a, b) in enumerate(zip(f["center_xyz_mm"], g["center_xyz_mm"], strict=True)):
            assert _close(a, b), f"{where}: centre[{axis}] {a} != golden {b}"
