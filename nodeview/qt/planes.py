"""The displayed planes of a volume, fast: what one slice step costs before pyqtgraph draws.

The plane through the array's last axis (sagittal, for the usual axial acquisitions) is a gather
of one int16 every 2 x columns bytes: ~2 ms for 300 x 512 samples on this machine, more than
drawing the frame. :class:`PlaneSource` builds, in a background thread, a copy of the volume laid
out as that view's displayed images (slice, row, column, flips applied), after which a step hands
pyqtgraph a contiguous image without copying. Its memory (one more copy of the volume, e.g. 150 MiB
for 300 x 512 x 512) is reported by :attr:`PlaneSource.cache_bytes`. The other planes need no
cache: an axial slice is contiguous and a coronal one is ``rows`` contiguous runs.

Reformats whose slices lie farther apart than their pixels (coronal and sagittal of most CTs) are
shown with their rows interpolated linearly in HU (:class:`RowInterpolator`). The same thread then
builds, for each such view, the interpolated planes at square pixels, up to as many rows as the
plane has columns (``smooth`` caches: e.g. 300 -> 448 rows for 1 mm slices of 0.7 mm pixels, 224 MiB
per view for 300 x 512 x 512; 512 rows for thicker slices), so that a step shows a precomputed image;
until they are ready, for slabs, and in a view zoomed in to more screen rows than the cache has, the
rows are interpolated as each frame is drawn. Their memory is :attr:`PlaneSource.smooth_bytes`, and
they are left out when they would pass :attr:`PlaneSource.max_smooth_bytes`.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from numpy.typing import NDArray

from ..core.views import ViewKind, ViewPlane

#: Slabs: the projection of each mode.
SLAB_MODES = ("MIP", "MinIP")


def _displayed(plane: ViewPlane, hu: NDArray[np.int16]) -> NDArray[np.int16]:
    """The volume as a (slice, row, column) view in the plane's display orientation (no copy)."""
    src = hu.transpose((plane.slice_axis, plane.v_axis, plane.u_axis))
    if plane.v_flip:
        src = src[:, ::-1, :]
    if plane.u_flip:
        src = src[:, :, ::-1]
    return src


class PlaneSource:
    """Extracts the displayed image of any plane; caches strided planes and interpolated reformats
    (built in the background)."""

    #: Interpolated reformat caches are built only while all of them together stay under this.
    max_smooth_bytes = 1 << 30

    def __init__(
        self,
        hu_zyx: NDArray[np.int16],
        planes: dict[ViewKind, ViewPlane],
        build_cache: bool = True,
        smooth: bool = True,
    ) -> None:
        self.hu = hu_zyx
        self.planes = planes
        self._cache: dict[ViewKind, NDArray[np.int16]] = {}
        self._smooth: dict[ViewKind, NDArray[np.int16]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.build_seconds: float | None = None
        self.smooth_seconds: float | None = None
        strided = [k for k, p in planes.items() if p.slice_axis == 2 and hu_zyx.ndim == 3]
        self.smooth_rows: dict[ViewKind, RowInterpolator] = {}
        if smooth and hu_zyx.ndim == 3:
            for kind, plane in planes.items():
                # square pixels, but no more rows than the plane has columns: a cached image is no
                # larger than an axial slice (a view zoomed in past that interpolates while drawing)
                rows = RowInterpolator.for_plane(plane, max_rows=plane.size_px[0])
                if rows is not None:
                    self.smooth_rows[kind] = rows
            total = sum(
                p.n_slices * r.out_rows * p.size_px[0] * 2 for k, r in self.smooth_rows.items() for p in [planes[k]]
            )
            if total > self.max_smooth_bytes:
                self.smooth_rows = {}
        if build_cache and (strided or self.smooth_rows):
            self._thread = threading.Thread(
                target=self._build, args=(strided,), name="nodeview-plane-cache", daemon=True
            )
            self._thread.start()

    @property
    def cache_bytes(self) -> int:
        """Bytes of the native plane caches (the strided views' copies)."""
        return sum(a.nbytes for a in self._cache.values())

    @property
    def smooth_bytes(self) -> int:
        """Bytes of the interpolated reformat caches built so far."""
        return sum(a.nbytes for a in self._smooth.values())

    def cached(self, kind: ViewKind) -> bool:
        return kind in self._cache

    def smooth(self, kind: ViewKind, index: int) -> NDArray[np.int16] | None:
        """The precomputed interpolated image of ``kind`` at ``index`` (None until it is built)."""
        cache = self._smooth.get(kind)
        if cache is None:
            return None
        return cache[min(max(int(index), 0), cache.shape[0] - 1)]

    def smooth_out_rows(self, kind: ViewKind) -> int:
        """Rows of the interpolated cache of ``kind`` (0: none)."""
        rows = self.smooth_rows.get(kind)
        return 0 if rows is None else rows.out_rows

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Wait for the background copies (tests, benchmarks); True when done."""
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
            src = _displayed(self.planes[kind], self.hu)
            out = np.empty(src.shape, dtype=self.hu.dtype)
            step = 8  # slices at a time: numpy releases the GIL for each block copy
            for s0 in range(0, src.shape[0], step):
                if self._stop.is_set():
                    return
                out[s0 : s0 + step] = src[s0 : s0 + step]
            self._cache[kind] = out  # published whole: readers see it complete or not at all
        self.build_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        for kind, rows in self.smooth_rows.items():
            native = self._cache.get(kind)
            src = native if native is not None else _displayed(self.planes[kind], self.hu)
            out = np.empty((src.shape[0], rows.out_rows, src.shape[2]), dtype=np.int16)
            for s0 in range(0, src.shape[0], 8):
                if self._stop.is_set():
                    return
                rows.volume(src[s0 : s0 + 8], out[s0 : s0 + 8])
            self._smooth[kind] = out
        self.smooth_seconds = time.perf_counter() - t0

    def extract(self, kind: ViewKind, index: int, slab: int = 1, mode: str = "MIP") -> NDArray[np.int16]:
        """The displayed image of ``kind`` at ``index``; ``slab`` > 1: MIP or MinIP over that many slices."""
        plane = self.planes[kind]
        cache = self._cache.get(kind)
        n = plane.n_slices
        index = min(max(int(index), 0), n - 1)
        if cache is not None:
            if slab <= 1:
                return cache[index]
            lo = int(np.clip(index - slab // 2, 0, n - 1))
            hi = int(np.clip(lo + slab, 1, n))
            block = cache[lo:hi]
            return block.min(axis=0) if mode == "MinIP" else block.max(axis=0)
        if slab > 1 and mode == "MinIP":
            return _minip(plane, self.hu, index, slab)
        if slab <= 1:
            return _view(plane, self.hu, index)
        return plane.extract(self.hu, index, slab)


def _view(plane: ViewPlane, hu: NDArray[np.int16], index: int) -> NDArray[np.int16]:
    """The displayed image at ``index`` as a view of the volume (no copy; the same pixels as
    :meth:`ViewPlane.extract`): an axial slice is contiguous, a coronal one ``rows`` contiguous runs."""
    return _displayed(plane, hu)[index]


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
    pixels (at most :attr:`max_factor` times as many, and no more than the screen shows), each a
    linear blend of its two nearest slices, in HU before windowing (float32 weights, rounded to the
    nearest HU).

    The work runs in blocks of :attr:`block_rows` output rows through small reused buffers that stay
    in the CPU cache, and :meth:`lookup` windows each block through a lookup table straight into the
    displayed RGB32 pixels: one pass over memory instead of eight (fresh full-size temporaries cost
    a page fault per 4 KiB, and a shared machine's cache does not hold them). Not thread-safe: one
    interpolator serves one view, in the GUI thread.
    """

    max_factor = 4.0
    min_ratio = 1.2  # rows no more than 1.2x farther apart than columns: left as they are
    block_rows = 128

    def __init__(self, n_rows: int, out_rows: int) -> None:
        self.n_rows, self.out_rows = n_rows, out_rows
        pos = np.clip((np.arange(out_rows) + 0.5) * n_rows / out_rows - 0.5, 0, n_rows - 1)
        self.lo = np.floor(pos).astype(np.intp)
        self.hi = np.minimum(self.lo + 1, n_rows - 1)
        frac = (pos - self.lo).astype(np.float32)[:, None]
        self.w_hi = frac  # weight of row hi (column vectors, float32)
        self.w_lo = (np.float32(1.0) - frac).astype(np.float32)
        self._work: tuple[np.ndarray, ...] | None = None  # block buffers, reused

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

    def _blocks(self, image: NDArray[np.int16]):  # type: ignore[no-untyped-def]
        """Yield ``(r0, r1, hu)``: output rows r0:r1 interpolated, int16 (a reused buffer)."""
        cols = image.shape[1]
        n = self.block_rows
        if self._work is None or self._work[0].shape != (n, cols):
            self._work = (
                np.empty((n, cols), np.int16),
                np.empty((n, cols), np.int16),
                np.empty((n, cols), np.float32),
                np.empty((n, cols), np.float32),
                np.empty((n, cols), np.int16),
            )
        a, b, fa, fb, hu = self._work
        lo, hi, w_lo, w_hi = self.lo, self.hi, self.w_lo, self.w_hi
        take, multiply, add, rint, copyto = np.take, np.multiply, np.add, np.rint, np.copyto
        for r0 in range(0, self.out_rows, n):
            r1 = min(r0 + n, self.out_rows)
            m = r1 - r0
            if m != n:
                a, b, fa, fb, hu = a[:m], b[:m], fa[:m], fb[:m], hu[:m]
            take(image, lo[r0:r1], axis=0, out=a, mode="clip")
            take(image, hi[r0:r1], axis=0, out=b, mode="clip")
            multiply(a, w_lo[r0:r1], out=fa)
            multiply(b, w_hi[r0:r1], out=fb)
            add(fa, fb, out=fa)
            rint(fa, out=fa)
            copyto(hu, fa, casting="unsafe")
            yield r0, r1, hu

    def __call__(self, image: NDArray[np.int16], out: NDArray[np.int16] | None = None) -> NDArray[np.int16]:
        """The interpolated HU image, ``(out_rows, columns)`` int16 (into ``out`` when it fits)."""
        if image.shape[0] != self.n_rows:
            return image
        shape = (self.out_rows, image.shape[1])
        if out is None or out.shape != shape or out.dtype != np.int16:
            out = np.empty(shape, np.int16)
        for r0, r1, hu in self._blocks(image):
            out[r0:r1] = hu
        return out

    def volume(self, planes: NDArray[np.int16], out: NDArray[np.int16]) -> None:
        """Interpolate the rows of a stack of planes ``(n, n_rows, columns)`` into ``out``
        ``(n, out_rows, columns)``, whole arrays at a time (background builds; no shared buffers):
        the same values as :meth:`__call__` of each plane."""
        a = np.take(planes, self.lo, axis=1).astype(np.float32)
        a *= self.w_lo
        b = np.take(planes, self.hi, axis=1).astype(np.float32)
        b *= self.w_hi
        a += b
        np.rint(a, out=a)
        np.copyto(out, a, casting="unsafe")

    def lookup(self, image: NDArray[np.int16], table: NDArray[np.uint32], out: NDArray[np.uint32]) -> None:
        """``out[:] = table[interpolated image viewed as uint16]``: window the interpolated rows
        through a 65536-entry table (indexed by the int16 bits) into ``out``, block by block."""
        take = np.take
        for r0, r1, hu in self._blocks(image):
            take(table, hu.view(np.uint16), out=out[r0:r1], mode="clip")
