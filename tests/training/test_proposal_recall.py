"""The proposal-recall report: hits as the proposer's, and what a miss lacks (a DoG peak, or a rank)."""

import json

from training.evaluation import proposal_recall as PR


def test_recall_report_tells_missing_peaks_from_low_ranks(tiny_data, tmp_path):
    csv, _ = tiny_data
    out = tmp_path / "recall.json"
    args = PR.get_args_parser().parse_args(["--data", str(csv), "--max-candidates", "3", "--out", str(out)])
    summary = PR.main(args)
    rows = json.loads(out.read_text())["nodules"]
    assert summary["all"]["n"] == len(rows) == 12
    # a hit needs a candidate within the radius, so a DoG peak within it
    assert all(r["peak_within_radius"] for r in rows if r["hit"])
    assert summary["peak_within_radius"]["hits"] >= summary["all"]["hits"]
    # with 3 candidates a scan some nodules are left out although a peak lies on them: ranked below
    low = [r for r in rows if not r["hit"] and r["peak_within_radius"]]
    assert low and all(r["best_peak_rank"] >= 0 for r in low)
    assert all(r["best_peak_rank"] is None for r in rows if not r["peak_within_radius"])
