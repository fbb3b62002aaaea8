#!/usr/bin/env bash
# Reproduce the default model end to end (resumable: each step skips what is done).
#   bash training/reproduce.sh [data|ranker|train|eval|export|all]
set -euo pipefail
cd "$(dirname "$0")/.."
STEP="${1:-all}"
PY=.venv/bin/python
export OPENBLAS_NUM_THREADS=1
if [ "$STEP" = data ] || [ "$STEP" = all ]; then
  # real backgrounds for insertion, kept 20 mm clear of LIDC-IDRI-0002's own nodule (z -120.75..-87 mm)
  $PY -m training.crop_real --src resources/demo/LIDC-IDRI-0002 --out data/real-crops --avoid-z -120.75 -87.0 --margin-mm 20
  crops=(); for d in data/real-crops/*/; do crops+=(--insert-into "$d"); done
  $PY -m training.make_data --out data/train --split train --synthetic 160 --seed 0 "${crops[@]}" --inserted 24
  $PY -m training.make_data --out data/val --split validation --synthetic 24 --seed 10000
  $PY -m training.make_data --out data/test --split test --synthetic 40 --seed 20000
fi
if [ "$STEP" = ranker ] || [ "$STEP" = all ]; then
  # the proposal ranker (nodeview/core/ranker_weights.py): a small MLP over DoG peak features
  $PY -m training.fit_ranker --data data/train/annotations.csv --val-data data/val/annotations.csv --every 6
  $PY -m training.proposal_recall --data data/val/annotations.csv --max-candidates 300 --out runs/default/recall-val.json
fi
if [ "$STEP" = train ] || [ "$STEP" = all ]; then
  resume=(); [ -f runs/default/checkpoint.pt ] && resume=(--resume runs/default/checkpoint.pt)
  $PY -m training.train --data data/train/annotations.csv --val-data data/val/annotations.csv \
      --out runs/default --cache runs/cache --epochs 10 --steps-per-epoch 250 --batch-size 48 "${resume[@]}"
fi
if [ "$STEP" = eval ] || [ "$STEP" = all ]; then
  $PY -m training.evaluate --checkpoint runs/default/checkpoint.pt --data data/val/annotations.csv \
      --cache runs/cache --out runs/default/eval-val --fp-per-scan 1 --max-candidates 300
  T=$($PY -c "import json; print(json.load(open('runs/default/eval-val/metrics.json'))['threshold'])")
  $PY -m training.evaluate --checkpoint runs/default/checkpoint.pt --data data/test/annotations.csv \
      --cache runs/cache --out runs/default/eval-test --threshold "$T" --max-candidates 300
fi
if [ "$STEP" = export ] || [ "$STEP" = all ]; then
  $PY -m training.model_card metadata --run runs/default --out runs/default/metadata.json
  $PY -m training.export_onnx --checkpoint runs/default/checkpoint.pt --out resources/models/nodeview-nodule.onnx \
      --storage fp16 --metadata-json runs/default/metadata.json | tee runs/default/export.json
  .venv/bin/nodeview detect resources/demo/LIDC-IDRI-0002 --model resources/models/nodeview-nodule.onnx \
      --json runs/default/lidc.json --anonymize
  .venv/bin/nodeview detect resources/demo/LIDC-IDRI-0002 --model resources/models/nodeview-nodule.onnx \
      --json runs/default/lidc-all.json --anonymize --min-score 0
  $PY -m training.model_card card --run runs/default --onnx resources/models/nodeview-nodule.onnx \
      --lidc-json runs/default/lidc.json --out resources/models/nodeview-nodule.md
fi
