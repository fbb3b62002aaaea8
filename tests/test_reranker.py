"""The proposal re-ranker: cube geometry, the suppression it relies on, the score fusion, the
detector with a re-ranker (tiny real ONNX file), and the committed default re-ranker."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from nodeview.core.detect.candidates import suppress
from nodeview.core.detect.reranker import (
    DEFAULT_CUBE,
    CubeSpec,
    extract_context_cubes,
    extract_cubes,
    fuse_three,
    rerank_order,
)
from nodeview.core.detect.scores import score_from_probability
from nodeview.core.geometry import Geometry

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from nodeview.core.detect.detector import Detector, ModelError  # noqa: E402

from .test_detector import GOOD_META, chest_volume, make_model  # noqa: E402,F401


def test_cube_axes_and_centre_follow_patient_mm():
    # anisotropic voxels (2.5 mm slices), a bright voxel block at a known place, and one 3 mm
    # to the patient's left (+x) of it
    g = Geometry((60, 80, 80), (2.5, 0.7, 0.7), (-28.0, -28.0, -75.0))
    hu = np.full(g.shape_zyx, -1000, dtype=np.int16)
    centre = np.array([0.0, 0.0, 0.0])
    k, j, i = np.round(g.mm_to_index(centre)).astype(int)
    hu[k, j - 1 : j + 2, i - 1 : i + 2] = 400
    cubes = extract_cubes(hu, g, [g.index_to_mm(np.array([[k, j, i]]))[0]])
    assert cubes.shape == (1, 1, 16, 16, 16) and cubes.dtype == np.float32
    assert cubes.min() >= -1.0 and cubes.max() <= 1.0
    c = cubes[0, 0]
    peak = np.unravel_index(np.argmax(c), c.shape)
    assert all(7 <= p <= 8 for p in peak)  # the centre lies between voxels 7 and 8
    # moving the cube 3 mm to the right (-x) moves the block 3 mm (2.7 voxels) towards +i
    shifted = extract_cubes(hu, g, [g.index_to_mm(np.array([[k, j, i]]))[0] - np.array([3.0, 0, 0])])[0, 0]
    profile = shifted.max(axis=(0, 1))
    assert 9 <= int(np.argmax(profile)) <= 11
    # outside the volume reads as air
    assert np.all(extract_cubes(hu, g, [[500.0, 500.0, 500.0]]) == -1.0)
    assert extract_cubes(hu, g, np.zeros((0, 3))).shape == (0, 1, 16, 16, 16)


def test_context_cubes_see_48_mm_of_block_averaged_volume():
    # 2.5 mm slices and 0.7 mm pixels: blocks of 1 x 4 x 4 voxels; a 5 mm-radius sphere at the centre
    g = Geometry((60, 160, 160), (2.5, 0.7, 0.7), (-56.0, -56.0, -75.0))
    hu = np.full(g.shape_zyx, -1000, dtype=np.int16)
    k, j, i = np.meshgrid(*(np.arange(n) for n in g.shape_zyx), indexing="ij")
    xyz = g.index_to_mm(np.stack([k, j, i], axis=-1).reshape(-1, 3)).reshape(*g.shape_zyx, 3)
    sphere = np.linalg.norm(xyz, axis=-1) <= 5.0
    hu[sphere] = 60
    spec = CubeSpec(context_spacing_mm=3.0)
    cubes = extract_cubes(hu, g, [[0.0, 0.0, 0.0], [12.0, 0.0, 0.0]], spec)
    assert cubes.shape == (2, 2, 16, 16, 16) and cubes.dtype == np.float32
    np.testing.assert_array_equal(cubes[:, :1], extract_cubes(hu, g, [[0.0, 0.0, 0.0], [12.0, 0.0, 0.0]]))
    ctx = cubes[0, 1]
    assert all(7 <= p <= 8 for p in np.unravel_index(np.argmax(ctx), ctx.shape))
    # a 10 mm sphere covers about 3 voxels of 3 mm: its full 60 HU at the centre, air 6 voxels (18 mm) out
    assert (
        ctx.max() == pytest.approx(0.514, abs=0.01)
        and ctx[7:9, 7:9, 7:9].mean() > 0.3
        and ctx[7, 7, 1] == pytest.approx(-1.0, abs=0.02)
    )
    # the cube centred 12 mm to the patient's left (+x) sees the sphere 4 voxels towards -x (i)
    profile = cubes[1, 1].max(axis=(0, 1))
    assert 3 <= int(np.argmax(profile)) <= 4
    # the values do not depend on which other centres share the call (the averaged region differs)
    alone = extract_context_cubes(hu, g, [[12.0, 0.0, 0.0]], spec)
    np.testing.assert_array_equal(alone[0, 0], cubes[1, 1])
    # block means, not point samples: a one-voxel-thick bright plane is diluted 4x in y
    plane = np.full(g.shape_zyx, -1000, dtype=np.int16)
    plane[:, 80, :] = 1000
    c = extract_context_cubes(plane, g, [[0.0, 0.0, 0.0]], spec)[0, 0]
    assert c.max() < 0.0  # -1000 * 3/4 + 1000 / 4 = -500 HU at most, well below the window's top
    # outside the volume reads as air; no centre gives an empty array of the right shape
    assert np.all(extract_context_cubes(hu, g, [[900.0, 900.0, 900.0]], spec) == -1.0)
    assert extract_cubes(hu, g, np.zeros((0, 3)), spec).shape == (0, 2, 16, 16, 16)
    with pytest.raises(ValueError, match="no context"):
        extract_context_cubes(hu, g, [[0.0, 0.0, 0.0]], DEFAULT_CUBE)


def test_cube_spec_metadata_round_trip():
    spec = CubeSpec(size=12, spacing_mm=1.5)
    assert CubeSpec.from_metadata(spec.to_metadata()) == spec
    two = CubeSpec(context_spacing_mm=3.0)
    assert CubeSpec.from_metadata(two.to_metadata()) == two and two.channels == 2 and spec.channels == 1
    assert "2 channels" in two.to_metadata()["cube_layout"]
    assert CubeSpec.from_metadata(DEFAULT_CUBE.to_metadata()) == DEFAULT_CUBE


def test_refine_until_keeps_the_first_candidates_where_a_shorter_run_puts_them():
    # blobs seen at a coarse scale (better score) and, 0.5 mm away, at a fine one (worse score)
    rng = np.random.default_rng(3)
    blobs = rng.uniform(0, 400, (200, 3))
    centres = np.concatenate([blobs, blobs + 0.5, rng.uniform(0, 400, (100, 3))])
    sigma = np.concatenate([np.full(200, 3.4), np.full(200, 1.4), np.full(100, 0.9)])
    score = np.concatenate([rng.uniform(2, 3, 200), rng.uniform(0, 1, 200), rng.uniform(1, 2, 100)])
    short = suppress(centres, sigma, score, 50)
    long_frozen = suppress(centres, sigma, score, 400, refine_until=50)
    long_free = suppress(centres, sigma, score, 400)
    assert long_frozen[:50] == short
    assert [a for a, _ in long_free[:50]] == [a for a, _ in short]  # same peaks kept ...
    assert long_free[:50] != short  # ... but later peaks refined some positions
    assert long_frozen[50:] == long_free[50:]


def test_rerank_order_and_fusion():
    rank = np.array([3.0, 2.0, 1.0, 0.0])
    logit = np.array([-4.0, 0.0, 4.0, 0.0])
    assert rerank_order(rank, logit, 0.0, 2).tolist() == [0, 1]
    assert rerank_order(rank, logit, 1.0, 2).tolist() == [2, 1]
    p = np.array([0.1, 0.5, 0.9, 0.99])
    np.testing.assert_allclose(fuse_three(p, rank, logit, 0.0, 0.0), p, rtol=1e-5)
    fused = fuse_three(p, rank, logit, 0.2, 0.5)
    expect = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + 0.2 * rank + 0.5 * logit)))
    np.testing.assert_allclose(fused, expect, rtol=1e-5)


def make_reranker(path, nodule_sha, keep=40, top_k=120, threshold="0.6", spec=DEFAULT_CUBE, extra=None):
    """cube_logit = 10 * (mean of the central 4^3 voxels of every channel + 0.5): dense centre -> high."""
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [3], [6, 6, 6]),
        helper.make_tensor("ends", TensorProto.INT64, [3], [10, 10, 10]),
        helper.make_tensor("axes", TensorProto.INT64, [3], [2, 3, 4]),
        helper.make_tensor("rax", TensorProto.INT64, [4], [1, 2, 3, 4]),
        helper.make_tensor("shift", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [10.0]),
    ]
    nodes = [
        helper.make_node("Slice", ["cubes", "starts", "ends", "axes"], ["centre"]),
        helper.make_node("ReduceMean", ["centre", "rax"], ["m"], keepdims=0),
        helper.make_node("Add", ["m", "shift"], ["m1"]),
        helper.make_node("Mul", ["m1", "gain"], ["cube_logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        "rr",
        [helper.make_tensor_value_info("cubes", TensorProto.FLOAT, ["N", spec.channels, 16, 16, 16])],
        [helper.make_tensor_value_info("cube_logit", TensorProto.FLOAT, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    meta = {
        "name": "test-reranker",
        "version": "0",
        **spec.to_metadata(),
        "top_k": str(top_k),
        "keep": str(keep),
        "rerank_weight": "0.5",
        "cube_weight": "0.25",
        "rank_score_weight": "0.1",
        "operating_threshold": threshold,
        "nodule_model_sha256": nodule_sha,
        **(extra or {}),
    }
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


def test_detector_uses_a_matching_reranker_beside_the_model(tmp_path, chest_volume, caplog):  # noqa: F811
    volume, centres, diameters = chest_volume
    model = make_model(tmp_path / "m.onnx")
    plain = Detector(model, reranker=None)
    make_reranker(tmp_path / "nodeview-reranker.onnx", plain.info.sha256)
    detector = Detector(model)  # "auto": the file beside the model
    # the file's operating_threshold is a fused probability; the app states it in finding-score units
    assert detector.reranker is not None and detector.info.threshold == pytest.approx(score_from_probability(0.6))
    assert detector.info.rank_weight == pytest.approx(0.1) and detector.info.to_dict()["reranker"] == "test-reranker 0"
    result = detector.detect(volume, min_score=0.0)
    assert result.n_candidates == 40 and "rerank" in result.timings_s
    big = [(c, d) for c, d in zip(centres, diameters, strict=True) if d >= 8]
    for c, d in big:  # the large phantom nodules survive the re-ranking and score high
        near = [f for f in result.findings if np.linalg.norm(np.subtract(f.center_xyz_mm, c)) <= d / 2]
        assert near and max(f.score for f in near) >= score_from_probability(0.6), (c, d)
    # the same file calibrated for another model: ignored by "auto", refused when named
    make_reranker(tmp_path / "nodeview-reranker.onnx", "f" * 64)
    with caplog.at_level(logging.INFO, logger="nodeview.core.detect.detector"):
        assert Detector(model).reranker is None and Detector(model).info.threshold == 0.5
    assert "calibrated for another nodule model" in caplog.text
    with pytest.raises(ModelError, match="another nodule model"):
        Detector(model, reranker=tmp_path / "nodeview-reranker.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ModelError, match="not a readable ONNX"):
        Detector(model, reranker=tmp_path / "junk.onnx")


def test_detector_with_a_two_channel_reranker(tmp_path, chest_volume):  # noqa: F811
    volume, centres, diameters = chest_volume
    model = make_model(tmp_path / "m.onnx")
    sha = Detector(model, reranker=None).info.sha256
    spec = CubeSpec(context_spacing_mm=3.0)
    make_reranker(tmp_path / "nodeview-reranker.onnx", sha, spec=spec)
    detector = Detector(model)
    assert detector.reranker is not None and detector.reranker.info.spec.channels == 2
    result = detector.detect(volume, min_score=0.0)
    assert result.n_candidates == 40 and "rerank" in result.timings_s
    for c, d in [(c, d) for c, d in zip(centres, diameters, strict=True) if d >= 8]:
        near = [f for f in result.findings if np.linalg.norm(np.subtract(f.center_xyz_mm, c)) <= d / 2]
        assert near and max(f.score for f in near) >= score_from_probability(0.6), (c, d)


def test_committed_reranker_matches_the_default_model():
    from nodeview.core.detect.models import default_model_path

    detector = Detector(default_model_path())
    assert detector.reranker is not None, "resources/models/nodeview-reranker.onnx is missing or stale"
    info = detector.info.reranker
    assert info is not None and 0 < info.keep <= info.top_k
    # version 3: the 18 mm cube and a 48 mm context cube
    assert info.version == "3" and info.spec == CubeSpec(context_spacing_mm=3.0) and info.spec.channels == 2
    assert 0.5 < detector.info.threshold < 1.0
    assert "research" in info.metadata["research_use_only"].lower()
    metrics = json.loads(info.metadata["metrics"])
    assert "validation" in metrics  # since issue 21 the real validation patients (the test patients are measured once, apart)


def test_proposal_positions_metadata(tmp_path, chest_volume, monkeypatch):  # noqa: F811
    """``proposal_positions`` = subvoxel makes the detector propose with sub-voxel peaks; a value it
    does not know is refused."""
    from nodeview.core.detect import detector as D
    from nodeview.core.detect.reranker import Reranker, RerankerError

    model = make_model(tmp_path / "m.onnx")
    sha = Detector(model, reranker=None).info.sha256
    voxel = make_reranker(tmp_path / "v.onnx", sha)
    sub = make_reranker(tmp_path / "sv.onnx", sha, extra={"proposal_positions": "subvoxel"})
    assert Reranker(sub).info.subvoxel_peaks and not Reranker(voxel).info.subvoxel_peaks
    with pytest.raises(RerankerError, match="proposal_positions"):
        Reranker(make_reranker(tmp_path / "bad.onnx", sha, extra={"proposal_positions": "nearest"}))
    asked = []
    real = D.propose

    def spy(*args, **kwargs):
        asked.append(kwargs["subvoxel"])
        return real(*args, **kwargs)

    monkeypatch.setattr(D, "propose", spy)
    volume = chest_volume[0]
    Detector(model, reranker=sub).detect(volume, min_score=0.5)
    Detector(model, reranker=voxel).detect(volume, min_score=0.5)
    Detector(model, reranker=None).detect(volume, min_score=0.5)
    assert asked == [True, False, False]
