"""Second proposal stage: a small 3D CNN re-ranks the proposals before the ResNet-50 sees them.

The DoG proposer's ranker (:func:`nodeview.core.detect.candidates.rank_scores`) sees hand-made shape
features. Small nodules beside vessels or the pleura rank below vessel junctions, and the
ResNet-50's 2.5D patch (0.75 mm, then stride 4 in its stem) sees a 3 mm nodule as about one
feature-map pixel. The re-ranker looks at a 3D cube around each of the top ``top_k`` proposals
(16 voxels of 1.125 mm per side, 18 mm, no striding before its first 3x3x3 convolution) and
returns a nodule log-odds ``cube_logit`` per candidate. The detector then

1. orders the ``top_k`` proposals by ``rank_score + rerank_weight * cube_logit`` and keeps the
   best ``keep`` for the ResNet-50;
2. scores each finding ``sigmoid(logit(nodule_prob) + rank_score_weight * rank_score +
   cube_weight * cube_logit)``.

The file ``nodeview-reranker.onnx`` carries these parameters and the operating threshold of the
fused score in its metadata, together with the sha256 of the nodule model they were chosen for
(``training/engine/train_reranker.py``); the detector uses a re-ranker only with that model.

Qt-free and torch-free. Research use only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from ..errors import NodeViewError
from ..geometry import Geometry
from ..parallel import chunks, map_ordered
from .candidates import fuse_logits, fuse_scores
from .onnx_session import cpu_session
from .patches import HU_WINDOW, OUTSIDE_HU, PatchSpec, normalise_hu

#: The default re-ranker's file name, looked for beside the nodule model.
RERANKER_FILE = "nodeview-reranker.onnx"
REQUIRED_METADATA = (
    "name",
    "version",
    "cube_size",
    "cube_spacing_mm",
    "hu_window",
    "top_k",
    "keep",
    "rerank_weight",
    "cube_weight",
    "rank_score_weight",
    "operating_threshold",
    "nodule_model_sha256",
)
_CHUNK = 64


class RerankerError(NodeViewError):
    """The re-ranker file is unreadable or not a NodeView re-ranker."""


@dataclass(frozen=True)
class CubeSpec:
    """Cube geometry: ``size`` voxels per side of ``spacing_mm``, in patient axes (z, y, x).

    With ``context_spacing_mm`` the re-ranker also sees a second, coarser cube of the same size
    around each centre (channel 1), sampled from the volume block-averaged to about that spacing:
    16 voxels of 3 mm show 48 mm of surroundings (the diaphragm, the hilum, a vessel's course)
    where the first cube shows 18 mm."""

    size: int = 16
    spacing_mm: float = 1.125
    hu_window: tuple[float, float] = HU_WINDOW
    context_spacing_mm: float | None = None

    @property
    def channels(self) -> int:
        return 1 if self.context_spacing_mm is None else 2

    def to_metadata(self) -> dict[str, str]:
        meta = {
            "cube_size": str(self.size),
            "cube_spacing_mm": f"{self.spacing_mm:g}",
            "hu_window": f"{self.hu_window[0]:g},{self.hu_window[1]:g}",
            "cube_layout": "1 channel, axes (z, y, x) in patient LPS: +z superior, +y posterior, +x left",
        }
        if self.context_spacing_mm is not None:
            meta["context_spacing_mm"] = f"{self.context_spacing_mm:g}"
            meta["cube_layout"] = (
                f"2 channels (0: {self.spacing_mm:g} mm voxels; 1: {self.context_spacing_mm:g} mm voxels of the "
                "block-averaged volume), same centre, axes (z, y, x) in patient LPS: +z superior, +y posterior, +x left"
            )
        return meta

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> CubeSpec:
        lo, hi = (float(v) for v in meta["hu_window"].split(","))
        context = meta.get("context_spacing_mm")
        return cls(
            size=int(meta["cube_size"]),
            spacing_mm=float(meta["cube_spacing_mm"]),
            hu_window=(lo, hi),
            context_spacing_mm=float(context) if context else None,
        )


DEFAULT_CUBE = CubeSpec()


def cube_offsets_mm(spec: CubeSpec = DEFAULT_CUBE) -> NDArray[np.float64]:
    """LPS mm of every cube voxel relative to the centre: (size, size, size, 3), axes (z, y, x)."""
    o = (np.arange(spec.size, dtype=np.float64) - (spec.size - 1) / 2.0) * spec.spacing_mm
    z, y, x = np.meshgrid(o, o, o, indexing="ij")
    return np.stack([x, y, z], axis=-1)


def extract_cubes(
    hu_zyx: NDArray[np.int16], geometry: Geometry, centres_xyz_mm: ArrayLike, spec: CubeSpec = DEFAULT_CUBE
) -> NDArray[np.float32]:
    """Cubes for N centres: float32 (N, channels, size, size, size) in [-1, 1] (trilinear; outside
    reads as air). Channel 0 samples the volume at ``spec.spacing_mm``; with a context spacing,
    channel 1 is :func:`extract_context_cubes`."""
    centres = np.atleast_2d(np.asarray(centres_xyz_mm, dtype=np.float64)).reshape(-1, 3)
    offsets = geometry.mm_offset_to_index(cube_offsets_mm(CubeSpec(size=spec.size, spacing_mm=spec.spacing_mm)))
    fine = _sample_cubes(hu_zyx, geometry.mm_to_index(centres), offsets, spec.hu_window)
    if spec.context_spacing_mm is None:
        return fine
    context = extract_context_cubes(hu_zyx, geometry, centres_xyz_mm, spec)
    return np.concatenate([fine, context], axis=1)


def extract_context_cubes(
    hu_zyx: NDArray[np.int16], geometry: Geometry, centres_xyz_mm: ArrayLike, spec: CubeSpec
) -> NDArray[np.float32]:
    """The coarse cubes of ``spec.context_spacing_mm`` (N, 1, size, size, size) in [-1, 1].

    The volume is first averaged over blocks of ``floor(context / spacing)`` voxels on each axis
    (anti-aliasing: a 3 mm cube sampled straight from 0.7 mm pixels would skip most of them), then
    sampled trilinearly at the block centres' positions. Only the region the cubes reach is
    averaged; the blocks stay aligned to voxel 0, so the values do not depend on that region.
    """
    if spec.context_spacing_mm is None:
        raise ValueError("this cube spec has no context cube")
    centres = np.atleast_2d(np.asarray(centres_xyz_mm, dtype=np.float64)).reshape(-1, 3)
    n, s = centres.shape[0], spec.size
    if n == 0:
        return np.empty((0, 1, s, s, s), dtype=np.float32)
    spacing = np.asarray(geometry.spacing_zyx, dtype=np.float64)
    f = np.maximum(1, np.floor(spec.context_spacing_mm / spacing + 1e-6)).astype(int)
    shape = np.asarray(hu_zyx.shape)
    whole = shape // f * f  # trailing voxels that do not fill a block are left out
    centre_index = geometry.mm_to_index(centres)
    offset_index = geometry.mm_offset_to_index(cube_offsets_mm(CubeSpec(size=s, spacing_mm=spec.context_spacing_mm)))
    # the blocks the trilinear samples can touch, plus one, aligned to multiples of f
    flat = offset_index.reshape(-1, 3)
    lo_idx = np.floor(centre_index.min(axis=0) + flat.min(axis=0)) - f
    hi_idx = np.ceil(centre_index.max(axis=0) + flat.max(axis=0)) + f
    lo = np.clip(np.floor(lo_idx / f) * f, 0, whole).astype(int)
    hi = np.clip(np.ceil((hi_idx + 1) / f) * f, 0, whole).astype(int)
    hi = np.maximum(hi, lo)
    if np.any(hi - lo == 0):  # every cube lies wholly outside the volume
        return normalise_hu(np.full((n, 1, s, s, s), OUTSIDE_HU, dtype=np.float32), PatchSpec(hu_window=spec.hu_window))
    box = hu_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    b = (hi - lo) // f

    def block_sums(slab: tuple[int, int]) -> NDArray[np.int32]:
        a, e = slab
        v = box[a * f[0] : e * f[0]].reshape(e - a, f[0], b[1], f[1], b[2], f[2])
        return np.asarray(v.sum(axis=(1, 3, 5), dtype=np.int32))

    # Integer block sums (exact, as is their float32 value: |sum| < 2**24) in slabs of blocks on the
    # array thread pool, then one division: the float32 mean, 5x faster than converting the box first.
    sums = map_ordered(block_sums, [(a, min(a + 8, int(b[0]))) for a in range(0, int(b[0]), 8)])
    small = np.concatenate(sums).astype(np.float32) / np.float32(f[0] * f[1] * f[2])
    return _sample_cubes(small, centre_index, offset_index, spec.hu_window, (lo, f))


def _sample_cubes(
    image: NDArray[np.int16] | NDArray[np.float32],
    centre_index: NDArray[np.float64],
    offset_index: NDArray[np.float64],
    hu_window: tuple[float, float],
    blocks: tuple[NDArray[np.int_], NDArray[np.int_]] | None = None,
) -> NDArray[np.float32]:
    """Trilinear samples of ``image`` at every centre + offset (volume indices), normalised:
    (N, 1, S, S, S). With ``blocks = (lo, f)`` the image holds the means of blocks of ``f``
    voxels from voxel ``lo`` on, and volume indices are mapped to block indices first."""
    n, size = len(centre_index), offset_index.shape[0]
    out = np.empty((n, 1, size, size, size), dtype=np.float32)
    window = PatchSpec(hu_window=hu_window)

    def run(start: int, stop: int) -> None:
        coords = centre_index[start:stop, None, None, None, :] + offset_index[None]
        if blocks is not None:  # block m covers voxels lo + m f ... lo + m f + f - 1
            lo, f = blocks
            coords = (coords - lo - (f - 1) / 2.0) / f
        values = ndimage.map_coordinates(
            image, coords.reshape(-1, 3).T, order=1, mode="constant", cval=OUTSIDE_HU, output=np.float32
        )
        out[start:stop, 0] = normalise_hu(values.reshape(stop - start, size, size, size), window)

    if n:
        map_ordered(lambda ab: run(*ab), chunks(n, max(1, -(-n // _CHUNK))))
    return out


@dataclass(frozen=True)
class RerankerInfo:
    path: str
    name: str
    version: str
    spec: CubeSpec
    top_k: int
    keep: int
    rerank_weight: float
    cube_weight: float
    rank_score_weight: float
    threshold: float
    nodule_model_sha256: str
    metadata: dict[str, str] = field(repr=False)
    #: the cascade was calibrated on proposals with sub-voxel peak positions (metadata
    #: ``proposal_positions`` = ``subvoxel``; absent or ``voxel``: the working grid's voxels)
    subvoxel_peaks: bool = False


def _proposal_positions(meta: dict[str, str]) -> str:
    value = meta.get("proposal_positions", "voxel")
    if value not in ("voxel", "subvoxel"):
        raise ValueError(f"proposal_positions {value!r} is neither 'voxel' nor 'subvoxel'")
    return value


class Reranker:
    """One onnxruntime session on a re-ranker file (input ``cubes``, output ``cube_logit``)."""

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        p = Path(path)
        self.session, self.run_options = cpu_session(p, threads, RerankerError, "re-ranker")
        self.info = self._validate(p)

    def _validate(self, path: Path) -> RerankerInfo:
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise RerankerError(f"{path.name} is not a NodeView re-ranker: metadata lacks {', '.join(missing)}")
        try:
            spec = CubeSpec.from_metadata(meta)
            info = RerankerInfo(
                str(path),
                meta["name"],
                meta["version"],
                spec,
                int(meta["top_k"]),
                int(meta["keep"]),
                float(meta["rerank_weight"]),
                float(meta["cube_weight"]),
                float(meta["rank_score_weight"]),
                float(meta["operating_threshold"]),
                meta["nodule_model_sha256"],
                meta,
                subvoxel_peaks=_proposal_positions(meta) == "subvoxel",
            )
        except (ValueError, KeyError) as exc:
            raise RerankerError(f"{path.name} has malformed re-ranker metadata ({exc})") from exc
        inputs = self.session.get_inputs()
        want = [spec.channels] + [spec.size] * 3
        if len(inputs) != 1 or inputs[0].name != "cubes" or list(inputs[0].shape[1:]) != want:
            raise RerankerError(
                f"{path.name} must take one input 'cubes' of shape (N, {spec.channels}, {spec.size}, ...)"
            )
        if [o.name for o in self.session.get_outputs()] != ["cube_logit"]:
            raise RerankerError(f"{path.name} must have one output 'cube_logit'")
        if not (0 < info.keep <= info.top_k) or not 0.0 <= info.threshold <= 1.0:
            raise RerankerError(f"{path.name}: keep {info.keep}, top_k {info.top_k} or threshold out of range")
        return info

    def score(self, cubes: NDArray[np.float32], batch: int = 256) -> NDArray[np.float32]:
        out = [
            np.asarray(self.session.run(None, {"cubes": cubes[s : s + batch]}, self.run_options)[0]).reshape(-1)
            for s in range(0, len(cubes), batch)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def rerank_order(rank_score: ArrayLike, cube_logit: ArrayLike, weight: float, keep: int) -> NDArray[np.intp]:
    """Indices of the ``keep`` best candidates by ``rank_score + weight * cube_logit`` (stable)."""
    key = np.asarray(rank_score, dtype=np.float64) + weight * np.asarray(cube_logit, dtype=np.float64)
    return np.asarray(np.argsort(-key, kind="stable")[:keep], dtype=np.intp)


def fuse_three_logits(
    nodule_prob: ArrayLike, rank_score: ArrayLike, cube_logit: ArrayLike, rank_weight: float, cube_weight: float
) -> NDArray[np.float64]:
    """``logit(nodule_prob) + rank_weight * rank_score + cube_weight * cube_logit`` (float64): the
    fused log-odds the app's finding score maps (:func:`.scores.score_from_logit`)."""
    extra = rank_weight * np.asarray(rank_score, dtype=np.float64) + cube_weight * np.asarray(
        cube_logit, dtype=np.float64
    )
    return fuse_logits(np.asarray(nodule_prob, dtype=np.float64), extra, 1.0)


def fuse_three(
    nodule_prob: ArrayLike, rank_score: ArrayLike, cube_logit: ArrayLike, rank_weight: float, cube_weight: float
) -> NDArray[np.float32]:
    """``sigmoid(logit(nodule_prob) + rank_weight * rank_score + cube_weight * cube_logit)``: the
    fused probability of :func:`.candidates.fuse_scores` with the re-ranker's log-odds as one more
    term (the units of the file's ``operating_threshold``)."""
    extra = rank_weight * np.asarray(rank_score, dtype=np.float64) + cube_weight * np.asarray(
        cube_logit, dtype=np.float64
    )
    return fuse_scores(np.asarray(nodule_prob, dtype=np.float64), extra, 1.0)
