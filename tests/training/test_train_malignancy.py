"""The malignancy head refitted on the readers' ratings with the network frozen (train_malignancy)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnx")

from training.data.packed import write_shard  # noqa: E402
from training.engine import train_malignancy as TM  # noqa: E402

ONNX = Path(__file__).resolve().parents[2] / "resources" / "models" / "nodeview-nodule.onnx"


def test_group_weights_give_every_nodule_the_same_total_weight():
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    w = TM.group_weights(groups)
    totals = {g: w[groups == g].sum() for g in "abc"}
    assert np.allclose(list(totals.values()), totals["a"])
    assert w.mean() == pytest.approx(1.0)


def test_logistic_fit_finds_the_informative_feature_and_generalises():
    rng = np.random.default_rng(0)
    n, d = 600, 40
    x = rng.normal(5.0, 3.0, (n, d)).astype(np.float32)  # raw features: offset and scaled, as a backbone's are
    y = (x[:, 7] - 5.0 + rng.normal(0, 1.0, n) > 0).astype(np.float32)
    w, b = TM.fit_logistic(x[:400], y[:400], np.ones(400), lam=1e-3)
    assert int(np.argmax(np.abs(w))) == 7
    logit = x[400:] @ w + b  # the raw-feature weights: standardisation folded back in
    assert TM.auc(logit[y[400:] > 0.5], logit[y[400:] <= 0.5]) > 0.85
    # a very strong penalty shrinks the weights towards the prior log-odds
    w_big, b_big = TM.fit_logistic(x[:400], y[:400], np.ones(400), lam=100.0)
    assert np.abs(w_big).max() < 0.1 * np.abs(w).max()


def test_auc_counts_ties_half():
    assert TM.auc(np.array([1.0, 2.0]), np.array([0.0, 1.0])) == pytest.approx(0.875)
    assert np.isnan(TM.auc(np.array([1.0]), np.array([])))


def test_cross_validation_folds_never_split_a_patient():
    patients = np.array([f"P{i // 3}" for i in range(60)])
    fold = TM.patient_folds(patients, 5, seed=1)
    for p in np.unique(patients):
        assert len(set(fold[patients == p].tolist())) == 1
    assert sorted(set(fold.tolist())) == [0, 1, 2, 3, 4]


def _pack(tmp_path: Path, name: str, split_patients: list[str], rng: np.random.Generator) -> tuple[Path, Path]:
    """A packed folder of two scans and their transplants.csv: per scan two rated nodules, one rated 3, negatives."""
    pack, data = tmp_path / f"pack-{name}", tmp_path / f"data-{name}"
    pack.mkdir()
    data.mkdir()
    rows, arrays = [], {k: [] for k in ("patches", "nodule", "malignant", "diameter_mm", "scan", "nodule_id",
                                        "from_proposal", "rank_score")}
    for s in range(2):
        scan = f"tx-{name}-{s}"
        for k, (label, patient) in enumerate([(1, split_patients[0]), (0, split_patients[1]), (-1, split_patients[0])]):
            rows.append({"scan_id": scan, "background": "synthetic-1", "file": f"{patient}_R_{k}.nii.gz",
                         "patient_id": patient, "x_mm": 0, "y_mm": 0, "z_mm": 0, "location": "isolated"})
            for _ in range(3):  # the nodule's patches: bright blob for malignant, faint for benign
                patch = rng.integers(0, 60, (3, 64, 64)).astype(np.uint8)
                patch[:, 24:40, 24:40] += np.uint8(150 if label == 1 else 60)
                for key, v in (("patches", patch), ("nodule", 1), ("malignant", label), ("diameter_mm", 8.0),
                               ("scan", s), ("nodule_id", k), ("from_proposal", True), ("rank_score", 1.0)):
                    arrays[key].append(v)
        for _ in range(2):  # negatives
            for key, v in (("patches", rng.integers(0, 60, (3, 64, 64)).astype(np.uint8)), ("nodule", 0),
                           ("malignant", -1), ("diameter_mm", np.nan), ("scan", s), ("nodule_id", -1),
                           ("from_proposal", True), ("rank_score", 0.0)):
                arrays[key].append(v)
    dtypes = {"patches": np.uint8, "nodule": np.int8, "malignant": np.int8, "diameter_mm": np.float32,
              "scan": np.int32, "nodule_id": np.int32, "from_proposal": bool, "rank_score": np.float32}
    write_shard(pack / "p0-000.npz.xz", {k: np.asarray(v, dtypes[k]) for k, v in arrays.items()})
    (pack / "p0-000.json").write_text(json.dumps({"scan_ids": [f"tx-{name}-0", f"tx-{name}-1"]}))
    with open(data / "transplants.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return pack, data


def test_labelled_rows_keep_rated_nodules_and_name_their_patients(tmp_path):
    pack, data = _pack(tmp_path, "train", ["LIDC-IDRI-0004", "LIDC-IDRI-0005"], np.random.default_rng(0))
    rows = TM.labelled_rows([str(pack)], data)
    assert len(rows["label"]) == 2 * 2 * 3  # rating-3 nodules and negatives left out
    assert set(rows["patient"].tolist()) == {"LIDC-IDRI-0004", "LIDC-IDRI-0005"}
    assert set(rows["placement"].tolist()) == {"tx-train-0#0", "tx-train-0#1", "tx-train-1#0", "tx-train-1#1"}
    assert rows["label"][rows["patient"] == "LIDC-IDRI-0004"].min() == 1.0
    # a pack whose nodule index is not in the scans' transplants.csv is refused
    with open(data / "transplants.csv") as fh:
        lines = fh.readlines()
    (data / "transplants.csv").write_text("".join(lines[:2]))
    with pytest.raises(ValueError, match="pack and data disagree"):
        TM.labelled_rows([str(pack)], data)


def test_split_check_refuses_a_patient_of_another_split(tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("patient_id,split\nA,train\nB,val\nC,test\n")
    TM.check_split(np.array(["A", "A"]), "train", str(split))
    with pytest.raises(ValueError, match="not train patients"):
        TM.check_split(np.array(["A", "C"]), "train", str(split))


@pytest.mark.skipif(not ONNX.is_file(), reason="the bundled model is not in this checkout")
def test_refitted_head_changes_only_malignancy_and_binds_the_reranker(tmp_path):
    """End to end on the bundled network: fit, write, check; detection outputs bit for bit unchanged."""
    import onnxruntime as ort

    from nodeview.core.detect.detector import Detector
    from training.export.onnx import read_metadata

    rng = np.random.default_rng(1)
    train, train_data = _pack(tmp_path, "train", ["P1", "P2"], rng)
    val, val_data = _pack(tmp_path, "val", ["P3", "P4"], rng)
    split = tmp_path / "split.csv"
    split.write_text("patient_id,split\nP1,train\nP2,train\nP3,val\nP4,val\n")
    out = tmp_path / "run"
    results = TM.main(["--onnx", str(ONNX), "--train", str(train), "--train-data", str(train_data),
                       "--val", str(val), "--val-data", str(val_data), "--split", str(split), "--copies", "1",
                       "--lambda", "0.01", "--bootstrap", "50", "--out", str(out),
                       "--onnx-out", str(out / "nodeview-nodule.onnx")])
    check = results["onnx_check"]
    assert check["nodule_prob_max_abs"] == 0.0 and check["diameter_mm_max_abs"] == 0.0
    assert check["malignancy_prob_max_abs_vs_fit"] < 2e-3
    # the bright (malignant) and faint (benign) blobs are told apart by the refitted head on unseen patients
    assert results["val_per_placement"]["auc_new"] == 1.0
    meta, old = read_metadata(out / "nodeview-nodule.onnx"), read_metadata(ONNX)
    # v3 -> 3.1; a 3.1 file (the bundled one, once shipped) refitted again stays 3.1
    assert meta["version"] == (old["version"] if old["version"].endswith(".1") else old["version"] + ".1")
    assert meta["weights_sha256"] != old["weights_sha256"]
    assert "not pathology" in meta["malignancy_label"] and "not pathology" in json.loads(meta["outputs"])["malignancy_prob"]
    assert json.loads(meta["malignancy_head"])["train_patients"] == 2
    assert meta["operating_threshold"] == old["operating_threshold"]
    x = rng.uniform(-1, 1, (4, 3, 64, 64)).astype(np.float32)
    a = ort.InferenceSession(str(ONNX), providers=["CPUExecutionProvider"]).run(None, {"patches": x})
    b = ort.InferenceSession(str(out / "nodeview-nodule.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"patches": x})
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[2], b[2]) and not np.allclose(a[1], b[1])
    # the shipped re-ranker no longer binds to the new weights until it is re-bound, threshold as written
    assert Detector(out / "nodeview-nodule.onnx").reranker is None
    shipped = Detector(ONNX)
    bound = out / "bound" / "nodeview-reranker.onnx"
    TM.rebind_reranker(ONNX.with_name("nodeview-reranker.onnx"), bound, out / "nodeview-nodule.onnx")
    det = Detector(out / "nodeview-nodule.onnx", reranker=bound)
    assert det.reranker is not None and det.info.threshold == shipped.info.threshold
    assert det.reranker.info.metadata["operating_threshold"] == shipped.reranker.info.metadata["operating_threshold"]
    assert "re-bound" in det.reranker.info.metadata["calibration"]
