"""Nodule detection with an ONNX model: proposals -> patches -> onnxruntime -> 3D NMS -> findings.

Qt-free and torch-free. The model is any ONNX file whose metadata says what it expects (written by
``training/export/onnx.py``): input ``patches`` (N, 3, S, S) float32; outputs ``nodule_prob``,
``malignancy_prob``, ``diameter_mm``; ``patch_size``, ``patch_spacing_mm``, ``hu_window``; a model
with missing or incompatible metadata is refused with :class:`ModelError`.

Long runs report ``progress(done, total)`` and stop when ``should_stop()`` turns True; an
inference batch already running is interrupted through ``RunOptions.terminate`` (see
:meth:`Detector.cancel`). Research use only: the scores are not a diagnosis.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import Cancelled, InputError, NodeViewError
from ..parallel import map_ordered
from ..privacy import redact, scrub
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..volume import Volume
from .candidates import DEFAULT_MAX_CANDIDATES, Candidate, MergedFinding, fuse_logits, merge_findings, propose
from .findings import Finding, group_lesions, measure_lesion, segment_lesion, territory_if_mass, unmeasured_finding
from .lung import LungMask, segment_lungs
from .onnx_session import cpu_session
from .patches import PatchSpec, extract_patches
from .reranker import (
    RERANKER_FILE,
    Reranker,
    RerankerError,
    RerankerInfo,
    extract_cubes,
    fuse_three_logits,
    rerank_order,
)
from .scores import SCORE_TEMPERATURE, logit_from_score, score_from_logit, score_from_probability, sigmoid

log = logging.getLogger(__name__)

REQUIRED_METADATA = ("name", "version", "patch_size", "patch_spacing_mm", "hu_window", "outputs", "weights_sha256")
OUTPUT_NAMES = ("nodule_prob", "malignancy_prob", "diameter_mm")
DEFAULT_THRESHOLD = 0.5
#: LUNA16 kept only scans with slices at most this thick; the default model finds markedly fewer
#: nodules on thicker slices (its card tabulates the CPM of both), so detection says so
THIN_SLICE_MAX_MM = 2.5
#: the two slice groups, as ``training/evaluation/evaluate.py`` names them in ``cpm_by_slice``
SLICE_GROUPS = (f"<= {THIN_SLICE_MAX_MM:g} mm", f"> {THIN_SLICE_MAX_MM:g} mm")
#: Said when a mass is among the findings at the operating threshold: the segmentation keeps to the
#: lung mask, whose closing does not reach the bulk of a tumour lying broad-based on the pleura or the
#: mediastinum (Lung-PET-CT-Dx-A0001: 2.7 % of the tissue the radiologists boxed in kernel L; training/README.md).
MASS_CAVEAT = (
    "A mass is measured on its part inside the lung: a tumour lying broad-based on the pleura or the "
    "mediastinum can be much larger than measured. Check its size on the images"
)
BATCH_SIZE = 64
#: Findings measured between two cancel checks (in parallel threads).
MEASURE_GROUP = 16
#: By default, findings scoring within this many fused log-odds below the operating threshold (odds
#: 55 times lower) are segmented and grouped into lesions; the rest keep the model's diameter.
SEGMENT_MARGIN_LOGIT = 4.0
#: What the JSON's ``score`` and ``threshold`` mean (``findings_json``).
SCORE_DEFINITION = (
    f"sigmoid(fused log-odds / {SCORE_TEMPERATURE:g}): the cascade's log-odds (nodule model, proposal ranker, "
    "re-ranker) tempered so that top findings stay apart; orders findings, not a calibrated probability"
)


class ModelError(NodeViewError):
    """The model file is missing, unreadable, or not a NodeView nodule model."""


class UnsuitableVolumeError(InputError):
    """The volume loaded, but it is not a CT the detector can read (too small, odd spacing)."""


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    version: str
    sha256: str
    spec: PatchSpec
    #: the operating threshold in finding-score units (:func:`.scores.score_from_probability` of the
    #: file's ``operating_threshold``, a fused probability; the re-ranker's when one is in use)
    threshold: float
    metadata: dict[str, str] = field(repr=False)
    #: weight of the proposal ranker's log-odds in the finding score (metadata ``rank_score_weight``;
    #: 0: the score is the model's ``nodule_prob``); see :func:`.candidates.fuse_scores`
    rank_weight: float = 0.0
    #: the proposal re-ranker in use (:mod:`.reranker`); its threshold and weights then apply
    reranker: RerankerInfo | None = None

    @property
    def malignancy_meaning(self) -> str:
        """What the malignancy score estimates (metadata ``malignancy_label``; empty when the file does not say)."""
        return self.metadata.get("malignancy_label", "").strip()

    @property
    def label(self) -> str:
        """``name vVERSION``, plus the re-ranker's when one is in use (reports and the findings panel)."""
        text = f"{self.name} v{self.version}"
        return text if self.reranker is None else f"{text} + {self.reranker.name} v{self.reranker.version}"

    def to_dict(self) -> dict[str, str]:
        out = {"name": self.name, "version": self.version, "sha256": self.sha256}
        if self.reranker is not None:
            out["reranker"] = f"{self.reranker.name} {self.reranker.version}"
        return out


@dataclass(frozen=True)
class DetectionResult:
    findings: tuple[Finding, ...]
    n_candidates: int
    model: ModelInfo
    timings_s: dict[str, float]
    #: what the reader should know about how far to trust this detection (:func:`detection_caveats`)
    caveats: tuple[str, ...] = ()


def slice_group(thickness_mm: float) -> str:
    """The :data:`SLICE_GROUPS` name of a slice thickness."""
    return SLICE_GROUPS[0] if thickness_mm <= THIN_SLICE_MAX_MM + 1e-6 else SLICE_GROUPS[1]


def detection_caveats(volume: Volume, model: ModelInfo) -> tuple[str, ...]:
    """Warnings for the reader about this scan: the loader's warnings (interpolated slices, assumed
    orientation, left-out images, ...; patient data scrubbed), then slices thicker than
    :data:`THIN_SLICE_MAX_MM`.

    The CPM of both slice groups is quoted when the model's ``metrics_test`` metadata has them
    (``cpm_by_slice`` from ``training/evaluation/evaluate.py``).
    """
    loader = tuple(scrub(w, volume.patient) for w in volume.warnings)  # every loader warning travels along
    thickness = float(volume.slice_thickness_mm or volume.spacing_zyx[0])
    if slice_group(thickness) == SLICE_GROUPS[0]:
        return loader
    text = (
        f"Slices are {thickness:g} mm thick: the detector finds fewer nodules on slices thicker than "
        f"{THIN_SLICE_MAX_MM:g} mm, small ones above all"
    )
    try:
        if model.reranker is not None:  # the re-ranker's metadata measures the cascade the app runs
            by_slice = json.loads(model.reranker.metadata.get("metrics", "{}")).get("test", {}).get("cpm_by_slice", {})
        else:
            by_slice = json.loads(model.metadata.get("metrics_test", "{}")).get("cpm_by_slice", {})
        thin, thick = (by_slice[name]["cpm"] for name in SLICE_GROUPS)
        text += f" (test CPM {float(thick):.2f}, against {float(thin):.2f} on thinner slices)"
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return (*loader, text + ". Use a thin-slice series if the study has one.")


def file_sha256(path: str | os.PathLike[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Detector:
    """One onnxruntime session per model. ``threads`` defaults to :func:`~.parallel.thread_count`
    (every core). The GUI stays responsive because idle inference threads sleep rather than spin
    and, in the app, inherit the background priority of the task that creates the session
    (:func:`~.parallel.lower_thread_priority`); ``benchmarks/detect.py`` measures the stalls."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        threads: int | None = None,
        reranker: str | os.PathLike[str] | None = "auto",
    ) -> None:
        """``reranker``: "auto" uses ``nodeview-reranker.onnx`` beside the model when it was
        calibrated for this model (its ``nodule_model_sha256``), a path requires that file, None
        runs without one."""
        path = Path(model_path)
        self.session, self._run_options = cpu_session(path, threads, ModelError, "model")
        self.info = self._validate(path)
        self._lock = threading.Lock()
        self.reranker: Reranker | None = None
        if reranker is not None:
            explicit = reranker != "auto"
            candidate = Path(reranker) if explicit else path.with_name(RERANKER_FILE)
            if explicit or candidate.is_file():
                try:
                    found = Reranker(candidate, threads)
                except RerankerError as exc:
                    if explicit:
                        raise ModelError(str(exc)) from exc
                    log.warning("re-ranker not used: %s", exc)
                    found = None
                if found is not None and found.info.nodule_model_sha256 != self.info.sha256:
                    if explicit:
                        raise ModelError(f"{candidate.name} was calibrated for another nodule model")
                    log.info("re-ranker %s not used: calibrated for another nodule model", candidate.name)
                    found = None
                if found is not None:
                    self.reranker = found
                    self.info = replace(
                        self.info,
                        threshold=score_from_probability(found.info.threshold),
                        rank_weight=found.info.rank_score_weight,
                        reranker=found.info,
                    )

    def _validate(self, path: Path) -> ModelInfo:
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [k for k in REQUIRED_METADATA if k not in meta]
        if missing:
            raise ModelError(f"{path.name} is not a NodeView nodule model: metadata lacks {', '.join(missing)}")
        try:
            spec = PatchSpec.from_metadata(meta)
            outputs = json.loads(meta["outputs"])
            threshold = float(meta.get("operating_threshold", DEFAULT_THRESHOLD))
            rank_weight = float(meta.get("rank_score_weight", 0.0))
        except (ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ModelError(f"{path.name} has malformed NodeView metadata ({exc})") from exc
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != "patches":
            raise ModelError(f"{path.name} must take one input named 'patches'")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3 or shape[2] != spec.size or shape[3] != spec.size:
            raise ModelError(f"{path.name} input shape {shape} does not match patch_size {spec.size}")
        names = [o.name for o in self.session.get_outputs()]
        if tuple(names) != OUTPUT_NAMES or set(outputs) != set(OUTPUT_NAMES):
            raise ModelError(f"{path.name} outputs {names} are not {list(OUTPUT_NAMES)}")
        if not 0.0 <= threshold <= 1.0:
            raise ModelError(f"{path.name} operating_threshold {threshold} is not a probability")
        if not 0.0 <= rank_weight <= 10.0:
            raise ModelError(f"{path.name} rank_score_weight {rank_weight} is outside 0-10")
        return ModelInfo(
            str(path),
            meta["name"],
            meta["version"],
            meta["weights_sha256"],
            spec,
            score_from_probability(threshold),
            meta,
            rank_weight,
        )

    def cancel(self) -> None:
        """Interrupt a running inference batch (called from another thread)."""
        self._run_options.terminate = True
        if self.reranker is not None:
            self.reranker.run_options.terminate = True

    def score(
        self, patches: NDArray[np.float32], should_stop: StopFn = never_stop, progress: ProgressFn = no_progress
    ) -> dict[str, NDArray[np.float32]]:
        """Run the model on patches in batches of ``BATCH_SIZE``."""
        out: dict[str, list[NDArray[np.float32]]] = {k: [] for k in OUTPUT_NAMES}
        self._run_options.terminate = False
        n = len(patches)
        for start in range(0, n, BATCH_SIZE):
            check_cancel(should_stop)
            try:
                results = self.session.run(None, {"patches": patches[start : start + BATCH_SIZE]}, self._run_options)
            except Exception as exc:
                if self._run_options.terminate or should_stop():
                    raise Cancelled() from exc
                raise ModelError(f"the model failed on this study ({type(exc).__name__}: {exc})") from exc
            for name, values in zip(OUTPUT_NAMES, results, strict=True):
                out[name].append(np.asarray(values, dtype=np.float32).reshape(-1))
            progress(min(start + BATCH_SIZE, n), n)
        scores = {k: (np.concatenate(v) if v else np.zeros(0, np.float32)) for k, v in out.items()}
        check_model_outputs(scores, Path(self.info.path).name if hasattr(self, "info") else "the model")
        return scores

    def detect(
        self,
        volume: Volume,
        progress: ProgressFn = no_progress,
        should_stop: StopFn = never_stop,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        min_score: float | None = None,
        segment_from: float | None = None,
    ) -> DetectionResult:
        """Findings with score >= ``min_score`` (default: 0, every scored candidate after NMS), one
        per lesion, best first. The score is the finding score of :mod:`.scores` (fused log-odds,
        tempered; ``self.info.threshold`` is in the same units).

        Findings scoring at least ``segment_from`` (default: :meth:`segment_from_default`, 4
        log-odds below the operating threshold) are segmented; those falling in one lesion become
        one finding measured on the whole lesion (:meth:`_lesions`). The rest keep the model's
        diameter estimate (``Finding.measured`` False, type "unmeasured"), which saves a
        segmentation each for the hundreds of low-scoring candidates ``min_score=0`` lists.

        With a re-ranker (:mod:`.reranker`), the proposals are its ``top_k`` (the first
        ``max_candidates`` placed as a run of that many places them), its 3D CNN re-orders them
        and its ``keep`` best go to the nodule model; the finding score adds its ``cube_logit``.

        Progress runs over 100 steps: lungs 0-15, proposals 15-40, re-ranking and patches 40-50,
        inference 50-90, measurements 90-100.
        """
        check_detectable(volume)
        with self._lock:
            timings: dict[str, float] = {}
            t = time.perf_counter()
            progress(0, 100)
            lung = segment_lungs(volume.hu_zyx, volume.geometry)
            timings["lungs"] = time.perf_counter() - t
            check_cancel(should_stop)
            progress(15, 100)
            t = time.perf_counter()
            rr = self.reranker.info if self.reranker is not None else None
            candidates = propose(
                volume.hu_zyx,
                volume.geometry,
                lung,
                max(max_candidates, rr.top_k) if rr is not None else max_candidates,
                progress=lambda d, n: progress(15 + 25 * d // max(n, 1), 100),
                should_stop=should_stop,
                refine_until=max_candidates if rr is not None else None,
                subvoxel=rr is not None and rr.subvoxel_peaks,
            )
            timings["proposals"] = time.perf_counter() - t
            cube_logit = np.zeros(len(candidates), dtype=np.float32)
            if self.reranker is not None and rr is not None and candidates:
                t = time.perf_counter()
                centres = np.asarray([c.center_xyz_mm for c in candidates], dtype=np.float64).reshape(-1, 3)
                self._run_options.terminate = False
                self.reranker.run_options.terminate = False
                try:
                    logits = self.reranker.score(extract_cubes(volume.hu_zyx, volume.geometry, centres, rr.spec))
                except Exception as exc:
                    if should_stop():
                        raise Cancelled() from exc
                    raise ModelError(f"the re-ranker failed on this study ({type(exc).__name__}: {exc})") from exc
                if not np.all(np.isfinite(logits)):
                    raise ModelError("the re-ranker gave values that are not finite: wrong or broken model")
                keep = rerank_order([c.rank_score for c in candidates], logits, rr.rerank_weight, rr.keep)
                candidates = [candidates[i] for i in keep]
                cube_logit = logits[keep]
                timings["rerank"] = time.perf_counter() - t
                check_cancel(should_stop)
            t = time.perf_counter()
            centres = np.asarray([c.center_xyz_mm for c in candidates], dtype=np.float64).reshape(-1, 3)
            patches = extract_patches(volume.hu_zyx, volume.geometry, centres, self.info.spec)
            timings["patches"] = time.perf_counter() - t
            check_cancel(should_stop)
            progress(50, 100)
            t = time.perf_counter()
            scores = self.score(patches, should_stop, lambda d, n: progress(50 + 40 * d // max(n, 1), 100))
            timings["inference"] = time.perf_counter() - t
            t = time.perf_counter()
            ranks = np.asarray([c.rank_score for c in candidates], dtype=np.float64)
            if rr is not None:
                fused = fuse_three_logits(
                    scores["nodule_prob"], ranks, cube_logit, rr.rank_score_weight, rr.cube_weight
                )
            else:
                fused = fuse_logits(scores["nodule_prob"], ranks, self.info.rank_weight)
            score = score_from_logit(fused)  # float64: the top findings differ in late digits
            scores["score"] = score  # type: ignore[assignment]
            # the candidates merge (which join, and the score-weighted centre) on the fused probability
            # in float32, as training evaluates them (``merge_findings`` weights by score)
            scores["merge_score"] = np.asarray(sigmoid(fused), dtype=np.float32)
            merged = nms_3d(candidates, scores)
            threshold = 0.0 if min_score is None else min_score
            merged = [m for m in merged if score[m.index] >= threshold]
            measure_at = self.segment_from_default() if segment_from is None else segment_from
            findings = self._lesions(volume, lung, merged, score, scores, measure_at, should_stop)
            timings["postprocess"] = time.perf_counter() - t
            progress(100, 100)
            findings.sort(key=lambda f: -f.score)
            renumbered = tuple(f.with_id(i + 1) for i, f in enumerate(findings))
            caveats = detection_caveats(volume, self.info)
            if any(f.category == "mass" and f.score >= self.info.threshold for f in findings):
                caveats = (*caveats, MASS_CAVEAT)
            return DetectionResult(renumbered, len(candidates), self.info, timings, caveats)

    def segment_from_default(self) -> float:
        """The finding score from which findings are segmented by default: :data:`SEGMENT_MARGIN_LOGIT`
        fused log-odds below the operating threshold."""
        return float(score_from_logit(logit_from_score(self.info.threshold) - SEGMENT_MARGIN_LOGIT))

    @staticmethod
    def _lesions(
        volume: Volume,
        lung: LungMask,
        merged: list[MergedFinding],
        score: NDArray[np.float64],
        scores: dict[str, NDArray[np.float32]],
        measure_at: float,
        should_stop: StopFn,
    ) -> list[Finding]:
        """One finding per lesion: segment the findings scoring at least ``measure_at``, group those
        that fall in one lesion (:func:`.findings.group_lesions`; an unsegmented finding joins a
        lesion its centre lies in, or a mass's territory) and measure each lesion once, on all its
        members' voxels. The lesion keeps its best member's score, malignancy and model diameter."""
        to_segment = [n for n, m in enumerate(merged) if score[m.index] >= measure_at]

        def segment(n: int) -> NDArray[np.int64]:
            m = merged[n]
            return segment_lesion(volume, lung, m.center_xyz_mm, float(scores["diameter_mm"][m.index]))

        masks: list[NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)] * len(merged)
        for start in range(0, len(to_segment), MEASURE_GROUP):  # segmentations run on the array thread pool
            check_cancel(should_stop)
            part = to_segment[start : start + MEASURE_GROUP]
            for n, voxels in zip(part, map_ordered(segment, part), strict=True):
                masks[n] = voxels
        centres = np.full(len(merged), -1, dtype=np.int64)
        for n, m in enumerate(merged):
            k, j, i = np.rint(volume.geometry.mm_to_index(m.center_xyz_mm)).astype(int)
            if all(0 <= v < s for v, s in zip((k, j, i), volume.shape_zyx, strict=True)):
                centres[n] = int(np.ravel_multi_index((k, j, i), volume.shape_zyx))
        # a mass's territory (the tissue beside it that the lung mask left out) groups, not measures
        territories = [territory_if_mass(volume, lung, m) for m in masks]
        groups = group_lesions(centres, masks, territories)

        def measure(group: list[int]) -> Finding:
            lead = merged[group[0]]
            k = lead.index
            # the first segmented member's mask (the lead may be unsegmented), with every member's
            # mask that shares voxels with it, directly or through another member's
            rest = [n for n in group if len(masks[n])]
            voxels = masks[rest.pop(0)] if rest else masks[group[0]]
            grew = True
            while grew and rest:
                grew = False
                for n in list(rest):
                    if len(np.intersect1d(masks[n], voxels, assume_unique=True)):
                        voxels = np.union1d(voxels, masks[n])
                        rest.remove(n)
                        grew = True
            args = (float(score[k]), float(scores["malignancy_prob"][k]), float(scores["diameter_mm"][k]))
            if len(voxels):
                found = measure_lesion(volume, lung, voxels, *args)
            else:
                found = unmeasured_finding(volume, lung, lead.center_xyz_mm, args[2], args[0], args[1])
            return replace(found, n_candidates=sum(len(merged[n].members) for n in group))

        findings: list[Finding] = []
        for start in range(0, len(groups), MEASURE_GROUP):
            check_cancel(should_stop)
            findings.extend(map_ordered(measure, groups[start : start + MEASURE_GROUP]))
        return findings


#: Largest nodule diameter (mm) a model may output.
MAX_DIAMETER_MM = 300.0


def check_model_outputs(scores: dict[str, NDArray[np.float32]], name: str) -> None:
    """Raise :class:`ModelError` unless the probabilities are in 0..1 and the diameters finite,
    non-negative and below :data:`MAX_DIAMETER_MM` (a wrong or broken model, never a finding)."""
    tolerance = 1e-4
    for key in ("nodule_prob", "malignancy_prob"):
        values = scores.get(key)
        if values is None or values.size == 0:
            continue
        if not np.all(np.isfinite(values)) or values.min() < -tolerance or values.max() > 1.0 + tolerance:
            raise ModelError(
                f"{name} gave {key} values outside 0..1 or not finite (range {_range_text(values)}): "
                "wrong or broken model"
            )
        np.clip(values, 0.0, 1.0, out=values)
    diam = scores.get("diameter_mm")
    if diam is not None and diam.size:
        if not np.all(np.isfinite(diam)) or diam.min() < 0.0:
            raise ModelError(
                f"{name} gave negative or non-finite diameters (range {_range_text(diam)}): wrong or broken model"
            )
        # a regression head may extrapolate past any real lesion: bounded, not a broken model
        np.clip(diam, 0.0, MAX_DIAMETER_MM, out=diam)


def _range_text(values: NDArray[np.float32]) -> str:
    finite = values[np.isfinite(values)]
    text = f"{float(finite.min()):g}..{float(finite.max()):g}" if finite.size else "none finite"
    return text + (f", {values.size - finite.size} not finite" if finite.size < values.size else "")


#: Smallest in-plane image size (pixels) and the spacing range (mm) detection works on.
MIN_DETECT_SIZE = 32
DETECT_PIXEL_MM = (0.2, 5.0)
DETECT_MAX_STEP_MM = 20.0


def check_detectable(volume: Volume) -> None:
    """Raise :class:`UnsuitableVolumeError` when the volume is not a CT the detector can read:
    images smaller than :data:`MIN_DETECT_SIZE` pixels, pixels outside :data:`DETECT_PIXEL_MM`,
    slices further apart than :data:`DETECT_MAX_STEP_MM`."""
    nz, ny, nx = volume.shape_zyx
    dz, dy, dx = (float(v) for v in volume.spacing_zyx)
    if min(ny, nx) < MIN_DETECT_SIZE:
        raise UnsuitableVolumeError(
            f"images of {ny} x {nx} pixels are too small for nodule detection (at least {MIN_DETECT_SIZE})"
        )
    lo, hi = DETECT_PIXEL_MM
    if not (lo <= dy <= hi and lo <= dx <= hi):
        raise UnsuitableVolumeError(
            f"pixels of {dy:g} x {dx:g} mm are outside the {lo:g}-{hi:g} mm nodule detection works on"
        )
    if nz > 1 and dz > DETECT_MAX_STEP_MM:
        raise UnsuitableVolumeError(f"slices {dz:g} mm apart are too far apart for nodule detection")


def nms_3d(candidates: list[Candidate], scores: dict[str, NDArray[np.float32]]) -> list[MergedFinding]:
    """The findings after merging each lesion's candidates (:func:`.candidates.merge_findings`),
    best first by ``scores["merge_score"]`` (the fused probability, as training merges), else
    ``scores["score"]``, else the model's ``nodule_prob``."""
    if not candidates:
        return []
    centres = np.asarray([c.center_xyz_mm for c in candidates], dtype=np.float64)
    merge_by = scores.get("merge_score", scores.get("score", scores["nodule_prob"]))
    return merge_findings(centres, merge_by, scores["diameter_mm"])


def findings_json(
    result: DetectionResult, volume: Volume, min_score: float, anonymize: bool, timings: dict[str, float]
) -> dict[str, Any]:
    """The ``nodeview.findings/1`` document: the findings with score >= ``min_score``, best first.

    ``threshold`` is the model's operating threshold and ``min_score`` the filter asked for, both
    in finding-score units (:mod:`.scores`); scores are written at full precision."""
    study: dict[str, Any] = {
        "series_uid": volume.series_uid,
        "modality": redact(volume.modality, volume.patient),
        "shape_zyx": list(volume.shape_zyx),
        "spacing_zyx_mm": [round(float(v), 6) for v in volume.spacing_zyx],
    }
    if not anonymize:
        study["patient_id"] = volume.patient.patient_id
    return {
        "schema": "nodeview.findings/1",
        "study": study,
        "model": result.model.to_dict(),
        "threshold": float(result.model.threshold),
        "min_score": float(min_score),
        "score": SCORE_DEFINITION,
        "research_use_only": "Research use only. Not a medical device. Not a diagnosis.",
        "caveats": list(result.caveats),
        "findings": [f.to_json() for f in result.findings if f.score >= min_score],
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


__all__ = [
    "MASS_CAVEAT",
    "SLICE_GROUPS",
    "THIN_SLICE_MAX_MM",
    "DetectionResult",
    "Detector",
    "ModelError",
    "ModelInfo",
    "UnsuitableVolumeError",
    "check_detectable",
    "check_model_outputs",
    "detection_caveats",
    "findings_json",
    "nms_3d",
    "slice_group",
]
