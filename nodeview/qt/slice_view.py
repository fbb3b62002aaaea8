"""One 2D view (axial, coronal or sagittal) of the volume, drawn with pyqtgraph.

Scene coordinates are screen millimetres of :class:`nodeview.core.views.ViewPlane` (u right,
v down), so zoom and pan never disturb the crosshair or measurements, and distances read in mm.

Mouse and keys (the conventions of RadiAnt, Weasis and Horos; the main window sets the mode):
    wheel / arrows / PageUp-PageDown   scroll slices (PageUp/Down and Shift+arrows: 10 at a time;
                                       Home/End: first/last). The wheel moves one slice per notch
                                       (120 units of angle delta), touchpads by pixel distance.
    left drag, by mouse mode           crosshair (default) | W window/level | Z zoom | T pan |
                                       S scroll | D distance | N angle | E ellipse ROI;
                                       Ctrl makes window/level and scroll drags 4x faster
    right drag                         window (horizontal) / level (vertical), in every mode
    middle drag, Shift+left drag       pan
    Ctrl+wheel, Ctrl+left drag         zoom (Ctrl+left drag in crosshair mode)
    double-click, R                    reset zoom and pan
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetrics,
    QImage,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsLineItem, QGraphicsPathItem, QGraphicsRectItem, QWidget

from ..core.views import ViewKind, ViewPlane, crossing_views
from .measurements import ANGLE, DISTANCE, ELLIPSE, Measurement, angle_deg, distance_mm
from .planes import RowInterpolator

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

#: Colours of each view's plane (3D Slicer's: axial red, coronal green, sagittal yellow).
VIEW_COLOURS = {
    ViewKind.AXIAL: QColor(230, 80, 80),
    ViewKind.CORONAL: QColor(90, 200, 90),
    ViewKind.SAGITTAL: QColor(230, 200, 60),
}
BACKGROUND = QColor(0, 0, 0)
MEASURE_COLOUR = QColor("#00e5ff")
#: Mouse modes of the left button (keys in the main window: W Z T S D N E, Esc back to crosshair).
CROSSHAIR, WINDOW, ZOOM, PAN, SCROLL = "crosshair", "window", "zoom", "pan", "scroll"
MODES = (CROSSHAIR, WINDOW, ZOOM, PAN, SCROLL, DISTANCE, ANGLE, ELLIPSE)
#: Angle delta of one wheel notch (Qt: 1/8 degree units, 15 degrees a notch) = one slice.
WHEEL_NOTCH = 120
#: Touchpad scroll distance (pixelDelta) per slice.
TOUCHPAD_PX_PER_SLICE = 20
#: Scroll-mode drag distance per slice in pixels (Ctrl: 4x faster).
DRAG_PX_PER_SLICE = 6
INVERTED_LUT = np.arange(255, -1, -1, dtype=np.uint8)


_TABLES: dict[tuple[float, float, bytes | None], np.ndarray] = {}  # shared by the views (a W/L drag: one build)


def _rgb32_table(key: tuple[float, float, bytes | None], lut: np.ndarray | None) -> np.ndarray:
    """int16 bits (as uint16) -> opaque grey RGB32 for levels ``key[:2]`` and lookup table ``lut``."""
    table = _TABLES.get(key)
    if table is None:
        lo, hi = key[0], key[1]
        values = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.float32)  # index = uint16 bits
        rng = (hi - lo) or 1.0
        if lut is None:
            grey = np.clip((values - np.float32(lo)) * np.float32(255.0 / rng), 0, 255).astype(np.uint8)
        else:
            idx = np.clip((values - np.float32(lo)) * np.float32(256.0 / rng), 0, 255).astype(np.uint8)
            grey = lut[idx]
        g = grey.astype(np.uint32)
        table = np.uint32(0xFF000000) | (g << 16) | (g << 8) | g
        if len(_TABLES) >= 8:
            _TABLES.pop(next(iter(_TABLES)))  # oldest first
        _TABLES[key] = table
    return table


class OpaqueImageItem(pg.ImageItem):
    """An ImageItem that draws int16 HU planes through one cached lookup table into an opaque QImage.

    pyqtgraph converts an int16 image with levels through ``makeARGB`` (rescale to float, clip,
    cast, then copy the grey into three channels) into ``Format_ARGB32``, which Qt then draws through
    a premultiplying path. Here a frame is one gather, ``lut32[image.view(uint16)]``, into a reused
    ``Format_RGB32`` buffer; the 65536-entry table (256 KiB) folds in the levels and the 256-entry
    lookup table (inversion) and is rebuilt only when they change. The grey values are pyqtgraph's
    own: ``clip((hu - lo) * 255 / (hi - lo), 0, 255)`` truncated (``* 256`` and then the table when
    one is set). Other images (float, RGB, no levels) take pyqtgraph's path, declared opaque.

    :meth:`set_frame` swaps in the next plane of the same shape without pyqtgraph's option parsing.
    With :attr:`rows` set (a :class:`RowInterpolator`), the item keeps the native plane as its
    :attr:`image` (and its size, so the scene geometry is that of the plane) and renders it with
    ``rows.out_rows`` rows interpolated in HU, windowed in the same pass; ``paint`` draws that
    QImage over the plane's rectangle.
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self._lut_key: tuple[float, float, bytes | None] | None = None
        self._lut32: np.ndarray | None = None
        self._rgb32: np.ndarray | None = None
        self.rows: RowInterpolator | None = None

    def set_rows(self, rows: RowInterpolator | None) -> None:
        """Interpolate the plane's rows on rendering (None: draw the native rows)."""
        if rows is not self.rows:
            self.rows = rows
            self._renderRequired = True
            self.update()

    def set_frame(self, image: np.ndarray) -> None:
        """Show ``image`` with the current levels and table (the next slice while scrolling)."""
        old = self.image
        if old is None or image.shape != old.shape or image.dtype != old.dtype:
            self.setImage(image, autoLevels=False)
            return
        self.image = image
        self._imageHasNans = None
        self._imageNanLocations = None
        self._renderRequired = True
        self.update()

    def _table(self, lo: float, hi: float, lut: np.ndarray | None) -> np.ndarray:
        key = (lo, hi, None if lut is None else lut.tobytes())
        if key != self._lut_key or self._lut32 is None:
            self._lut32, self._lut_key = _rgb32_table(key, lut), key
        return self._lut32

    def render(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        image, levels, lut = self.image, self.levels, self.lut
        if (
            image is not None
            and image.ndim == 2
            and image.dtype == np.int16
            and image.size
            and levels is not None
            and np.ndim(levels) == 1
            and not self.autoDownsample
            and self.axisOrder == "row-major"
            and (lut is None or (isinstance(lut, np.ndarray) and lut.ndim == 1 and lut.dtype == np.uint8))
        ):
            table = self._table(float(levels[0]), float(levels[1]), lut)
            rows = self.rows if self.rows is not None and self.rows.n_rows == image.shape[0] else None
            shape = image.shape if rows is None else (rows.out_rows, image.shape[1])
            if self._rgb32 is None or self._rgb32.shape != shape:
                self._rgb32 = np.empty(shape, dtype=np.uint32)
            if rows is None:
                np.take(table, image.view(np.uint16), out=self._rgb32, mode="clip")  # 'clip': unbuffered
            else:
                rows.lookup(image, table, self._rgb32)
            self.qimage = pg.functions.ndarray_to_qimage(self._rgb32, QImage.Format.Format_RGB32)
            self._renderRequired = False
            self._unrenderable = False
            return
        super().render(*args, **kwargs)
        q = self.qimage
        if q is not None and q.format() == QImage.Format.Format_ARGB32:
            q.reinterpretAsFormat(QImage.Format.Format_RGB32)


class CrosshairLine(QGraphicsLineItem):
    """A vertical (``angle=90``) or horizontal (``angle=0``) crosshair line at ``value`` mm.

    A plain C++ line item spanning the plane ten times over: pyqtgraph's ``InfiniteLine`` follows
    the view's rectangle in Python (bounding rect, paint) on every frame, which this does not need.
    """

    def __init__(self, angle: int) -> None:
        super().__init__()
        self.angle = angle
        self._value = 0.0
        self._span = (-1.0e3, 1.0e3)
        self.setPen(QPen(QColor(255, 255, 255), 0))

    def set_span(self, lo: float, hi: float) -> None:
        self._span = (lo, hi)
        self._place()

    def value(self) -> float:
        return self._value

    def setValue(self, value: float) -> None:
        value = float(value)
        if value != self._value:
            self._value = value
            self._place()

    def _place(self) -> None:
        lo, hi, x = self._span[0], self._span[1], self._value
        if self.angle == 90:
            self.setLine(x, lo, x, hi)
        else:
            self.setLine(lo, x, hi, x)


def measurement_path(kind: str, points: tuple[tuple[float, float], ...]) -> QPainterPath:
    path = QPainterPath()
    if not points:
        return path
    if kind == ELLIPSE and len(points) >= 2:
        (u0, v0), (u1, v1) = points[:2]
        path.addEllipse(QRectF(min(u0, u1), min(v0, v1), abs(u1 - u0), abs(v1 - v0)))
        return path
    path.moveTo(*points[0])
    for p in points[1:]:
        path.lineTo(*p)
    return path


class _SliceViewBox(pg.ViewBox):
    """Routes mouse gestures to the owning :class:`SliceView` instead of pyqtgraph defaults."""

    def __init__(self, owner: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner
        self._drag_mode: str | None = None
        self._drag_last: QPointF | None = None
        self._scroll_px = 0.0
        self.setBackgroundColor(BACKGROUND)

    # pyqtgraph calls these with its own event types
    def wheelEvent(self, ev, axis=None):  # type: ignore[no-untyped-def]
        """Ctrl+wheel zooms (plain wheel scrolling is handled by :meth:`SliceView.wheelEvent`)."""
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.0015 ** (-delta)
            center = self.mapToView(ev.pos())
            self.scaleBy((factor, factor), center)
        ev.accept()

    def mouseClickEvent(self, ev):  # type: ignore[no-untyped-def]
        if ev.button() == Qt.MouseButton.LeftButton:
            mode = self._owner.mode
            if ev.double():
                self._owner.reset_zoom()
            elif mode == ANGLE:
                self._owner.angle_click(self.mapSceneToView(ev.scenePos()))
            elif mode == CROSSHAIR:
                self._owner.request_cursor(self.mapSceneToView(ev.scenePos()))
            ev.accept()
        else:
            ev.ignore()

    def _start_mode(self, button, mods) -> str | None:  # type: ignore[no-untyped-def]
        left = button == Qt.MouseButton.LeftButton
        mode = self._owner.mode
        if button == Qt.MouseButton.MiddleButton or (left and mods & Qt.KeyboardModifier.ShiftModifier):
            return PAN
        if button == Qt.MouseButton.RightButton:
            return WINDOW
        if not left:
            return None
        if mode == CROSSHAIR:
            return ZOOM if mods & Qt.KeyboardModifier.ControlModifier else "cursor"
        return mode

    def mouseDragEvent(self, ev, axis=None):  # type: ignore[no-untyped-def]
        mods = ev.modifiers()
        if ev.isStart():
            self._drag_mode = self._start_mode(ev.button(), mods)
            self._drag_last = ev.buttonDownPos()
            self._scroll_px = 0.0
            if self._drag_mode in (DISTANCE, ELLIPSE, ANGLE):
                self._owner.measure_start(self._drag_mode, self.mapSceneToView(ev.buttonDownScenePos()))
        mode = self._drag_mode
        if mode is None:
            ev.ignore()
            return
        ev.accept()
        pos = ev.pos()
        last = self._drag_last if self._drag_last is not None else pos
        dx, dy = pos.x() - last.x(), pos.y() - last.y()
        self._drag_last = pos
        fast = 4.0 if mods & Qt.KeyboardModifier.ControlModifier else 1.0
        if mode == PAN:
            tr = self.mapToView(pos) - self.mapToView(last)
            self.translateBy(x=-tr.x(), y=-tr.y())
        elif mode == ZOOM:
            factor = 1.01**dy
            self.scaleBy((factor, factor), self.mapToView(ev.buttonDownPos()))
        elif mode == WINDOW:
            self._owner.sigWindowDrag.emit(float(dx) * fast, float(dy) * fast)
        elif mode == SCROLL:
            self._scroll_px += -dy * fast
            steps = int(self._scroll_px / DRAG_PX_PER_SLICE)
            if steps:
                self._scroll_px -= steps * DRAG_PX_PER_SLICE
                self._owner.sigScroll.emit(steps)
        elif mode in (DISTANCE, ELLIPSE, ANGLE):
            self._owner.measure_update(self.mapSceneToView(ev.scenePos()))
        elif mode == "cursor":
            self._owner.request_cursor(self.mapSceneToView(ev.scenePos()))
        if ev.isFinish():
            if mode in (DISTANCE, ELLIPSE, ANGLE):
                self._owner.measure_finish(self.mapSceneToView(ev.scenePos()))
            self._drag_mode = None


class SliceView(pg.GraphicsView):
    """A view of one orientation. It shows state; the controller owns it."""

    sigCursor = Signal(object)  # fractional index (k, j, i), np.ndarray
    sigScroll = Signal(int)  # slices to move (+ towards the top of the slice list)
    sigScrollTo = Signal(int)  # go to this slice index (Home/End)
    sigWindowDrag = Signal(float, float)  # pixels dragged: dx (width), dy (level)
    sigHover = Signal(object)  # fractional index (k, j, i) or None
    sigActivated = Signal(object)  # this view's ViewKind, on focus
    sigMeasured = Signal(str, object)  # kind, points ((u, v), ...) in screen mm, on this view's slice
    sigZoomChanged = Signal()

    def __init__(self, kind: ViewKind, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=BACKGROUND)
        self.kind = kind
        self.plane: ViewPlane | None = None
        self.slice_index = 0
        self.mode = CROSSHAIR
        self._rect_pending = False
        self._overlay_items: list[tuple[QGraphicsRectItem, pg.TextItem]] = []
        self._measure_items: list[tuple[QGraphicsPathItem, pg.TextItem]] = []
        self._measure_key: tuple[int, ...] = ()
        self._measure_kind: str | None = None
        self._measure_points: list[tuple[float, float]] = []
        self._wheel_angle = 0
        self._wheel_px = 0.0
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setObjectName(f"view-{kind.value}")

        self.view_box = _SliceViewBox(self)
        self.setCentralItem(self.view_box)
        # zoom, pan, resize and layout changes all change the range: corners and interpolation follow
        self.view_box.sigRangeChanged.connect(lambda *_: self.sigZoomChanged.emit())
        self.image_item = OpaqueImageItem()
        self.image_item.setAutoDownsample(False)
        self.view_box.addItem(self.image_item)
        # vertical line = the plane of the view whose slicing axis runs along u, horizontal along v
        self.v_line = CrosshairLine(angle=90)
        self.h_line = CrosshairLine(angle=0)
        for line in (self.v_line, self.h_line):
            line.setZValue(10)
            self.view_box.addItem(line, ignoreBounds=True)
        pen = QPen(MEASURE_COLOUR, 2)
        pen.setCosmetic(True)
        self._preview = QGraphicsPathItem()
        self._preview.setPen(pen)
        self._preview.setZValue(30)
        self._preview_text = pg.TextItem("", color=MEASURE_COLOUR, anchor=(0, 1))
        self._preview_text.setZValue(31)
        for item in (self._preview, self._preview_text):
            item.setVisible(False)
            self.view_box.addItem(item)

        # Text drawn in viewport coordinates by drawForeground (no child widgets to composite).
        self.edge_text: dict[str, str] = {"left": "", "right": "", "top": "", "bottom": ""}
        self.info_text = ""
        self.title_text = kind.value.capitalize()
        self.corner_top_right: list[str] = []
        self.corner_bottom_right: list[str] = []
        self.show_corners = True
        self._title_colour = VIEW_COLOURS[kind]
        self._label_font = QFont()
        self._label_font.setPointSize(9)
        self._edge_font = QFont(self._label_font)
        self._edge_font.setBold(True)
        self._edge_font.setPointSize(11)
        self._text_cache: dict[tuple[str, bool, int], QPixmap] = {}  # (text, bold, rgb) -> plate with text
        self._label_metrics, self._edge_metrics = QFontMetrics(self._label_font), QFontMetrics(self._edge_font)
        self._layout_key: tuple | None = None  # what the cached layout was made for
        self._layout: dict[str, tuple[QRect, str]] = {}
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # ---- state in ----------------------------------------------------------------------------
    def set_plane(self, plane: ViewPlane) -> None:
        self.plane = plane
        self._rect_pending = True  # applied once the item holds an image of the new size
        self.edge_text = plane.edge_labels()
        u_kind, v_kind = crossing_views(plane.kind)
        self.v_line.setPen(QPen(VIEW_COLOURS[u_kind], 0))
        self.h_line.setPen(QPen(VIEW_COLOURS[v_kind], 0))
        extent = 10.0 * max(plane.size_mm)
        for line in (self.v_line, self.h_line):
            line.set_span(-extent, extent)
        self.cancel_measure()
        self.set_measurements([])
        self.reset_zoom()
        self.viewport().update()

    def set_image(self, image: np.ndarray, levels: tuple[float, float], rows: RowInterpolator | None = None) -> None:
        """Show the plane's image (native pixels), drawn with ``rows`` interpolated when given."""
        item = self.image_item
        item.set_rows(rows)
        old = item.image
        current = item.levels
        if old is not None and current is not None and len(current) == 2 and (current[0], current[1]) == levels:
            item.set_frame(image)  # same levels: no option parsing, no level arrays per step
        else:
            item.setImage(image, levels=levels, autoLevels=False)
        if old is None or old.shape != image.shape:
            self._rect_pending = True  # the item's rect scales pixels to mm: redo it for another size
        if self._rect_pending and self.plane is not None:
            w_mm, h_mm = self.plane.size_mm
            self.image_item.setRect(QRectF(0.0, 0.0, w_mm, h_mm))
            self._rect_pending = False

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.image_item.setLevels(levels)

    def set_inverted(self, on: bool) -> None:
        self.image_item.setLookupTable(INVERTED_LUT if on else None)

    def set_cursor_display(self, u_mm: float, v_mm: float) -> None:
        self.v_line.setValue(u_mm)
        self.h_line.setValue(v_mm)

    def set_crosshair_visible(self, on: bool) -> None:
        self.v_line.setVisible(on)
        self.h_line.setVisible(on)

    def set_info(self, text: str) -> None:
        if text != self.info_text:
            self.info_text = text
            self._update_through_scene()

    def _update_through_scene(self) -> None:
        """Repaint the whole viewport in the scene's next pass, with the items' own updates.

        ``viewport().update()`` would paint this view in a pass of its own, before the scenes' queued
        dirty-item passes: in the 1x3 layout a scroll step then painted the scrolled view twice (once
        for the slice text, once more with the other views' moved crosshairs), ~1.3x the time of the
        step. Through the scene the text, the image and the other views' lines are painted together.
        """
        scene = self.scene()
        if scene is None:
            self.viewport().update()
            return
        scene.update(self.mapToScene(self.viewport().rect()).boundingRect())

    def set_corners(self, top_right: list[str], bottom_right: list[str]) -> None:
        if top_right != self.corner_top_right or bottom_right != self.corner_bottom_right:
            self.corner_top_right, self.corner_bottom_right = list(top_right), list(bottom_right)
            self.viewport().update()

    def set_show_corners(self, on: bool) -> None:
        self.show_corners = on
        self.viewport().update()

    def reset_zoom(self) -> None:
        if self.plane is None:
            return
        w_mm, h_mm = self.plane.size_mm
        self.view_box.setRange(QRectF(0.0, 0.0, w_mm, h_mm), padding=0.02)

    def screen_rows(self) -> int | None:
        """Screen pixels the plane's full height spans at the current zoom (None before a plane)."""
        if self.plane is None:
            return None
        _, (y0, y1) = self.view_box.viewRange()
        height_px = max(1.0, float(self.view_box.height()))
        return int(np.ceil(self.plane.size_mm[1] * height_px / max(1e-9, y1 - y0)))

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel along u (1.0 = one image pixel per screen pixel)."""
        if self.plane is None:
            return 1.0
        (x0, x1), _ = self.view_box.viewRange()
        width_px = max(1, self.view_box.width())
        return float(width_px / max(1e-9, (x1 - x0) / self.plane.pixel_mm[0]))

    # ---- finding overlays ----------------------------------------------------------------------
    def set_overlays(self, boxes: list[tuple[float, float, float, float, QColor, str]]) -> None:
        """Boxes ``(u0, v0, u1, v1, colour, label)`` in screen mm; items are pooled and reused."""
        if not boxes and not any(r.isVisible() for r, _ in self._overlay_items):
            return
        while len(self._overlay_items) < len(boxes):
            rect = QGraphicsRectItem()
            rect.setZValue(20)
            text = pg.TextItem("", anchor=(0, 1))
            text.setZValue(21)
            self.view_box.addItem(rect)
            self.view_box.addItem(text)
            self._overlay_items.append((rect, text))
        for n, (rect, text) in enumerate(self._overlay_items):
            if n < len(boxes):
                u0, v0, u1, v1, colour, label = boxes[n]
                pen = QPen(colour, 2)
                pen.setCosmetic(True)
                rect.setPen(pen)
                rect.setRect(QRectF(u0, v0, u1 - u0, v1 - v0))
                rect.setVisible(True)
                text.setText(label, color=colour)
                text.setPos(u0, v0)
                text.setVisible(True)
            else:
                rect.setVisible(False)
                text.setVisible(False)

    def overlay_rects(self) -> list[QRectF]:
        return [r.rect() for r, _ in self._overlay_items if r.isVisible()]

    def zoom_to(self, u_mm: float, v_mm: float, size_mm: float) -> None:
        self.view_box.setRange(QRectF(u_mm - size_mm / 2, v_mm - size_mm / 2, size_mm, size_mm), padding=0)

    # ---- measurements --------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.cancel_measure()
        cursor = {
            CROSSHAIR: Qt.CursorShape.ArrowCursor,
            WINDOW: Qt.CursorShape.SizeAllCursor,
            ZOOM: Qt.CursorShape.SizeVerCursor,
            PAN: Qt.CursorShape.OpenHandCursor,
            SCROLL: Qt.CursorShape.SizeVerCursor,
        }.get(mode, Qt.CursorShape.CrossCursor)
        self.setCursor(cursor)

    def set_measurements(self, items: list[Measurement]) -> None:
        """Draw the measurements of the slice on screen (the caller passes only those)."""
        key = tuple(m.id for m in items)
        if key == self._measure_key:
            return
        self._measure_key = key
        for path_item, text in self._measure_items:
            self.view_box.removeItem(path_item)
            self.view_box.removeItem(text)
        self._measure_items = []
        pen = QPen(MEASURE_COLOUR, 2)
        pen.setCosmetic(True)
        font = QFont()
        font.setPointSize(10)
        for m in items:
            path_item = QGraphicsPathItem(measurement_path(m.kind, m.points_mm))
            path_item.setPen(pen)
            path_item.setZValue(25)
            text = pg.TextItem(m.text, color=MEASURE_COLOUR, anchor=(0, 1))
            text.setFont(font)
            text.setZValue(26)
            u, v = m.points_mm[1] if m.kind == ANGLE else max(m.points_mm, key=lambda p: p[0])
            text.setPos(u, v)
            self.view_box.addItem(path_item)
            self.view_box.addItem(text)
            self._measure_items.append((path_item, text))

    def measurement_items(self) -> list[tuple[QGraphicsPathItem, pg.TextItem]]:
        return list(self._measure_items)

    def measure_start(self, kind: str, p: QPointF) -> None:
        if kind == ANGLE and self._measure_points:
            return  # the drag continues an angle begun with clicks
        self._measure_kind = kind
        self._measure_points = [(p.x(), p.y()), (p.x(), p.y())]
        self._show_preview()

    def measure_update(self, p: QPointF) -> None:
        if self._measure_kind is None or not self._measure_points:
            return
        self._measure_points[-1] = (p.x(), p.y())
        self._show_preview()

    def measure_finish(self, p: QPointF) -> None:
        if self._measure_kind is None:
            return
        self._measure_points[-1] = (p.x(), p.y())
        if self._measure_kind == ANGLE and len(self._measure_points) < 3:
            self._measure_points.append((p.x(), p.y()))  # first arm drawn: click the second arm's end
            self._show_preview()
            return
        self._emit_measure()

    def angle_click(self, p: QPointF) -> None:
        if self._measure_kind != ANGLE or not self._measure_points:
            self._measure_kind = ANGLE
            self._measure_points = [(p.x(), p.y()), (p.x(), p.y())]
        else:
            self._measure_points[-1] = (p.x(), p.y())
            if len(self._measure_points) == 3:
                self._emit_measure()
                return
            self._measure_points.append((p.x(), p.y()))
        self._show_preview()

    def angle_hover(self, p: QPointF) -> None:
        if self._measure_kind == ANGLE and self._measure_points:
            self._measure_points[-1] = (p.x(), p.y())
            self._show_preview()

    def cancel_measure(self) -> None:
        self._measure_kind = None
        self._measure_points = []
        self._preview.setVisible(False)
        self._preview_text.setVisible(False)

    def _emit_measure(self) -> None:
        kind, points = self._measure_kind, tuple(self._measure_points)
        self.cancel_measure()
        if kind is None:
            return
        (u0, v0), (u1, v1) = points[0], points[-1]
        if kind != ANGLE and math.hypot(u1 - u0, v1 - v0) < 1e-6:
            return  # a click, not a measurement
        self.sigMeasured.emit(kind, points)

    def _show_preview(self) -> None:
        kind, points = self._measure_kind, tuple(self._measure_points)
        if kind is None:
            return
        self._preview.setPath(measurement_path(kind, points))
        self._preview.setVisible(True)
        if kind == DISTANCE:
            text = f"{distance_mm(points):.1f} mm"
        elif kind == ANGLE and len(points) == 3:
            text = f"{angle_deg(points):.1f}°"
        elif kind == ELLIPSE:
            (u0, v0), (u1, v1) = points[:2]
            text = f"{math.pi * abs(u1 - u0) * abs(v1 - v0) / 4:.0f} mm²"
        else:
            text = ""
        self._preview_text.setText(text)
        self._preview_text.setPos(*points[-1])
        self._preview_text.setVisible(bool(text))

    # ---- events out --------------------------------------------------------------------------
    def request_cursor(self, p: QPointF) -> None:
        if self.plane is None:
            return
        idx = self.plane.display_to_index(p.x(), p.y(), self.slice_index)
        self.sigCursor.emit(idx)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self.plane is None:
            return
        p = self.view_box.mapSceneToView(scene_pos)
        if self.mode == ANGLE:
            self.angle_hover(p)
        w_mm, h_mm = self.plane.size_mm
        if 0 <= p.x() < w_mm and 0 <= p.y() < h_mm:
            self.sigHover.emit(self.plane.display_to_index(p.x(), p.y(), self.slice_index))
        else:
            self.sigHover.emit(None)

    def wheelEvent(self, ev: QWheelEvent) -> None:
        """One slice per wheel notch (120 units of angle delta, fractions add up); touchpads by distance."""
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev)  # zoom, in the view box
            return
        steps = 0
        pixel = ev.pixelDelta().y()
        if pixel:
            self._wheel_px += pixel
            steps = int(self._wheel_px / TOUCHPAD_PX_PER_SLICE)
            self._wheel_px -= steps * TOUCHPAD_PX_PER_SLICE
        else:
            self._wheel_angle += ev.angleDelta().y()
            steps = int(self._wheel_angle / WHEEL_NOTCH)
            self._wheel_angle -= steps * WHEEL_NOTCH
        if steps:
            self.sigScroll.emit(steps)
        ev.accept()

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        key = ev.key()
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_PageUp: 10,
            Qt.Key.Key_PageDown: -10,
        }
        if key in steps:
            n = steps[key]
            if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier and abs(n) == 1:
                n *= 10
            self.sigScroll.emit(n)
            ev.accept()
        elif key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            last = self.plane.n_slices - 1 if self.plane is not None else 0
            self.sigScrollTo.emit(0 if key == Qt.Key.Key_Home else last)
            ev.accept()
        elif key == Qt.Key.Key_Escape and self._measure_kind is not None:
            self.cancel_measure()
            ev.accept()
        elif key == Qt.Key.Key_R and not ev.modifiers():
            self.reset_zoom()
            ev.accept()
        else:
            super().keyPressEvent(ev)

    def focusInEvent(self, ev) -> None:  # type: ignore[no-untyped-def]
        self.sigActivated.emit(self.kind)
        super().focusInEvent(ev)

    # ---- text in the corners and at the edges ------------------------------------------------
    def text_layout(self, w: int, h: int) -> dict[str, tuple[QRect, str]]:
        """Where each text goes (viewport pixels, text rectangles) so that none overlaps another.

        Orientation letters sit at the middle of each edge; the bottom letter moves up above the
        slice text (and the lower-right corner) when they would meet in a narrow view, the top
        letter down below the title and the upper-right corner.
        """
        label, edge = self._label_metrics, self._edge_metrics
        out: dict[str, tuple[QRect, str]] = {}

        def rect(m: QFontMetrics, x: int, baseline: int, text: str) -> QRect:
            return QRect(x - 3, baseline - m.ascent() - 1, m.horizontalAdvance(text) + 6, m.height() + 2)

        line = label.height() + 2
        out["title"] = (rect(edge, 6, 4 + edge.ascent(), self.title_text), self.title_text)
        if self.info_text:
            out["info"] = (rect(label, 6, h - 6, self.info_text), self.info_text)
        if self.show_corners:  # corner lines that would cover the title or the slice text are left out
            fixed = [r for r, _ in out.values()]
            for n, text in enumerate(self.corner_top_right):
                x = w - 6 - label.horizontalAdvance(text)
                r = rect(label, x, 4 + label.ascent() + n * line, text)
                if not any(r.intersects(f) for f in fixed):
                    out[f"tr{n}"] = (r, text)
            for n, text in enumerate(reversed(self.corner_bottom_right)):
                x = w - 6 - label.horizontalAdvance(text)
                r = rect(label, x, h - 6 - n * line, text)
                if not any(r.intersects(f) for f in fixed):
                    out[f"br{n}"] = (r, text)
        others = [r for r, _ in out.values()]
        e = self.edge_text
        mid = h // 2 + edge.ascent() // 2
        if e["left"]:
            out["left"] = (rect(edge, 6, mid, e["left"]), e["left"])
        if e["right"]:
            out["right"] = (rect(edge, w - 6 - edge.horizontalAdvance(e["right"]), mid, e["right"]), e["right"])
        if e["top"]:
            r = rect(edge, (w - edge.horizontalAdvance(e["top"])) // 2, 4 + edge.ascent(), e["top"])
            for _ in range(len(others)):  # step below whatever it meets, until it meets nothing
                hits = [o for o in others if o.intersects(r)]
                if not hits:
                    break
                r.moveTop(max(o.bottom() for o in hits) + 2)
            out["top"] = (r, e["top"])
        if e["bottom"]:
            r = rect(edge, (w - edge.horizontalAdvance(e["bottom"])) // 2, h - 6, e["bottom"])
            for _ in range(len(others)):
                hits = [o for o in others if o.intersects(r)]
                if not hits:
                    break
                r.moveBottom(min(o.top() for o in hits) - 2)
            out["bottom"] = (r, e["bottom"])
        return out

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        """Orientation letters, the view's name, the slice line and the corner overlays, in viewport
        pixels. Each text sits on a translucent dark plate so it stays readable over bright tissue.

        Each text is rendered once into a small pixmap and reused (laying out text costs more than
        drawing a pixmap). The slice line, which changes on every scroll step, is drawn directly,
        and the layout is kept until something in it changes size (the slice line's width included).
        """
        super().drawForeground(painter, rect)
        painter.save()
        painter.resetTransform()
        w, h = self.viewport().width(), self.viewport().height()
        info = self.info_text
        key = (
            w,
            h,
            self.title_text,
            self._label_metrics.horizontalAdvance(info) if info else -1,
            tuple(self.corner_top_right),
            tuple(self.corner_bottom_right),
            self.show_corners,
            tuple(self.edge_text.values()),
        )
        if key != self._layout_key:
            self._layout, self._layout_key = self.text_layout(w, h), key
        grey = QColor(232, 232, 232)
        for name, (r, text) in self._layout.items():
            if name == "info":
                painter.fillRect(r, QColor(0, 0, 0, 150))
                painter.setFont(self._label_font)
                painter.setPen(grey)
                painter.drawText(r.x() + 3, r.y() + 1 + self._label_metrics.ascent(), info)
                continue
            bold = name in ("title", "left", "right", "top", "bottom")
            colour = self._title_colour if name == "title" else grey
            painter.drawPixmap(r.topLeft(), self._text_pixmap(text, bold, colour, r.width(), r.height()))
        painter.restore()

    def _text_pixmap(self, text: str, bold: bool, colour: QColor, w: int, h: int) -> QPixmap:
        key = (text, bold, colour.rgb())
        pix = self._text_cache.get(key)
        if pix is None or pix.width() != w or pix.height() != h:
            if len(self._text_cache) > 256:
                self._text_cache.clear()
            pix = QPixmap(w, h)
            pix.fill(QColor(0, 0, 0, 150))
            p = QPainter(pix)
            p.setFont(self._edge_font if bold else self._label_font)
            p.setPen(colour)
            p.drawText(3, 1 + p.fontMetrics().ascent(), text)
            p.end()
            self._text_cache[key] = pix
        return pix
