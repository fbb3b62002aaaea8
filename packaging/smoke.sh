#!/usr/bin/env bash
# Smoke-test a frozen NodeView (the one-folder app, or an installed /opt/nodeview):
#   bash packaging/smoke.sh DIST         e.g. dist/nodeview
# Fails (non-zero, one line saying what) on any problem: --version; info and detect on an
# uncompressed, a JPEG 2000 and a JPEG-lossless series; the bundled default model, fonts and
# codecs; a PNG report; --screenshot offscreen and on X11 (xvfb-run). Uses only the frozen app
# for NodeView itself; the test series are written by packaging/make_smoke_data.py with a python
# that has numpy, SimpleITK and pydicom (build/venv, .venv, or $SMOKE_PYTHON).
set -euo pipefail
DIST="${1:?usage: smoke.sh DIST}"
DIST="$(cd "$DIST" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
APP="$DIST/nodeview"
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
ok() { echo "smoke: ok: $*"; }
[ -x "$APP" ] || fail "no executable at $APP"
PY="${SMOKE_PYTHON:-}"
for cand in "$HERE/../build/venv/bin/python" "$HERE/../.venv/bin/python"; do
  [ -z "$PY" ] && [ -x "$cand" ] && PY="$cand"
done
[ -n "$PY" ] || fail "no python with numpy/SimpleITK/pydicom to write the test series (set SMOKE_PYTHON)"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
export NODEVIEW_SETTINGS_DIR="$WORK/settings"  # never touch the user's settings
unset NODEVIEW_RESOURCES PYTHONPATH

# errors that mean a broken bundle even when the exit code is 0
check_log() {  # FILE WHAT
  if grep -E -i "Traceback|ModuleNotFoundError|ImportError|could not (find|load) the Qt platform plugin|Cannot load library|no Qt platform plugin|QFontDatabase: Cannot find font|FontMissingError|not found" "$1" >/dev/null; then
    sed 's/^/    /' "$1" >&2; fail "$2 printed errors"
  fi
}

# 1. version
"$APP" --version > "$WORK/version.txt" 2>&1 || fail "--version exited non-zero"
grep -q "^nodeview [0-9]" "$WORK/version.txt" || fail "--version printed: $(cat "$WORK/version.txt")"
ok "$(cat "$WORK/version.txt")"

# 2. bundled resources
RES="$(find "$DIST" -maxdepth 3 -type d -name resources | head -1)"
[ -n "$RES" ] || fail "no resources folder in the bundle"
[ -s "$RES/models/nodeview-nodule.onnx" ] || fail "default model missing from the bundle"
[ -s "$RES/fonts/DejaVuSans.ttf" ] && [ -s "$RES/fonts/DejaVuSans-Bold.ttf" ] || fail "report fonts missing"
ls "$DIST"/_internal/PySide6/Qt/plugins/platforms/libqxcb.so "$DIST"/_internal/PySide6/Qt/plugins/platforms/libqoffscreen.so \
  >/dev/null 2>&1 || fail "Qt platform plugins (xcb, offscreen) missing"
ok "model, fonts and Qt platform plugins bundled"

# 3. test series
"$PY" "$HERE/make_smoke_data.py" "$WORK/data" > "$WORK/make.log" 2>&1 || { cat "$WORK/make.log" >&2; fail "could not write the test series"; }

# 4. info on each series: shape, spacing and HU range as written
for s in uncompressed jpeg2000 jpegll; do
  "$APP" info "$WORK/data/$s" --json > "$WORK/info-$s.json" 2> "$WORK/info-$s.err" || { cat "$WORK/info-$s.err" >&2; fail "info $s exited non-zero"; }
  check_log "$WORK/info-$s.err" "info $s"
  "$PY" - "$WORK/info-$s.json" "$WORK/data/expected.json" "$s" <<'PY' || fail "info $s: wrong volume"
import json, sys
got = json.load(open(sys.argv[1]))["default"]
exp = json.load(open(sys.argv[2]))[sys.argv[3]]
assert list(got["shape_zyx"]) == list(exp["shape_zyx"]), (got["shape_zyx"], exp["shape_zyx"])
assert all(abs(a - b) < 1e-3 for a, b in zip(got["spacing_zyx_mm"], exp["spacing_zyx_mm"])), got["spacing_zyx_mm"]
assert list(got["hu_range"]) == list(exp["hu_range"]), (got["hu_range"], exp["hu_range"])
PY
  ok "info $s"
done

# 5. detect with the bundled default model (JSON schema, model identity), compressed and not
for s in uncompressed jpeg2000; do
  "$APP" detect "$WORK/data/$s" --min-score 0 --json "$WORK/det-$s.json" > /dev/null 2> "$WORK/det-$s.err" \
    || { cat "$WORK/det-$s.err" >&2; fail "detect $s exited non-zero"; }
  check_log "$WORK/det-$s.err" "detect $s"
  "$PY" - "$WORK/det-$s.json" "$RES/models/nodeview-nodule.onnx" <<'PY' || fail "detect $s: bad output"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["schema"] == "nodeview.findings/1"
assert doc["model"]["name"].startswith("nodeview-nodule") and len(doc["model"]["sha256"]) == 64
assert doc["findings"], "no scored candidates at --min-score 0"
f = doc["findings"][0]
assert {"id", "center_xyz_mm", "diameter_mm", "bbox_xyz_mm", "score", "malignancy", "type", "volume_mm3", "lung_rads"} <= set(f)
PY
  ok "detect $s ($(grep -o '"score"' "$WORK/det-$s.json" | wc -l) scored candidates)"
done

# 6. a PNG report (bundled fonts, Pillow)
"$APP" detect "$WORK/data/jpegll" --report-dir "$WORK/report" --anonymize > /dev/null 2> "$WORK/report.err" \
  || { cat "$WORK/report.err" >&2; fail "detect --report-dir exited non-zero"; }
check_log "$WORK/report.err" "report"
ls "$WORK"/report/*.png > /dev/null 2>&1 || fail "no PNG report written"
ok "report $(basename "$(ls "$WORK"/report/*.png | head -1)")"

# 7. screenshots: offscreen and on X11 (xvfb); the image must show the study, not a blank window
check_png() {  # PNG WHAT
  "$PY" - "$1" <<'PY' || fail "$2: screenshot missing or blank"
import sys
import numpy as np
from PIL import Image
a = np.asarray(Image.open(sys.argv[1]).convert("L"), dtype=float)
assert a.shape[0] >= 300 and a.shape[1] >= 400, a.shape
assert a.std() > 20, f"nearly uniform image (std {a.std():.1f})"
PY
}
QT_QPA_PLATFORM=offscreen "$APP" "$WORK/data/uncompressed" --screenshot "$WORK/off.png" --size 1280x800 \
  > "$WORK/off.log" 2>&1 || { cat "$WORK/off.log" >&2; fail "offscreen screenshot exited non-zero"; }
check_log "$WORK/off.log" "offscreen screenshot"; check_png "$WORK/off.png" "offscreen"
ok "screenshot offscreen"
command -v xvfb-run > /dev/null || fail "xvfb-run not installed (apt-get install xvfb xauth)"
QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" "$APP" "$WORK/data/uncompressed" --screenshot "$WORK/x11.png" \
  --size 1280x800 > "$WORK/x11.log" 2>&1 || { cat "$WORK/x11.log" >&2; fail "X11 screenshot exited non-zero"; }
check_log "$WORK/x11.log" "X11 screenshot"; check_png "$WORK/x11.png" "X11"
[ -n "${SMOKE_KEEP:-}" ] && cp "$WORK/off.png" "$WORK/x11.png" "$SMOKE_KEEP"/
ok "screenshot X11 (xvfb)"
echo "smoke: PASS ($DIST)"
