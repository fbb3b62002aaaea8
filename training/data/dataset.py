"""From annotated scans to labelled 2.5D patches (the same proposals and patches as the app).

For every scan: load it (``nodeview.core.io.study.open_study``), run the app's candidate proposals
(``nodeview.core.detect.candidates.propose``), label each candidate with the LUNA16 rule (a hit is a
candidate within the radius of an annotated nodule), and extract patches with
``nodeview.core.detect.patches``. Annotated nodules that the proposals missed are added as extra
positives so the model still learns them (and the miss is counted in the summary). Positives are
also extracted ``--positive-copies`` times with random rotations and small centre jitter: real
resamplings of the volume, not image tricks. Rotations are either any 3D rotation (``"3d"``, how
the v2 model's caches were made) or about the patient z axis only (``"axial"``). The detector never
rotates, and in thick-slice scans an oblique resampling of the anisotropic voxels looks different
from any axial patch: with ``"3d"`` copies the v2 model learned that look as a nodule cue, and
scores the same nodules far lower unrotated in 5 mm scans (see ``training/README.md``). With
``"axial"`` every copy keeps the axial channel in the slice plane, as at inference.

The result is cached per scan as ``<cache>/<scan_id>.npz`` (float16 patches), so training epochs
never touch DICOM again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nodeview.core.detect.candidates import PROPOSER_VERSION, propose
from nodeview.core.detect.patches import DEFAULT_SPEC, PatchSpec, extract_patches
from nodeview.core.io.study import open_study
from training.data.annotations import NoduleAnnotation, ScanRecord

UNKNOWN = -1


@dataclass
class PatchSet:
    """Patches and labels, concatenated over scans."""

    patches: NDArray[np.float16]  # (N, 3, S, S)
    nodule: NDArray[np.int8]  # 1 nodule, 0 not
    malignant: NDArray[np.int8]  # 1, 0, or UNKNOWN (-1) when not a nodule or unrated
    diameter_mm: NDArray[np.float32]  # nan when not a nodule
    scan: NDArray[np.int32]  # index into scan_ids
    centre_xyz_mm: NDArray[np.float32]
    from_proposal: NDArray[np.bool_]  # False for added ground-truth positives and their copies
    scan_ids: list[str]
    #: the proposal ranker's log-odds (``Candidate.rank_score``); nan for added positives, and for
    #: every row of a cache written before this field existed (see :func:`load_or_mine`)
    rank_score: NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        if len(self.rank_score) != len(self.nodule):
            if len(self.rank_score):
                raise ValueError(f"{len(self.rank_score)} rank scores for {len(self.nodule)} patches")
            self.rank_score = np.full(len(self.nodule), np.nan, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.nodule)

    @classmethod
    def concat(cls, parts: list[PatchSet]) -> PatchSet:
        ids: list[str] = []
        scans = []
        for p in parts:
            scans.append(p.scan + len(ids))
            ids.extend(p.scan_ids)
        return cls(
            np.concatenate([p.patches for p in parts]),
            np.concatenate([p.nodule for p in parts]),
            np.concatenate([p.malignant for p in parts]),
            np.concatenate([p.diameter_mm for p in parts]),
            np.concatenate(scans).astype(np.int32),
            np.concatenate([p.centre_xyz_mm for p in parts]),
            np.concatenate([p.from_proposal for p in parts]),
            ids,
            np.concatenate([p.rank_score for p in parts]),
        )

    def subset(self, index: NDArray[np.intp]) -> PatchSet:
        return PatchSet(
            self.patches[index],
            self.nodule[index],
            self.malignant[index],
            self.diameter_mm[index],
            self.scan[index],
            self.centre_xyz_mm[index],
            self.from_proposal[index],
            self.scan_ids,
            self.rank_score[index],
        )


def hit_radius_mm(nodule: NoduleAnnotation) -> float:
    """A candidate within this distance of the nodule's centre hits it (LUNA16: the radius, at least 1.5 mm)."""
    return max(nodule.diameter_mm / 2.0, 1.5)


def label_candidates(centres: NDArray[np.float64], nodules: tuple[NoduleAnnotation, ...]) -> NDArray[np.intp]:
    """Index of the nodule each candidate hits (LUNA16 rule: within its radius), -1 for none."""
    out = np.full(len(centres), -1, dtype=np.intp)
    if not nodules or len(centres) == 0:
        return out
    best = np.full(len(centres), np.inf)
    for n, nod in enumerate(nodules):
        d = np.linalg.norm(centres - np.asarray(nod.center_xyz_mm), axis=1)
        hit = (d <= hit_radius_mm(nod)) & (d < best)
        out[hit] = n
        best[hit] = d[hit]
    return out


def near_nodule(ps: PatchSet, records: list[ScanRecord], margin_mm: float) -> NDArray[np.bool_]:
    """Patches whose centre lies outside every nodule's radius but within radius + ``margin_mm`` of one.

    Their patch shows the nodule a few millimetres off centre: a near copy of a positive patch,
    labelled negative only because the LUNA16 hit rule ends at the radius. Training can leave them
    out (``train.py --ignore-near-mm``) rather than teach the model to reject small nodules seen
    slightly off centre. The evaluation still counts them as false positives.
    """
    out = np.zeros(len(ps), dtype=bool)
    if margin_mm <= 0 or len(ps) == 0:
        return out
    by_id = {r.scan_id: r for r in records}
    centres = ps.centre_xyz_mm.astype(np.float64)
    for s, scan_id in enumerate(ps.scan_ids):
        rec = by_id.get(scan_id)
        if rec is None or not rec.nodules:
            continue
        rows = np.flatnonzero(ps.scan == s)
        inside = np.zeros(len(rows), dtype=bool)
        near = np.zeros(len(rows), dtype=bool)
        for nod in rec.nodules:
            d = np.linalg.norm(centres[rows] - np.asarray(nod.center_xyz_mm), axis=1)
            radius = hit_radius_mm(nod)
            inside |= d <= radius
            near |= d <= radius + margin_mm
        out[rows] = near & ~inside
    return out


def random_rotations(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Uniform random 3D rotations (QR of Gaussian matrices, determinant +1)."""
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    det = np.linalg.det(q)
    q[det < 0, :, 0] *= -1
    return q


#: how positive copies are rotated (see the module docstring)
POSITIVE_ROTATIONS = ("3d", "axial")


def axial_rotations(n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Uniform random rotations about the patient z axis (the axial plane stays the slice plane)."""
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    out = np.zeros((n, 3, 3))
    out[:, 0, 0] = out[:, 1, 1] = np.cos(angle)
    out[:, 0, 1] = -np.sin(angle)
    out[:, 1, 0] = np.sin(angle)
    out[:, 2, 2] = 1.0
    return out


def mine_scan(
    record: ScanRecord,
    spec: PatchSpec = DEFAULT_SPEC,
    positive_copies: int = 8,
    max_candidates: int = 400,
    seed: int = 0,
    positive_rotations: str = "3d",
) -> tuple[PatchSet, dict[str, object]]:
    """Candidates, labels and patches of one scan, plus a summary (recall of the proposals)."""
    volume = open_study(record.path)
    candidates = propose(volume.hu_zyx, volume.geometry, max_candidates=max_candidates)
    centres = np.asarray([c.center_xyz_mm for c in candidates], dtype=np.float64).reshape(-1, 3)
    hit = label_candidates(centres, record.nodules)
    found = sorted(set(int(h) for h in hit if h >= 0))
    rng = np.random.default_rng(seed)
    # positives: ground-truth centres (always), plus rotated and jittered copies
    extra_centres, extra_nodule = [], []
    for n, nod in enumerate(record.nodules):
        extra_centres.append(np.asarray(nod.center_xyz_mm))
        extra_nodule.append(n)
        for _ in range(positive_copies):
            jitter = rng.normal(0, max(nod.diameter_mm / 8.0, 0.5), 3)
            extra_centres.append(np.asarray(nod.center_xyz_mm) + jitter)
            extra_nodule.append(n)
    all_centres = np.concatenate([centres, np.asarray(extra_centres).reshape(-1, 3)])
    all_hit = np.concatenate([hit, np.asarray(extra_nodule, dtype=np.intp)])
    rotations = np.concatenate(
        [
            np.repeat(np.eye(3)[None], len(centres), axis=0),
            _rotations(positive_rotations, len(extra_centres), rng) if extra_centres else np.zeros((0, 3, 3)),
        ]
    )
    patches = extract_patches(volume.hu_zyx, volume.geometry, all_centres, spec, rotations=rotations)
    nodule = (all_hit >= 0).astype(np.int8)
    malignant = np.full(len(all_hit), UNKNOWN, dtype=np.int8)
    diameter = np.full(len(all_hit), np.nan, dtype=np.float32)
    for i, h in enumerate(all_hit):
        if h >= 0:
            nod = record.nodules[h]
            diameter[i] = nod.diameter_mm
            if nod.malignant is not None:
                malignant[i] = int(nod.malignant)
    part = PatchSet(
        patches=patches.astype(np.float16),
        nodule=nodule,
        malignant=malignant,
        diameter_mm=diameter,
        scan=np.zeros(len(all_hit), dtype=np.int32),
        centre_xyz_mm=all_centres.astype(np.float32),
        from_proposal=np.arange(len(all_hit)) < len(centres),
        scan_ids=[record.scan_id],
        rank_score=np.concatenate(
            [
                np.asarray([c.rank_score for c in candidates], np.float32),
                np.full(len(extra_centres), np.nan, np.float32),
            ]
        ),
    )
    small = [n for n, nod in enumerate(record.nodules) if nod.diameter_mm >= 3.0]
    summary = {
        "scan_id": record.scan_id,
        "candidates": len(candidates),
        "nodules": len(record.nodules),
        "nodules_ge_3mm": len(small),
        "found_by_proposals": len([n for n in found if n in small]),
        "shape_zyx": list(volume.shape_zyx),
    }
    return part, summary


def _rotations(kind: str, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    if kind == "3d":
        return random_rotations(n, rng)
    if kind == "axial":
        return axial_rotations(n, rng)
    raise ValueError(f"positive rotations {kind!r}: expected one of {POSITIVE_ROTATIONS}")


def cache_key(
    record: ScanRecord, spec: PatchSpec, positive_copies: int, max_candidates: int, positive_rotations: str = "3d"
) -> str:
    # "3d" adds nothing to the key, so caches written before the option existed stay valid
    extra = [] if positive_rotations == "3d" else [f"rotations-{positive_rotations}"]
    text = json.dumps(
        [
            record.scan_id,
            record.path,
            [n.__dict__ for n in record.nodules],
            spec.__dict__,
            positive_copies,
            max_candidates,
            f"proposer-v{PROPOSER_VERSION}",
            *extra,
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_or_mine(
    record: ScanRecord,
    cache_dir: str | Path,
    spec: PatchSpec = DEFAULT_SPEC,
    positive_copies: int = 8,
    max_candidates: int = 400,
    seed: int = 0,
    need_rank_scores: bool = False,
    positive_rotations: str = "3d",
) -> tuple[PatchSet, dict[str, object]]:
    """The scan's patches from ``cache_dir``, mined (and cached) on a miss.

    Caches written before ``rank_score`` was stored load with nan rank scores; with
    ``need_rank_scores`` the proposals are run again to fill them in (and the cache is rewritten),
    after checking that they are the cached candidates (same centres to 0.01 mm).
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(record, spec, positive_copies, max_candidates, positive_rotations)
    path = cache_dir / f"{record.scan_id}-{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            part = PatchSet(
                z["patches"],
                z["nodule"],
                z["malignant"],
                z["diameter_mm"],
                z["scan"],
                z["centre_xyz_mm"],
                z["from_proposal"],
                [record.scan_id],
                z["rank_score"] if "rank_score" in z.files else np.zeros(0, np.float32),
            )
            summary = json.loads(str(z["summary"]))
        if need_rank_scores and np.isnan(part.rank_score[part.from_proposal]).any():
            part.rank_score = proposal_rank_scores(record, part, max_candidates)
            _save(path, part, summary)
        return part, summary
    part, summary = mine_scan(record, spec, positive_copies, max_candidates, seed, positive_rotations)
    _save(path, part, summary)
    return part, summary


def proposal_rank_scores(record: ScanRecord, part: PatchSet, max_candidates: int) -> NDArray[np.float32]:
    """``part.rank_score`` with the proposal rows filled in by running the proposals again."""
    volume = open_study(record.path)
    candidates = propose(volume.hu_zyx, volume.geometry, max_candidates=max_candidates)
    rows = np.flatnonzero(part.from_proposal)
    centres = np.asarray([c.center_xyz_mm for c in candidates], dtype=np.float64).reshape(-1, 3)
    if len(centres) != len(rows) or np.abs(centres - part.centre_xyz_mm[rows]).max(initial=0.0) > 0.01:
        raise RuntimeError(f"{record.scan_id}: the proposals differ from the cached ones; delete the cache and re-mine")
    out = part.rank_score.copy()
    out[rows] = [c.rank_score for c in candidates]
    return out


def _save(path: Path, part: PatchSet, summary: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        patches=part.patches,
        nodule=part.nodule,
        malignant=part.malignant,
        diameter_mm=part.diameter_mm,
        scan=part.scan,
        centre_xyz_mm=part.centre_xyz_mm,
        from_proposal=part.from_proposal,
        rank_score=part.rank_score,
        summary=json.dumps(summary),
    )
    tmp.replace(path)
