"""The fast display path of the slice views (issue 24, scroll speed): the pixels it draws are the
pixels pyqtgraph and the plain plane extraction would give.

* :class:`OpaqueImageItem` windows int16 through one 64K-entry table: the same grey as pyqtgraph's
  ``makeARGB`` (with and without the inverting lookup table);
* :class:`RowInterpolator`: interpolated rows match float64 linear interpolation (to the HU), and the
  fused windowing pass matches windowing the interpolated image;
* :class:`PlaneSource`: views, the native sagittal cache and the interpolated reformat caches built
  in the background hold exactly those images; the controller shows the cached images.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from nodeview.core.geometry import Geometry
from nodeview.core.views import ViewKind, planes_for
from nodeview.core.volume import Volume
from nodeview.qt.planes import PlaneSource, RowInterpolator
from nodeview.qt.slice_view import INVERTED_LUT, OpaqueImageItem

LEVELS = (-1350.0, 150.0)


def _grey(item: OpaqueImageItem) -> np.ndarray:
    """The rendered QImage's pixels as (rows, cols, 4) BGRA bytes."""
    item.render()
    q = item.qimage
    arr = np.frombuffer(q.constBits(), dtype=np.uint8, count=q.sizeInBytes()).reshape(q.height(), q.bytesPerLine())
    return arr[:, : q.width() * 4].reshape(q.height(), q.width(), 4)


def _volume(shape=(40, 48, 56), spacing=(2.5, 0.7, 0.7), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1200, 1600, size=shape).astype(np.int16)
    hu.flat[:4] = (-32768, 32767, 0, -1)  # extremes of the type
    return hu


@pytest.mark.parametrize("lut", [None, INVERTED_LUT])
def test_fast_render_gives_pyqtgraphs_grey(qtbot, lut):
    image = _volume()[7]
    item = OpaqueImageItem()
    item.setImage(image, levels=LEVELS, autoLevels=False)
    if lut is not None:
        item.setLookupTable(lut)
    got = _grey(item)
    want = pg.functions.makeARGB(image, lut=lut, levels=np.array(LEVELS))[0]  # BGRA on little-endian
    np.testing.assert_array_equal(got[..., :3], want[..., :3])
    assert (got[..., 3] == 255).all()
    # the next frame reuses the buffer and the table; new levels rebuild the table
    item.set_frame(_volume(seed=1)[7])
    np.testing.assert_array_equal(
        _grey(item)[..., :3], pg.functions.makeARGB(item.image, lut=lut, levels=np.array(LEVELS))[0][..., :3]
    )
    item.setLevels((-200.0, 300.0))
    np.testing.assert_array_equal(
        _grey(item)[..., :3], pg.functions.makeARGB(item.image, lut=lut, levels=np.array((-200.0, 300.0)))[0][..., :3]
    )


def test_row_interpolation_and_fused_windowing():
    image = _volume()[:, 5, :]  # a strided plane, as the coronal view hands it over
    rows = RowInterpolator(image.shape[0], 143)
    got = rows(image)
    pos = np.clip((np.arange(143) + 0.5) * image.shape[0] / 143 - 0.5, 0, image.shape[0] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, image.shape[0] - 1)
    f = (pos - lo)[:, None]
    want = np.rint(image[lo] * (1 - f) + image[hi] * f)
    assert np.abs(got.astype(np.int64) - want).max() <= 1
    table = (np.arange(65536, dtype=np.uint32) * 2654435761) & 0xFFFFFFFF  # any table
    out = np.empty(got.shape, np.uint32)
    rows.lookup(image, table, out)
    np.testing.assert_array_equal(out, table[got.view(np.uint16)])
    stack = np.empty((3, 143, image.shape[1]), np.int16)
    rows.volume(np.stack([image, image[::-1], image]), stack)
    np.testing.assert_array_equal(stack[0], got)
    np.testing.assert_array_equal(stack[1], rows(np.ascontiguousarray(image[::-1])))


def test_item_interpolates_rows_while_drawing(qtbot):
    image = _volume()[:, :, 9].T.copy()
    rows = RowInterpolator(image.shape[0], 96)
    item = OpaqueImageItem()
    item.setImage(image, levels=LEVELS, autoLevels=False)
    item.set_rows(rows)
    got = _grey(item)
    assert got.shape[:2] == (96, image.shape[1])
    np.testing.assert_array_equal(got[..., :3], pg.functions.makeARGB(rows(image), levels=np.array(LEVELS))[0][..., :3])
    assert item.image.shape == image.shape  # the item keeps the plane's size and pixels


def test_plane_source_caches_hold_the_planes():
    hu = _volume()
    geometry = Geometry(shape_zyx=hu.shape, spacing_zyx=(2.5, 0.7, 0.7), origin_xyz=(0.0, 0.0, 0.0))
    planes = planes_for(geometry)
    source = PlaneSource(hu, planes)
    assert source.wait(30)
    assert source.cache_bytes == hu.nbytes  # the sagittal copy
    assert set(source.smooth_rows) == {ViewKind.CORONAL, ViewKind.SAGITTAL}
    assert source.smooth_bytes == sum(
        planes[k].n_slices * r.out_rows * planes[k].size_px[0] * 2 for k, r in source.smooth_rows.items()
    )
    for kind, plane in planes.items():
        for i in (0, 3, plane.n_slices - 1):
            native = plane.extract(hu, i)
            np.testing.assert_array_equal(source.extract(kind, i), native)
            rows = source.smooth_rows.get(kind)
            if rows is None:
                assert source.smooth(kind, i) is None
            else:
                np.testing.assert_array_equal(source.smooth(kind, i), rows(native))
    # square pixels: 40 slices of 2.5 mm on 0.7 mm pixels -> 40 x 2.5 / 0.7 = 143 rows, rounded up to 160,
    # but no more rows than columns: coronal 56 columns (x) -> 64, sagittal 48 columns (y) -> 64
    assert source.smooth_out_rows(ViewKind.CORONAL) == 64 and source.smooth_out_rows(ViewKind.SAGITTAL) == 64
    # over the budget: no interpolated caches (the rows are then interpolated while drawing)
    saved = PlaneSource.max_smooth_bytes
    PlaneSource.max_smooth_bytes = source.smooth_bytes - 1
    try:
        assert not PlaneSource(hu, planes, build_cache=False).smooth_rows
    finally:
        PlaneSource.max_smooth_bytes = saved


def test_viewer_shows_the_interpolated_cache(qtbot):
    from nodeview.qt.viewer import ViewerWidget

    hu = _volume(shape=(40, 200, 200))  # 143 rows at square pixels, fewer than the 200 columns
    geometry = Geometry(shape_zyx=hu.shape, spacing_zyx=(2.5, 0.7, 0.7), origin_xyz=(0.0, 0.0, 0.0))
    widget = ViewerWidget()
    qtbot.addWidget(widget)
    widget.resize(900, 700)
    widget.show()
    widget.controller.set_volume(Volume(hu_zyx=hu, geometry=geometry, description="test"))
    source = widget.controller.source
    assert source is not None and source.wait(30)
    coronal = widget.views[ViewKind.CORONAL]
    qtbot.waitUntil(lambda: coronal.screen_rows() is not None and coronal.screen_rows() > 60, timeout=3000)
    widget.controller.scroll(ViewKind.CORONAL, 1)
    k = widget.controller.slice_index(ViewKind.CORONAL)
    np.testing.assert_array_equal(coronal.image_item.image, source.smooth(ViewKind.CORONAL, k))
    widget.controller.set_interpolate(False)  # nearest neighbour: the native plane
    np.testing.assert_array_equal(coronal.image_item.image, widget.controller.planes[ViewKind.CORONAL].extract(hu, k))


def test_scroll_in_1x3_paints_each_view_once(qtbot):
    """A scroll step in the 1x3 layout paints every view once: the scrolled view whole (image and slice
    text), the two others where their crosshair moved - not the scrolled view a second time (its slice
    text used to be painted in a pass of its own, before the scenes' pass; benchmarks/scroll.py --layout 1x3)."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from nodeview.qt.viewer import ViewerWidget

    class PaintLog(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.regions: dict[int, list] = {}

        def eventFilter(self, obj, event):  # type: ignore[no-untyped-def]
            if event.type() == QEvent.Type.Paint:
                self.regions.setdefault(id(obj), []).append(event.region().boundingRect())
            return False

    hu = _volume(shape=(40, 96, 96))
    geometry = Geometry(shape_zyx=hu.shape, spacing_zyx=(2.5, 0.7, 0.7), origin_xyz=(0.0, 0.0, 0.0))
    widget = ViewerWidget()
    qtbot.addWidget(widget)
    widget.resize(3 * 300 + 4, 300)
    widget.show()
    widget.controller.set_volume(Volume(hu_zyx=hu, geometry=geometry, description="test"))
    source = widget.controller.source
    assert source is not None and source.wait(30)
    widget.set_layout(None)
    views = widget.views
    qtbot.waitUntil(lambda: all(v.isVisible() and v.viewport().width() > 100 for v in views.values()), timeout=3000)
    log = PaintLog()
    for view in views.values():
        view.viewport().installEventFilter(log)
    for kind in ViewKind:
        for delta in (1, -1):
            QApplication.processEvents()  # anything pending from before the step
            log.regions.clear()
            before = views[kind].info_text
            widget.controller.scroll(kind, delta)
            assert views[kind].info_text != before
            qtbot.waitUntil(lambda: len(log.regions) == 3, timeout=3000)
            QApplication.processEvents()  # a second pass, if one was queued, would come now
            counts = {k: len(log.regions.get(id(v.viewport()), [])) for k, v in views.items()}
            assert counts == {k: 1 for k in ViewKind}, (kind, delta, counts)
            scrolled = views[kind].viewport()
            assert log.regions[id(scrolled)][0].contains(scrolled.rect()), "the slice text is repainted"
    for view in views.values():
        view.viewport().removeEventFilter(log)
