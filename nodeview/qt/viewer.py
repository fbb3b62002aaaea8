"""Three linked views of one volume, and the controller that is the only writer of their state.

The state is small and plain: the volume, the crosshair (a fractional voxel index), the window and
the slab thickness. Views emit requests; :class:`ViewerController` updates the state and pushes it
to every view, one way, so views never talk to each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QWidget

from ..core.detect.findings import format_score
from ..core.views import ViewKind, ViewPlane, box_on_slice, planes_for, slab_slices
from ..core.volume import Volume
from ..core.windowing import DEFAULT_WINDOW, Window
from .slice_view import SliceView

if TYPE_CHECKING:
    from ..core.detect.findings import Finding


class ViewerController(QObject):
    """Owns the viewer state and keeps the three views consistent with it."""

    sigCursorChanged = Signal(object)  # fractional index (k, j, i)
    sigWindowChanged = Signal(object)  # Window
    sigHover = Signal(object)  # (index (k, j, i), hu, xyz mm) or None
    sigSlabChanged = Signal(float)

    def __init__(self, views: dict[ViewKind, SliceView]) -> None:
        super().__init__()
        self.views = views
        self.volume: Volume | None = None
        self.planes: dict[ViewKind, ViewPlane] = {}
        self.cursor = np.zeros(3)
        self.window: Window = DEFAULT_WINDOW
        self.slab_mm = 0.0
        self.findings: list[Finding] = []  # the ones to draw (already filtered by the caller)
        self._stale: set[ViewKind] = set()
        for view in views.values():
            view.sigCursor.connect(self.set_cursor)
            view.sigScroll.connect(lambda steps, v=view: self.scroll(v.kind, steps))
            view.sigWindowDrag.connect(self._on_window_drag)
            view.sigHover.connect(self._on_hover)

    # ---- state changes -----------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        self.volume = volume
        self.planes = planes_for(volume.geometry)
        self.cursor = (np.asarray(volume.shape_zyx, dtype=np.float64) - 1) / 2.0
        for kind, view in self.views.items():
            view.set_plane(self.planes[kind])
        self._refresh_all()

    def set_cursor(self, index_zyx: np.ndarray) -> None:
        if self.volume is None:
            return
        limit = np.asarray(self.volume.shape_zyx, dtype=np.float64) - 1
        new = np.clip(np.asarray(index_zyx, dtype=np.float64), 0, limit)
        old_slices = self._slices()
        self.cursor = new
        new_slices = self._slices()
        for kind, view in self.views.items():
            if view.isHidden():
                self._stale.add(kind)  # hidden (another view is maximised): refresh when shown
                continue
            if old_slices[kind] != new_slices[kind] or kind in self._stale:
                self._refresh_image(kind)
                self._stale.discard(kind)
            self._refresh_overlay(kind)
        self.sigCursorChanged.emit(self.cursor.copy())

    def set_cursor_mm(self, xyz_mm: np.ndarray) -> None:
        if self.volume is not None:
            self.set_cursor(self.volume.geometry.mm_to_index(xyz_mm))

    def scroll(self, kind: ViewKind, steps: int) -> None:
        if self.volume is None:
            return
        plane = self.planes[kind]
        new = self.cursor.copy()
        new[plane.slice_axis] = np.clip(round(new[plane.slice_axis]) + steps, 0, plane.n_slices - 1)
        self.set_cursor(new)

    def set_window(self, window: Window) -> None:
        self.window = window
        for view in self.views.values():
            view.set_levels(window.levels)
        self.sigWindowChanged.emit(window)

    def set_findings(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        if self.volume is not None:
            for kind in self.views:
                self._refresh_findings(kind)

    def focus_finding(self, finding: Finding) -> None:
        """Centre every view on a finding and zoom to about 4x its size (at least 40 mm)."""
        if self.volume is None:
            return
        self.set_cursor_mm(np.asarray(finding.center_xyz_mm))
        size = max(40.0, 4.0 * finding.diameter_mm)
        for kind, view in self.views.items():
            u, v, _ = self.planes[kind].index_to_display(self.cursor)
            view.zoom_to(float(u), float(v), size)

    def set_slab(self, slab_mm: float) -> None:
        self.slab_mm = max(0.0, float(slab_mm))
        self._refresh_all()
        self.sigSlabChanged.emit(self.slab_mm)

    # ---- derived -----------------------------------------------------------------------------
    def slice_index(self, kind: ViewKind) -> int:
        return round(self.cursor[self.planes[kind].slice_axis])

    def _slices(self) -> dict[ViewKind, int]:
        return {kind: self.slice_index(kind) for kind in self.planes}

    def cursor_mm(self) -> np.ndarray:
        assert self.volume is not None
        return self.volume.geometry.index_to_mm(self.cursor)

    # ---- pushing state to views --------------------------------------------------------------
    def refresh_all(self) -> None:
        """Push the whole state to every view (after a layout change shows hidden views)."""
        if self.volume is not None:
            self._stale.clear()
            self._refresh_all()

    def _refresh_all(self) -> None:
        for kind in self.views:
            self._refresh_image(kind)
            self._refresh_overlay(kind)

    def _refresh_image(self, kind: ViewKind) -> None:
        assert self.volume is not None
        plane, view = self.planes[kind], self.views[kind]
        index = self.slice_index(kind)
        slab = slab_slices(plane, self.slab_mm)
        view.slice_index = index
        view.set_image(plane.extract(self.volume.hu_zyx, index, slab), self.window.levels)

    def _refresh_findings(self, kind: ViewKind) -> None:
        assert self.volume is not None
        plane, view = self.planes[kind], self.views[kind]
        index = self.slice_index(kind)
        boxes = []
        for f in self.findings:
            rect = box_on_slice(plane, self.volume.geometry, f.bbox_min_xyz_mm, f.bbox_max_xyz_mm, index)
            if rect is not None:
                boxes.append((*rect, malignancy_colour(f.malignancy), f"#{f.id} {format_score(f.score)}"))
        view.set_overlays(boxes)

    def _refresh_overlay(self, kind: ViewKind) -> None:
        assert self.volume is not None
        self._refresh_findings(kind)
        plane, view = self.planes[kind], self.views[kind]
        u, v, _ = plane.index_to_display(self.cursor)
        view.set_cursor_display(float(u), float(v))
        index = self.slice_index(kind)
        position = self.volume.geometry.index_to_mm(self._slice_centre(kind, index))
        lps_axis = {ViewKind.AXIAL: 2, ViewKind.CORONAL: 1, ViewKind.SAGITTAL: 0}[kind]
        axis_name = "xyz"[lps_axis]
        slab = f"  MIP {self.slab_mm:g} mm" if self.slab_mm > 0 else ""
        interpolated = (
            "  [interpolated slice]"
            if kind == ViewKind.AXIAL and plane.slice_axis == 0 and index in self.volume.interpolated_slices
            else ""
        )
        view.set_info(
            f"{index + 1}/{plane.n_slices}   {axis_name} = {position[lps_axis]:.1f} mm"
            f"   {plane.slice_mm:.2f} mm{slab}{interpolated}"
        )

    def _slice_centre(self, kind: ViewKind, index: int) -> np.ndarray:
        centre = self.cursor.copy()
        centre[self.planes[kind].slice_axis] = index
        return centre

    # ---- view requests -----------------------------------------------------------------------
    def _on_window_drag(self, dx: float, dy: float) -> None:
        scale = max(self.window.width, 50.0) / 250.0
        width = max(1.0, self.window.width + dx * scale)
        center = self.window.center - dy * scale
        self.set_window(Window(center, width))

    def _on_hover(self, index: np.ndarray | None) -> None:
        if self.volume is None or index is None:
            self.sigHover.emit(None)
            return
        k, j, i = (int(v) for v in np.rint(index))
        shape = self.volume.shape_zyx
        if not (0 <= k < shape[0] and 0 <= j < shape[1] and 0 <= i < shape[2]):
            self.sigHover.emit(None)
            return
        hu = int(self.volume.hu_zyx[k, j, i])
        self.sigHover.emit(((k, j, i), hu, self.volume.geometry.index_to_mm((k, j, i))))


def malignancy_colour(p: float) -> QColor:
    """Green (0) through yellow (0.5) to red (1)."""
    p = float(np.clip(p, 0.0, 1.0))
    return QColor.fromHsvF((1.0 - p) * 120.0 / 360.0, 0.9, 1.0)


class ViewerWidget(QWidget):
    """The 1x3 (or one maximised) arrangement of the axial, coronal and sagittal views."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.views = {kind: SliceView(kind, self) for kind in ViewKind}
        self.controller = ViewerController(self.views)
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(2)
        self.maximised: ViewKind | None = None
        self.setStyleSheet("background: #202020;")
        self.set_layout(None)

    def set_layout(self, maximised: ViewKind | None) -> None:
        """``None`` for 1x3, or the view to show alone."""
        self.maximised = maximised
        for view in self.views.values():
            self._layout.removeWidget(view)
        if maximised is None:
            for col, kind in enumerate(ViewKind):
                self._layout.addWidget(self.views[kind], 0, col)
                self._layout.setColumnStretch(col, 1)
                self.views[kind].show()
        else:
            for kind, view in self.views.items():
                view.setVisible(kind == maximised)
            self._layout.addWidget(self.views[maximised], 0, 0)
            for col in range(3):
                self._layout.setColumnStretch(col, 1 if col == 0 else 0)
        for view in self.views.values():
            view.reset_zoom()
        self.controller.refresh_all()

    def toggle_maximise(self, kind: ViewKind) -> None:
        self.set_layout(None if self.maximised == kind else kind)

    def set_ruler_mode(self, on: bool) -> None:
        for view in self.views.values():
            view.set_ruler_mode(on)

    def active_kind(self) -> ViewKind:
        for kind, view in self.views.items():
            if view.hasFocus():
                return kind
        return self.maximised or ViewKind.AXIAL

    def focus_view(self, kind: ViewKind) -> None:
        self.views[kind].setFocus(Qt.FocusReason.OtherFocusReason)
