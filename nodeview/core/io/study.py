"""Open whatever the user points at: a DICOM folder, DICOM files, or a research volume file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import Cancelled, NodeViewError, UnreadableFileError
from ..progress import ProgressFn, StopFn, never_stop, no_progress
from ..volume import Volume
from .dicom import Discovery, SeriesInfo, discover, load_series
from .sitk import read_image_file, sitk_format_of

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class StudySource:
    """What was found at a path: either a DICOM discovery or one research-format file."""

    discovery: Discovery | None
    image_file: str | None

    def default_series(self) -> SeriesInfo | None:
        return self.discovery.default_series() if self.discovery else None


def scan(
    paths: PathLike | Sequence[PathLike], progress: ProgressFn = no_progress, should_stop: StopFn = never_stop
) -> StudySource:
    """Look at ``paths`` (headers only) and say what could be opened."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise UnreadableFileError("no file or folder given")
    if len(items) == 1 and sitk_format_of(items[0]) is not None and os.path.isfile(items[0]):
        return StudySource(None, os.fspath(items[0]))
    return StudySource(discover(items, progress, should_stop), None)


def open_study(
    paths: PathLike | Sequence[PathLike],
    series_uid: str | None = None,
    progress: ProgressFn = no_progress,
    should_stop: StopFn = never_stop,
) -> Volume:
    """Discover and load in one call: the chosen series (default: the largest thin CT series).

    Progress is reported as one 0..1000 scale over discovery (first 30 %) and loading.
    """

    def scaled(lo: int, hi: int) -> ProgressFn:
        return lambda done, total: progress(lo + (hi - lo) * done // max(total, 1), 1000)

    source = scan(paths, scaled(0, 300), should_stop)
    if source.image_file is not None:
        return read_image_file(source.image_file, scaled(300, 1000), should_stop)
    assert source.discovery is not None
    series = source.discovery.find(series_uid) if series_uid else source.discovery.default_series()
    return load_series(series, scaled(300, 1000), should_stop)


__all__ = ["Cancelled", "NodeViewError", "StudySource", "open_study", "scan"]
