"""Train, calibrate and export the proposal re-ranker: a small 3D CNN between the proposer and the ResNet-50.

    python -m training.engine.train_reranker --data data/train/annotations.csv --val-data data/val/annotations.csv \\
        --test-data data/test/annotations.csv --model resources/models/nodeview-nodule.onnx --out runs/reranker

Steps (each cached in ``--out``; ``--resume`` continues training from ``checkpoint.pt``):

1. **Cubes** (:func:`nodeview.core.detect.reranker.extract_cubes`, 16 voxels of 1.125 mm) at the top
   ``--top-k`` proposals of every scan, exactly as the app proposes them (the first 300 placed as
   a 300-candidate run places them). A proposal within a nodule's radius is a positive (the
   LUNA16 hit rule). Training scans add up to 6 DoG peaks inside each nodule and 4 copies of its
   centre jittered by up to half its radius (2 mm at most), so nodules the proposals rank low
   still teach the network. With ``--context-spacing 3`` each row also gets a 48 mm context cube
   (:func:`nodeview.core.detect.reranker.extract_context_cubes`, cached beside the 18 mm cubes) and the
   network is :class:`TwoScaleNet` (re-ranker version 2: measured, not shipped, see
   ``training/README.md``).
2. **Training**: the network of :class:`CubeNet` (about 0.1 M weights), half of each batch
   positives drawn so that every nodule weighs the same, half negatives drawn uniformly from the
   proposals; flips along all three axes, transposed x and y, shifts of one voxel, HU scale,
   offset and noise; AdamW with a one-cycle schedule; stops on a non-finite loss.
3. **Calibration on validation**: the nodule model scores the top ``--top-k`` proposals of each
   validation scan; the re-ranking weight, the number of candidates kept for the ResNet-50 and
   the cube weight of the fused score are chosen by CPM (findings merged as in the app), and the
   operating threshold as the best sensitivity at <= ``--fp-per-scan`` FPs per scan (0.5; the
   nodule model's own threshold used 1, see ``training/README.md`` for why this one does not).
4. **Test**: the same on the held-out scans: CPM with a 95 % bootstrap interval, the paired
   difference against the nodule model alone (300 candidates, its own rank weight), and the
   sensitivity by nodule size at the threshold.
5. **Export**: ``nodeview-reranker.onnx`` with metadata (cube geometry, the chosen parameters, the
   threshold, the sha256 of the nodule model they were chosen with) and a torch parity check.

Seeded; CPU by default, CUDA when present. Several processes: ``torchrun --nproc_per_node N -m
training.engine.train_reranker ...`` trains with DistributedDataParallel (``training/engine/distributed.py``);
rank 0 then calibrates, tests and exports. Research use only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nodeview.core.detect.candidates import DEFAULT_MAX_CANDIDATES, PROPOSER_VERSION, merge_findings, propose
from nodeview.core.detect.detector import Detector
from nodeview.core.detect.patches import extract_patches
from nodeview.core.detect.reranker import (
    DEFAULT_CUBE,
    CubeSpec,
    extract_context_cubes,
    extract_cubes,
    fuse_three,
    rerank_order,
)
from nodeview.core.io.study import open_study
from training.data.annotations import ScanRecord, read_records_csv
from training.engine import distributed
from training.engine.train import _progress
from training.evaluation.metrics import (
    cpm,
    cpm_difference_bootstrap,
    froc,
    froc_bootstrap,
    malignancy_auc,
    nodule_hits,
    operating_point,
)

VERSION = "2"  # with a context cube (--context-spacing 3, not shipped); version 1 (one 18 mm cube) is the default


def conv_block(i: int, o: int) -> nn.Sequential:
    """3x3x3 convolution, batch norm, ReLU (the re-ranker's towers are made of these)."""
    return nn.Sequential(nn.Conv3d(i, o, 3, padding=1, bias=False), nn.BatchNorm3d(o), nn.ReLU(inplace=True))


class CubeNet(nn.Module):
    """3D CNN on (N, 1, 16, 16, 16) cubes: a nodule log-odds per cube (about 20 M multiply-adds each)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        block = conv_block
        w = width
        self.features = nn.Sequential(
            block(1, w),
            nn.MaxPool3d(2),
            block(w, 2 * w),
            block(2 * w, 2 * w),
            nn.MaxPool3d(2),
            block(2 * w, 4 * w),
            block(4 * w, 4 * w),
            nn.MaxPool3d(2),
            block(4 * w, 8 * w),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(8 * w, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def light_tower(width: int = 8) -> nn.Sequential:
    """A context tower of about a tenth of :class:`CubeNet`'s multiply-adds: the 16-voxel cube
    averaged to 8 voxels (6 mm for the 3 mm context cube), then three convolution blocks at 8, 4
    and 2 voxels; 4 * width features."""
    block = conv_block
    w = width
    return nn.Sequential(
        nn.AvgPool3d(2),
        block(1, w),
        nn.MaxPool3d(2),
        block(w, 2 * w),
        block(2 * w, 2 * w),
        nn.MaxPool3d(2),
        block(2 * w, 4 * w),
        nn.AdaptiveAvgPool3d(1),
        nn.Flatten(),
    )


class TwoScaleNet(nn.Module):
    """Two towers, one per channel (the 18 mm cube and the 48 mm context cube), their pooled
    features joined by one linear layer. The context tower is a :class:`CubeNet` (version 2,
    about 0.2 M weights) or, with ``light``, :func:`light_tower` (version 3: the context seen at
    6 mm, for about a tenth of the cost)."""

    def __init__(self, width: int = 8, light: bool = False) -> None:
        super().__init__()
        self.fine = CubeNet(width).features
        self.context = light_tower(width) if light else CubeNet(width).features
        self.head = nn.Linear((12 if light else 16) * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.fine(x[:, :1]), self.context(x[:, 1:])], 1)).squeeze(1)


def make_net(width: int, channels: int, light_context: bool = False) -> nn.Module:
    return CubeNet(width) if channels == 1 else TwoScaleNet(width, light_context)


def version_of(net: nn.Module) -> str:
    """The re-ranker version a network exports as: 1 one cube, 2 with a context cube, 3 with the light context tower."""
    if not isinstance(net, TwoScaleNet):
        return "1"
    return "3" if isinstance(net.context[0], nn.AvgPool3d) else VERSION


def cube_spec(args: argparse.Namespace) -> CubeSpec:
    return CubeSpec(context_spacing_mm=args.context_spacing if args.context_spacing > 0 else None)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train the NodeView proposal re-ranker (research use only)", add_help=add_help
    )
    p.add_argument("--data", required=True, help="training annotation CSV")
    p.add_argument("--val-data", required=True, help="validation annotation CSV (calibration)")
    p.add_argument("--test-data", help="held-out annotation CSV (reported, never used for a choice)")
    p.add_argument(
        "--model", default="resources/models/nodeview-nodule.onnx", help="the nodule model to calibrate with"
    )
    p.add_argument("--out", default="runs/reranker")
    p.add_argument("--export", default="", help="also write the ONNX file here (default <out>/nodeview-reranker.onnx)")
    p.add_argument("--top-k", type=int, default=1000, help="proposals the re-ranker sees per scan")
    p.add_argument(
        "--fp-per-scan",
        type=float,
        default=0.5,
        help="operating threshold: the best validation sensitivity at no more than this many FPs per scan",
    )
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=8)
    p.add_argument(
        "--context-spacing",
        type=float,
        default=0.0,
        help="mm per voxel of a second, context cube (16 voxels; 3 gives 48 mm and a version-2 re-ranker, an"
        " experiment not shipped: training/README.md); 0 (default): one cube only, version 1 as shipped",
    )
    p.add_argument(
        "--light-context",
        action="store_true",
        help="with --context-spacing: a context tower of a tenth of the cost (the context cube averaged to 8 voxels;"
        " re-ranker version 3)",
    )
    p.add_argument(
        "--init-onnx",
        default="",
        help="start from an exported re-ranker's weights (e.g. the shipped file; its BatchNorms are folded:"
        " use --frozen-bn) instead of random ones; the network must have its architecture",
    )
    p.add_argument("--frozen-bn", action="store_true", help="BatchNorm in eval mode while training (with --init-onnx)")
    p.add_argument(
        "--cascade-from",
        default="",
        help="take keep, re-rank weight and cube weight from this re-ranker file instead of choosing them on"
        " validation (only the operating threshold is then chosen there)",
    )
    p.add_argument(
        "--hard-negative-top",
        type=int,
        default=0,
        help="draw --hard-negative-fraction of each batch's negatives from the proposals ranked in the first N of"
        " their scan by the proposal ranker (those the cascade is likely to score high); 0: all uniform",
    )
    p.add_argument("--hard-negative-fraction", type=float, default=0.5)
    p.add_argument("--every", type=int, default=1, help="use every N-th scan of each split (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    return p


# ----------------------------------------------------------------------------------------- cubes


def scan_candidates(record: ScanRecord, top_k: int, subvoxel: bool = False) -> tuple[Any, list[Any]]:
    volume = open_study(record.path)
    cands = propose(
        volume.hu_zyx, volume.geometry, max_candidates=top_k, refine_until=DEFAULT_MAX_CANDIDATES, subvoxel=subvoxel
    )
    return volume, cands


def hit_labels(centres: np.ndarray, record: ScanRecord) -> np.ndarray:
    nods = [n for n in record.nodules if n.diameter_mm >= 3.0]
    label = np.full(len(centres), -1, dtype=np.int32)
    for i, n in enumerate(nods):
        d = np.linalg.norm(centres - np.asarray(n.center_xyz_mm), axis=1)
        label[(d <= n.diameter_mm / 2.0) & (label < 0)] = i
    return label


def build_split(
    records: list[ScanRecord],
    path: Path,
    top_k: int,
    extra_positives: bool,
    seed: int,
    quiet: bool,
    spec: CubeSpec = DEFAULT_CUBE,
    subvoxel: bool = False,
) -> dict[str, np.ndarray]:
    """Cubes and labels of every scan (cached in ``path``); see the module docstring.

    ``cubes`` has ``spec.channels`` channels: the 18 mm cubes are cached as before, and the
    context cubes (:func:`add_context`) in a second file beside them. ``subvoxel``: proposals
    with sub-voxel peak positions (``nodeview.core.detect.candidates.find_peaks``)."""
    fine = {k: v for k, v in DEFAULT_CUBE.__dict__.items() if k != "context_spacing_mm"}
    parts = [[r.scan_id for r in records], top_k, extra_positives, seed, fine, PROPOSER_VERSION]
    key = json.dumps(parts + ["subvoxel"] if subvoxel else parts)  # old caches keep their names
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    file = path.with_name(f"{path.stem}-{digest}.npz")
    if file.exists():
        with np.load(file) as z:
            data = {k: z[k] for k in z.files}
    else:
        data = _build_split(records, file, top_k, extra_positives, seed, quiet, subvoxel)
    if spec.context_spacing_mm is not None:
        add_context(data, records, file.with_name(f"{file.stem}-context{spec.context_spacing_mm:g}.npy"), spec, quiet)
    return data


def add_context(
    data: dict[str, np.ndarray], records: list[ScanRecord], file: Path, spec: CubeSpec, quiet: bool
) -> None:
    """Append the context cubes at every row's centre to ``data["cubes"]`` as channel 1 (cached in ``file``)."""
    if file.exists():
        context = np.load(file)
    else:
        by_id = {r.scan_id: r for r in records}
        context = np.zeros((len(data["centre"]), 1, spec.size, spec.size, spec.size), np.float16)
        for s, sid in enumerate(_progress(list(data["scan_ids"]), f"context cubes {file.stem}", quiet)):
            rows = np.flatnonzero(data["scan"] == s)
            volume = open_study(by_id[str(sid)].path)
            cubes = extract_context_cubes(volume.hu_zyx, volume.geometry, data["centre"][rows].astype(np.float64), spec)
            context[rows] = cubes.astype(np.float16)
        tmp = file.with_name(file.stem + ".tmp.npy")
        np.save(tmp, context)
        tmp.replace(file)
    data["cubes"] = np.concatenate([data["cubes"], context], axis=1)


def _build_split(
    records: list[ScanRecord],
    file: Path,
    top_k: int,
    extra_positives: bool,
    seed: int,
    quiet: bool,
    subvoxel: bool = False,
) -> dict[str, np.ndarray]:
    from training.engine.fit_ranker import scan_peaks

    rng = np.random.default_rng(seed)
    parts: list[dict[str, np.ndarray]] = []
    for s, record in enumerate(_progress(records, f"cubes {file.stem}", quiet)):
        volume, cands = scan_candidates(record, top_k, subvoxel)
        centres = np.asarray([c.center_xyz_mm for c in cands], dtype=np.float64).reshape(-1, 3)
        rank = np.asarray([c.rank_score for c in cands], dtype=np.float32)
        label = hit_labels(centres, record)
        proposal = np.ones(len(centres), dtype=bool)
        if extra_positives:
            peaks = scan_peaks(record, Path("runs/ranker-cache"))
            nods = [n for n in record.nodules if n.diameter_mm >= 3.0]
            extra_c, extra_l = [], []
            for i, n in enumerate(nods):
                inside = np.flatnonzero(peaks["label"] == i)
                if len(inside):
                    take = rng.choice(inside, size=min(6, len(inside)), replace=False)
                    extra_c.append(peaks["centres"][take])
                    extra_l += [i] * len(take)
                r = min(n.diameter_mm / 4.0, 2.0)
                j = rng.normal(size=(4, 3))
                j = j / np.linalg.norm(j, axis=1, keepdims=True) * rng.uniform(0, r, (4, 1))
                extra_c.append(np.asarray(n.center_xyz_mm) + j)
                extra_l += [i] * 4
            if extra_c:
                more = np.concatenate(extra_c)
                centres = np.concatenate([centres, more])
                label = np.concatenate([label, np.asarray(extra_l, dtype=np.int32)])
                rank = np.concatenate([rank, np.full(len(more), np.nan, dtype=np.float32)])
                proposal = np.concatenate([proposal, np.zeros(len(more), dtype=bool)])
        cubes = extract_cubes(volume.hu_zyx, volume.geometry, centres)
        parts.append(
            {
                "cubes": cubes.astype(np.float16),
                "label": label,
                "rank_score": rank,
                "proposal": proposal,
                "centre": centres.astype(np.float32),
                "scan": np.full(len(label), s, dtype=np.int32),
            }
        )
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["scan_ids"] = np.asarray([r.scan_id for r in records])
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(file)
    return out


# -------------------------------------------------------------------------------------- training


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Flips on every axis, x/y transposed, one-voxel shifts, HU scale, offset and noise (per cube)."""
    b = x.shape[0]
    for axis in (2, 3, 4):
        m = torch.rand(b, generator=gen) < 0.5
        x[m] = x[m].flip(axis)
    m = torch.rand(b, generator=gen) < 0.5
    x[m] = x[m].transpose(3, 4)
    shift = torch.randint(-1, 2, (3,), generator=gen).tolist()
    x = torch.roll(x, shifts=tuple(int(s) for s in shift), dims=(2, 3, 4))
    scale = 1 + 0.05 * torch.randn(b, 1, 1, 1, 1, generator=gen)
    offset = 0.03 * torch.randn(b, 1, 1, 1, 1, generator=gen)
    noise = 0.02 * torch.randn(x.shape, generator=gen)
    return (x * scale + offset + noise).clamp(-1.5, 1.5)


def nodule_weights(train: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos = np.flatnonzero(train["label"] >= 0)
    neg = np.flatnonzero((train["label"] < 0) & train["proposal"])
    key = train["scan"][pos].astype(np.int64) * 100_000 + train["label"][pos]
    _, inv, count = np.unique(key, return_inverse=True, return_counts=True)
    w = 1.0 / count[inv]
    return pos, neg, w / w.sum()


def top_ranked_negatives(data: dict[str, np.ndarray], top: int) -> np.ndarray:
    """Rows of the negative proposals ranked in the first ``top`` of their scan by ``rank_score``."""
    out = []
    for s in np.unique(data["scan"]):
        rows = np.flatnonzero((data["scan"] == s) & data["proposal"])
        first = rows[np.argsort(-data["rank_score"][rows], kind="stable")[:top]]
        out.append(first[data["label"][first] < 0])
    return np.concatenate(out) if out else np.zeros(0, np.intp)


def score_cubes(net: nn.Module, cubes: np.ndarray, device: str, batch: int = 512) -> np.ndarray:
    net.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(cubes), batch):
            out.append(net(torch.from_numpy(cubes[s : s + batch].astype(np.float32)).to(device)).cpu().numpy())
    net.train()
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def train(
    args: argparse.Namespace, data: dict[str, np.ndarray], out: Path, dist: distributed.Dist | None = None
) -> nn.Module:
    """``dist`` (torchrun): every rank draws the same global batch and trains on its slice."""
    dist = dist or distributed.Dist()
    dist.check_batch(args.batch_size)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 104729 * dist.rank)  # rank 0: the plain run's
    light = bool(getattr(args, "light_context", False))
    net = make_net(args.width, int(data["cubes"].shape[1]), light)
    if getattr(args, "init_onnx", ""):
        from training.models.onnx_weights import reranker_state_from_onnx

        net.load_state_dict(reranker_state_from_onnx(args.init_onnx, net))
    net = net.to(args.device)
    if getattr(args, "frozen_bn", False):
        from training.models.onnx_weights import frozen_batchnorm

        frozen_batchnorm(net)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    start, history = 0, []
    ckpt = out / "checkpoint.pt"
    if args.resume and ckpt.exists():
        state = torch.load(ckpt, map_location=args.device, weights_only=False)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["lr_scheduler"])
        start, history = state["step"], state["history"]
        rng.bit_generator.state = state["rng"]
        if dist.is_main:
            gen.set_state(state["torch_rng"])
        else:
            gen.manual_seed(args.seed + 104729 * dist.rank + int(start))
    ddp = dist.wrap(net)
    pos, neg, weight = nodule_weights(data)
    half = args.batch_size // 2
    top = int(getattr(args, "hard_negative_top", 0))
    hard = top_ranked_negatives(data, top) if top > 0 else np.zeros(0, np.intp)
    n_hard = int(round(getattr(args, "hard_negative_fraction", 0.5) * (args.batch_size - half))) if len(hard) else 0
    running = float("nan")
    bar = None
    if not args.no_progress and dist.is_main:
        from tqdm import tqdm

        bar = tqdm(total=args.steps, initial=start, file=sys.stderr)
    for step in range(start, args.steps):
        parts = [rng.choice(pos, half, p=weight), rng.choice(neg, args.batch_size - half - n_hard)]
        if n_hard:
            parts.append(rng.choice(hard, n_hard))
        rows = np.concatenate(parts)
        rows = dist.shard(rows)
        x = augment(torch.from_numpy(data["cubes"][rows].astype(np.float32)), gen).to(args.device)
        y = torch.from_numpy((data["label"][rows] >= 0).astype(np.float32)).to(args.device)
        loss = F.binary_cross_entropy_with_logits(ddp(x), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at step {step}")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if math.isnan(running) else 0.98 * running + 0.02 * loss.item()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{running:.4f}")
        if (step + 1) % max(1, min(100, args.steps // 10)) == 0 or step + 1 == args.steps:
            history.append({"step": step + 1, "loss": running, "batch_loss": loss.item()})
        if dist.is_main and ((step + 1) % 500 == 0 or step + 1 == args.steps):
            torch.save(
                {
                    "model": net.state_dict(),
                    "optimizer": opt.state_dict(),
                    "lr_scheduler": sched.state_dict(),
                    "step": step + 1,
                    "history": history,
                    "rng": rng.bit_generator.state,
                    "torch_rng": gen.get_state(),
                    "args": vars(args),
                },
                ckpt,
            )
    if bar is not None:
        bar.close()
    if dist.is_main:
        (out / "history.json").write_text(json.dumps(history))
    return net


# ----------------------------------------------------------------------------------- calibration


def nodule_scores(
    records: list[ScanRecord],
    data: dict[str, np.ndarray],
    model: str,
    path: Path,
    quiet: bool,
    needed: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The nodule model's outputs on every row of ``data``, or only on the ``needed`` rows (the
    others NaN; see :func:`rows_to_score`), cached."""
    det = Detector(model, reranker=None)
    key = hashlib.sha256(det.info.sha256.encode() + data["centre"].tobytes())  # the model and every centre
    if needed is not None:
        key.update(b"rows" + np.packbits(needed).tobytes())
    file = path.with_name(f"{path.stem}-{key.hexdigest()[:12]}.npz")
    if file.exists():
        with np.load(file) as z:
            return {k: z[k] for k in z.files}
    fill = 0.0 if needed is None else np.nan
    out = {k: np.full(len(data["label"]), fill, np.float32) for k in ("nodule_prob", "malignancy_prob", "diameter_mm")}
    by_id = {r.scan_id: r for r in records}
    for s, sid in enumerate(_progress(list(data["scan_ids"]), f"nodule model {path.stem}", quiet)):
        rows = np.flatnonzero((data["scan"] == s) & (True if needed is None else needed))
        if not len(rows):
            continue
        volume = open_study(by_id[str(sid)].path)
        scores = det.score(
            extract_patches(volume.hu_zyx, volume.geometry, data["centre"][rows].astype(np.float64), det.info.spec)
        )
        for k in out:
            out[k][rows] = scores[k]
    np.savez(file, **out)
    return out


def rows_to_score(
    data: dict[str, np.ndarray], logits: np.ndarray, rerank_weights: tuple[float, ...], keep: int
) -> np.ndarray:
    """The rows the nodule model must score for :func:`predictions` and :func:`report` under these
    re-rank weights and kept count: each scan's kept proposals, and the first
    ``DEFAULT_MAX_CANDIDATES`` (the nodule model alone). About a third of the ``top_k``."""
    need = np.zeros(len(data["label"]), dtype=bool)
    for s in range(len(data["scan_ids"])):
        rows = np.flatnonzero((data["scan"] == s) & data["proposal"])
        rank = data["rank_score"][rows]
        need[rows[rerank_order(rank, np.zeros(len(rows)), 0.0, DEFAULT_MAX_CANDIDATES)]] = True
        for a in rerank_weights:
            need[rows[rerank_order(rank, logits[rows], a, keep)]] = True
    return need


def predictions(
    data: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    logits: np.ndarray,
    rerank_weight: float,
    keep: int,
    rank_weight: float,
    cube_weight: float,
) -> tuple[dict[str, list[Any]], dict[str, list[int]]]:
    """Per scan, the app's findings (centre, score) and the rows they came from."""
    preds: dict[str, list[Any]] = {}
    rows_of: dict[str, list[int]] = {}
    for s, sid in enumerate(data["scan_ids"]):
        rows = np.flatnonzero((data["scan"] == s) & data["proposal"])
        rows = rows[rerank_order(data["rank_score"][rows], logits[rows], rerank_weight, keep)]
        fused = fuse_three(
            scores["nodule_prob"][rows], data["rank_score"][rows], logits[rows], rank_weight, cube_weight
        )
        merged = merge_findings(data["centre"][rows].astype(np.float64), fused, scores["diameter_mm"][rows])
        preds[str(sid)] = [(tuple(m.center_xyz_mm), float(fused[m.index])) for m in merged]
        rows_of[str(sid)] = [int(rows[m.index]) for m in merged]
    return preds, rows_of


def truths_of(records: list[ScanRecord], data: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    by_id = {r.scan_id: r for r in records}
    return {
        str(s): [(n.center_xyz_mm, n.diameter_mm) for n in by_id[str(s)].nodules if n.diameter_mm >= 3.0]
        for s in data["scan_ids"]
    }


GRID = {"rerank_weight": (0.5, 1.0, 2.0), "keep": (200, 300), "cube_weight": (0.25, 0.5, 0.75, 1.0)}


def cascade_of(path: str) -> dict[str, tuple[float, ...]]:
    """A one-point grid: an exported re-ranker's keep, re-rank weight and cube weight (``--cascade-from``)."""
    from nodeview.core.detect.reranker import Reranker

    info = Reranker(path).info
    return {"rerank_weight": (info.rerank_weight,), "keep": (info.keep,), "cube_weight": (info.cube_weight,)}


def calibrate(
    data: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    logits: np.ndarray,
    truths: dict[str, Any],
    rank_weight: float,
    fp_per_scan: float = 0.5,
    grid: dict[str, tuple[float, ...]] | None = None,
) -> dict[str, Any]:
    grid = grid or GRID
    table = []
    for a in grid["rerank_weight"]:
        for keep in grid["keep"]:
            for w3 in grid["cube_weight"]:
                preds, _ = predictions(data, scores, logits, a, keep, rank_weight, w3)
                table.append({"rerank_weight": a, "keep": keep, "cube_weight": w3, "cpm": cpm(froc(preds, truths))[0]})
    # best CPM; ties go to fewer candidates (faster), then the smaller weights
    best = max(table, key=lambda r: (round(r["cpm"], 6), -r["keep"], -r["rerank_weight"], -r["cube_weight"]))
    preds, _ = predictions(data, scores, logits, best["rerank_weight"], best["keep"], rank_weight, best["cube_weight"])
    curve = froc(preds, truths)
    op = operating_point(curve, fp_per_scan)
    others = {str(r): float(operating_point(curve, r).threshold) for r in (0.25, 0.5, 1.0)}
    return {
        **best,
        "threshold": float(op.threshold),
        "fp_per_scan": fp_per_scan,
        "thresholds_at": others,
        "grid": table,
    }


def report(
    name: str,
    records: list[ScanRecord],
    data: dict[str, np.ndarray],
    scores: dict[str, np.ndarray],
    logits: np.ndarray,
    chosen: dict[str, Any],
    rank_weight: float,
    plot: Path | None = None,
    thickness: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The cascade's figures on one set; ``thickness`` (scan id -> mm) spares reading the headers."""
    truths = truths_of(records, data)
    base, _ = predictions(data, scores, np.zeros_like(logits), 0.0, DEFAULT_MAX_CANDIDATES, rank_weight, 0.0)
    new, rows_of = predictions(
        data, scores, logits, chosen["rerank_weight"], chosen["keep"], rank_weight, chosen["cube_weight"]
    )
    cpm_new, rates = cpm(froc(new, truths))  # the same curve as ``curve`` below
    curve = froc(new, truths)
    boot = froc_bootstrap(new, truths, n_bootstrap=1000)
    if plot is not None:
        from training.evaluation.plots import plot_froc

        plot_froc(curve, plot, label="re-ranker + ResNet-50", title=f"FROC with the re-ranker, {name}", band=boot)
    diff = cpm_difference_bootstrap(base, new, truths, n_bootstrap=2000)
    # found at the threshold, by size; proposed = among the candidates the ResNet-50 saw
    by_size: dict[str, dict[str, int]] = {}
    fps = 0
    for s, sid in enumerate(data["scan_ids"]):
        hits = nodule_hits(new[str(sid)], truths[str(sid)], chosen["threshold"])
        fps += len(hits.false_positives)
        rows = np.flatnonzero((data["scan"] == s) & data["proposal"])
        seen = rows[rerank_order(data["rank_score"][rows], logits[rows], chosen["rerank_weight"], chosen["keep"])]
        for i, (_, d) in enumerate(truths[str(sid)]):
            group = "3-5 mm" if d < 5 else "5-10 mm" if d < 10 else ">= 10 mm"
            row = by_size.setdefault(group, {"nodules": 0, "proposed": 0, "found": 0})
            row["nodules"] += 1
            row["proposed"] += int(bool(np.any(data["label"][seen] == i)))
            row["found"] += int(hits.found[i])
    n = sum(len(t) for t in truths.values())
    # malignancy per found nodule, as the app reports it: that of the best finding on the nodule
    by_id = {r.scan_id: r for r in records}
    mal_labels: list[int] = []
    mal_scores: list[float] = []
    for sid in truths:
        rated = [x for x in by_id[sid].nodules if x.diameter_mm >= 3.0]
        hits = nodule_hits(new[sid], truths[sid], 0.0)
        for nod, best in zip(rated, hits.best_prediction, strict=True):
            if best >= 0 and nod.malignant is not None:
                mal_labels.append(int(nod.malignant))
                mal_scores.append(float(scores["malignancy_prob"][rows_of[sid][best]]))
    mal_auc = malignancy_auc(mal_labels, mal_scores) if len(set(mal_labels)) == 2 else float("nan")
    from training.evaluation.evaluate import cpm_by_slice, slice_thickness_mm

    slice_mm = {sid: thickness[sid] if thickness else slice_thickness_mm(by_id[sid]) for sid in truths}
    base_slices = cpm_by_slice(base, truths, slice_mm)
    slices = cpm_by_slice(new, truths, slice_mm)
    for k, v in slices.items():
        v["cpm_nodule_model_alone"] = base_slices[k]["cpm"]
    return {
        "set": name,
        "scans": len(truths),
        "nodules": n,
        "cpm": float(cpm_new),
        "cpm_ci95": [float(boot.cpm.low), float(boot.cpm.high)],
        "sensitivity_at_fp_rates": {str(k): float(v) for k, v in rates.items()},
        "cpm_nodule_model_alone": float(cpm(froc(base, truths))[0]),
        "paired_difference": {
            "estimate": diff.estimate,
            "low": diff.low,
            "high": diff.high,
            "p_not_better": diff.p_not_better,
        },
        "sensitivity_at_threshold": sum(r["found"] for r in by_size.values()) / max(1, n),
        "fps_per_scan_at_threshold": fps / max(1, len(truths)),
        "by_size_at_threshold": by_size,
        "cpm_by_slice": slices,
        "malignancy_auc": float(mal_auc),
        "malignancy_auc_nodules": len(mal_labels),
    }


# ---------------------------------------------------------------------------------------- export


def export(
    net: nn.Module,
    path: Path,
    chosen: dict[str, Any],
    model_sha: str,
    metrics: dict[str, Any],
    spec: CubeSpec = DEFAULT_CUBE,
) -> dict[str, Any]:
    import onnx
    import onnxruntime as ort

    net = net.cpu().eval()
    shape = (spec.channels, spec.size, spec.size, spec.size)
    dummy = torch.zeros(2, *shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        net,
        (dummy,),
        str(path),
        input_names=["cubes"],
        output_names=["cube_logit"],
        dynamic_axes={"cubes": {0: "n"}, "cube_logit": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    sha = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.state_dict().values())).hexdigest()
    meta = {
        "name": "nodeview-reranker",
        "version": version_of(net),
        **spec.to_metadata(),
        "top_k": str(chosen["top_k"]),
        "keep": str(chosen["keep"]),
        "rerank_weight": f"{chosen['rerank_weight']:g}",
        "cube_weight": f"{chosen['cube_weight']:g}",
        "rank_score_weight": f"{chosen['rank_score_weight']:g}",
        "operating_threshold": f"{chosen['threshold']:.6g}",
        "operating_fp_per_scan": f"{chosen.get('fp_per_scan', 1.0):g}",
        "nodule_model_sha256": model_sha,
        "weights_sha256": sha,
        "outputs": json.dumps({"cube_logit": "nodule log-odds of the cube (ranks proposals; not a probability)"}),
        "metrics": json.dumps(metrics),
        "research_use_only": "Research use only. Not a medical device; scores are not a diagnosis.",
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(proto, str(path))
    x = np.random.default_rng(0).uniform(-1, 1, (8, *shape)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"cubes": x})[0]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    dev = float(np.max(np.abs(got - want)))
    if not np.allclose(got, want, rtol=1e-3, atol=1e-4):
        raise RuntimeError(f"ONNX and torch disagree (max deviation {dev})")
    return {"path": str(path), "parity_max_abs": dev, "bytes": path.stat().st_size}


def main(args: argparse.Namespace) -> dict[str, Any]:
    dist = distributed.setup(args.device)
    try:
        return _main(args, dist)
    finally:
        dist.close()


def _main(args: argparse.Namespace, dist: distributed.Dist) -> dict[str, Any]:
    if dist.device is not None:
        args.device = str(dist.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train_recs = read_records_csv(args.data)[:: args.every]
    val_recs = read_records_csv(args.val_data)[:: args.every]
    quiet = args.no_progress
    spec = cube_spec(args)
    with dist.main_first():  # rank 0 extracts the cubes into the cache, the others read them
        data = build_split(
            train_recs, out / "cubes-train.npz", args.top_k, True, args.seed, quiet or not dist.is_main, spec
        )
    net = train(args, data, out, dist)
    dist.barrier()
    if not dist.is_main:  # rank 0 calibrates, tests and exports
        return {}
    del data
    det = Detector(args.model, reranker=None)
    rank_weight = det.info.rank_weight
    val = build_split(val_recs, out / "cubes-val.npz", args.top_k, False, args.seed, quiet, spec)
    val_logits = score_cubes(net, val["cubes"], args.device)
    # the nodule model scores only the rows the calibration grid can keep (and its own first 300)
    grid = cascade_of(args.cascade_from) if getattr(args, "cascade_from", "") else GRID
    needed = rows_to_score(val, val_logits, grid["rerank_weight"], int(max(grid["keep"])))
    val_scores = nodule_scores(val_recs, val, args.model, out / "scores-val.npz", quiet, needed)
    chosen = calibrate(val, val_scores, val_logits, truths_of(val_recs, val), rank_weight, args.fp_per_scan, grid)
    chosen.update(top_k=args.top_k, rank_score_weight=rank_weight)
    results: dict[str, Any] = {"chosen_on_validation": chosen}
    results["validation"] = report(
        "validation", val_recs, val, val_scores, val_logits, chosen, rank_weight, out / "val-froc.png"
    )
    if args.test_data:
        test_recs = read_records_csv(args.test_data)[:: args.every]
        test = build_split(test_recs, out / "cubes-test.npz", args.top_k, False, args.seed, quiet, spec)
        test_logits = score_cubes(net, test["cubes"], args.device)
        needed = rows_to_score(test, test_logits, (chosen["rerank_weight"],), chosen["keep"])
        test_scores = nodule_scores(test_recs, test, args.model, out / "scores-test.npz", quiet, needed)
        results["test"] = report(
            "test", test_recs, test, test_scores, test_logits, chosen, rank_weight, out / "test-froc.png"
        )
    headline = {
        k: {m: results[k][m] for m in ("cpm", "cpm_ci95", "cpm_nodule_model_alone", "cpm_by_slice")}
        for k in ("validation", "test")
        if k in results
    }
    target = Path(args.export) if args.export else out / "nodeview-reranker.onnx"
    results["export"] = export(net, target, chosen, det.info.sha256, headline, spec)
    results["seconds"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    return results


if __name__ == "__main__":
    result = main(get_args_parser().parse_args())
    print(json.dumps({k: v for k, v in result.items() if k != "chosen_on_validation"}, indent=2, default=float))
