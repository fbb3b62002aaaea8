"""The fuzz suite: every case of :mod:`tests.fuzz.corpus` run as ``python -m nodeview ...`` in a
subprocess with a timeout, judged by the same rules:

* exit 0 (with sane data: strict JSON, no invented slices) or exit 2 with exactly one line on
  stderr; never 1, never a traceback, never a hang (timeout);
* the input files byte-identical afterwards (SHA-256 of every file);
* no patient string (name, its parts, ID, birth date, accession number) in stdout, stderr, or any
  file written or its name;
* nothing written under ``$HOME`` (each run gets an empty one: onnxruntime's telemetry store
  ``~/.cache/Microsoft`` would show up there).

The cases run on a small thread pool (each one a separate process) when the first test asks for
their outcomes; each case is then one test. ``tests/fuzz/README.md`` lists the classes.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, ZOO

from . import corpus
from .corpus import CASES, SECRETS, Bases, Case, Setup

pytest.importorskip("onnx")

#: Seconds one run may take before it counts as a hang.
TIMEOUT_S = 120
WORKERS = int(os.environ.get("NODEVIEW_FUZZ_WORKERS", "3"))


@dataclass
class Run:
    returncode: int | None  # None: timed out (killed)
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Outcome:
    setup: Setup | None = None
    runs: list[Run] = field(default_factory=list)
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    home: Path | None = None
    error: BaseException | None = None
    seconds: float = 0.0


def _available(case: Case, bases: Bases) -> str | None:
    if case.source == "real" and bases.real is None:
        return "shared real CT (LIDC-IDRI-0002) not found"
    if case.source == "zoo" and not ZOO.exists():
        return "shared DICOM zoo not found"
    if case.name == "special-in-folder-chmod-000" and os.geteuid() == 0:
        return "runs as root: chmod 000 does not stop root (the /proc/self/mem case covers a read that fails)"
    return None


def _hash_tree(paths: list[Path]) -> dict[str, str]:
    out = {}
    for p in paths:
        files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file() and not q.is_symlink())
        for f in files:
            try:
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
            except OSError as exc:
                out[str(f)] = f"unreadable: {exc.errno}"
    return out


def _launch(setup: Setup, cwd: Path, home: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "QT_QPA_PLATFORM": "offscreen",
        **setup.env,
    }
    env.pop("ORT_DISABLE_TELEMETRY", None)  # NodeView must turn it off itself
    limit = setup.fsize_limit

    def preexec() -> None:
        if limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen(
        [sys.executable, "-m", "nodeview", *setup.argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        preexec_fn=preexec,
    )


def _run_case(case: Case, tmp: Path, bases: Bases) -> Outcome:
    outcome = Outcome()
    t0 = time.perf_counter()
    try:
        tmp.mkdir(parents=True)
        setup = case.build(tmp, bases)
        if setup.argv and setup.argv[0] == "detect" and "--anonymize" not in setup.argv:
            setup.argv.append("--anonymize")  # the patient ID belongs in a non-anonymized JSON
        outcome.setup = setup
        outcome.home = tmp / "home"
        outcome.home.mkdir()
        outcome.before = _hash_tree(setup.inputs)
        procs = [(_launch(setup, tmp, outcome.home), time.perf_counter()) for _ in range(setup.parallel)]
        for proc, start in procs:
            try:
                out, err = proc.communicate(timeout=TIMEOUT_S)
                outcome.runs.append(Run(proc.returncode, out, err, time.perf_counter() - start))
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                outcome.runs.append(Run(None, out, err, time.perf_counter() - start))
        outcome.after = _hash_tree(setup.inputs)
    except BaseException as exc:  # reported by the case's own test
        outcome.error = exc
    outcome.seconds = time.perf_counter() - t0
    return outcome


@pytest.fixture(scope="session")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    root = tmp_path_factory.mktemp("fuzz-bases")
    return Bases(
        synthetic=corpus.build_synthetic(root / "synthetic"),
        real=corpus.build_real(root / "real"),
        model=corpus.build_model(root / "model.onnx"),
        chest=corpus.build_chest(root / "chest"),
    )


@pytest.fixture(scope="session")
def outcomes(
    bases: Bases, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("fuzz-cases")
    selected = {
        item.callspec.params["case"].name
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    }
    runnable = [c for c in CASES if _available(c, bases) is None and c.name in selected]
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {c.name: pool.submit(_run_case, c, root / c.name, bases) for c in runnable}
        results = {name: f.result() for name, f in futures.items()}
    wall = time.perf_counter() - t0
    _SUMMARY.update(cases=len(runnable), seconds=round(wall, 1))
    return results


_SUMMARY: dict[str, object] = {}


def _strict_json(text: str) -> object:
    def refuse(token: str) -> object:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def _files_under(paths: list[Path], inputs: list[Path]) -> list[Path]:
    """Files written under ``paths`` (the inputs themselves excluded: they hold the patient data)."""
    out = []
    for p in paths:
        candidates = [p] if p.is_file() else list(p.rglob("*")) if p.is_dir() else []
        out.extend(q for q in candidates if q.is_file() and not q.is_symlink())
    return [q for q in out if not any(q == i or i in q.parents for i in inputs)]


def test_corpus_is_large_and_named_uniquely() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
    assert len(CASES) >= 250 and len(corpus.case_classes()) >= 30


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fuzz_case(case: Case, bases: Bases, outcomes: dict[str, Outcome]) -> None:
    reason = _available(case, bases)
    if reason:
        pytest.skip(reason)
    outcome = outcomes[case.name]
    if outcome.error is not None:
        raise outcome.error
    setup = outcome.setup
    assert setup is not None
    for run in outcome.runs:
        shown = f"exit {run.returncode}\nstdout: {run.stdout[-1500:]}\nstderr: {run.stderr[-1500:]}"
        assert run.returncode is not None, f"hung for {TIMEOUT_S} s: {shown}"
        assert run.returncode != 1, f"internal error: {shown}"
        assert run.returncode in setup.expect, f"expected exit {setup.expect}: {shown}"
        assert "Traceback" not in run.stderr + run.stdout, shown
        if run.returncode == 2 and setup.one_line:
            lines = run.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("nodeview: "), shown
        if run.returncode == 0 and setup.argv[:1] == ["info"] and "--json" in setup.argv:
            doc = _strict_json(run.stdout)
            assert isinstance(doc, dict)
            if setup.max_slices is not None:
                size = doc["default"].get("shape_zyx") or doc["default"].get("size_zyx")
                assert size[0] <= setup.max_slices, f"{size[0]} slices from {setup.max_slices} images: {shown}"
        low = (run.stdout + run.stderr).lower()
        leaked = [s for s in SECRETS if s.lower() in low]
        assert not leaked, f"patient data {leaked} printed: {shown}"
        if setup.check is not None:
            setup.check(run.returncode, run.stdout, run.stderr)
    if setup.parallel > 1:
        assert sorted(r.returncode for r in outcome.runs) == [0] + [2] * (setup.parallel - 1), "exactly one run wins"
    for path in _files_under(setup.outputs, setup.inputs):
        blob = path.read_bytes().lower() + str(path).lower().encode()
        leaked = [s for s in SECRETS if s.lower().encode() in blob]
        assert not leaked, f"patient data {leaked} in {path}"
    assert outcome.before == outcome.after, "an input file was changed"
    assert outcome.home is not None and not any(outcome.home.iterdir()), (
        f"wrote into $HOME: {[str(p) for p in outcome.home.rglob('*')]}"
    )


def test_zz_summary(outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]) -> None:
    """Counts and runtime of the suite (printed with ``-s``; ``tests/fuzz/README.md`` quotes them)."""
    classes = corpus.case_classes()
    slowest = sorted(outcomes.items(), key=lambda kv: -kv[1].seconds)[:5]
    with capsys.disabled():
        print(
            f"\nfuzz corpus: {len(CASES)} cases in {len(classes)} classes; ran {_SUMMARY.get('cases')} "
            f"in {_SUMMARY.get('seconds')} s wall ({WORKERS} workers)"
        )
        print("slowest: " + ", ".join(f"{name} {o.seconds:.1f} s" for name, o in slowest))
    assert outcomes
