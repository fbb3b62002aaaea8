#!/usr/bin/env bash
# The ResNet-50 fine-tuned on the packed real-transplant patches on a lent GPU machine (issue 21).
# That machine has python3 with torch/torchvision/numpy but not the viewer's DICOM stack, reaches nothing
# outside, and takes at most 64 MiB per call; so the inputs travel in three calls and wait in $STASH:
#   (here)  python -m training.data.pack_patches ...   (training/reproduce.sh real-resnet writes the packs)
#   call 1  bash training/gpu_finetune.sh stash .gpu1 && bash training/gpu_finetune.sh smoke   (weights + val pack)
#   call 2  bash training/gpu_finetune.sh stash .gpu2                                          (train pack, half 1)
#   call 3  bash training/gpu_finetune.sh stash .gpu3 && bash training/gpu_finetune.sh train   (half 2; two runs)
# On a machine with a GPU and the data at hand, `train` alone does the same with STASH pointing at the packs.
# Outputs go to $OUT (the chosen run's float16 weights in chunks and both runs' histories).
set -euo pipefail
cd "$(dirname "$0")/.."
STASH="${STASH:-/root/stash}"
OUT="${OUT:-runs/gpu-out}"
PY="${PY:-python3}"
export PYTHONUNBUFFERED=1
case "${1:-}" in
  stash)
    mkdir -p "$STASH"
    cp -r "$2"/. "$STASH"/
    du -sh "$STASH"/*
    ;;
  smoke)
    # the GPU, the imports, and the step rate on the validation pack (nothing kept)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    $PY -c "import torch, torchvision, numpy; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
    $PY -m training.engine.train_packed --train "$STASH/val" --val "$STASH/val" --weights "$STASH/shipped_fp16.pt" \
        --out /tmp/smoke --steps 100 --eval-every 50 --mine-every 50 --frozen-bn | tail -n 4
    $PY -c "import json; h=json.load(open('/tmp/smoke/history.json')); print('smoke', h['wall_s'], 's for', h['steps'], 'steps; load', h['load_s'], 's;', [r['elapsed_s'] for r in h['history']])"
    ;;
  train)
    # two learning rates side by side on the one GPU; the validation patients' proxy CPM picks one
    STEPS="${2:-3000}"
    MIN="${3:-6}"
    common=(--train "$STASH/train0" --train "$STASH/train1" --val "$STASH/val" --weights "$STASH/shipped_fp16.pt"
            --steps "$STEPS" --max-minutes "$MIN" --batch-size 256 --frozen-bn --eval-every 200 --mine-every 200 --seed 0)
    $PY -m training.engine.train_packed "${common[@]}" --lr 1e-4 --out /tmp/run-lr1e-4 > /tmp/run-lr1e-4.log 2>&1 &
    a=$!
    $PY -m training.engine.train_packed "${common[@]}" --lr 3e-5 --out /tmp/run-lr3e-5 > /tmp/run-lr3e-5.log 2>&1 &
    b=$!
    wait $a || { tail -n 20 /tmp/run-lr1e-4.log; }
    wait $b || { tail -n 20 /tmp/run-lr3e-5.log; }
    grep -h '"step"' /tmp/run-lr1e-4.log | cut -c1-400 | tail -n 30 || true
    grep -h '"step"' /tmp/run-lr3e-5.log | cut -c1-400 | tail -n 30 || true
    mkdir -p "$OUT"
    $PY -m training.engine.train_packed --pick /tmp/run-lr1e-4 /tmp/run-lr3e-5 --to "$OUT"
    ls -la "$OUT"
    ;;
  *)
    echo "usage: $0 stash DIR | smoke | train [STEPS] [MINUTES]" >&2
    exit 2
    ;;
esac
