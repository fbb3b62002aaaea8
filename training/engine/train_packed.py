"""Fine-tune the nodule model on packed patch shards, on a GPU machine that has torch but no DICOM stack.

The shards (``training/data/pack_patches.py``) hold the real-transplant training scans' patches,
mined as ``train.py`` mines them. Everything lives on the device as uint8 (a few hundred MB);
a step draws a batch there, augments it there (``objectives.augment``: flips, zoom, HU gain and
noise), and runs the ResNet-50 in bfloat16 autocast. Sampling follows ``train.py``'s hard-negative
recipe: ``--positive-fraction`` of each batch positives, every nodule weighing the same; of the
negatives, ``--hard-fraction`` from the hardest ``--hard-pool`` of all training negatives, scored
by the current model every ``--mine-every`` steps, the rest uniform.

Selection uses the **validation patients only** (a packed validation set: every proposal hit and the
40 negatives each scan's proposal ranker ranks highest). Every ``--eval-every`` steps, and before the
first, it computes a per-nodule FROC over that set (a nodule's score is its best proposal hit's;
false positives are the packed negatives per scan, so FP/scan is a lower bound: a proxy for the
cascade's CPM, consistent across checkpoints) and the malignancy AUC (the best hit's malignancy
probability against the readers' label, rated nodules only). The best checkpoint by proxy CPM is
kept; if none beats the starting weights, the starting weights are what it keeps, and the history says so.

The kept weights are written as a float16 state dict in chunks of ``--chunk-mb`` (a lent machine
returns files of at most 16 MiB); :func:`join_chunks` puts them back together.

    python -m training.engine.train_packed --train runs/pack/train0 --train runs/pack/train1 --val runs/pack/val \
        --weights runs/shipped/model_state_fp16.pt --out runs/packed --steps 3000 --frozen-bn
    python -m training.engine.train_packed --pick runs/packed-a runs/packed-b --to OUT   # best run's chunks
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.data.packed import read_pack
from training.engine.objectives import augment, losses
from training.models.nodule_net import NoduleNet
from training.models.onnx_weights import frozen_batchnorm

FROC_POINTS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", action="append", default=[], help="folder of packed shards (repeatable)")
    p.add_argument("--val", action="append", default=[], help="folder of packed validation shards (repeatable)")
    p.add_argument("--weights", help="starting state dict (.pt; float16 or float32)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.05, help="fraction of the steps for the linear warm-up")
    p.add_argument("--positive-fraction", type=float, default=0.4)
    p.add_argument("--hard-fraction", type=float, default=0.5, help="of the negatives, drawn from the hard pool")
    p.add_argument("--hard-pool", type=float, default=0.25, help="top fraction of the negatives by current score")
    p.add_argument("--mine-every", type=int, default=250)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--malignancy-weight", type=float, default=0.5, help="weight of the malignancy loss")
    p.add_argument("--frozen-bn", action="store_true", help="BatchNorm in eval mode (weights from ONNX)")
    p.add_argument("--freeze-stem", action="store_true", help="keep the stem and layer1 fixed")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--chunk-mb", type=float, default=12.0)
    p.add_argument("--max-minutes", type=float, default=0.0, help="> 0: stop (evaluated, kept) after this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--pick", nargs="+", help="run folders: copy the best one's chunks and history to --to")
    p.add_argument("--to", help="destination of --pick")
    return p


# ---- data ------------------------------------------------------------------------------------------
class Packed:
    """A pack on a device: uint8 patches and labels as tensors."""

    def __init__(self, folders: list[str], device: torch.device) -> None:
        arrays, self.scan_ids = read_pack([Path(f) for f in folders])
        self.n = len(arrays["nodule"])
        self.patches = torch.from_numpy(arrays["patches"]).to(device)
        self.nodule = torch.from_numpy(arrays["nodule"].astype(np.int64)).to(device)
        self.malignant = torch.from_numpy(arrays["malignant"].astype(np.int64)).to(device)
        self.diameter = torch.from_numpy(arrays["diameter_mm"].astype(np.float32)).to(device)
        self.np = {k: v for k, v in arrays.items() if k != "patches"}

    def x(self, idx: torch.Tensor) -> torch.Tensor:
        return self.patches[idx].float().div_(127.5).sub_(1.0)


@torch.no_grad()
def score(
    model: nn.Module, data: Packed, rows: np.ndarray, device: torch.device, batch: int = 1024
) -> dict[str, np.ndarray]:
    """Nodule and malignancy probabilities of the given rows (eval mode)."""
    was_training = model.training
    model.eval()
    nod, mal = [], []
    for s in range(0, len(rows), batch):
        idx = torch.from_numpy(rows[s : s + batch]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            a, b, _ = model(data.x(idx).contiguous(memory_format=torch.channels_last))
        nod.append(torch.sigmoid(a.float()).cpu().numpy())
        mal.append(torch.sigmoid(b.float()).cpu().numpy())
    if was_training:
        model.train()
    cat = lambda v: np.concatenate(v) if v else np.zeros(0, np.float32)  # noqa: E731
    return {"nodule": cat(nod), "malignancy": cat(mal)}


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half); nan without both classes."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def validation_metrics(model: nn.Module, val: Packed, device: torch.device) -> dict[str, Any]:
    """Per-nodule FROC proxy (best proposal hit per nodule; packed negatives per scan) and malignancy AUC."""
    a = val.np
    prop = np.flatnonzero(a["from_proposal"])
    s = score(model, val, prop, device)
    is_pos = a["nodule"][prop] == 1
    # every nodule of the pack, found by a proposal or not (not: never detected at any threshold)
    nodule_keys = {(int(sc), int(k)) for sc, k in zip(a["scan"], a["nodule_id"], strict=True) if k >= 0}
    best: dict[tuple[int, int], tuple[float, float, int]] = {}
    for r, p, m in zip(prop[is_pos], s["nodule"][is_pos], s["malignancy"][is_pos], strict=True):
        key = (int(a["scan"][r]), int(a["nodule_id"][r]))
        if key not in best or p > best[key][0]:
            best[key] = (float(p), float(m), int(a["malignant"][r]))
    neg_scores = np.sort(s["nodule"][~is_pos])[::-1]
    n_scans = len(val.scan_ids)
    nod_scores = np.array([best[k][0] if k in best else -1.0 for k in sorted(nodule_keys)])
    sens = []
    for fp in FROC_POINTS:
        allowed = int(math.floor(fp * n_scans))
        thr = neg_scores[allowed] if allowed < len(neg_scores) else -0.5  # the score of the first FP too many
        sens.append(float(np.mean(nod_scores > thr)) if len(nod_scores) else float("nan"))
    rated = [(v[1], v[2]) for v in best.values() if v[2] in (0, 1)]
    mal_pos = np.array([m for m, lab in rated if lab == 1])
    mal_neg = np.array([m for m, lab in rated if lab == 0])
    return {
        "cpm_proxy": float(np.mean(sens)),
        "sensitivity": dict(zip([str(f) for f in FROC_POINTS], sens, strict=True)),
        "patch_auc": auc(s["nodule"][is_pos], s["nodule"][~is_pos]),
        "malignancy_auc": auc(mal_pos, mal_neg),
        "nodules": len(nodule_keys),
        "nodules_with_hit": len(best),
        "rated": len(rated),
    }


# ---- weights ---------------------------------------------------------------------------------------
def save_chunks(state: dict[str, torch.Tensor], folder: Path, chunk_mb: float) -> list[str]:
    """A float16 state dict as ``model.pt.partNN`` files of at most ``chunk_mb`` MB."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("model.pt.part*"):
        old.unlink()
    buf = io.BytesIO()
    torch.save({k: (v.half() if v.is_floating_point() else v).cpu() for k, v in state.items()}, buf)
    data = buf.getvalue()
    size = int(chunk_mb * 1e6)
    names = []
    for n, start in enumerate(range(0, len(data), size)):
        name = f"model.pt.part{n:02d}"
        (folder / name).write_bytes(data[start : start + size])
        names.append(name)
    return names


def join_chunks(folder: Path | str, out: Path | str) -> Path:
    """The chunks of :func:`save_chunks` back into one state dict file (float16 weights)."""
    parts = sorted(Path(folder).glob("model.pt.part*"))
    if not parts:
        raise FileNotFoundError(f"no model.pt.part* in {folder}")
    Path(out).write_bytes(b"".join(p.read_bytes() for p in parts))
    return Path(out)


def load_state(path: str) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


# ---- training --------------------------------------------------------------------------------------
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    device = _device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(args), indent=2))
    t0 = time.time()
    data = Packed(args.train, device)
    val = Packed(args.val, device) if args.val else None
    load_s = time.time() - t0
    model = NoduleNet()
    if args.weights:
        model.load_state_dict(load_state(args.weights))
    model = model.to(device).to(memory_format=torch.channels_last)
    if args.freeze_stem:
        model.freeze_up_to("layer1")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    warm = max(1, round(args.warmup * args.steps))

    def lr_factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, args.steps - warm))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    a = data.np
    pos = np.flatnonzero(a["nodule"] == 1)
    neg = np.flatnonzero(a["nodule"] == 0)
    if len(pos) == 0 or len(neg) == 0:
        raise SystemExit("training needs both nodule and non-nodule patches")
    keys = a["scan"][pos].astype(np.int64) * 100000 + a["nodule_id"][pos]
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    pos_p = 1.0 / counts[inverse]
    pos_p /= pos_p.sum()
    n_pos = max(1, round(args.batch_size * args.positive_fraction))
    n_neg = args.batch_size - n_pos
    n_hard = round(n_neg * args.hard_fraction)
    hard = neg
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {}

    def evaluate(step: int, train_loss: dict[str, float]) -> None:
        row: dict[str, Any] = {"step": step, "elapsed_s": round(time.time() - t0, 1), **train_loss}
        if val is not None:
            row["val"] = validation_metrics(model, val, device)
        history.append(row)
        print(json.dumps(row), flush=True)
        if val is None:
            return
        key = (row["val"]["cpm_proxy"], np.nan_to_num(row["val"]["malignancy_auc"]))
        if not best or key > best["key"]:
            best.update(key=key, step=step, metrics=row["val"])
            best["state"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def train_mode() -> None:  # after every scoring pass (score() leaves plain train mode)
        model.train()
        if args.frozen_bn:
            frozen_batchnorm(model)

    evaluate(0, {})
    train_mode()
    sums: dict[str, float] = {}
    count = 0
    stopped = 0
    for step in range(1, args.steps + 1):
        if n_hard and (step == 1 or step % args.mine_every == 0):
            s = score(model, data, neg, device)["nodule"]
            keep = max(1, round(len(neg) * args.hard_pool))
            hard = neg[np.argsort(-s, kind="stable")[:keep]]
            train_mode()
        idx = np.concatenate(
            [
                rng.choice(pos, n_pos, p=pos_p),
                rng.choice(hard, n_hard) if n_hard else np.zeros(0, np.int64),
                rng.choice(neg, n_neg - n_hard),
            ]
        )
        it = torch.from_numpy(idx).to(device)
        x, nodule, malignant, diameter = data.x(it), data.nodule[it], data.malignant[it], data.diameter[it]
        if not args.no_augment:
            x, diameter = augment(x, diameter, gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs = model(x.contiguous(memory_format=torch.channels_last))
        outputs = tuple(o.float() for o in outputs)
        parts = losses(outputs, nodule, malignant, diameter, 0.0)
        total = parts["nodule"] + args.malignancy_weight * parts["malignancy"] + 0.2 * parts["diameter"]
        if not torch.isfinite(total):
            raise SystemExit(f"non-finite loss at step {step}; stopping")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        scheduler.step()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        count += 1
        late = args.max_minutes > 0 and time.time() - t0 > 60 * args.max_minutes
        if step % args.eval_every == 0 or step == args.steps or late:
            evaluate(step, {f"train_{k}": round(v / count, 4) for k, v in sums.items()})
            sums, count = {}, 0
            train_mode()
        if late:
            stopped = step
            break
    result: dict[str, Any] = {
        "steps": args.steps,
        "stopped_at_time_limit": stopped or None,
        "train_patches": data.n,
        "train_positives": len(pos),
        "train_nodules": len(counts),
        "val_patches": val.n if val else 0,
        "load_s": round(load_s, 1),
        "wall_s": round(time.time() - t0, 1),
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "history": history,
    }
    if best:
        result["best_step"] = best["step"]
        result["best_val"] = best["metrics"]
        result["start_val"] = history[0]["val"]
        result["improved_on_start"] = best["step"] != 0
        result["chunks"] = save_chunks(best["state"], out, args.chunk_mb)
    else:
        result["chunks"] = save_chunks(model.state_dict(), out, args.chunk_mb)
    (out / "history.json").write_text(json.dumps(result, indent=1))
    return result


def pick(runs: list[str], to: str) -> str:
    """Copy the run with the best validation proxy CPM (its chunks and history) to ``to``."""
    scored = []
    for run in runs:
        h = Path(run) / "history.json"
        if h.is_file():
            r = json.loads(h.read_text())
            scored.append(((r.get("best_val") or {}).get("cpm_proxy", -1.0), run))
    if not scored:
        raise SystemExit("no finished run to pick from")
    _, run = max(scored)
    dest = Path(to)
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(run).glob("model.pt.part*")):
        shutil.copy(f, dest / f.name)
    for other in runs:
        h = Path(other) / "history.json"
        if h.is_file():
            shutil.copy(h, dest / f"history-{Path(other).name}.json")
    (dest / "picked.json").write_text(json.dumps({"picked": Path(run).name, "candidates": scored}))
    return run


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.pick:
        if not args.to:
            raise SystemExit("--pick needs --to")
        print("picked", pick(args.pick, args.to))
        return 0
    if not args.train or not args.out:
        raise SystemExit("--train and --out are required")
    r = train(args)
    print(json.dumps({k: v for k, v in r.items() if k != "history"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
