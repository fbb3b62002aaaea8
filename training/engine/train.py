"""Train the NodeView nodule model (ResNet-50 on 2.5D candidate patches).

    python -m training.engine.train --data data/train/annotations.csv --val-data data/val/annotations.csv \\
        --out runs/default --epochs 12

Data: one or more annotation CSVs (``training/data/annotations.py`` format, written by
``training.data.make_data`` or converted from LUNA16 / LIDC / any DICOM folder + CSV). Scans are mined
once into a patch cache (``training/data/dataset.py``). Class imbalance: balanced sampling
(``--positive-fraction``) or focal loss (``--focal-gamma``). Augmentation: random rotations (3D,
or about the z axis only with ``--positive-rotations axial``) and jitter at extraction time, plus
physically consistent flips (left-right, anterior-posterior, superior-inferior), zoom (the diameter
label scales with it), HU jitter and noise, per batch.

Checkpoints (``<out>/checkpoint.pt``, every epoch): ``{"model", "optimizer", "lr_scheduler",
"args", "epoch", "history", "rng"}``; ``--resume`` continues from one. Training stops with an
error on a non-finite loss. CPU by default; CUDA when available. Several processes or machines:
``torchrun --nproc_per_node N -m training.engine.train ...`` (DistributedDataParallel, see
``training/engine/distributed.py``). Research use only.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.data.annotations import ScanRecord, read_records_csv
from training.data.dataset import POSITIVE_ROTATIONS, PatchSet, load_or_mine, near_nodule
from training.engine import distributed
from training.engine.objectives import augment, losses
from training.models.nodule_net import STAGES, NoduleNet, build_model, predict
from training.models.onnx_weights import frozen_batchnorm


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train the NodeView nodule model (research use only)", add_help=add_help)
    p.add_argument("--data", action="append", required=True, help="annotation CSV (repeatable)")
    p.add_argument("--val-data", action="append", help="validation annotation CSV (repeatable)")
    p.add_argument("--val-fraction", type=float, default=0.15, help="scans held out when --val-data is absent")
    p.add_argument("--cache", default="runs/cache", help="patch cache folder")
    p.add_argument("--out", default="runs/default", help="output folder (checkpoints, history, plots)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps-per-epoch", type=int, default=0, help="0: one pass over the (balanced) data")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--weights", default="none", help="none, imagenet, or a local state dict / checkpoint")
    p.add_argument("--freeze", choices=[*STAGES, "none"], default="none", help="freeze the backbone up to this stage")
    p.add_argument("--unfreeze-epoch", type=int, default=0, help="unfreeze everything from this epoch (staged)")
    p.add_argument("--positive-fraction", type=float, default=0.3, help="balanced sampling: positives per batch")
    p.add_argument(
        "--positive-weighting",
        choices=["patch", "nodule"],
        default="patch",
        help="draw positive patches uniformly (patch) or so that every nodule weighs the same (nodule: a large"
        " nodule's many hitting candidates no longer crowd out a small nodule's few)",
    )
    p.add_argument(
        "--thick-slice-weight",
        type=float,
        default=1.0,
        help="draw the patches of scans with slices thicker than 2.5 mm (positives and negatives) this many"
        " times as often as the others (1: no change)",
    )
    p.add_argument("--focal-gamma", type=float, default=0.0, help="> 0: focal loss for the nodule head")
    p.add_argument("--positive-copies", type=int, default=8, help="rotated, jittered copies of each nodule")
    p.add_argument(
        "--positive-rotations",
        choices=POSITIVE_ROTATIONS,
        default="3d",
        help="rotate the copies in 3D, or about the patient z axis only (axial plane kept, as at inference)",
    )
    p.add_argument(
        "--hard-negative-fraction",
        type=float,
        default=0.0,
        help="share of each batch's negatives drawn from the hardest mined negatives (0: uniform)",
    )
    p.add_argument("--mine-subset", type=int, default=12000, help="negatives scored per epoch to find the hard ones")
    p.add_argument("--hard-pool", type=float, default=0.25, help="top fraction of the scored negatives kept")
    p.add_argument(
        "--ignore-near-mm",
        type=float,
        default=0.0,
        help="leave out negatives within a nodule's radius + this many mm (its patch shows the nodule off centre)",
    )
    p.add_argument("--max-candidates", type=int, default=400)
    p.add_argument("--frozen-bn", action="store_true", help="BatchNorm in eval mode (weights from ONNX: onnx_weights)")
    p.add_argument("--stop-epoch", type=int, default=0, help="stop after N epochs (schedule: --epochs)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


# ---------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_patch_set(records: list[ScanRecord], args: argparse.Namespace, label: str) -> tuple[PatchSet, list[dict]]:
    parts, summaries = [], []
    for n, rec in enumerate(_progress(records, f"mining {label}", args.quiet)):
        part, summary = load_or_mine(
            rec,
            args.cache,
            positive_copies=args.positive_copies,
            max_candidates=args.max_candidates,
            seed=args.seed * 100003 + n,
            positive_rotations=args.positive_rotations,
        )
        parts.append(part)
        summaries.append(summary)
    return PatchSet.concat(parts), summaries


def nodule_balanced_weights(ps: PatchSet, positives: np.ndarray) -> np.ndarray:
    """Sampling probabilities for ``positives`` (indices into ``ps``) that give every nodule the same
    total weight. A nodule is known by its scan and its diameter label (the positive copies and the
    hitting proposals of one nodule share both)."""
    keys = np.stack([ps.scan[positives].astype(np.float64), np.round(ps.diameter_mm[positives].astype(np.float64), 3)])
    _, group, counts = np.unique(keys, axis=1, return_inverse=True, return_counts=True)
    w = 1.0 / counts[group.ravel()]
    return np.asarray(w / w.sum(), dtype=np.float64)


def thick_slice_weights(ps: PatchSet, thick_scans: set[str], weight: float) -> np.ndarray:
    """Per patch: ``weight`` for the patches of scans in ``thick_scans``, 1 for the others."""
    thick = np.array([sid in thick_scans for sid in ps.scan_ids], dtype=bool)
    return np.where(thick[ps.scan], float(weight), 1.0)


def _draw_probabilities(base: np.ndarray | None, scan_weight: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    """Sampling probabilities over ``idx``: ``base`` (or uniform) times the per-patch scan weights."""
    if scan_weight is None:
        return base
    w = (base if base is not None else np.ones(len(idx))) * scan_weight[idx]
    return np.asarray(w / w.sum(), dtype=np.float64)


def _batch(ps: PatchSet, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(ps.patches[idx].astype(np.float32)).to(device),
        torch.from_numpy(ps.nodule[idx].astype(np.int64)).to(device),
        torch.from_numpy(ps.malignant[idx].astype(np.int64)).to(device),
        torch.from_numpy(ps.diameter_mm[idx]).to(device),
    )


def mine_hard_negatives(
    model: nn.Module,
    ps: PatchSet,
    negatives: np.ndarray,
    args: argparse.Namespace,
    rng: np.random.Generator,
    device: torch.device,
) -> np.ndarray:
    """The hardest negatives of a random subset, scored by the current model (hard-negative mining).

    Scores ``--mine-subset`` random negatives and keeps the top ``--hard-pool`` fraction by nodule
    probability: the vessel ends, hilar branches and wall bumps the model still takes for nodules.
    """
    subset = negatives if len(negatives) <= args.mine_subset else rng.choice(negatives, args.mine_subset, replace=False)
    subset = np.sort(subset)
    scores = predict(model, ps.subset(subset), device, batch_size=256)["nodule_prob"]
    keep = max(1, round(len(subset) * args.hard_pool))
    return subset[np.argsort(-scores, kind="stable")[:keep]]


def validate(model: nn.Module, ps: PatchSet, device: torch.device, args: argparse.Namespace) -> dict[str, float]:
    model.eval()
    totals: dict[str, float] = {}
    count = 0
    correct = 0
    with torch.no_grad():
        for start in range(0, len(ps), 128):
            idx = np.arange(start, min(start + 128, len(ps)))
            x, nodule, malignant, diameter = _batch(ps, idx, device)
            out = model(x)
            parts = losses(out, nodule, malignant, diameter, args.focal_gamma)
            for k, v in parts.items():
                totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
            correct += int(((torch.sigmoid(out[0]) >= 0.5).long() == nodule).sum())
            count += len(idx)
    result = {f"val_{k}": v / max(count, 1) for k, v in totals.items()}
    result["val_acc"] = correct / max(count, 1)
    return result


def _progress(items, desc: str, quiet: bool):  # type: ignore[no-untyped-def]
    if quiet:
        return items
    try:
        from tqdm import tqdm

        return tqdm(items, desc=desc, leave=False, file=sys.stderr)
    except ImportError:
        return items


def split_records(records: list[ScanRecord], fraction: float, seed: int) -> tuple[list[ScanRecord], list[ScanRecord]]:
    order = np.random.default_rng(seed).permutation(len(records))
    n_val = max(1, round(len(records) * fraction)) if len(records) > 1 else 0
    val = [records[i] for i in order[:n_val]]
    train = [records[i] for i in order[n_val:]]
    return train, val


def main(args: argparse.Namespace) -> dict[str, Any]:
    dist = distributed.setup(args.device, args.threads)  # torchrun: one of N processes
    try:
        return _main(args, dist)
    finally:
        dist.close()


def _main(args: argparse.Namespace, dist: distributed.Dist) -> dict[str, Any]:
    seed_everything(args.seed)
    dist.check_batch(args.batch_size)
    if not dist.is_main:
        args.quiet = True  # one progress bar: rank 0's
    if args.threads:
        torch.set_num_threads(args.threads)
    device = dist.device or torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if dist.is_main:
        (out / "args.json").write_text(json.dumps(vars(args), indent=2, default=str))  # read by model_card.py
    records = [r for path in args.data for r in read_records_csv(path)]
    if args.val_data:
        train_records = records
        val_records = [r for path in args.val_data for r in read_records_csv(path)]
    else:
        train_records, val_records = split_records(records, args.val_fraction, args.seed)
    with dist.main_first():  # rank 0 mines into the cache, the others read it
        train_set, train_summary = load_patch_set(train_records, args, "train")
        val_set, val_summary = load_patch_set(val_records, args, "validation") if val_records else (None, [])
    ambiguous = near_nodule(train_set, train_records, args.ignore_near_mm)
    data_summary = _data_summary(train_set, train_summary, val_set, val_summary)
    data_summary["train"]["negatives_left_out_near_nodules"] = int(ambiguous.sum())
    if dist.is_main:
        (out / "data_summary.json").write_text(json.dumps(data_summary, indent=2))

    model: NoduleNet = build_model(args.weights).to(device)
    if args.freeze != "none":
        model.freeze_up_to(args.freeze)
    optimizer = torch.optim.AdamW([p for p in model.parameters()], lr=args.lr, weight_decay=args.weight_decay)
    pos = np.flatnonzero(train_set.nodule == 1)
    neg = np.flatnonzero((train_set.nodule == 0) & ~ambiguous)
    if len(pos) == 0 or len(neg) == 0:
        raise SystemExit("training needs both nodule and non-nodule patches; check the annotations")
    pos_p = nodule_balanced_weights(train_set, pos) if args.positive_weighting == "nodule" else None
    scan_w = None
    if args.thick_slice_weight != 1.0:  # left out at 1 so that the default draws stay as they were
        from nodeview.core.detect.detector import THIN_SLICE_MAX_MM
        from training.evaluation.evaluate import slice_thickness_mm

        thick = {r.scan_id for r in train_records if slice_thickness_mm(r) > THIN_SLICE_MAX_MM}
        scan_w = thick_slice_weights(train_set, thick, args.thick_slice_weight)
        data_summary["train"]["thick_slice_scans"] = len(thick)
        if dist.is_main:
            (out / "data_summary.json").write_text(json.dumps(data_summary, indent=2))
    pos_p = _draw_probabilities(pos_p, scan_w, pos)
    neg_p = _draw_probabilities(None, scan_w, neg)
    steps = args.steps_per_epoch or max(1, math.ceil(len(train_set) / args.batch_size))
    total_steps = args.epochs * steps
    warmup = max(1, round(0.1 * total_steps))

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine to zero; resumable with more epochs
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total_steps - warmup))))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history: list[dict[str, float]] = []
    start_epoch = 0
    if args.resume:
        ckpt = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["lr_scheduler"])
        start_epoch = int(ckpt["epoch"]) + 1
        history = list(ckpt.get("history", []))
    # every rank draws the same global batches (rng); augmentation draws are per rank (rank 0: the plain run's)
    gen = torch.Generator().manual_seed(args.seed + 7919 * start_epoch + 104729 * dist.rank)
    rng = np.random.default_rng(args.seed + 7919 * start_epoch)
    ddp = dist.wrap(model)

    for epoch in range(start_epoch, min(args.epochs, args.stop_epoch or args.epochs)):
        if args.unfreeze_epoch and epoch >= args.unfreeze_epoch:
            frozen = any(not p.requires_grad for p in model.parameters())
            model.freeze_up_to(None)
            if frozen:
                ddp = dist.wrap(model)  # DDP syncs only the parameters that required grad when it was made
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        correct = seen = 0
        n_pos = max(1, round(args.batch_size * args.positive_fraction))
        n_hard = round((args.batch_size - n_pos) * args.hard_negative_fraction) if args.focal_gamma <= 0 else 0
        hard = mine_hard_negatives(model, train_set, neg, args, rng, device) if n_hard > 0 else neg
        hard = dist.broadcast_array(hard) if n_hard > 0 else hard  # rank 0's (BatchNorm statistics differ)
        hard_p = _draw_probabilities(None, scan_w, hard)
        ddp.train()
        if args.frozen_bn:
            frozen_batchnorm(model)
        for _step in _progress(range(steps), f"epoch {epoch + 1}/{args.epochs}", args.quiet):
            if args.focal_gamma > 0:
                idx = rng.integers(0, len(train_set), args.batch_size)
            else:
                n_easy = args.batch_size - n_pos - n_hard
                draws = [
                    rng.choice(pos, n_pos, p=pos_p),
                    rng.choice(hard, n_hard, p=hard_p),
                    rng.choice(neg, n_easy, p=neg_p),
                ]
                idx = np.concatenate(draws)
            idx = dist.shard(idx)
            x, nodule, malignant, diameter = _batch(train_set, idx, device)
            if not args.no_augment:
                x, diameter = augment(x.cpu(), diameter.cpu(), gen)
                x, diameter = x.to(device), diameter.to(device)
            outputs = ddp(x)
            parts = losses(outputs, nodule, malignant, diameter, args.focal_gamma)
            if not torch.isfinite(parts["loss"]):
                raise SystemExit(f"non-finite loss at epoch {epoch + 1}: {float(parts['loss'])}; stopping")
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimizer.step()
            scheduler.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            correct += int(((torch.sigmoid(outputs[0].detach()) >= 0.5).long() == nodule).sum())
            seen += len(idx)
        if dist.enabled:  # the epoch's means over every rank's samples
            names = sorted(sums)
            totals = dist.sum([sums[k] for k in names] + [correct, seen])
            sums = {k: v / dist.world for k, v in zip(names, totals, strict=False)}
            correct, seen = int(totals[-2]), int(totals[-1])
        record = {
            "epoch": epoch + 1,
            "lr": scheduler.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
            "train_acc": correct / max(seen, 1),
            **{f"train_{k}": v / steps for k, v in sums.items()},
        }
        if val_set is not None and len(val_set) and dist.is_main:
            record.update(validate(model, val_set, device, args))
        history.append(record)
        if not dist.is_main:
            continue
        ckpt = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "lr_scheduler": scheduler.state_dict(),
            "args": vars(args),
            "epoch": epoch,
            "history": history,
        }
        tmp = out / "checkpoint.pt.tmp"
        torch.save(ckpt, tmp)
        tmp.replace(out / "checkpoint.pt")
        (out / "history.json").write_text(json.dumps(history, indent=2))
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in record.items()}), flush=True)
    dist.barrier()
    if not dist.is_main:
        return {"history": history, "data": data_summary, "out": str(out)}
    try:
        from training.evaluation.plots import plot_history

        plot_history(history, out / "loss_accuracy.png")
    except ImportError:
        pass
    return {"history": history, "data": data_summary, "out": str(out)}


def _data_summary(train: PatchSet, train_s: list[dict], val: PatchSet | None, val_s: list[dict]) -> dict[str, Any]:
    def describe(ps: PatchSet | None, summaries: list[dict]) -> dict[str, Any]:
        if ps is None:
            return {}
        n_ge3 = sum(int(s["nodules_ge_3mm"]) for s in summaries)
        found = sum(int(s["found_by_proposals"]) for s in summaries)
        return {
            "scans": len(summaries),
            "patches": len(ps),
            "nodule_patches": int(ps.nodule.sum()),
            "malignant_patches": int((ps.malignant == 1).sum()),
            "nodules_ge_3mm": n_ge3,
            "proposal_recall": found / n_ge3 if n_ge3 else None,
            "mean_candidates_per_scan": float(np.mean([s["candidates"] for s in summaries])) if summaries else 0,
        }

    return {"train": describe(train, train_s), "validation": describe(val, val_s)}


if __name__ == "__main__":
    main(get_args_parser().parse_args())
