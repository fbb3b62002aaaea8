"""``nodeview pacs echo|query|series|retrieve|send|cache`` and ``nodeview node`` (issue 23).

A PACS is given as ``--node HOST:PORT:AET`` (or ``AET@HOST:PORT``), or as a DICOMweb service
``--url http://HOST:PORT/dicom-web`` (QIDO-RS query, WADO-RS retrieve, STOW-RS send); NodeView's own AE title and
storage port as ``--ae`` / ``--port`` (the port is used by C-MOVE and by the node). Errors are one
line on stderr with exit code 2 (see :mod:`nodeview.cli`). Query results go to stdout (they are what
was asked for); logs never carry patient data.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any

from . import RESEARCH_NOTICE

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _local(args: argparse.Namespace) -> Any:
    from .core.pacs import LocalAE

    return LocalAE(args.ae, args.port)


def _node(args: argparse.Namespace) -> Any:
    from .core.pacs import DicomWebNode, PacsNode

    if getattr(args, "url", None):
        return DicomWebNode(args.url)
    return PacsNode.parse(args.node)


def _echo(args: argparse.Namespace) -> int:
    from .core.pacs import echo

    node = _node(args)
    seconds = echo(node, _local(args), args.timeout)
    print(f"{'QIDO-RS' if args.url else 'C-ECHO'} {node if args.url else args.node}: ok ({1000 * seconds:.0f} ms)")
    return EXIT_OK


def _query(args: argparse.Namespace) -> int:
    from .core.pacs import StudyQuery, find_studies
    from .core.pacs.cache import StudyCache
    from .core.pacs.net import parse_date_option

    query = StudyQuery(
        patient_name=args.patient_name or "",
        patient_id=args.patient_id or "",
        study_date=parse_date_option(args.date) if args.date else "",
        modality=args.modality or "",
        accession_number=args.accession or "",
        description=args.description or "",
    )
    rows = find_studies(_node(args), query, _local(args), args.timeout)
    cache = StudyCache(args.cache)
    if args.json:
        docs = [{**r.__dict__, "modalities": list(r.modalities), "cached": cache.is_cached(r.study_uid)} for r in rows]
        json.dump(docs, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    for r in rows:
        mark = "*" if cache.is_cached(r.study_uid) else " "
        print(
            f"{mark} {r.date or '--------'}  {','.join(r.modalities) or '-':<6} {r.n_series or 0:>3} series "
            f"{r.n_images or 0:>5} img  {r.patient_name:<24} {r.patient_id:<12} {r.description}"
        )
        print(f"    {r.study_uid}")
    print(f"{len(rows)} study(ies) (* = in the local cache)", file=sys.stderr)
    return EXIT_OK


def _series(args: argparse.Namespace) -> int:
    from .core.pacs import find_series

    rows = find_series(_node(args), args.study_uid, _local(args), args.timeout)
    for r in rows:
        print(
            f"{r.number if r.number is not None else '-':>4} {r.modality:<4} {r.n_images or 0:>5} img  {r.description}"
        )
        print(f"     {r.series_uid}")
    return EXIT_OK


def _retrieve(args: argparse.Namespace) -> int:
    from .core.pacs import StudyCache, retrieve

    cache = StudyCache(args.cache, int(args.cache_limit_gb * 1024**3))
    folder = cache.folder(args.study_uid)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rretrieving {done}/{total}")

    result = retrieve(
        _node(args), args.study_uid, folder, _local(args), series_uid=args.series, method=args.method,
        timeout_s=args.timeout, progress=progress,
    )  # fmt: skip
    series = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if result.n_failed == 0:  # a study with missing images is not marked cached (retrieve it again)
        cache.mark_complete(args.study_uid, series, result.n_received)
    removed = cache.enforce_limit(keep=args.study_uid)
    print(
        f"\r{result.method}: {result.n_received} instance(s) received, {result.n_failed} failed"
        + (f"; {len(removed)} older study(ies) removed from the cache" if removed else ""),
        file=sys.stderr,
    )
    print(folder)
    return EXIT_OK if result.n_failed == 0 else EXIT_BAD_INPUT


def _send(args: argparse.Namespace) -> int:
    from .core.io.dicom import iter_input_files
    from .core.pacs import send

    files = iter_input_files(args.paths)
    result = send(_node(args), files, _local(args), args.timeout)
    for line in result.failed:
        print(f"nodeview: not sent: {line}", file=sys.stderr)
    print(f"{result.n_sent} of {len(files)} object(s) sent to {args.url or args.node}", file=sys.stderr)
    return EXIT_OK if not result.failed else EXIT_BAD_INPUT


def _cache(args: argparse.Namespace) -> int:
    from .core.pacs import StudyCache

    cache = StudyCache(args.cache)
    if args.clear:
        n = cache.clear()
        print(f"removed {n} cached study folder(s) from {cache.root}")
        return EXIT_OK
    studies = cache.studies()
    for s in studies:
        print(f"{s.size_bytes / 1e6:9.1f} MB  {s.n_instances:>5} img  {s.study_uid}  {s.folder}")
    print(f"{len(studies)} study(ies), {cache.size_bytes() / 1e6:.1f} MB in {cache.root}")
    return EXIT_OK


def _run_node(args: argparse.Namespace) -> int:
    import logging

    from .core.pacs import LocalAE, PacsNode
    from .core.pacs.node import CadNode, NodeEvent

    logging.getLogger("nodeview").setLevel(logging.INFO)

    def report(event: NodeEvent) -> None:
        print(f"{time.strftime('%H:%M:%S')} series {event.key}: {event.status} ({event.detail})", flush=True)

    node = CadNode(
        args.work_dir, LocalAE(args.ae, args.port), PacsNode.parse(args.send_to) if args.send_to else None,
        settle_s=args.settle, max_pending=args.max_pending, model=args.model,
        secondary_capture=args.secondary_capture, keep_images=args.keep_images, on_event=report,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: node._stop.set())
    print(
        f"NodeView CAD node {args.ae} on port {args.port}, queue in {args.work_dir}"
        + (f", results to {args.send_to}" if args.send_to else "")
        + f". {RESEARCH_NOTICE}",
        flush=True,
    )
    node.run_forever()
    return EXIT_OK


def _common(p: argparse.ArgumentParser, node: bool = True) -> None:
    if node:
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--node", metavar="HOST:PORT:AET", help="the PACS (or AET@HOST:PORT)")
        where.add_argument("--url", metavar="URL", help="a DICOMweb PACS instead, e.g. http://pacs:8042/dicom-web")
    p.add_argument("--ae", default="NODEVIEW", metavar="AET", help="NodeView's AE title (default NODEVIEW)")
    p.add_argument("--port", type=int, default=11112, help="NodeView's storage port, for C-MOVE (default 11112)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="connection timeout (default 10 s)")
    p.add_argument("--cache", metavar="DIR", help="study cache (default: NODEVIEW_CACHE_DIR or ~/.cache/nodeview/pacs)")


def add_commands(sub: Any) -> None:
    """Register ``pacs`` and ``node`` on the main parser's subparsers."""
    pacs = sub.add_parser("pacs", help="talk to a PACS: echo, query, series, retrieve, send, cache")
    verbs = pacs.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("echo", help="C-ECHO: can NodeView talk to this PACS?")
    _common(p)
    p.set_defaults(func=_echo)
    p = verbs.add_parser("query", help="find studies (C-FIND); * marks studies already in the cache")
    _common(p)
    p.add_argument("--patient-name", metavar="NAME", help="patient name, * and ? wildcards (e.g. 'DOE*')")
    p.add_argument("--patient-id", metavar="ID")
    p.add_argument("--date", metavar="WHEN", help="today, yesterday, last7, YYYYMMDD or YYYYMMDD-YYYYMMDD")
    p.add_argument("--modality", metavar="MOD", help="e.g. CT")
    p.add_argument("--accession", metavar="ACC")
    p.add_argument("--description", metavar="TEXT", help="study description (wildcards allowed)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_query)
    p = verbs.add_parser("series", help="list the series of a study")
    _common(p)
    p.add_argument("study_uid", metavar="STUDY_UID")
    p.set_defaults(func=_series)
    p = verbs.add_parser("retrieve", help="retrieve a study (or --series) into the cache; prints the folder")
    _common(p)
    p.add_argument("study_uid", metavar="STUDY_UID")
    p.add_argument("--series", metavar="UID", help="only this series")
    p.add_argument("--method", choices=["auto", "get", "move", "wado"], default="auto",
                   help="C-GET, C-MOVE to --ae/--port, or auto: C-GET then C-MOVE (default); --url: WADO")  # fmt: skip
    p.add_argument("--cache-limit-gb", type=float, default=20.0, help="cache size limit (default 20 GB)")
    p.set_defaults(func=_retrieve)
    p = verbs.add_parser("send", help="C-STORE (--url: STOW-RS) files (e.g. the SR and SEG of detect --dicom-out)")
    _common(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders")
    p.set_defaults(func=_send)
    p = verbs.add_parser("cache", help="list the local study cache, or --clear it")
    _common(p, node=False)
    p.add_argument("--clear", action="store_true", help="remove every cached study")
    p.set_defaults(func=_cache)

    node = sub.add_parser(
        "node",
        help="headless CAD node: receive CT series, detect, send SR + SEG back",
        description="A storage SCP that receives CT series, runs detection when a series is complete (no new "
        "image for --settle seconds), and sends the TID 1500 SR and the SEG to --send-to. The queue is on disk "
        f"(--work-dir): the node resumes after a restart. {RESEARCH_NOTICE}",
    )
    node.add_argument("--ae", default="NODEVIEW", metavar="AET", help="AE title to answer to (default NODEVIEW)")
    node.add_argument("--port", type=int, default=11112, help="port to listen on (default 11112)")
    node.add_argument("--send-to", metavar="HOST:PORT:AET", help="where the SR and SEG go")
    node.add_argument("--work-dir", default="nodeview-node", metavar="DIR", help="the on-disk queue")
    node.add_argument("--settle", type=float, default=10.0, metavar="S", help="series complete after S s of quiet")
    node.add_argument("--max-pending", type=int, default=20, metavar="N", help="queue bound, in series")
    node.add_argument("--model", metavar="M", help="ONNX model (default: the bundled model)")
    node.add_argument("--secondary-capture", action="store_true", help="send the report pages too")
    node.add_argument("--keep-images", action="store_true", help="keep received images after detection")
    node.set_defaults(func=_run_node)
