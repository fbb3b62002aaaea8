#!/usr/bin/env bash
# Launch-to-window time, frozen app against running from source, on one X server (xvfb):
#   bash packaging/measure_launch.sh [DIST] [REPEATS]
# Each run is `nodeview --screenshot X.png` with no study: the process starts, shows the main
# window, waits 300 ms (the screenshot mode's settle time), grabs it and exits. Reported:
# median wall time minus those 300 ms = process start to window on screen (plus a clean exit).
set -euo pipefail
cd "$(dirname "$0")/.."
DIST="${1:-dist/nodeview}"; N="${2:-5}"
export NODEVIEW_SETTINGS_DIR="$(mktemp -d)"
xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python - "$DIST/nodeview" "$N" <<'PY'
import statistics, subprocess, sys, tempfile, time
frozen, n = sys.argv[1], int(sys.argv[2])
out = tempfile.mkdtemp()
cmds = {"frozen": [frozen], "source": [sys.executable, "-m", "nodeview"]}
for name, cmd in cmds.items():
    subprocess.run(cmd + ["--screenshot", f"{out}/warm.png"], check=True, capture_output=True)  # warm the file cache
    times = []
    for i in range(n):
        t = time.perf_counter()
        subprocess.run(cmd + ["--screenshot", f"{out}/{name}{i}.png"], check=True, capture_output=True)
        times.append(time.perf_counter() - t - 0.3)
    print(f"{name}: launch-to-window median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={n})")
PY
