#!/usr/bin/env bash
# The packaging check for CI (.ci/run): build the one-folder app from this checkout and smoke-test
# it (packaging/smoke.sh). The .tar.gz and the .deb are left out: they archive the same folder, and
# the .deb's xz compression alone takes 5-9 minutes on 2 cores; `bash packaging/build.sh` makes them.
# Uses the repository's default model; NODEVIEW_CI_MODEL=PATH.onnx bundles another one instead.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
bash packaging/build.sh --app-only ${NODEVIEW_CI_MODEL:+--model "$NODEVIEW_CI_MODEL"}
bash packaging/smoke.sh dist/nodeview
echo "packaging/ci.sh: build + smoke passed in $(( $(date +%s) - t0 )) s"
