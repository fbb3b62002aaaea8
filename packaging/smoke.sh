#!/usr/bin/env bash
# Smoke-test a frozen NodeView (the one-folder app, or an installed /opt/nodeview):
#   bash packaging/smoke.sh DIST [--no-x11] [--keep DIR]        e.g. dist/nodeview, /opt/nodeview
# Runs packaging/smoke.py (the checks are listed there and in packaging/README.md): --version;
# the bundled model, fonts and Qt plugins; info on uncompressed, JPEG 2000, JPEG-lossless, RLE and
# deflated series; detect with the bundled default model; a PNG report; --screenshot offscreen and
# on X11 (xvfb-run). Fails non-zero with "smoke: FAIL: ..." on any problem.
# NodeView itself is only run frozen; the python here just writes the test series and reads the
# results (numpy, SimpleITK, pydicom, Pillow): build/venv by default, or $SMOKE_PYTHON. It never
# imports nodeview.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${SMOKE_PYTHON:-$HERE/../build/venv/bin/python}"
[ -x "$PY" ] || { echo "smoke: FAIL: no python at $PY: run packaging/build.sh first, or set SMOKE_PYTHON to a python with numpy, SimpleITK, pydicom and Pillow" >&2; exit 1; }
unset PYTHONPATH PYTHONHOME NODEVIEW_RESOURCES
exec "$PY" -I "$HERE/smoke.py" "$@"
