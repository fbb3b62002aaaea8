"""Tubes: vessels, airways and great vessels as capsule chains painted on the fine grid, and the
vessel trees grown by recursive partitioning (Kitaoka-style)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from training.data.synth.arrays import F32, F64


# ================================================================================================
# Tubes: vessels, airways, great vessels (capsule chains painted on the fine grid)
# ================================================================================================
@dataclass
class _Tubes:
    """Segments (n, 8): x0 y0 z0 x1 y1 z1 r0 r1 (LPS mm), painted with ``hu``; mode "max" keeps
    denser background, "paint" replaces it."""

    segs: F64
    hu: float
    mode: str


def _polyline(points: Sequence[Sequence[float]], radii: Sequence[float], max_len: float = 12.0) -> F64:
    rows = []
    for (p0, r0), (p1, r1) in itertools.pairwise(zip(points, radii, strict=True)):
        a, b = np.asarray(p0, float), np.asarray(p1, float)
        n = max(1, int(math.ceil(np.linalg.norm(b - a) / max_len)))
        for k in range(n):
            f0, f1 = k / n, (k + 1) / n
            rows.append([*(a + (b - a) * f0), *(a + (b - a) * f1), r0 + (r1 - r0) * f0, r0 + (r1 - r0) * f1])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 8)


_BOX_CLASSES = ((6, 10, 10), (8, 14, 14), (12, 20, 20), (16, 28, 28))


def _capsule_occupancy(az: F32, ay: F32, ax: F32, seg: F32, inv_w: np.float32) -> F32:
    """Soft occupancy of tapered capsules; ``az, ay, ax`` are coordinates relative to each capsule's
    start, shaped to broadcast over (batch, z, y, x); ``seg`` rows are dz, dy, dx, r0, r1."""
    dz, dy, dx, r0, r1 = (seg[:, i].reshape(-1, 1, 1, 1) for i in range(5))
    l2 = dz * dz + dy * dy + dx * dx + np.float32(1e-9)
    qd = (az * dz + ay * dy) + ax * dx
    t = qd / l2
    np.clip(t, 0.0, 1.0, out=t)
    q2 = (az * az + ay * ay) + ax * ax
    dist2 = q2 - t * (2.0 * qd - t * l2)
    np.maximum(dist2, 0.0, out=dist2)
    occ = np.sqrt(dist2)
    occ -= r0 + (r1 - r0) * t
    occ *= -inv_w
    occ += np.float32(0.5)
    np.clip(occ, 0.0, 1.0, out=occ)
    return occ


def _paint_tubes(
    fine: F32, origin_zyx: F64, spacing_zyx: F64, tubes: _Tubes, edge_mm: float, z_range: tuple[int, int] | None = None
) -> None:
    """Paint capsules (linearly tapered radius) with a soft edge of ``edge_mm``, only into slices
    ``z_range`` when given. Small capsules are evaluated in batches of fixed-size boxes."""
    segs = np.asarray(tubes.segs, dtype=np.float64)
    if len(segs) == 0:
        return
    nz, ny, nx = fine.shape
    k_lo, k_hi = z_range if z_range is not None else (0, nz)
    hu = np.float32(tubes.hu)
    inv_w = np.float32(1.0 / edge_mm)
    org = np.asarray(origin_zyx, dtype=np.float64)
    sp = np.asarray(spacing_zyx, dtype=np.float64)
    p0 = segs[:, [2, 1, 0]]  # (z, y, x)
    p1 = segs[:, [5, 4, 3]]
    rmax = np.maximum(segs[:, 6], segs[:, 7])[:, None] + edge_mm
    lo = np.floor((np.minimum(p0, p1) - rmax - org) / sp).astype(np.int64)
    hi = np.ceil((np.maximum(p0, p1) + rmax - org) / sp).astype(np.int64) + 1
    live = (hi[:, 0] > k_lo) & (lo[:, 0] < k_hi) & (hi[:, 1] > 0) & (lo[:, 1] < ny) & (hi[:, 2] > 0) & (lo[:, 2] < nx)
    dims = hi - lo
    todo = live.copy()
    seg32 = np.concatenate([p1 - p0, segs[:, 6:8]], axis=1).astype(np.float32)
    upper = np.array([k_hi, ny, nx])
    lower = np.array([k_lo, 0, 0])

    def apply(idx: int, occ_box: F32, base: NDArray[np.int64]) -> None:
        a = np.maximum(base, lower)
        b = np.minimum(base + np.asarray(occ_box.shape), upper)
        if np.any(b <= a):
            return
        o = occ_box[a[0] - base[0] : b[0] - base[0], a[1] - base[1] : b[1] - base[1], a[2] - base[2] : b[2] - base[2]]
        sub = fine[a[0] : b[0], a[1] : b[1], a[2] : b[2]]
        if tubes.mode == "max":
            np.maximum(sub, sub + o * (hu - sub), out=sub)
        else:
            sub += o * (hu - sub)

    for box in _BOX_CLASSES:
        sel = np.flatnonzero(todo & np.all(dims <= np.asarray(box), axis=1))
        if len(sel) == 0:
            continue
        todo[sel] = False
        batch = max(8, 250_000 // int(np.prod(box)))
        kz, ky, kx = (np.arange(n, dtype=np.float32) for n in box)
        for start in range(0, len(sel), batch):
            ids = sel[start : start + batch]
            base = lo[ids]
            rel = (org + base * sp - p0[ids]).astype(np.float32)  # position of the box corner
            az = (rel[:, 0:1] + kz[None, :] * np.float32(sp[0]))[:, :, None, None]
            ay = (rel[:, 1:2] + ky[None, :] * np.float32(sp[1]))[:, None, :, None]
            ax = (rel[:, 2:3] + kx[None, :] * np.float32(sp[2]))[:, None, None, :]
            occ = _capsule_occupancy(az, ay, ax, seg32[ids], inv_w)
            for n, idx in enumerate(ids):
                if occ[n].any():
                    apply(int(idx), occ[n], base[n])
    for idx in np.flatnonzero(todo):
        base = np.maximum(lo[idx], lower)
        top = np.minimum(hi[idx], upper)
        if np.any(top <= base):
            continue
        rel = (org + base * sp - p0[idx]).astype(np.float32)
        kz, ky, kx = (np.arange(top[a] - base[a], dtype=np.float32) * np.float32(sp[a]) + rel[a] for a in range(3))
        occ = _capsule_occupancy(
            kz[None, :, None, None], ky[None, None, :, None], kx[None, None, None, :], seg32[idx : idx + 1], inv_w
        )
        apply(int(idx), occ[0], base)


def _grow_tree(
    rng: np.random.Generator, root: F64, points: F64, r_root: float, r_min: float, first_dir: F64 | None = None
) -> tuple[F64, NDArray[np.intp]]:
    """Space-filling vessel tree by recursive partitioning of ``points`` (Kitaoka-style).

    Each branch heads for the centroid of the points it supplies and covers 35-50 % of the way;
    its points are then split in two by the plane through their centroid across their widest
    spread (perpendicular to the branch); children radii follow Murray's law with flow
    proportional to the number of points supplied. A branch supplying <= 2 points ends at them.
    All branches of one generation are processed together.

    Returns:
        ``(segments, generation)``: rows x0 y0 z0 x1 y1 z1 r0 r1 (LPS mm), and each row's generation.
    """
    pts = np.asarray(points, dtype=np.float64)
    n_all = len(pts)
    node = np.zeros(n_all, dtype=np.intp)
    alive = np.ones(n_all, dtype=bool)
    p0 = np.asarray(root, dtype=np.float64)[None, :]
    pdir = np.zeros((1, 3)) if first_dir is None else np.asarray(first_dir, dtype=np.float64)[None, :]
    radius = np.array([r_root])
    rows: list[F64] = []
    gens: list[NDArray[np.intp]] = []
    gen = 0
    while len(p0) and alive.any():
        n_nodes = len(p0)
        idx = np.flatnonzero(alive)
        nd = node[idx]
        cnt = np.bincount(nd, minlength=n_nodes).astype(np.float64)
        cen = np.stack([np.bincount(nd, weights=pts[idx, a], minlength=n_nodes) for a in range(3)], 1)
        cen /= np.maximum(cnt, 1.0)[:, None]
        v = cen - p0
        dist = np.linalg.norm(v, axis=1)
        u = v / np.maximum(dist, 1e-9)[:, None]
        back = (np.abs(pdir).sum(axis=1) > 0) & ((u * pdir).sum(axis=1) < 0.25)
        u[back] = u[back] + 0.9 * pdir[back]
        u /= np.maximum(np.linalg.norm(u, axis=1), 1e-9)[:, None]
        terminal = (cnt <= 2) | (radius < r_min * 1.15) | (dist < 1e-3)
        frac = rng.uniform(0.35, 0.5, n_nodes)
        extra = rng.uniform(1.0, 4.0, n_nodes)
        length = np.where(terminal, dist + extra, np.maximum(frac * dist, 1.5 * radius))
        p1 = p0 + u * length[:, None]
        r_end = np.where(terminal, np.maximum(0.6 * radius, 0.8 * r_min), 0.96 * radius)
        keep = cnt > 0
        rows.append(np.concatenate([p0, p1, radius[:, None], r_end[:, None]], axis=1)[keep])
        gens.append(np.full(int(keep.sum()), gen, dtype=np.intp))
        # split the points of every non-terminal branch
        split = ~terminal & keep
        alive[idx[terminal[nd]]] = False
        idx = np.flatnonzero(alive)
        if len(idx) == 0:
            break
        nd = node[idx]
        x = pts[idx] - cen[nd]
        x_perp = x - (x * u[nd]).sum(axis=1)[:, None] * u[nd]
        cov = np.zeros((n_nodes, 3, 3))
        for a in range(3):
            for b_ in range(a, 3):
                cov[:, a, b_] = cov[:, b_, a] = np.bincount(nd, weights=x_perp[:, a] * x_perp[:, b_], minlength=n_nodes)
        cov[~split] = np.eye(3)
        axis = np.linalg.eigh(cov)[1][:, :, -1]
        side = (x * axis[nd]).sum(axis=1) > 0
        n_true = np.bincount(nd, weights=side.astype(np.float64), minlength=n_nodes)
        degenerate = (n_true == 0) | (n_true == cnt)
        if degenerate[nd].any():  # all points on one side: alternate them
            side = np.where(degenerate[nd], (np.arange(len(idx)) % 2) == 0, side)
            n_true = np.bincount(nd, weights=side.astype(np.float64), minlength=n_nodes)
        rank = np.cumsum(split) - 1
        node[idx] = 2 * rank[nd] + (~side).astype(np.intp)
        parents = np.flatnonzero(split)
        n_child = np.stack([n_true[parents], cnt[parents] - n_true[parents]], axis=1).ravel()
        parent = np.repeat(parents, 2)
        p0 = p1[parent]
        pdir = u[parent]
        radius = radius[parent] * (n_child / cnt[parent]) ** (1.0 / 3.0)
        gen += 1
    return np.concatenate(rows) if rows else np.zeros((0, 8)), np.concatenate(gens) if gens else np.zeros(0, np.intp)
