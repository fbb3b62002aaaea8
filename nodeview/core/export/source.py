"""The source CT images an export refers to (Qt-free).

A :class:`~nodeview.core.volume.Volume` keeps pixels and geometry, not the DICOM headers; the SR's
evidence and the SEG's references need the source images' UIDs, patient and study modules. They
are read again here, headers only, from the files discovery found for the volume's series, and
each image is matched to the volume slice it became (``slice_index``), so that a mask in the
volume grid can be written frame by frame in the source images' grid.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..errors import InputError
from ..io.dicom import discover
from ..progress import ProgressFn, StopFn, check_cancel, never_stop, no_progress
from ..volume import Volume

#: how far (in slices) a source image may sit from the volume slice it is matched to
SLICE_TOLERANCE = 0.1


class NotExportableError(InputError):
    """The open study cannot be exported as DICOM (not DICOM, no frame of reference, ...)."""


@dataclass(frozen=True)
class SourceSeries:
    """The CT series' headers (no pixels), in volume slice order when :attr:`grid_matches`.

    Attributes:
        datasets: one header per source image file.
        slice_index: the volume slice each dataset became (``-1``: none, e.g. a resampled series).
        grid_matches: True when every image is one volume slice with the same rows and columns, so
            that a SEG can be written in the source grid.
    """

    datasets: tuple[Dataset, ...]
    slice_index: tuple[int, ...]
    grid_matches: bool

    @property
    def study_uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.datasets[0].FrameOfReferenceUID)


def read_source_series(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    volume: Volume,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> SourceSeries:
    """Headers of the images of ``volume``'s series under ``paths`` (what the volume was opened from)."""
    if volume.source_format != "dicom" or not volume.series_uid:
        raise NotExportableError(
            "DICOM export needs a single-frame DICOM CT series (this study was opened from "
            f"{volume.source_format or 'a non-DICOM file'})"
        )
    series = discover(paths, should_stop=should_stop).find(volume.series_uid)
    files = sorted({f.path for f in series.frames})
    datasets: list[Dataset] = []
    for n, path in enumerate(files):
        check_cancel(should_stop)
        datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
        progress(n + 1, len(files))
    if any("FrameOfReferenceUID" not in ds or "StudyInstanceUID" not in ds for ds in datasets):
        raise NotExportableError("the series has no FrameOfReferenceUID or StudyInstanceUID: it cannot be referenced")
    slice_index = [_slice_of(ds, volume) for ds in datasets]
    order = sorted(range(len(datasets)), key=lambda i: (slice_index[i], i))
    datasets = [datasets[i] for i in order]
    slice_index = [slice_index[i] for i in order]
    rows, cols = volume.shape_zyx[1:]
    grid = all(k >= 0 for k in slice_index) and len(set(slice_index)) == len(slice_index)
    grid = grid and all(int(ds.Rows) == rows and int(ds.Columns) == cols for ds in datasets)
    return SourceSeries(tuple(datasets), tuple(slice_index), grid)


def _slice_of(ds: Dataset, volume: Volume) -> int:
    """The volume slice this image is (same position and in-plane grid), or -1."""
    if int(getattr(ds, "NumberOfFrames", 1) or 1) != 1 or "ImagePositionPatient" not in ds:
        return -1
    index = volume.geometry.mm_to_index(tuple(float(v) for v in ds.ImagePositionPatient))
    k = int(np.rint(index[0]))
    if abs(index[0] - k) > SLICE_TOLERANCE or np.abs(index[1:]).max() > SLICE_TOLERANCE:
        return -1
    if not 0 <= k < volume.shape_zyx[0]:
        return -1
    return k
