#!/usr/bin/env bash
# Quick start (1): set everything up, then open NodeView on the bundled demo study.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
exec .venv/bin/nodeview resources/demo/LIDC-IDRI-0002 "$@"
