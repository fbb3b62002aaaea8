#!/usr/bin/env bash
# Quick start (1): set everything up, then open NodeView on the bundled demo study and detect nodules
# in it (--detect), so the first picture shows the detector's boxes and the findings table.
# On a machine without a display it renders the viewer under Xvfb into demo-screenshot.png instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
DEMO=resources/demo/LIDC-IDRI-0002
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/nodeview "$DEMO" --detect "$@"
fi
echo "demo: no display found; rendering the viewer under Xvfb to demo-screenshot.png"
.venv/bin/nodeview info "$DEMO"
QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1920x1080x24" \
  .venv/bin/nodeview "$DEMO" --detect --screenshot demo-screenshot.png --size 1800x800 "$@"
echo "demo: wrote $(pwd)/demo-screenshot.png"
