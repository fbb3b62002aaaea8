"""The model card describes each training stage from the files the runs wrote."""

from __future__ import annotations

import json

from training.evaluation.model_card import training_stages


def _run(folder, args, losses):
    folder.mkdir()
    history = [{"epoch": n + 1, "train_loss": v, "val_loss": v / 2, "val_acc": 0.9} for n, v in enumerate(losses)]
    (folder / "history.json").write_text(json.dumps(history))
    if args is not None:
        (folder / "args.json").write_text(json.dumps(args))


def test_training_stages_follow_the_weights_chain(tmp_path):
    base = {"weights": "none", "steps_per_epoch": 250, "batch_size": 48, "lr": 1e-3, "max_candidates": 400}
    _run(tmp_path / "base", base, [0.5, 0.3, 0.2])
    ft = dict(base, weights=str(tmp_path / "base" / "model_state.pt"), lr=3e-4, max_candidates=300,
              hard_negative_fraction=0.5, hard_pool=0.25, mine_subset=12000, ignore_near_mm=3.0)
    _run(tmp_path / "ft", ft, [0.4, 0.25])
    lines = training_stages(tmp_path / "ft")
    assert len(lines) == 2
    assert lines[0].startswith("- **Training stage 1:** 3 epochs of 250 steps") and "from scratch" in lines[0]
    assert "training loss 0.200" in lines[0]
    assert lines[1].startswith("- **Training stage 2:** 2 epochs") and "fine-tuned from" in lines[1]
    assert "50% of each batch's negatives" in lines[1] and "radius + 3 mm" in lines[1]
    assert "300 proposals per scan" in lines[1] and "training loss 0.250" in lines[1]
    assert "every nodule weighs the same" not in lines[1] and "z axis only" not in lines[1]
    third = dict(ft, weights=str(tmp_path / "ft" / "model_state.pt"), lr=1e-4, positive_weighting="nodule",
                 positive_rotations="axial")
    _run(tmp_path / "axial", third, [0.3])
    lines = training_stages(tmp_path / "axial")
    assert len(lines) == 3 and lines[2].startswith("- **Training stage 3:** 1 epochs")
    assert "every nodule weighs the same" in lines[2] and "rotated about the patient z axis only" in lines[2]


def test_training_stages_without_args_json(tmp_path):
    _run(tmp_path / "old", None, [0.7, 0.6])
    (line,) = training_stages(tmp_path / "old")
    assert line.startswith("- **Training stage 1:** 2 epochs.") and "validation loss 0.300" in line


def test_group_lines_tabulate_the_breakdown():
    from training.evaluation.model_card import group_lines

    assert group_lines({}) == []  # metrics from before the breakdown existed
    test = {"by_group_at_threshold": {
        "size": {"3-5 mm": {"nodules": 4, "proposed": 3, "found": 1, "sensitivity": 0.25}},
        "kind": {"solid": {"nodules": 4, "proposed": 3, "found": 1, "sensitivity": 0.25}},
        "location": {}}}
    test["by_group_at_threshold"]["slice"] = {"> 2.5 mm": {"nodules": 2, "proposed": 1, "found": 0, "sensitivity": 0.0}}
    lines = group_lines(test)
    assert "| slice thickness: > 2.5 mm | 2 | 1 | 0 | 0.000 |" in lines
    assert "| size: 3-5 mm | 4 | 3 | 1 | 0.250 |" in lines and "| kind: solid | 4 | 3 | 1 | 0.250 |" in lines
    assert lines[-1] == ""


def test_slice_lines_tabulate_cpm_by_slice():
    from training.evaluation.model_card import slice_lines

    assert slice_lines({}, {}) == []  # metrics from before the slice breakdown existed
    rates = {"1.0": 0.5, "8.0": 0.75}
    thin = {"scans": 3, "nodules": 4, "cpm": 0.625, "sensitivity_at_fp_rates": rates}
    lines = slice_lines({"cpm_by_slice": {"<= 2.5 mm": thin}}, {"cpm_by_slice": {"<= 2.5 mm": thin}})
    assert "| validation | <= 2.5 mm | 3 | 4 | 0.625 | 0.500 | 0.750 |" in lines
    assert "| test | <= 2.5 mm | 3 | 4 | 0.625 | 0.500 | 0.750 |" in lines and lines[-1] == ""
    # with a bootstrap interval (evaluate.py --bootstrap), the CPM carries it
    lines = slice_lines({}, {"cpm_by_slice": {"<= 2.5 mm": {**thin, "cpm_ci95": [0.5, 0.75]}}})
    assert "| test | <= 2.5 mm | 3 | 4 | 0.625 (0.500–0.750) | 0.500 | 0.750 |" in lines


def test_intervals_in_the_card_text():
    from training.evaluation.model_card import _interval_lines, _with_ci

    assert _with_ci(0.7057, {"low": 0.6087, "high": 0.8038}) == "0.706 (0.609–0.804)"
    assert _with_ci(0.9584, [0.9031, 0.9964]) == "0.958 (0.903–0.996)"
    assert _with_ci(0.7, None) == "0.700"  # evaluated without --bootstrap
    assert _interval_lines({}) == []
    text = " ".join(_interval_lines({"cpm_ci95": {"low": 0.6, "high": 0.8, "n_bootstrap": 1000}}))
    assert "1000 samples" in text and "resamples the scans" in text and "training.evaluation.compare" in text


def test_metadata_carries_cpm_by_slice_for_the_app(tmp_path):
    from training.evaluation.model_card import metadata

    rates = {"1.0": 0.5, "8.0": 0.75}
    test = {"cpm": 0.6, "sensitivity_at_fp_rates": rates, "candidate_roc_auc": 0.9, "malignancy_auc": 0.9,
            "fps_per_scan_at_threshold": 0.5, "sensitivity_at_threshold": 0.6, "scans": 4, "nodules": 8}
    for name, metrics in (("eval-val", {"threshold": 0.9, "rank_weight": 0.5}), ("eval-test", test)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "data_summary.json").write_text(json.dumps({"train": {"scans": 2}, "validation": {"scans": 1}}))
    assert "cpm_by_slice" not in json.loads(metadata(tmp_path)["metrics_test"])  # older evaluations lack it
    by_slice = {"<= 2.5 mm": {"scans": 3, "nodules": 6, "cpm": 0.7, "sensitivity_at_fp_rates": rates}}
    (tmp_path / "eval-test" / "metrics.json").write_text(json.dumps({**test, "cpm_by_slice": by_slice}))
    meta = metadata(tmp_path, version="3")
    assert json.loads(meta["metrics_test"])["cpm_by_slice"] == by_slice and meta["version"] == "3"


def test_metadata_note_when_the_card_remeasures_the_same_weights():
    from training.evaluation.model_card import _metadata_note

    meta = {"metrics_test": json.dumps({"cpm": 0.7058})}
    assert _metadata_note(meta, {"cpm": 0.70581}) == []  # the figures the file carries
    text = " ".join(_metadata_note(meta, {"cpm": 0.7143}))
    assert "0.706" in text and "0.714" in text and "metrics_test" in text
    assert _metadata_note({}, {"cpm": 0.7}) == [] and _metadata_note({"metrics_test": "{"}, {"cpm": 0.7}) == []


def test_heldout_lines_tabulate_each_set_and_its_parts(tmp_path):
    from training.evaluation.model_card import heldout_lines

    assert heldout_lines(None) == [] and heldout_lines(tmp_path / "missing.json") == []

    def entry(scans, nodules, cpm):
        return {
            "scans": scans, "nodules": nodules, "cpm": cpm, "cpm_ci95": [cpm - 0.1, cpm + 0.05],
            "cpm_nodule_model_alone": cpm - 0.05, "sensitivity_at_threshold": 0.8, "fps_per_scan_at_threshold": 0.5,
            "paired_difference": {"estimate": 0.05, "low": 0.01, "high": 0.09}, "malignancy_auc": 0.95,
            "cpm_by_slice": {"<= 2.5 mm": {"scans": scans - 1, "cpm": cpm}},
        }

    parts = {"data/test/annotations.csv": entry(40, 84, 0.804), "data/test2/annotations.csv": entry(40, 80, 0.9)}
    res = {"sets": {"test": {**entry(80, 164, 0.85), "parts": parts}, "val2": entry(40, 91, 0.932)}}
    (tmp_path / "h.json").write_text(json.dumps(res))
    text = "\n".join(heldout_lines(tmp_path / "h.json"))
    assert "| test | 80 | 164 | 0.850 (0.750–0.900) | 0.800 | +0.050 (+0.010 to +0.090) | 0.800 | 0.50 | 0.950 |" in text
    assert "| test: test | 40 | 84 | 0.804 (0.704–0.854) |" in text and "| test: test2 | 40 | 80 |" in text
    assert "| val2 | 40 | 91 | 0.932" in text and "CPM by slice thickness (val2): <= 2.5 mm: 0.932, 39 scans." in text


def test_refresh_remakes_only_the_app_sections(tmp_path):
    """model_card refresh: the re-ranker, held-out and LIDC-IDRI-0002 sections are made again from
    new results; the ResNet-50's sections (which need its training run) stay as they are."""
    import json
    from pathlib import Path

    from training.evaluation import model_card as MC

    text = (
        "# card\n\n## What it is\n\nKEEP\n\n## In the app: with the proposal re-ranker\n\nSTALE\n\n"
        "## In the app: more held-out scans\n\nSTALE\n\n## Training data\n\nKEEP\n\n## Results\n\nKEEP\n\n"
        "### LIDC-IDRI-0002 (x)\n\nSTALE\n\n## Limits\n\nKEEP\n"
    )
    card = tmp_path / "card.md"
    card.write_text(text)
    finding = {"score": 1.0, "diameter_mm": 20.0, "type": "ground glass", "malignancy": 0.1}
    lidc = tmp_path / "lidc.json"
    lidc.write_text(json.dumps({"threshold": 0.99, "findings": [
        {**finding, "center_xyz_mm": [57.1, 70.3, -99.1]}, {**finding, "center_xyz_mm": [-105.0, 10.6, -101.4]}]}))
    new = MC.refresh(card, Path("resources/models/nodeview-nodule.onnx"), lidc)
    assert "STALE" not in new and new.count("KEEP") == 4
    assert "2 finding(s), 1 within the nodule radius" in new and "False positives at the operating threshold: 1" in new
    # the other finding sits on a reader's mark of a nodule < 3 mm in the demo's LIDC XML (LUNA16: not a false positive)
    assert "Of those, 1 lie within 5 mm of the readers' marks" in new and "0 false positive(s) by LUNA16's rule" in new
    assert "malignancy 0.10. The low malignancy follows the synthetic rule" in new
    order = ["## What it is", "## In the app: with the proposal re-ranker", "## Training data", "### LIDC-IDRI-0002",
             "## Limits"]
    assert [new.index(h) for h in order] == sorted(new.index(h) for h in order)
    assert "\n\n\n" not in new
    # --lidc-only: the app sections stay as they are, only LIDC-IDRI-0002's is made again
    only = MC.refresh(card, Path("resources/models/nodeview-nodule.onnx"), lidc, lidc_only=True)
    assert only.count("STALE") == 2 and only.count("KEEP") == 4
    assert "2 finding(s), 1 within the nodule radius" in only
