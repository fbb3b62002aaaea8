"""The displayed planes of a volume, fast: what one slice step costs before pyqtgraph draws.

The plane through the array's last axis (sagittal, for the usual axial acquisitions) is a gather
of one int16 every 2 x columns bytes: ~2 ms for 300 x 512 samples on this machine, more than
drawing the frame. :class:`PlaneSource` builds, in a background thread, a copy of the volume laid
out as that view's displayed images (slice, row, column, flips applied), after which a step hands
pyqtgraph a contiguous image without copying. Its memory (one more copy of the volume, e.g. 150 MiB
for 300 x 512 x 512) is reported by :attr:`PlaneSource.cache_bytes`. The other planes need no
cache: an axial slice is contiguous and a coronal one is ``rows`` contiguous runs.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from numpy.typing import NDArray

from ..core.views import ViewKind, ViewPlane

#: Slabs: the projection of each mode.
SLAB_MODES = ("MIP", "MinIP")


class PlaneSource:
    """Extracts the displayed image of any plane; caches strided planes (built in the background)."""

    def __init__(self, hu_zyx: NDArray[np.int16], planes: dict[ViewKind, ViewPlane], build_cache: bool = True) -> None:
        self.hu = hu_zyx
        self.planes = planes
        self._cache: dict[ViewKind, NDArray[np.int16]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.build_seconds: float | None = None
        strided = [k for k, p in planes.items() if p.slice_axis == 2 and hu_zyx.ndim == 3]
        if build_cache and strided:
            self._thread = threading.Thread(
                target=self._build, args=(strided,), name="nodeview-plane-cache", daemon=True
            )
            self._thread.start()

    @property
    def cache_bytes(self) -> int:
        return sum(a.nbytes for a in self._cache.values())

    def cached(self, kind: ViewKind) -> bool:
        return kind in self._cache

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Wait for the background copy (tests, benchmarks); True when done."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def close(self) -> None:
        self._stop.set()

    def _build(self, kinds: list[ViewKind]) -> None:
        from ..core.parallel import lower_thread_priority

        lower_thread_priority()
        t0 = time.perf_counter()
        for kind in kinds:
            plane = self.planes[kind]
            order = (plane.slice_axis, plane.v_axis, plane.u_axis)
            src = self.hu.transpose(order)
            if plane.v_flip:
                src = src[:, ::-1, :]
            if plane.u_flip:
                src = src[:, :, ::-1]
            out = np.empty(src.shape, dtype=self.hu.dtype)
            step = 8  # slices at a time: numpy releases the GIL for each block copy
            for s0 in range(0, src.shape[0], step):
                if self._stop.is_set():
                    return
                out[s0 : s0 + step] = src[s0 : s0 + step]
            self._cache[kind] = out  # published whole: readers see it complete or not at all
        self.build_seconds = time.perf_counter() - t0

    def extract(self, kind: ViewKind, index: int, slab: int = 1, mode: str = "MIP") -> NDArray[np.int16]:
        """The displayed image of ``kind`` at ``index``; ``slab`` > 1: MIP or MinIP over that many slices."""
        plane = self.planes[kind]
        cache = self._cache.get(kind)
        n = plane.n_slices
        index = int(np.clip(index, 0, n - 1))
        if cache is not None:
            if slab <= 1:
                return cache[index]
            lo = int(np.clip(index - slab // 2, 0, n - 1))
            hi = int(np.clip(lo + slab, 1, n))
            block = cache[lo:hi]
            return block.min(axis=0) if mode == "MinIP" else block.max(axis=0)
        if slab > 1 and mode == "MinIP":
            return _minip(plane, self.hu, index, slab)
        return plane.extract(self.hu, index, slab)


def _minip(plane: ViewPlane, hu: NDArray[np.int16], index: int, slab: int) -> NDArray[np.int16]:
    """Minimum-intensity projection over ``slab`` slices centred on ``index``, displayed orientation."""
    n = plane.n_slices
    lo = int(np.clip(index - slab // 2, 0, n - 1))
    hi = int(np.clip(lo + slab, 1, n))
    sl: list[slice] = [slice(None)] * 3
    sl[plane.slice_axis] = slice(lo, hi)
    block = hu[tuple(sl)].min(axis=plane.slice_axis)
    remaining = [a for a in range(3) if a != plane.slice_axis]
    if remaining.index(plane.v_axis) != 0:
        block = block.T
    if plane.v_flip:
        block = block[::-1, :]
    if plane.u_flip:
        block = block[:, ::-1]
    return np.ascontiguousarray(block)


class RowInterpolator:
    """Linear interpolation between the rows of a displayed image (the slices of a reformat).

    A coronal or sagittal image of 2.5 mm slices on 0.7 mm pixels has rows 3.6 times farther apart
    than its columns; shown as is, each slice is a block. This makes as many rows as give square
    pixels (at most :attr:`max_factor` times as many), each a linear blend of its two nearest slices,
    in int16 HU before windowing: about 0.3 ms for 300 to 429 rows of 512 here.
    """

    max_factor = 4.0
    min_ratio = 1.2  # rows no more than 1.2x farther apart than columns: left as they are

    def __init__(self, n_rows: int, out_rows: int) -> None:
        self.n_rows, self.out_rows = n_rows, out_rows
        pos = np.clip((np.arange(out_rows) + 0.5) * n_rows / out_rows - 0.5, 0, n_rows - 1)
        self.lo = np.floor(pos).astype(np.intp)
        self.hi = np.minimum(self.lo + 1, n_rows - 1)
        self.w = np.round((pos - self.lo) * 256).astype(np.int32)[:, None]

    @classmethod
    def for_plane(cls, plane: ViewPlane, max_rows: int | None = None) -> RowInterpolator | None:
        """The interpolator of a plane (None: rows close enough); ``max_rows``: the screen rows the
        image covers (more rows than that are not seen). Row counts are rounded up to a multiple of
        32 so that small zoom changes reuse the interpolator."""
        pu, pv = plane.pixel_mm
        h = plane.size_px[1]
        if h < 2 or pv <= cls.min_ratio * pu:
            return None
        out = h * min(pv / pu, cls.max_factor)
        if max_rows is not None:
            out = min(out, max(max_rows, 1))
        out = min(int(np.ceil(out / 32.0) * 32), int(round(h * cls.max_factor)))
        return cls(h, out) if out > h * 1.05 else None

    def __call__(self, image: NDArray[np.int16]) -> NDArray[np.int16]:
        if image.shape[0] != self.n_rows:
            return image
        a = image[self.lo].astype(np.int32)
        a *= 256 - self.w
        a += image[self.hi].astype(np.int32) * self.w
        a += 128
        a >>= 8
        return a.astype(np.int16)
