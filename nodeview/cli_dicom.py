"""``--dicom-out`` of ``nodeview detect``: the DICOM SR, SEG (and Secondary Capture) of one study.

Shared by :mod:`nodeview.cli` and :mod:`nodeview.cli_followup` (its own module, so neither imports
the other back)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def export_dicom_outputs(
    args: argparse.Namespace,
    paths: Sequence[str],
    volume: Any,
    result: Any,
    threshold: float,
    *,
    comparison: Any = None,
    prior: tuple[str, Any] | None = None,
) -> list[Path]:
    """``--dicom-out``: the SR, SEG (and with ``--secondary-capture`` the report pages) of one study;
    the files written go to stdout, one per line, when this is the only output (no ``--report-dir``).
    With ``comparison`` (``--prior``) the SR carries it; ``prior`` = (path, volume) of the prior's
    images, referenced as other evidence when they are DICOM."""
    from .core.export import NotExportableError, export_dicom, read_source_series

    source = read_source_series(paths, volume)
    prior_source = None
    if comparison is not None and prior is not None:
        try:
            prior_source = read_source_series([prior[0]], prior[1])
        except NotExportableError:  # a research-format prior: the SR names its date, not its images
            prior_source = None
    done = export_dicom(
        args.dicom_out, volume, result, {}, threshold, source,
        anonymize=args.anonymize, secondary_capture=args.secondary_capture,
        comparison=comparison, prior_source=prior_source,
    )  # fmt: skip
    for note in done.notes:
        print(f"nodeview: note: {note}", file=sys.stderr)
    if not args.report_dir:
        print(f"DICOM: {len(done.findings)} finding(s) in the SR -> {args.dicom_out}", file=sys.stderr)
        for p in done.paths:
            print(p, file=sys.stderr)
    return done.paths
