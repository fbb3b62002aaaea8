#!/usr/bin/env python3
"""Smoke-test a frozen NodeView: the one-folder app (dist/nodeview), an installed /opt/nodeview, or
a macOS NodeView.app. Runs on Linux, Windows and macOS.

    python packaging/smoke.py DIST [--no-x11] [--keep DIR]

Fails (exit 1, ``smoke: FAIL: what``) on any problem:
  1. ``--version``;
  2. the bundle holds the default model, the report fonts and the Qt plugins the app needs
     (platforms: the native one and ``offscreen``; the SVG icon engine);
  3. ``info --json`` on an uncompressed, a JPEG 2000, a JPEG-lossless, an RLE and a deflated
     series (packaging/make_smoke_data.py): shape, spacing and HU range exactly as written, so every
     codec decodes;
  4. ``detect --min-score 0 --json`` with the bundled default model (no ``--model``) on the
     uncompressed and the JPEG 2000 series: the ``nodeview.findings/2`` schema, the bundled model's
     name and weights sha256, scored candidates with their fields;
  5. ``detect --report-dir --anonymize``: a PNG report (bundled fonts, Pillow);
  6. ``--screenshot`` with ``QT_QPA_PLATFORM=offscreen`` and, on Linux, on X11 under ``xvfb-run``
     (skipped with --no-x11): exit 0 and a non-blank image;
and no step's output may mention a traceback, a missing module, a Qt platform plugin that could
not be loaded, or a missing font (a broken bundle can still exit 0).

NodeView itself is only ever run frozen. This python needs numpy, SimpleITK, pydicom (to write
the test series) and Pillow (to look at the PNGs): build/venv has them. It never imports nodeview.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERIES = ("uncompressed", "jpeg2000", "jpegll", "rle", "deflate")
DETECT_SERIES = ("uncompressed", "jpeg2000")
BAD_OUTPUT = re.compile(
    r"Traceback|ModuleNotFoundError|ImportError|could not (find|load) the Qt platform plugin|"
    r"no Qt platform plugin|Cannot load library|QFontDatabase: Cannot find font|FontMissingError|not found",
    re.IGNORECASE,
)


class SmokeFailure(Exception):
    pass


def fail(message: str) -> None:
    raise SmokeFailure(message)


def ok(message: str) -> None:
    print(f"smoke: ok: {message}", flush=True)


def find_app(dist: Path) -> tuple[Path, Path]:
    """(executable, folder holding the bundle's files: _internal, or Contents/Frameworks on macOS)."""
    for exe in (dist / "nodeview", dist / "nodeview.exe", dist / "Contents" / "MacOS" / "nodeview"):
        if exe.is_file():
            contents = dist / "Contents"
            for internal in (exe.parent / "_internal", contents / "Frameworks", contents / "Resources"):
                if (internal / "resources").is_dir():
                    return exe, internal
            fail(f"no resources folder next to {exe}")
    fail(f"no nodeview executable in {dist}")
    raise AssertionError  # unreachable


def run(cmd: list[str], what: str, work: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run, fail on a non-zero exit or on error output; return stdout+stderr."""
    log = work / (re.sub(r"\W+", "-", what).strip("-") + ".log")
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"{what} did not finish within {timeout:g} s")
    out = res.stdout + res.stderr
    log.write_text(out)
    if res.returncode != 0:
        print(out[-4000:], file=sys.stderr)
        fail(f"{what} exited with {res.returncode}")
    # the JSON on stdout may contain anything; judge stderr (and stdout when it is not JSON)
    judged = res.stderr if res.stdout.lstrip().startswith("{") else out
    if BAD_OUTPUT.search(judged):
        print(judged[-4000:], file=sys.stderr)
        fail(f"{what} printed errors")
    print(f"smoke:     {what}: {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def check_bundle(internal: Path) -> Path:
    res = internal / "resources"
    model = res / "models" / "nodeview-nodule.onnx"
    if not model.is_file() or model.stat().st_size == 0:
        fail("the default model resources/models/nodeview-nodule.onnx is missing from the bundle")
    if not (res / "models" / "nodeview-proposal-ranker.json").is_file():
        fail("the proposal ranker's weights resources/models/nodeview-proposal-ranker.json are missing from the bundle")
    for font in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        if not (res / "fonts" / font).is_file():
            fail(f"report font resources/fonts/{font} is missing from the bundle")
    plugins = internal / "PySide6" / "Qt" / "plugins"
    if sys.platform == "win32":
        plugins = internal / "PySide6" / "plugins"
        needed = ["platforms/qwindows.dll", "platforms/qoffscreen.dll", "iconengines/qsvgicon.dll"]
    elif sys.platform == "darwin":
        needed = ["platforms/libqcocoa.dylib", "platforms/libqoffscreen.dylib", "iconengines/libqsvgicon.dylib"]
    else:
        needed = ["platforms/libqxcb.so", "platforms/libqoffscreen.so", "xcbglintegrations/libqxcb-glx-integration.so",
                  "iconengines/libqsvgicon.so", "imageformats/libqsvg.so"]
    for p in needed:
        if not (plugins / p).is_file():
            fail(f"Qt plugin {p} is missing from the bundle ({plugins})")
    names = ", ".join(Path(p).stem for p in needed)
    ok(f"bundle holds the default model, the report fonts and the Qt plugins ({names})")
    return model


def check_info(doc: dict, expected: dict, series: str) -> None:
    got = doc["default"]
    if list(got["shape_zyx"]) != list(expected["shape_zyx"]):
        fail(f"info {series}: shape {got['shape_zyx']}, expected {expected['shape_zyx']}")
    if any(abs(a - b) > 1e-3 for a, b in zip(got["spacing_zyx_mm"], expected["spacing_zyx_mm"], strict=True)):
        fail(f"info {series}: spacing {got['spacing_zyx_mm']}, expected {expected['spacing_zyx_mm']}")
    if list(got["hu_range"]) != list(expected["hu_range"]):
        fail(f"info {series}: HU range {got['hu_range']}, expected {expected['hu_range']} (a codec decodes wrongly)")


def check_findings(doc: dict, model_bytes: bytes, series: str) -> int:
    if doc.get("schema") != "nodeview.findings/2":
        fail(f"detect {series}: schema {doc.get('schema')!r}")
    name, sha = doc["model"]["name"], doc["model"]["sha256"]
    # the JSON must name the bundled model: its name and weights sha256 are in the ONNX metadata
    if not (re.fullmatch(r"[0-9a-f]{64}", sha) and sha.encode() in model_bytes):
        fail(f"detect {series}: model sha256 {sha!r} is not the bundled default model's")
    if not name or name.encode() not in model_bytes:
        fail(f"detect {series}: model name {name!r} is not the bundled default model's")
    if not doc["findings"]:
        fail(f"detect {series}: no scored candidates at --min-score 0")
    keys = {"id", "center_xyz_mm", "diameter_mm", "bbox_xyz_mm", "score", "malignancy", "type", "lung_rads"}
    missing = keys - set(doc["findings"][0])
    if missing:
        fail(f"detect {series}: findings lack {sorted(missing)}")
    return len(doc["findings"])


def check_png(path: Path, what: str, min_size: tuple[int, int] = (400, 300)) -> None:
    import numpy as np
    from PIL import Image

    if not path.is_file():
        fail(f"{what}: no image written")
    a = np.asarray(Image.open(path).convert("L"), dtype=float)
    if a.shape[1] < min_size[0] or a.shape[0] < min_size[1]:
        fail(f"{what}: image is only {a.shape[1]}x{a.shape[0]}")
    if a.std() < 20:
        fail(f"{what}: nearly uniform image (std {a.std():.1f}): blank window?")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("--no-x11", action="store_true", help="skip the X11 (xvfb-run) screenshot on Linux")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the screenshots and the report here")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="nodeview-smoke-"))
    env = {k: v for k, v in os.environ.items() if k not in ("NODEVIEW_RESOURCES", "PYTHONPATH", "PYTHONHOME")}
    env["NODEVIEW_SETTINGS_DIR"] = str(work / "settings")  # never touch the user's settings
    env.pop("QT_QPA_PLATFORM", None)
    try:
        exe, internal = find_app(args.dist.resolve())
        app = [str(exe)]

        out = run(app + ["--version"], "--version", work, env)
        if not re.search(r"^nodeview \d", out, re.MULTILINE):
            fail(f"--version printed {out.strip()!r}")
        ok(out.strip())

        model = check_bundle(internal)
        model_bytes = model.read_bytes()

        data = work / "data"
        make = [sys.executable, str(HERE / "make_smoke_data.py"), str(data)]
        res = subprocess.run(make, capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stdout + res.stderr, file=sys.stderr)
            fail("could not write the test series (needs numpy, SimpleITK, pydicom)")
        expected = json.loads((data / "expected.json").read_text())

        for s in SERIES:
            out = run(app + ["info", str(data / s), "--json"], f"info {s}", work, env)
            check_info(json.loads(out[out.index("{"):out.rindex("}") + 1]), expected[s], s)
            ok(f"info {s} ({expected[s]['transfer_syntax']})")

        for s in DETECT_SERIES:
            out_json = work / f"detect-{s}.json"
            run(app + ["detect", str(data / s), "--min-score", "0", "--json", str(out_json)], f"detect {s}", work, env)
            n = check_findings(json.loads(out_json.read_text()), model_bytes, s)
            ok(f"detect {s} with the bundled model ({n} scored candidates)")

        report_dir = work / "report"
        run(app + ["detect", str(data / "jpegll"), "--report-dir", str(report_dir), "--anonymize"], "report", work, env)
        reports = sorted(report_dir.glob("*.png"))
        if not reports:
            fail("detect --report-dir wrote no PNG report")
        check_png(reports[0], "report")
        ok(f"report {reports[0].name}")

        shots = []
        off = work / "offscreen.png"
        run(app + [str(data / "uncompressed"), "--screenshot", str(off), "--size", "1280x800"], "screenshot offscreen",
            work, dict(env, QT_QPA_PLATFORM="offscreen"))
        check_png(off, "offscreen screenshot")
        shots.append(off)
        ok("screenshot offscreen")

        if sys.platform.startswith("linux") and not args.no_x11:
            xvfb = shutil.which("xvfb-run")
            if not xvfb:
                fail("xvfb-run is not installed (apt-get install xvfb xauth), or pass --no-x11")
            x11 = work / "x11.png"
            run([xvfb, "-a", "-s", "-screen 0 1600x1000x24"] + app
                + [str(data / "uncompressed"), "--screenshot", str(x11), "--size", "1280x800"],
                "screenshot X11 (xvfb)", work, dict(env, QT_QPA_PLATFORM="xcb"))
            check_png(x11, "X11 screenshot")
            shots.append(x11)
            ok("screenshot X11 (xvfb)")

        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for p in [*shots, reports[0]]:
                shutil.copy(p, args.keep / p.name)
    except SmokeFailure as exc:
        print(f"smoke: FAIL: {exc}  (logs in {work})", file=sys.stderr)
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print(f"smoke: PASS ({args.dist}, {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
