#!/usr/bin/env bash
# The packaging subset .ci/run runs on every change: build the one-folder app and the .tar.gz
# from this checkout, then smoke-test the frozen app. The .deb is left out here because its xz
# compression alone takes minutes on 2 cores; `bash packaging/build.sh` builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash packaging/build.sh --no-deb
bash packaging/smoke.sh dist/nodeview
