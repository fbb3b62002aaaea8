"""The proposal ranker's fit learns a known non-linear rule and recall is counted per nodule."""

import numpy as np

from training.engine.fit_ranker import fit_mlp, recall_at, sample_weights


def test_mlp_learns_a_rule_no_linear_model_can():
    rng = np.random.default_rng(0)
    n = 20000
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] * x[:, 1] > 0.3) & (x[:, 2] > -1)  # XOR-like: no linear ranking separates it
    ranker = fit_mlp(x, y, np.full(n, 1.0 / n), hidden=16, steps=1500, batch=1024)
    test = rng.normal(size=(4000, 3))
    truth = (test[:, 0] * test[:, 1] > 0.3) & (test[:, 2] > -1)
    s = ranker(test)
    # ROC-AUC by ranks
    order = np.argsort(s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(len(s))
    auc = (ranks[truth].sum() - truth.sum() * (truth.sum() - 1) / 2) / (truth.sum() * (~truth).sum())
    assert auc > 0.95, auc


def test_each_nodule_weighs_the_same_whatever_its_peak_count():
    labels = [np.array([0, 0, 0, 0, 1, -1, -1], dtype=np.int32), np.array([-1, 0], dtype=np.int32)]
    w = sample_weights(labels)
    y = np.concatenate(labels) >= 0
    assert np.isclose(w[y].sum(), 0.5) and np.isclose(w[~y].sum(), 0.5)
    assert np.isclose(w[:4].sum(), w[4]) and np.isclose(w[4], w[8])  # 3 nodules, equal shares


def test_recall_at_counts_nodules_found_within_budget():
    # one scan, three peaks: nodule 0 hit by the worst-scored peak, nodule 1 by the best
    table = {
        "centres": np.array([[0.0, 0, 0], [50.0, 0, 0], [100.0, 0, 0]]),
        "sigma": np.array([1.0, 1.0, 1.0]),
        "features": np.array([[0.1], [0.5], [0.9]], dtype=np.float32),
        "label": np.array([0, -1, 1], dtype=np.int32),
        "n_nodules": np.array(2),
    }

    def up(f):
        return f[:, 0]

    def down(f):
        return -f[:, 0]

    assert recall_at([table], up, 1) == (1, 2)
    assert recall_at([table], up, 2) == (1, 2)
    assert recall_at([table], up, 3) == (2, 2)
    assert recall_at([table], down, 1) == (1, 2)


def test_fitted_weights_are_written_as_the_data_file_the_app_reads(tmp_path):
    from nodeview.core.detect.candidates import FEATURE_NAMES
    from nodeview.core.detect.ranker_weights import read_ranker_weights
    from training.engine.fit_ranker import write_weights

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, len(FEATURE_NAMES)))
    ranker = fit_mlp(x, x[:, 0] > 0, np.full(500, 1 / 500), hidden=4, steps=50, batch=128)
    write_weights(tmp_path / "r.json", ranker, {"train_scans": 1, "val_recall": "n/a", "seconds": 1.0})
    w = read_ranker_weights(tmp_path / "r.json")
    assert w.summary == {"train_scans": 1, "val_recall": "n/a"}
    np.testing.assert_allclose(w(x), ranker(x), atol=1e-3)  # rounded to 6 decimals
