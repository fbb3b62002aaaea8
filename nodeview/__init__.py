"""NodeView: a desktop lung-CT viewer with a research lung-nodule detector.

Research use only. NodeView is not a medical device and its findings are not a diagnosis.

For Python users and notebooks, two calls (``import nodeview`` itself loads nothing heavy: no
numpy, no Qt; the work is imported on first use)::

    import nodeview

    volume = nodeview.open_study("LIDC-IDRI-0002/")   # a DICOM folder, DICOM files or .mhd/.nii/.nrrd
    result = nodeview.detect(volume)                  # or nodeview.detect("LIDC-IDRI-0002/")
    for f in result.findings:
        print(f.id, f.location, f"{f.diameter_mm:.1f} mm", f"score {f.score:.3f}", f.center_xyz_mm)

The rest lives in rooms: :mod:`nodeview.core` (study I/O, detection, reports; no Qt, no torch),
:mod:`nodeview.qt` (the viewer) and :mod:`nodeview.cli` (the command line).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

# onnxruntime writes a telemetry store (~/.cache/Microsoft/DeveloperTools/.onnxruntime) as soon as
# it is imported unless this is set first; NodeView sends and stores nothing of the kind.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

if TYPE_CHECKING:
    from .core.detect.detector import DetectionResult, Detector
    from .core.volume import Volume

__version__ = "0.1.0"

RESEARCH_NOTICE = "Research use only - not a medical device, not a diagnosis."

StudyPath = str | os.PathLike[str]


def open_study(path: StudyPath | Sequence[StudyPath], series_uid: str | None = None) -> Volume:
    """Open a CT study as a :class:`~nodeview.core.volume.Volume` (int16 HU, ``(z, y, x)``, LPS mm).

    Args:
        path: a DICOM folder (searched recursively), a list of DICOM files, or one research-format
            file (``.mhd``, ``.nii``/``.nii.gz``, ``.nrrd``).
        series_uid: which series of the folder; default the largest thin CT series, as the viewer
            opens it.

    Raises:
        nodeview.core.errors.NodeViewError: with a one-line message when the input cannot be used
            (no images, unreadable files, no regular volume).
    """
    from .core.io.study import open_study as _open_study

    return _open_study(path, series_uid=series_uid)


def detect(
    volume_or_path: Volume | StudyPath | Sequence[StudyPath],
    model: StudyPath | None = None,
    min_score: float | None = None,
) -> DetectionResult:
    """Find lung nodules, as ``nodeview detect`` and the viewer do.

    Args:
        volume_or_path: a :class:`~nodeview.core.volume.Volume` (e.g. from :func:`open_study`) or
            anything :func:`open_study` opens.
        model: an ONNX nodule model; default the bundled one (with its re-ranker beside it).
        min_score: keep findings scoring at least this (0-1); default the model's operating
            threshold, what the viewer shows. ``0`` lists every scored candidate.

    Returns:
        A :class:`~nodeview.core.detect.detector.DetectionResult`: ``findings`` (best score first;
        centres, boxes and sizes in LPS mm), ``n_candidates``, ``model`` (name, version, sha256,
        threshold), ``caveats`` (what to keep in mind about this scan) and timings.

    The detector of a model is loaded once and reused. Research use only: the findings are
    computer-generated suggestions, not a diagnosis.
    """
    from .core.volume import Volume

    volume = volume_or_path if isinstance(volume_or_path, Volume) else open_study(volume_or_path)
    detector = _detector(os.fspath(model) if model is not None else None)
    threshold = detector.info.threshold if min_score is None else min_score
    return detector.detect(volume, min_score=threshold)


@lru_cache(maxsize=2)
def _detector(model: str | None) -> Detector:
    from .core.detect.detector import Detector
    from .core.detect.models import default_model_path

    return Detector(model or default_model_path())


__all__ = ["RESEARCH_NOTICE", "__version__", "detect", "open_study"]
