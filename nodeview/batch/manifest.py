"""The batch manifest ``OUT/manifest.jsonl`` and the summary table (no Dask, no Qt).

The manifest is append-only JSON lines, one record per finished study (written, flushed and
fsynced as each result arrives), keyed by the study's content key (:mod:`.plan`). The last
record of a key wins. A run skips keys whose last record is ``ok`` with the same model (its
SHA-256); ``--retry-failed`` also reruns keys whose last record is ``failed``. A line cut short
by a crash is ignored, so an interrupted batch continues where it stopped.

The summary (``summary.csv``, and ``summary.parquet`` when pyarrow is importable) has one row per
study of the batch, from the manifest: :data:`COLUMNS`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..core.outputs import replace_atomically

MANIFEST = "manifest.jsonl"
SUMMARY_CSV = "summary.csv"
SUMMARY_PARQUET = "summary.parquet"
OK, FAILED = "ok", "failed"
COLUMNS = (
    "study",
    "series",
    "slices",
    "findings",
    "top_score",
    "top_malignancy",
    "suggested_category",
    "seconds",
    "status",
    "reason",
    "key",
    "output",
    "model_sha256",
)


class Manifest:
    """``OUT/manifest.jsonl``: read once at start, appended to as results arrive."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.path = Path(out_dir) / MANIFEST
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a crash
                    if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                        self.records[rec["key"]] = rec

    def is_done(self, key: str, model_sha256: str, retry_failed: bool) -> bool:
        rec = self.records.get(key)
        if rec is None or rec.get("model_sha256") != model_sha256:
            return False
        return rec.get("status") == OK or (rec.get("status") == FAILED and not retry_failed)

    def append(self, record: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(dict(record), sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        self.records[str(record["key"])] = dict(record)


def write_summary(out_dir: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> list[Path]:
    """Write ``summary.csv`` (and ``summary.parquet`` with pyarrow) atomically; returns the files."""
    table = [{c: row.get(c, "") for c in COLUMNS} for row in rows]
    table = [{c: ("" if v is None else v) for c, v in r.items()} for r in table]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / SUMMARY_CSV]
    replace_atomically(written[0], buffer.getvalue().encode("utf-8"))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    columns = {c: [r[c] for r in table] for c in COLUMNS}
    for c in ("slices", "findings"):
        columns[c] = [None if v == "" else int(v) for v in columns[c]]
    for c in ("top_score", "top_malignancy", "seconds"):
        columns[c] = [None if v == "" else float(v) for v in columns[c]]
    for c in COLUMNS:
        if c not in ("slices", "findings", "top_score", "top_malignancy", "seconds"):
            columns[c] = [str(v) for v in columns[c]]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    written.append(folder / SUMMARY_PARQUET)
    replace_atomically(written[1], sink.getvalue().to_pybytes())
    return written


__all__ = ["COLUMNS", "FAILED", "MANIFEST", "OK", "SUMMARY_CSV", "SUMMARY_PARQUET", "Manifest", "write_summary"]
