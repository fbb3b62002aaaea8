"""The proposal ranker's learned weights are data (resources/models), checked on load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nodeview.core.detect.candidates import FEATURE_NAMES, rank_scores
from nodeview.core.detect.models import proposal_ranker_path
from nodeview.core.detect.ranker_weights import (
    FORMAT,
    RankerWeightsError,
    bundled_ranker_weights,
    read_ranker_weights,
    weights_document,
    write_ranker_weights,
)


def test_bundled_weights_load_and_match_the_proposer_features() -> None:
    w = bundled_ranker_weights()
    assert w.features == FEATURE_NAMES
    assert w.w1.shape == (len(FEATURE_NAMES), w.b1.size) and w.w2.size == w.b1.size
    doc = json.loads(Path(proposal_ranker_path()).read_text(encoding="utf-8"))
    assert doc["format"] == FORMAT and doc["sha256"] == w.sha256
    x = np.random.default_rng(0).normal(size=(50, len(FEATURE_NAMES)))
    expected = np.maximum(((x - w.mean) / w.std) @ w.w1 + w.b1, 0.0) @ w.w2 + w.b2
    np.testing.assert_array_equal(rank_scores(x), expected)


def _doc() -> dict:
    rng = np.random.default_rng(1)
    return weights_document(
        ("a", "b"), rng.normal(size=2), np.ones(2), rng.normal(size=(2, 3)), rng.normal(size=3),
        rng.normal(size=3), 0.25, {"train_scans": 2},
    )


def test_round_trip_keeps_every_weight(tmp_path) -> None:
    doc = _doc()
    write_ranker_weights(tmp_path / "w.json", doc)
    w = read_ranker_weights(tmp_path / "w.json")
    assert w.features == ("a", "b") and w.b2 == 0.25 and w.summary == {"train_scans": 2}
    np.testing.assert_array_equal(w.w1, np.asarray(doc["w1"]))
    assert not list(tmp_path.glob("*.tmp"))


def test_an_edited_weight_fails_the_sha256_check(tmp_path) -> None:
    doc = _doc()
    doc["w2"][0] += 0.001
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(RankerWeightsError, match=r"w\.json: its content has sha256 .* edited or damaged"):
        read_ranker_weights(path)


def test_another_format_or_a_broken_file_is_refused(tmp_path) -> None:
    doc = _doc()
    doc["format"] = "nodeview.proposal-ranker/9"
    (tmp_path / "f.json").write_text(json.dumps(doc))
    with pytest.raises(RankerWeightsError, match=r"format .nodeview\.proposal-ranker/9."):
        read_ranker_weights(tmp_path / "f.json")
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(RankerWeightsError, match="cannot read"):
        read_ranker_weights(tmp_path / "b.json")
    with pytest.raises(RankerWeightsError, match="cannot read"):
        read_ranker_weights(tmp_path / "missing.json")


def test_mismatched_shapes_are_refused(tmp_path) -> None:
    doc = _doc()
    doc["b1"] = doc["b1"][:2]
    from nodeview.core.detect.ranker_weights import weights_sha256

    doc["sha256"] = weights_sha256(doc)
    (tmp_path / "s.json").write_text(json.dumps(doc))
    with pytest.raises(RankerWeightsError, match="hidden sizes disagree"):
        read_ranker_weights(tmp_path / "s.json")


def test_the_packaged_app_bundles_every_model_file() -> None:
    """packaging/build.sh stages the files the app reads from resources/models (the spec checks them)."""
    from nodeview.core.detect.models import DEFAULT_MODEL_FILE, RANKER_WEIGHTS_FILE
    from nodeview.core.detect.reranker import RERANKER_FILE

    repo = Path(__file__).resolve().parents[1]
    build = (repo / "packaging" / "build.sh").read_text()
    for name in (DEFAULT_MODEL_FILE, RERANKER_FILE, RANKER_WEIGHTS_FILE):
        assert (repo / "resources" / "models" / name).is_file(), name
        assert name in build, f"packaging/build.sh does not stage {name}"
    assert RANKER_WEIGHTS_FILE in (repo / "packaging" / "nodeview.spec").read_text()
