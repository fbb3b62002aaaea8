#!/usr/bin/env bash
# Quick start (2): set everything up, then run the whole test suite: lint, types, tests.
# Tests that need a real X server run inside xvfb-run; the rest use Qt's offscreen platform.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev,train,batch  # train: torch + torchvision for the training tests; batch: dask
echo "== ruff";  .venv/bin/ruff check --output-format concise .
echo "== mypy (strict on nodeview/core)";  .venv/bin/mypy
echo "== lint-imports (the architecture's contracts, pyproject.toml [tool.importlinter])";  .venv/bin/lint-imports
echo "== pytest"
exec xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest "$@"
