"""Command-line interface: ``nodeview [PATH...] [--screenshot OUT.png]``, ``nodeview info PATH [--json]``,
``nodeview detect PATH... [--json OUT | --report-dir DIR [--overwrite]] [--anonymize] [--dicom-out DIR]``,
``nodeview detect CURRENT --prior PRIOR | --prior-json PRIOR.json|PRIOR_SR.dcm [--prior-date D] [...]`` (follow-up:
:mod:`nodeview.cli_followup`), ``nodeview CURRENT --prior PRIOR`` (the GUI with the prior beside),
``nodeview pacs echo|query|series|retrieve|send|cache ...`` and ``nodeview node ...`` (see :mod:`.cli_pacs`).
``nodeview batch ROOT_OR_LIST --out DIR [--workers N | --scheduler tcp://HOST:8786]`` (extra ``batch``).

Exit codes: 0 success, 2 bad input (one line on stderr), 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import RESEARCH_NOTICE, __version__
from .cli_dicom import export_dicom_outputs
from .core.errors import NodeViewError
from .core.outputs import check_output_path, input_identities, write_file_set

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
log = logging.getLogger("nodeview")


def _info(args: argparse.Namespace) -> int:
    from .core.io.dicom import load_series
    from .core.io.sitk import read_image_file
    from .core.io.study import scan

    t0 = time.perf_counter()
    source = scan(args.paths)
    if source.image_file is not None:
        volume = read_image_file(source.image_file)
        report: dict[str, Any] = {"files": 1, "skipped": 0, "series": [], "default": volume.summary()}
    else:
        assert source.discovery is not None
        discovery = source.discovery
        chosen = discovery.find(args.series) if args.series else discovery.default_series()
        report = discovery.to_dict()
        report["default_series_uid"] = chosen.series_uid
        if args.no_pixels:
            report["default"] = chosen.to_dict()
        else:
            volume = load_series(chosen)
            report["default"] = volume.summary()
    report["seconds"] = round(time.perf_counter() - t0, 3)
    if args.json:
        sys.stdout.write(_strict_json(report) + "\n")
    else:
        _print_info(report)
    return EXIT_OK


def _detect(args: argparse.Namespace) -> int:
    from .core.detect.detector import Detector, ModelError
    from .core.detect.models import default_model_path
    from .core.followup.findings_doc import findings_document
    from .core.io.study import open_study

    model = args.model or default_model_path()
    if not os.path.isfile(model):
        raise ModelError(
            f"no model at {model}: pass --model FILE.onnx (train one with training/, see training/README.md)"
        )
    if args.prior or args.prior_json:
        from .cli_followup import detect_with_prior

        return detect_with_prior(args, model)
    if args.report_dir:
        return _detect_reports(args, model)
    out: Path | None = None
    if args.json:  # refused before any work: an input file, an existing file (without --overwrite), no folder
        out = check_output_path(args.json, input_identities(args.paths), args.overwrite, "--json output")
    t0 = time.perf_counter()
    volume = open_study(args.paths, series_uid=args.series)
    t_load = time.perf_counter() - t0
    detector = Detector(model)
    t1 = time.perf_counter()
    result = detector.detect(volume, min_score=0.0)
    t_detect = time.perf_counter() - t1
    threshold = detector.info.threshold if args.min_score is None else args.min_score
    doc = findings_document(result, volume, threshold, args.anonymize, {"load": t_load, "detect": t_detect})
    if args.dicom_out:
        export_dicom_outputs(args, args.paths, volume, result, threshold)
    text = _strict_json(doc)
    if out is not None:
        write_file_set([(out, (text + "\n").encode("utf-8"))], overwrite=args.overwrite, what="--json output")
    else:
        print(text)
    shown = doc["findings"]
    print(
        f"{len(shown)} finding(s) with score >= {threshold:g} among {result.n_candidates} candidates "
        f"(load {t_load:.1f} s, detect {t_detect:.1f} s). {RESEARCH_NOTICE}",
        file=sys.stderr,
    )
    for caveat in result.caveats:
        print(f"nodeview: caution: {caveat}", file=sys.stderr)
    return EXIT_OK


def _strict_json(doc: object) -> str:
    """JSON text; a value that is not a finite number is an error, never ``NaN``/``Infinity``."""
    from .core.detect.detector import ModelError

    try:
        return json.dumps(doc, indent=2, allow_nan=False)
    except ValueError as exc:
        raise ModelError(
            f"the results hold a value that is not a finite number ({exc}): wrong or broken model"
        ) from exc


def _detect_reports(args: argparse.Namespace, model: str) -> int:
    """One report per PATH (each PATH is a study); a failed study does not stop the others.

    Progress on stderr, one line per study (``[k/n] PATH ... ok`` or ``FAILED: reason``); the
    files written on stdout, one per line. Exit 0 when every study has its report, 2 when a study
    failed (bad input, report exists without --overwrite), 1 when one hit an internal error.
    """
    from .core.detect.detector import Detector, check_detectable
    from .core.io.study import open_study
    from .core.outputs import check_writable_folder
    from .core.report.render import check_report_target, default_stem, write_report

    check_writable_folder(Path(args.report_dir), "report")  # before any work
    detector = Detector(model)  # a bad model stops the run before any study
    n = len(args.paths)
    failed = internal = 0
    for k, path in enumerate(args.paths, start=1):
        status = _StudyProgress(f"[{k}/{n}] {path}")
        try:
            t0 = time.perf_counter()
            volume = open_study([path], series_uid=args.series, progress=status.stage(0, 20))
            t_load = time.perf_counter() - t0
            check_report_target(args.report_dir, default_stem(volume), args.overwrite)  # before detection
            check_detectable(volume)
            t1 = time.perf_counter()
            result = detector.detect(volume, progress=status.stage(20, 90), min_score=0.0)
            t_detect = time.perf_counter() - t1
            threshold = detector.info.threshold if args.min_score is None else args.min_score
            written = write_report(
                args.report_dir,
                volume,
                result,
                {},
                threshold,
                anonymize=args.anonymize,
                overwrite=args.overwrite,
                timings={"load": t_load, "detect": t_detect},
                progress=status.stage(90, 100),
            )
            dicom = export_dicom_outputs(args, [path], volume, result, threshold) if args.dicom_out else []
        except NodeViewError as exc:
            failed += 1
            status.done(f"FAILED: {exc}")
        except Exception as exc:  # an internal error: say so, keep going with the other studies
            internal += 1
            log.debug("internal error", exc_info=True)
            status.done(f"FAILED: internal error: {type(exc).__name__}: {exc}")
        else:
            shown = sum(1 for f in result.findings if f.score >= threshold)
            pages = len(written) - 1
            status.done(f"ok: {shown} finding(s), {pages} page(s) -> {written[0].name}")
            for caveat in result.caveats:
                print(f"    caution: {caveat}", file=sys.stderr)
            for p in [*written, *dicom]:
                print(p)
    ok = n - failed - internal
    print(f"{ok} of {n} report(s) written to {args.report_dir}. {RESEARCH_NOTICE}", file=sys.stderr)
    if internal:
        return EXIT_INTERNAL
    return EXIT_BAD_INPUT if failed else EXIT_OK


def _batch(args: argparse.Namespace) -> int:
    """Archive-scale detection on Dask (:mod:`nodeview.batch`). Exit 0 when every study has its
    outputs, 2 when a study failed (listed in DIR/summary.csv with its reason)."""
    from .core.detect.detector import ModelError
    from .core.detect.models import default_model_path

    try:
        import distributed  # noqa: F401

        from .batch import BatchOptions, run_batch
    except ImportError as exc:  # the desktop installer leaves Dask and nodeview.batch out
        raise NodeViewError(BATCH_EXTRA_MESSAGE) from exc
    if not args.verbose:  # Dask logs every worker start and stop at INFO
        logging.getLogger("distributed").setLevel(logging.ERROR)
    model = args.model or default_model_path()
    if not os.path.isfile(model):
        raise ModelError(f"no model at {model}: pass --model FILE.onnx")
    opts = BatchOptions(
        source=args.source,
        out_dir=args.out,
        model=model,
        workers=args.workers,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        anonymize=args.anonymize,
        min_score=args.min_score,
        max_voxels=args.max_voxels,
        memory_limit=args.memory_limit,
        threads=args.threads,
        dashboard=args.dashboard,
    )
    result = run_batch(opts)
    print(f"{result.ok} of {len(result.rows)} studies ok. {RESEARCH_NOTICE}", file=sys.stderr)
    return EXIT_OK if result.failed == 0 else EXIT_BAD_INPUT


class _StudyProgress:
    """``[k/n] PATH ... 42%`` on one stderr line (percentages only on a terminal), then the outcome."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tty = sys.stderr.isatty()
        self.last = -1
        self._show(0)

    def _show(self, pct: int) -> None:
        if self.tty:
            sys.stderr.write(f"\r{self.prefix} ... {pct:3d}%")
            sys.stderr.flush()

    def stage(self, lo: int, hi: int) -> Callable[[int, int], None]:
        """A progress callback mapping its 0..total onto ``lo..hi`` percent of this study."""

        def progress(done: int, total: int) -> None:
            pct = lo + (hi - lo) * done // max(total, 1)
            if pct != self.last:
                self.last = pct
                self._show(pct)

        return progress

    def done(self, outcome: str) -> None:
        start, clear = ("\r", "\x1b[K") if self.tty else ("", "")
        sys.stderr.write(f"{start}{self.prefix} ... {outcome}{clear}\n")
        sys.stderr.flush()


def _print_info(report: dict[str, Any]) -> None:
    print(f"{report['files']} file(s), {report['skipped']} skipped", end="")
    reasons = report.get("skipped_reasons") or {}
    print(f" ({'; '.join(f'{n}x {r}' for r, n in reasons.items())})" if reasons else "")
    for s in report["series"]:
        mark = "*" if s["series_uid"] == report.get("default_series_uid") else " "
        loc = " [localizer]" if s["localizer"] else ""
        print(
            f"{mark} {s['modality']:<4} {s['images']:>4} img  size zyx {tuple(s['size_zyx'])}  "
            f"spacing zyx {tuple(s['spacing_zyx_mm'])} mm  {s['description'] or '(no description)'}{loc}"
        )
        print(f"    UID {s['series_uid']}")
        for w in s["warnings"]:
            print(f"    ! {w}")
    d = report["default"]
    print("Default series geometry:")
    for key in (
        "shape_zyx",
        "size_zyx",
        "spacing_zyx_mm",
        "origin_xyz_mm",
        "orientation",
        "patient_position",
        "hu_range",
    ):
        if key in d:
            print(f"  {key}: {d[key]}")
    for w in d.get("warnings", []):
        print(f"  ! {w}")
    print(f"({report['seconds']} s)  {RESEARCH_NOTICE}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nodeview", description=f"NodeView lung-CT viewer. {RESEARCH_NOTICE}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="list the series at PATH and the geometry of the default one")
    _add_verbose(info)
    info.add_argument("paths", nargs="+", metavar="PATH", help="DICOM folder or files, or a .mhd/.nii/.nrrd file")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--series", metavar="UID", help="describe this series instead of the default")
    info.add_argument("--no-pixels", action="store_true", help="headers only: do not load the default series")
    info.set_defaults(func=_info)
    detect = sub.add_parser(
        "detect",
        help="detect lung nodules with the ONNX model; print or write JSON, or write PNG reports",
        description="Without --report-dir, all PATHs together are one study and its findings JSON is printed "
        "(or written with --json). With --report-dir, each PATH is a separate study: one PNG report (and its "
        "JSON sidecar) per study; a study that fails is reported and skipped, and the exit code is 2 at the "
        f"end. {RESEARCH_NOTICE}",
    )
    _add_verbose(detect)
    detect.add_argument("paths", nargs="+", metavar="PATH", help="DICOM folder or files, or a .mhd/.nii/.nrrd file")
    detect.add_argument("--model", metavar="M", help="ONNX model (default: the bundled model)")
    detect.add_argument("--json", metavar="OUT", help="write the nodeview.findings/2 JSON to OUT")
    detect.add_argument(
        "--min-score",
        type=float,
        metavar="S",
        help="report findings with score >= S (default: the model's operating threshold; 0: all)",
    )
    detect.add_argument("--series", metavar="UID", help="use this series instead of the default")
    detect.add_argument(
        "--anonymize",
        action="store_true",
        help="leave patient name, ID, birth date and accession number out of the output",
    )
    detect.add_argument(
        "--report-dir",
        metavar="DIR",
        help="write a PNG report and a JSON sidecar per study (each PATH is one study) into DIR",
    )
    detect.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --json file or existing reports (input files are never replaced)",
    )
    detect.add_argument(
        "--dicom-out",
        metavar="DIR",
        help="also write a DICOM SR (TID 1500) and SEG of the reported findings into DIR (new series of the study; "
        "never replaces files)",
    )
    detect.add_argument(
        "--secondary-capture",
        action="store_true",
        help="with --dicom-out: the PNG report pages as DICOM Secondary Capture images too",
    )
    detect.add_argument(
        "--prior",
        metavar="PRIOR",
        help="compare with this prior study (DICOM folder or image file): registered on the lungs, findings "
        "matched; each finding gets change, prior and vdt_days, prior-only findings are listed as resolved. "
        "'auto': the newest earlier study of the same patient (PatientID) in the folder holding PATH",
    )
    detect.add_argument(
        "--prior-json",
        metavar="PRIOR.json|PRIOR_SR.dcm",
        help="the prior's findings (nodeview.findings/1 or /2, or the DICOM SR NodeView wrote for the prior) "
        "instead of detecting on the prior; without --prior the findings are matched in scanner coordinates, "
        "without registration",
    )
    detect.add_argument("--prior-date", metavar="YYYY-MM-DD", help="the prior's study date when its files lack one")
    detect.set_defaults(func=_detect)
    from .cli_pacs import add_commands

    add_commands(sub)  # pacs echo|query|series|retrieve|send|cache, node
    _add_batch_parser(sub)
    return parser


BATCH_EXTRA_MESSAGE = (
    "nodeview batch needs the optional 'batch' extra (Dask distributed): pip install 'nodeview[batch]'"
)
#: = nodeview.batch.plan.DEFAULT_MAX_VOXELS (not imported here: the desktop build has no nodeview.batch)
DEFAULT_MAX_VOXELS = 1024 * 512 * 512


def _add_batch_parser(sub: Any) -> None:
    batch = sub.add_parser(
        "batch",
        help="detect nodules in every CT series under a folder tree or list file, on Dask (extra 'batch')",
        description="Every CT series under ROOT (or each path listed in a .txt/.list file, one a line) is a study: "
        "its PNG report and findings JSON go to a folder of its own in --out, and DIR/summary.csv lists every study. "
        "Resumable: DIR/manifest.jsonl records finished studies by content, and a rerun skips them. Runs on a local "
        "Dask cluster (--workers N) or an existing one (--scheduler). Needs: pip install 'nodeview[batch]'. "
        f"{RESEARCH_NOTICE}",
    )
    batch.add_argument("source", metavar="ROOT_OR_LIST", help="folder tree, DICOM/volume file, or a .txt list of paths")
    batch.add_argument("--out", required=True, metavar="DIR", help="output folder (created; never inside the input)")
    engine = batch.add_mutually_exclusive_group()
    engine.add_argument("--workers", type=int, metavar="N", help="start a local cluster of N worker processes")
    engine.add_argument("--scheduler", metavar="tcp://HOST:8786", help="use a running Dask cluster")
    batch.add_argument("--retry-failed", action="store_true", help="rerun the studies the manifest lists as failed")
    batch.add_argument("--model", metavar="M", help="ONNX model (default: the bundled model)")
    batch.add_argument("--anonymize", action="store_true", help="no patient data, source paths or UIDs in the outputs")
    batch.add_argument("--min-score", type=float, metavar="S", help="report findings with score >= S")
    batch.add_argument(
        "--max-voxels",
        type=int,
        default=DEFAULT_MAX_VOXELS,
        metavar="V",
        help=f"refuse series larger than this many voxels (default {DEFAULT_MAX_VOXELS}: 1024 x 512 x 512)",
    )
    batch.add_argument(
        "--memory-limit", default="auto", metavar="BYTES", help="per local worker, e.g. 4GB (default: memory / N)"
    )
    batch.add_argument("--threads", type=int, default=0, metavar="T", help="threads per study (default: cores / N)")
    batch.add_argument("--dashboard", action="store_true", help="serve the Dask dashboard of a local cluster (:8787)")
    batch.set_defaults(func=_batch)


SUBCOMMANDS = ("info", "detect", "pacs", "node", "batch")


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the subcommand too (``nodeview info -v PATH``); before it works as well."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress to stderr"
    )


def build_gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nodeview",
        description=f"NodeView lung-CT viewer. {RESEARCH_NOTICE} Subcommands: nodeview info PATH --help.",
    )
    parser.add_argument("--version", action="version", version=f"nodeview {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("paths", nargs="*", metavar="PATH", help="DICOM folder or files, or a .mhd/.nii/.nrrd file")
    parser.add_argument("--screenshot", metavar="OUT.png", help="open PATH, render, save a screenshot and exit")
    parser.add_argument("--series", metavar="UID", help="open this series instead of the default")
    parser.add_argument("--window", choices=["lung", "mediastinum", "bone", "soft tissue"], help="window preset")
    parser.add_argument("--slab", type=float, metavar="MM", help="thick-slab MIP thickness in mm (5, 10, 15)")
    parser.add_argument("--size", metavar="WxH", help="window size in pixels, e.g. 1600x900")
    parser.add_argument(
        "--detect", action="store_true", help="detect nodules once the study is open (--screenshot waits for them)"
    )
    parser.add_argument(
        "--prior",
        metavar="PRIOR",
        help="open PRIOR as the prior study of PATH: registered and shown side by side ('auto': the newest "
        "earlier study of the same patient in the folder holding PATH)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --screenshot file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    is_sub = first in SUBCOMMANDS and all(a in ("-v", "--verbose") for a in argv[: argv.index(first)])
    parser = build_parser() if is_sub else build_gui_parser()
    args = parser.parse_args(argv)
    if is_sub and args.command == "detect":
        if args.report_dir and args.json:
            parser.error("--json and --report-dir do not go together: --report-dir writes a JSON sidecar per report")
        if args.overwrite and not (args.report_dir or args.json):
            parser.error("--overwrite applies to --json OUT or --report-dir DIR")
        if args.secondary_capture and not args.dicom_out:
            parser.error("--secondary-capture only applies to --dicom-out")
        if (args.prior or args.prior_json) and args.report_dir and len(args.paths) != 1:
            parser.error("--prior with --report-dir compares one study: give one PATH")
        if args.prior_date and not (args.prior or args.prior_json):
            parser.error("--prior-date needs --prior or --prior-json")
    _setup_logging(args.verbose)
    previous_term = _exit_on_sigterm()
    try:
        if not is_sub:
            return _gui(args)
        return int(args.func(args))
    except NodeViewError as exc:
        print(f"nodeview: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except RecursionError as exc:  # a pathological input nested too deep for the parser
        print(f"nodeview: the input is nested too deeply to read ({type(exc).__name__})", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print("nodeview: not enough memory for this input (see NODEVIEW_MAX_VOXELS)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # an internal error: say so in one line, details with --verbose
        log.debug("internal error", exc_info=True)
        print(f"nodeview: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if args.verbose:
            raise
        return EXIT_INTERNAL
    finally:
        _restore_sigterm(previous_term)


def _setup_logging(verbose: bool) -> None:
    """INFO to stderr with ``-v``, else WARNING; library warnings (pydicom's "Invalid value for VR
    UI", ...) go through logging and show only with ``-v``."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_LibraryFilter(verbose))


class _LibraryFilter(logging.Filter):
    """Library messages (pydicom, Python warnings): hidden below ERROR without ``-v``; always with
    quoted values replaced by ``<value>``, because they quote raw header bytes, which can hold
    patient data. pydicom resets its logger's level when imported, so this filters at the handler."""

    _LIBRARIES = ("pydicom", "py.warnings")
    _QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self._LIBRARIES):
            return True
        if not self.verbose and record.levelno < logging.ERROR:
            return False
        record.msg = self._QUOTED.sub("<value>", record.getMessage())[:300]
        record.args = None
        return True


def _exit_on_sigterm() -> Any:
    """A SIGTERM unwinds like Ctrl+C (temporary files removed, half-written sets rolled back)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, terminate)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _gui(args: argparse.Namespace) -> int:
    from .core.io.dicom import collect_input_files
    from .qt.app import run_gui

    if args.prior and not args.paths:
        print("nodeview: --prior needs the current study's PATH", file=sys.stderr)
        return EXIT_BAD_INPUT
    # a missing path, a FIFO or a device: one line, exit 2
    collect_input_files([*args.paths, *([args.prior] if args.prior and args.prior != "auto" else [])])
    if args.screenshot:  # never onto an input file; an existing file only with --overwrite
        check_output_path(args.screenshot, input_identities(args.paths), args.overwrite, "screenshot")
    size = None
    if args.size:
        w, _, h = args.size.lower().partition("x")
        size = (int(w), int(h))
    return run_gui(
        args.paths,
        screenshot=args.screenshot,
        overwrite=args.overwrite,
        series_uid=args.series,
        window_preset=args.window,
        slab_mm=args.slab,
        size=size,
        detect=args.detect,
        prior=args.prior,
    )
