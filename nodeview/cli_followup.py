"""``nodeview detect CURRENT --prior PRIOR | --prior-json PRIOR.json|PRIOR_SR.dcm``: detection with a comparison.

The current study is detected as usual. ``--prior auto`` finds the prior beside the current study
(same PatientID, earlier StudyDate: :mod:`nodeview.core.followup.priors`). The prior's findings
come from its findings JSON or the DICOM SR NodeView wrote for it (``--prior-json``:
``nodeview.findings/1`` or ``/2``, or a Comprehensive 3D SR, :mod:`nodeview.core.export.prior_sr`)
or, without one, from detecting on the prior study (``--prior``). With the prior's images the two
studies are registered on the lungs and the findings matched through that registration; with only
the prior's JSON or SR they are matched in scanner coordinates (no registration: a caveat says so).
The output is ``nodeview.findings/2`` (:mod:`nodeview.core.followup.findings_doc`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import RESEARCH_NOTICE
from .core.errors import InputError

NO_REGISTRATION = (
    "No prior images: the findings were matched in scanner coordinates without registration; a patient "
    "positioned differently gives false new and resolved findings. Give --prior PRIOR to register."
)


AUTO = "auto"


def find_prior(paths: list[str], volume: Any) -> tuple[str, str]:
    """``--prior auto``: the newest earlier study of the same patient beside the current one
    (:func:`nodeview.core.followup.priors.find_local_priors`); (folder, series UID)."""
    from .core.followup.priors import find_local_priors

    found = find_local_priors(paths, volume.patient, volume.series_uid)
    if not found:
        raise InputError(
            "--prior auto: no earlier study of the same patient was found beside the current one "
            "(same PatientID, earlier StudyDate, in the folder that holds it)"
        )
    others = f"; {len(found) - 1} older one(s) not used" if len(found) > 1 else ""
    print(f"nodeview: prior found: CT of {found[0].label}{others}", file=sys.stderr)
    return found[0].path, found[0].series_uid


def run_detection_with_prior(
    args: argparse.Namespace, model: str
) -> tuple[Any, Any, Any, float, Any, dict[str, float], Any]:
    """Detect on the current study and compare with the prior. Returns (volume, result, comparison,
    threshold, detector, timings, prior volume or None)."""
    from .core.detect.detector import Detector
    from .core.export.prior_sr import read_prior_findings
    from .core.followup.compare import compare_findings, compare_studies
    from .core.followup.growth import parse_study_date
    from .core.followup.registration import Registration
    from .core.io.study import open_study

    if args.prior_date and parse_study_date(args.prior_date) is None:
        raise InputError(f"--prior-date {args.prior_date!r} is not a date (YYYY-MM-DD)")
    prior_file = read_prior_findings(args.prior_json) if args.prior_json else None
    timings: dict[str, float] = {}
    t = time.perf_counter()
    volume = open_study(args.paths, series_uid=args.series)
    timings["load"] = time.perf_counter() - t
    prior_series = None
    if args.prior == AUTO:  # before the detection: no prior, no work
        args.prior, prior_series = find_prior(args.paths, volume)
    detector = Detector(model)
    t = time.perf_counter()
    result = detector.detect(volume, min_score=0.0)
    timings["detect"] = time.perf_counter() - t
    threshold = detector.info.threshold if args.min_score is None else args.min_score
    current = [f for f in result.findings if f.score >= threshold]
    prior_volume = None
    if args.prior:
        t = time.perf_counter()
        prior_volume = open_study([args.prior], series_uid=prior_series)
        timings["load_prior"] = time.perf_counter() - t
        if prior_file is not None:
            prior, below = list(prior_file.findings), list(prior_file.below_threshold)
        else:
            t = time.perf_counter()
            prior_result = detector.detect(prior_volume, min_score=0.0)
            timings["detect_prior"] = time.perf_counter() - t
            prior = [f for f in prior_result.findings if f.score >= threshold]
            below = [f for f in prior_result.findings if 0.5 * threshold <= f.score < threshold]
        t = time.perf_counter()
        comparison = compare_studies(
            volume, prior_volume, current, prior, prior_candidates=below, prior_date=args.prior_date or None
        )
        timings["register_match"] = time.perf_counter() - t
    else:
        assert prior_file is not None
        comparison = compare_findings(
            current,
            prior_file.findings,
            Registration.identity(),
            volume.patient.study_date,
            args.prior_date or prior_file.study_date,
            prior_candidates=prior_file.below_threshold,
            prior_series_uid=prior_file.series_uid,
            source=prior_file.source,
            caveats=[NO_REGISTRATION],
            prior_frame_of_reference_uid=prior_file.frame_of_reference_uid,
            prior_study_uid=prior_file.study_uid,
        )
    return volume, result, comparison, threshold, detector, timings, prior_volume


def detect_with_prior(args: argparse.Namespace, model: str) -> int:
    """``nodeview detect CURRENT --prior ... [--json OUT | --report-dir DIR]``."""
    from .core.followup.findings_doc import findings_document

    volume, result, comparison, threshold, _, timings, prior_volume = run_detection_with_prior(args, model)
    if getattr(args, "dicom_out", None):  # the SR (with the comparison) and SEG of the current study
        from .cli_dicom import export_dicom_outputs

        prior = (args.prior, prior_volume) if prior_volume is not None else None
        export_dicom_outputs(args, args.paths, volume, result, threshold, comparison=comparison, prior=prior)
    if args.report_dir:
        from .core.report.render import write_report

        written = write_report(
            args.report_dir,
            volume,
            result,
            {},
            threshold,
            anonymize=args.anonymize,
            overwrite=args.overwrite,
            timings=timings,
            comparison=comparison,
        )
        for p in written:
            print(p)
    else:
        doc = findings_document(result, volume, threshold, args.anonymize, timings, comparison)
        text = json.dumps(doc, indent=2)
        if args.json:
            out = Path(args.json)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(text + "\n")
            tmp.replace(out)
        else:
            print(text)
    counts: dict[str, int] = {}
    for change in comparison.changes.values():
        counts[change.change] = counts.get(change.change, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items())) or "no findings"
    reg = comparison.registration
    quality = f"; lungs within {reg.surface_after_mm:.1f} mm after registration" if reg.surface_after_mm else ""
    print(
        f"{comparison.comparison_line()} {summary}, {len(comparison.resolved)} resolved{quality}. {RESEARCH_NOTICE}",
        file=sys.stderr,
    )
    for caveat in (*result.caveats, *comparison.caveats):
        print(f"nodeview: caution: {caveat}", file=sys.stderr)
    return 0
