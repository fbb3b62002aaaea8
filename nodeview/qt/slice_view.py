"""One 2D view (axial, coronal or sagittal) of the volume, drawn with pyqtgraph.

Scene coordinates are screen millimetres of :class:`nodeview.core.views.ViewPlane` (u right,
v down), so zoom and pan never disturb the crosshair or rulers, and distances read in mm.

Mouse and keys (the conventions of RadiAnt, Weasis and Horos):
    wheel / arrows / PageUp-PageDown   scroll slices (PageUp/Down: 10 at a time)
    left click or drag                 move the crosshair (the other views follow)
    right drag                         window (horizontal) / level (vertical)
    middle drag, Shift+left drag       pan
    Ctrl+wheel, Ctrl+left drag         zoom
    double-click, R                    reset zoom and pan
    ruler mode (D): left drag          measure a distance in mm
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QWidget

from ..core.views import ViewKind, ViewPlane, crossing_views

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

#: Colours of each view's plane (3D Slicer's: axial red, coronal green, sagittal yellow).
VIEW_COLOURS = {
    ViewKind.AXIAL: QColor(230, 80, 80),
    ViewKind.CORONAL: QColor(90, 200, 90),
    ViewKind.SAGITTAL: QColor(230, 200, 60),
}
BACKGROUND = QColor(0, 0, 0)


class _SliceViewBox(pg.ViewBox):
    """Routes mouse gestures to the owning :class:`SliceView` instead of pyqtgraph defaults."""

    def __init__(self, owner: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner
        self._drag_mode: str | None = None
        self._drag_last: QPointF | None = None
        self.setBackgroundColor(BACKGROUND)

    # pyqtgraph calls these with its own event types
    def wheelEvent(self, ev, axis=None):  # type: ignore[no-untyped-def]
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.0015 ** (-delta)
            center = self.mapToView(ev.pos())
            self.scaleBy((factor, factor), center)
        else:
            steps = 1 if delta > 0 else -1
            self._owner.sigScroll.emit(steps)
        ev.accept()

    def mouseClickEvent(self, ev):  # type: ignore[no-untyped-def]
        if ev.button() == Qt.MouseButton.LeftButton:
            if ev.double():
                self._owner.reset_zoom()
            elif not self._owner.ruler_mode:
                self._owner.request_cursor(self.mapSceneToView(ev.scenePos()))
            ev.accept()
        else:
            ev.ignore()

    def mouseDragEvent(self, ev, axis=None):  # type: ignore[no-untyped-def]
        button = ev.button()
        mods = ev.modifiers()
        if ev.isStart():
            if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and mods & Qt.KeyboardModifier.ShiftModifier
            ):
                self._drag_mode = "pan"
            elif button == Qt.MouseButton.LeftButton and mods & Qt.KeyboardModifier.ControlModifier:
                self._drag_mode = "zoom"
            elif button == Qt.MouseButton.RightButton:
                self._drag_mode = "window"
            elif button == Qt.MouseButton.LeftButton and self._owner.ruler_mode:
                self._drag_mode = "ruler"
                self._owner.ruler_start(self.mapSceneToView(ev.buttonDownScenePos()))
            elif button == Qt.MouseButton.LeftButton:
                self._drag_mode = "cursor"
            else:
                self._drag_mode = None
            self._drag_last = ev.buttonDownPos()
        mode = self._drag_mode
        if mode is None:
            ev.ignore()
            return
        ev.accept()
        pos = ev.pos()
        last = self._drag_last if self._drag_last is not None else pos
        dx, dy = pos.x() - last.x(), pos.y() - last.y()
        self._drag_last = pos
        if mode == "pan":
            tr = self.mapToView(pos) - self.mapToView(last)
            self.translateBy(x=-tr.x(), y=-tr.y())
        elif mode == "zoom":
            factor = 1.01**dy
            self.scaleBy((factor, factor), self.mapToView(ev.buttonDownPos()))
        elif mode == "window":
            self._owner.sigWindowDrag.emit(float(dx), float(dy))
        elif mode == "ruler":
            self._owner.ruler_update(self.mapSceneToView(ev.scenePos()))
        elif mode == "cursor":
            self._owner.request_cursor(self.mapSceneToView(ev.scenePos()))
        if ev.isFinish():
            self._drag_mode = None


class SliceView(pg.GraphicsView):
    """A view of one orientation. It shows state; the controller owns it."""

    sigCursor = Signal(object)  # fractional index (k, j, i), np.ndarray
    sigScroll = Signal(int)  # slices to move (+ towards the top of the slice list)
    sigWindowDrag = Signal(float, float)  # pixels dragged: dx (width), dy (level)
    sigHover = Signal(object)  # fractional index (k, j, i) or None
    sigActivated = Signal(object)  # this view's ViewKind, on focus

    def __init__(self, kind: ViewKind, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=BACKGROUND)
        self.kind = kind
        self.plane: ViewPlane | None = None
        self.slice_index = 0
        self.ruler_mode = False
        self._rect_pending = False
        self._overlay_items: list[tuple[QGraphicsRectItem, pg.TextItem]] = []
        self._rulers: list[tuple[pg.LineSegmentROI, pg.TextItem]] = []
        self._active_ruler: tuple[pg.LineSegmentROI, pg.TextItem] | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setObjectName(f"view-{kind.value}")

        self.view_box = _SliceViewBox(self)
        self.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem()
        self.image_item.setAutoDownsample(False)
        self.view_box.addItem(self.image_item)
        # vertical line = the plane of the view whose slicing axis runs along u, horizontal along v
        self.v_line = pg.InfiniteLine(angle=90, movable=False)
        self.h_line = pg.InfiniteLine(angle=0, movable=False)
        for line in (self.v_line, self.h_line):
            line.setZValue(10)
            self.view_box.addItem(line)

        # Text drawn in viewport coordinates by drawForeground (no child widgets to composite).
        self.edge_text: dict[str, str] = {"left": "", "right": "", "top": "", "bottom": ""}
        self.info_text = ""
        self.title_text = kind.value.capitalize()
        self._title_colour = VIEW_COLOURS[kind]
        self._label_font = QFont()
        self._label_font.setPointSize(9)
        self._edge_font = QFont(self._label_font)
        self._edge_font.setBold(True)
        self._edge_font.setPointSize(11)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # ---- state in ----------------------------------------------------------------------------
    def set_plane(self, plane: ViewPlane) -> None:
        self.plane = plane
        self._rect_pending = True  # applied once the item holds an image of the new size
        self.edge_text = plane.edge_labels()
        u_kind, v_kind = crossing_views(plane.kind)
        self.v_line.setPen(QPen(VIEW_COLOURS[u_kind], 0))
        self.h_line.setPen(QPen(VIEW_COLOURS[v_kind], 0))
        self.clear_rulers()
        self.reset_zoom()
        self.viewport().update()

    def set_image(self, image: np.ndarray, levels: tuple[float, float]) -> None:
        self.image_item.setImage(image, levels=levels, autoLevels=False)
        if self._rect_pending and self.plane is not None:
            w_mm, h_mm = self.plane.size_mm
            self.image_item.setRect(QRectF(0.0, 0.0, w_mm, h_mm))
            self._rect_pending = False

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.image_item.setLevels(levels)

    def set_cursor_display(self, u_mm: float, v_mm: float) -> None:
        self.v_line.setValue(u_mm)
        self.h_line.setValue(v_mm)

    def set_info(self, text: str) -> None:
        if text != self.info_text:
            self.info_text = text
            self.viewport().update()

    def reset_zoom(self) -> None:
        if self.plane is None:
            return
        w_mm, h_mm = self.plane.size_mm
        self.view_box.setRange(QRectF(0.0, 0.0, w_mm, h_mm), padding=0.02)

    # ---- finding overlays ----------------------------------------------------------------------
    def set_overlays(self, boxes: list[tuple[float, float, float, float, QColor, str]]) -> None:
        """Boxes ``(u0, v0, u1, v1, colour, label)`` in screen mm; items are pooled and reused."""
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

    # ---- rulers ------------------------------------------------------------------------------
    def set_ruler_mode(self, on: bool) -> None:
        self.ruler_mode = on
        self.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.ArrowCursor)

    def ruler_start(self, p: QPointF) -> None:
        roi = pg.LineSegmentROI([[p.x(), p.y()], [p.x(), p.y()]], pen=pg.mkPen("#00e5ff", width=2), movable=False)
        text = pg.TextItem("", color="#00e5ff", anchor=(0, 1))
        font = QFont()
        font.setPointSize(10)
        text.setFont(font)
        self.view_box.addItem(roi)
        self.view_box.addItem(text)
        self._active_ruler = (roi, text)
        self._rulers.append(self._active_ruler)

    def ruler_update(self, p: QPointF) -> None:
        if self._active_ruler is None:
            return
        roi, text = self._active_ruler
        handles = roi.getHandles()
        handles[1].setPos(roi.mapFromParent(p))
        a = roi.mapToParent(handles[0].pos())
        length = math.hypot(p.x() - a.x(), p.y() - a.y())
        text.setText(f"{length:.1f} mm")
        text.setPos(p)

    def ruler_lengths_mm(self) -> list[float]:
        out = []
        for roi, _ in self._rulers:
            h = roi.getHandles()
            a, b = roi.mapToParent(h[0].pos()), roi.mapToParent(h[1].pos())
            out.append(math.hypot(b.x() - a.x(), b.y() - a.y()))
        return out

    def clear_rulers(self) -> None:
        for roi, text in self._rulers:
            self.view_box.removeItem(roi)
            self.view_box.removeItem(text)
        self._rulers.clear()
        self._active_ruler = None

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
        w_mm, h_mm = self.plane.size_mm
        if 0 <= p.x() < w_mm and 0 <= p.y() < h_mm:
            self.sigHover.emit(self.plane.display_to_index(p.x(), p.y(), self.slice_index))
        else:
            self.sigHover.emit(None)

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
            self.sigScroll.emit(steps[key])
            ev.accept()
        elif key == Qt.Key.Key_R and not ev.modifiers():
            self.reset_zoom()
            ev.accept()
        else:
            super().keyPressEvent(ev)

    def focusInEvent(self, ev) -> None:  # type: ignore[no-untyped-def]
        self.sigActivated.emit(self.kind)
        super().focusInEvent(ev)

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        """Orientation letters, the view's name and the slice line, in viewport pixels.

        Each text sits on a translucent dark plate so it stays readable over bright tissue.
        """
        super().drawForeground(painter, rect)
        painter.save()
        painter.resetTransform()
        w, h = self.viewport().width(), self.viewport().height()
        edge = self.edge_text
        painter.setFont(self._edge_font)
        m = painter.fontMetrics()
        light = QColor(232, 232, 232)
        self._text(painter, 6, h // 2 + m.ascent() // 2, edge["left"], light)
        self._text(painter, w - 6 - m.horizontalAdvance(edge["right"]), h // 2 + m.ascent() // 2, edge["right"], light)
        self._text(painter, (w - m.horizontalAdvance(edge["top"])) // 2, 4 + m.ascent(), edge["top"], light)
        self._text(painter, (w - m.horizontalAdvance(edge["bottom"])) // 2, h - 6, edge["bottom"], light)
        self._text(painter, 6, 4 + m.ascent(), self.title_text, self._title_colour)
        painter.setFont(self._label_font)
        self._text(painter, 6, h - 6, self.info_text, light)
        painter.restore()

    @staticmethod
    def _text(painter: QPainter, x: int, y: int, text: str, colour: QColor) -> None:
        if not text:
            return
        m = painter.fontMetrics()
        painter.fillRect(x - 3, y - m.ascent() - 1, m.horizontalAdvance(text) + 6, m.height() + 2, QColor(0, 0, 0, 150))
        painter.setPen(colour)
        painter.drawText(x, y, text)
