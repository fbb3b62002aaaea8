"""Second proposal stage: a small 3D CNN re-ranks the proposals before the ResNet-50 sees them.

The DoG proposer's ranker (:func:`nodeview.core.candidates.rank_scores`) sees hand-made shape
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
(``training/train_reranker.py``); the detector uses a re-ranker only with that model.

Qt-free and torch-free. Research use only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

from .candidates import fuse_scores
from .errors import NodeViewError
from .geometry import Geometry
from .onnx_session import cpu_session
from .parallel import chunks, map_ordered
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
    """Cube geometry: ``size`` voxels per side of ``spacing_mm``, in patient axes (z, y, x)."""

    size: int = 16
    spacing_mm: float = 1.125
    hu_window: tuple[float, float] = HU_WINDOW

    def to_metadata(self) -> dict[str, str]:
        return {
            "cube_size": str(self.size),
            "cube_spacing_mm": f"{self.spacing_mm:g}",
            "hu_window": f"{self.hu_window[0]:g},{self.hu_window[1]:g}",
            "cube_layout": "1 channel, axes (z, y, x) in patient LPS: +z superior, +y posterior, +x left",
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> CubeSpec:
        lo, hi = (float(v) for v in meta["hu_window"].split(","))
        return cls(size=int(meta["cube_size"]), spacing_mm=float(meta["cube_spacing_mm"]), hu_window=(lo, hi))


DEFAULT_CUBE = CubeSpec()


def cube_offsets_mm(spec: CubeSpec = DEFAULT_CUBE) -> NDArray[np.float64]:
    """LPS mm of every cube voxel relative to the centre: (size, size, size, 3), axes (z, y, x)."""
    o = (np.arange(spec.size, dtype=np.float64) - (spec.size - 1) / 2.0) * spec.spacing_mm
    z, y, x = np.meshgrid(o, o, o, indexing="ij")
    return np.stack([x, y, z], axis=-1)


def extract_cubes(
    hu_zyx: NDArray[np.int16], geometry: Geometry, centres_xyz_mm: ArrayLike, spec: CubeSpec = DEFAULT_CUBE
) -> NDArray[np.float32]:
    """Cubes for N centres: float32 (N, 1, size, size, size) in [-1, 1] (trilinear; outside reads as air)."""
    centres = np.atleast_2d(np.asarray(centres_xyz_mm, dtype=np.float64)).reshape(-1, 3)
    n = centres.shape[0]
    out = np.empty((n, 1, spec.size, spec.size, spec.size), dtype=np.float32)
    if n == 0:
        return out
    centre_index = geometry.mm_to_index(centres)
    offset_index = geometry.mm_offset_to_index(cube_offsets_mm(spec))  # (S, S, S, 3) k, j, i
    window = PatchSpec(hu_window=spec.hu_window)

    def run(start: int, stop: int) -> None:
        coords = centre_index[start:stop, None, None, None, :] + offset_index[None]
        values = ndimage.map_coordinates(
            hu_zyx, coords.reshape(-1, 3).T, order=1, mode="constant", cval=OUTSIDE_HU, output=np.float32
        )
        out[start:stop, 0] = normalise_hu(values.reshape(stop - start, spec.size, spec.size, spec.size), window)

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
            )
        except (ValueError, KeyError) as exc:
            raise RerankerError(f"{path.name} has malformed re-ranker metadata ({exc})") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "cubes" or list(inputs[0].shape[1:]) != [1] + [spec.size] * 3:
            raise RerankerError(f"{path.name} must take one input 'cubes' of shape (N, 1, {spec.size}, ...)")
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


def fuse_three(
    nodule_prob: ArrayLike, rank_score: ArrayLike, cube_logit: ArrayLike, rank_weight: float, cube_weight: float
) -> NDArray[np.float32]:
    """``sigmoid(logit(nodule_prob) + rank_weight * rank_score + cube_weight * cube_logit)``: the
    finding score of :func:`.candidates.fuse_scores` with the re-ranker's log-odds as one more term."""
    extra = rank_weight * np.asarray(rank_score, dtype=np.float64) + cube_weight * np.asarray(
        cube_logit, dtype=np.float64
    )
    return fuse_scores(np.asarray(nodule_prob, dtype=np.float64), extra, 1.0)
