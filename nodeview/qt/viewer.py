"""Three linked views of one volume, and the controller that is the only writer of their state.

The state is small and plain: the volume, the crosshair (a fractional voxel index), the window,
the slab (thickness and MIP/MinIP), display switches (crosshair shown, inverted, corner overlays),
the measurements and the key images. Views emit requests; :class:`ViewerController` updates the
state and pushes it to every view, one way, so views never talk to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QGridLayout, QWidget

from ..core.detect.findings import format_score
from ..core.views import ViewKind, ViewPlane, box_on_slice, planes_for, slab_slices
from ..core.volume import Volume
from ..core.windowing import DEFAULT_WINDOW, Window
from .measurements import ANGLE, DISTANCE, ELLIPSE, Measurement, MeasurementStore, angle_deg, distance_mm, ellipse_stats
from .planes import PlaneSource, RowInterpolator
from .slice_view import CROSSHAIR, SliceView

if TYPE_CHECKING:
    from ..core.detect.findings import Finding
    from .study_info import SeriesHeader


@dataclass(frozen=True)
class KeyImage:
    """A slice the reader marked (K) for the report: which view, which slice, how it was windowed."""

    view: ViewKind
    slice_index: int
    cursor_zyx: tuple[float, float, float]
    window: Window
    slab_mm: float
    slab_mode: str

    def describe(self) -> str:
        slab = f", {self.slab_mode} {self.slab_mm:g} mm" if self.slab_mm > 0 else ""
        return f"{self.view.value} {self.slice_index + 1} (W {self.window.width:g} L {self.window.center:g}{slab})"


class ViewerController(QObject):
    """Owns the viewer state and keeps the three views consistent with it."""

    sigCursorChanged = Signal(object)  # fractional index (k, j, i)
    sigWindowChanged = Signal(object)  # Window
    sigHover = Signal(object)  # (index (k, j, i), hu, xyz mm) or None
    sigSlabChanged = Signal(float)
    sigKeyImagesChanged = Signal()
    sigCineChanged = Signal(bool)

    def __init__(self, views: dict[ViewKind, SliceView]) -> None:
        super().__init__()
        self.views = views
        self.volume: Volume | None = None
        self.header: SeriesHeader | None = None
        self.planes: dict[ViewKind, ViewPlane] = {}
        self.source: PlaneSource | None = None
        self.cursor = np.zeros(3)
        self.window: Window = DEFAULT_WINDOW
        self.slab_mm = 0.0
        self.slab_mode = "MIP"
        self.crosshair_visible = True
        self.inverted = False
        self.show_corners = True
        self.show_patient = False  # patient name/ID in the corners: only when enabled in the settings
        self.interpolate = True  # reformats (coronal, sagittal) shown linearly interpolated between slices
        self._interp_rows: dict[ViewKind, RowInterpolator] = {}
        self.findings: list[Finding] = []  # the ones to draw (already filtered by the caller)
        self.measurements = MeasurementStore(self)
        self.measurements.sigChanged.connect(self._refresh_measurements)
        self.key_images: list[KeyImage] = []
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_step)
        self.cine_kind = ViewKind.AXIAL
        self.cine_fps = 10.0
        self._stale: set[ViewKind] = set()
        # what each view shows now, so that a scroll step redoes only what changed: the findings'
        # boxes (slice index, findings version) and the crosshair (the cursor's in-plane indices)
        self._findings_version = 0
        self._boxes_at: dict[ViewKind, tuple[int, int]] = {}
        self._crosshair_at: dict[ViewKind, tuple[float, float]] = {}
        for view in views.values():
            view.sigCursor.connect(self.set_cursor)
            view.sigScroll.connect(lambda steps, v=view: self.scroll(v.kind, steps))
            view.sigScrollTo.connect(lambda index, v=view: self.scroll_to(v.kind, index))
            view.sigWindowDrag.connect(self._on_window_drag)
            view.sigHover.connect(self._on_hover)
            view.sigMeasured.connect(lambda kind, pts, v=view: self.add_measurement(v.kind, kind, pts))
            view.sigZoomChanged.connect(lambda v=view: self._on_zoom(v.kind))

    # ---- state changes -----------------------------------------------------------------------
    def set_volume(self, volume: Volume) -> None:
        self.stop_cine()
        if self.source is not None:
            self.source.close()
        self.volume = volume
        self.header = None
        self.planes = planes_for(volume.geometry)
        self._limit = np.asarray(volume.shape_zyx, dtype=np.float64) - 1
        self._boxes_at.clear()
        self._crosshair_at.clear()
        self.source = PlaneSource(volume.hu_zyx, self.planes)
        self.cursor = (np.asarray(volume.shape_zyx, dtype=np.float64) - 1) / 2.0
        self.measurements.clear()
        self.key_images = []
        self.sigKeyImagesChanged.emit()
        for kind, view in self.views.items():
            view.set_plane(self.planes[kind])
        self._apply_smooth()
        self._refresh_all()

    def set_header(self, header: SeriesHeader | None) -> None:
        self.header = header
        if self.volume is not None:
            for kind in self.views:
                self._refresh_corners(kind)

    def set_cursor(self, index_zyx: np.ndarray) -> None:
        if self.volume is None:
            return
        new = np.minimum(np.maximum(np.asarray(index_zyx, dtype=np.float64), 0.0), self._limit)
        old = self.cursor
        self.cursor = new
        for kind, view in self.views.items():
            if view.isHidden():
                self._stale.add(kind)  # hidden (another view is maximised): refresh when shown
                continue
            axis = self.planes[kind].slice_axis
            if round(old[axis]) != round(new[axis]) or kind in self._stale:
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
        self.scroll_to(kind, round(self.cursor[plane.slice_axis]) + steps)

    def scroll_to(self, kind: ViewKind, index: int) -> None:
        """Show slice ``index`` (clamped) in view ``kind``; the crosshair follows."""
        if self.volume is None:
            return
        plane = self.planes[kind]
        new = self.cursor.copy()
        new[plane.slice_axis] = min(max(int(index), 0), plane.n_slices - 1)  # (np.clip of a scalar: ~10 us)
        self.set_cursor(new)

    def set_window(self, window: Window) -> None:
        self.window = window
        for view in self.views.values():
            view.set_levels(window.levels)
        if self.volume is not None:
            for kind in self.views:
                self._refresh_corners(kind)
        self.sigWindowChanged.emit(window)

    # ---- display switches --------------------------------------------------------------------
    def set_crosshair_visible(self, on: bool) -> None:
        self.crosshair_visible = bool(on)
        for view in self.views.values():
            view.set_crosshair_visible(self.crosshair_visible)

    def set_inverted(self, on: bool) -> None:
        self.inverted = bool(on)
        for view in self.views.values():
            view.set_inverted(self.inverted)

    def set_show_corners(self, on: bool) -> None:
        self.show_corners = bool(on)
        for view in self.views.values():
            view.set_show_corners(self.show_corners)

    def set_show_patient(self, on: bool) -> None:
        self.show_patient = bool(on)
        if self.volume is not None:
            for kind in self.views:
                self._refresh_corners(kind)

    def set_interpolate(self, on: bool) -> None:
        self.interpolate = bool(on)
        self._apply_smooth()

    def _apply_smooth(self) -> None:
        """Row interpolators of the reformats whose rows (slices) lie farther apart than their pixels."""
        self._interp_rows = {}
        for kind in self.planes:
            self._update_interpolator(kind)
        if self.volume is not None:
            for kind in self.views:
                self._refresh_image(kind)

    def _update_interpolator(self, kind: ViewKind) -> bool:
        """Make (or drop) the view's row interpolator for the screen rows its image covers now.

        No more rows than the screen shows: at the fitted zoom a 300-slice coronal of 2.5 mm slices
        becomes about as many rows as the view is high, not 1071. True when it changed.
        """
        old = self._interp_rows.get(kind)
        new = None
        if self.interpolate and kind in self.planes:
            screen_rows = self.views[kind].screen_rows()
            new = RowInterpolator.for_plane(self.planes[kind], max_rows=screen_rows)
            if new is not None and old is not None and new.out_rows == old.out_rows:
                new = old
        if new is None:
            self._interp_rows.pop(kind, None)
        else:
            self._interp_rows[kind] = new
        return new is not old

    def _on_zoom(self, kind: ViewKind) -> None:
        self._refresh_corners(kind)
        if self.volume is not None and self._update_interpolator(kind):
            self._refresh_image(kind)

    def set_mode(self, mode: str) -> None:
        for view in self.views.values():
            view.set_mode(mode)

    # ---- cine ------------------------------------------------------------------------------
    def start_cine(self, kind: ViewKind, fps: float | None = None) -> None:
        if self.volume is None:
            return
        self.cine_kind = kind
        if fps is not None:
            self.cine_fps = float(fps)
        self.cine_timer.start(max(1, round(1000.0 / max(self.cine_fps, 0.1))))
        self.sigCineChanged.emit(True)

    def set_cine_fps(self, fps: float) -> None:
        self.cine_fps = max(0.5, float(fps))
        if self.cine_timer.isActive():
            self.cine_timer.setInterval(max(1, round(1000.0 / self.cine_fps)))

    def stop_cine(self) -> None:
        if self.cine_timer.isActive():
            self.cine_timer.stop()
            self.sigCineChanged.emit(False)

    def _cine_step(self) -> None:
        if self.volume is None:
            self.stop_cine()
            return
        plane = self.planes[self.cine_kind]
        index = self.slice_index(self.cine_kind) + 1
        self.scroll_to(self.cine_kind, 0 if index >= plane.n_slices else index)

    # ---- measurements and key images ---------------------------------------------------------
    def add_measurement(self, view: ViewKind, kind: str, points: tuple[tuple[float, float], ...]) -> Measurement | None:
        """A measurement drawn on ``view``'s current slice: compute its value and keep it."""
        if self.volume is None or self.source is None:
            return None
        index = self.slice_index(view)
        pts = tuple((float(u), float(v)) for u, v in points)
        if kind == DISTANCE:
            text = f"{distance_mm(pts):.1f} mm"
        elif kind == ANGLE:
            text = f"{angle_deg(pts):.1f}°"
        elif kind == ELLIPSE:
            native = self.planes[view].extract(self.volume.hu_zyx, index)
            mean, sd, area, n = ellipse_stats(pts, self.planes[view], native)
            text = f"mean {mean:.0f} HU, SD {sd:.0f}, {area:.0f} mm²" if n else f"{area:.0f} mm² (no pixels)"
        else:
            raise ValueError(f"unknown measurement {kind!r}")
        m = Measurement(self.measurements.next_id(), kind, view, index, pts, text)
        self.measurements.add(m)
        return m

    def go_to_measurement(self, m: Measurement) -> None:
        self.scroll_to(m.view, m.slice_index)

    def _refresh_measurements(self) -> None:
        if self.volume is None:
            for view in self.views.values():
                view.set_measurements([])
            return
        for kind, view in self.views.items():
            view.set_measurements(self.measurements.on_slice(kind, self.slice_index(kind)))

    def add_key_image(self, view: ViewKind) -> KeyImage | None:
        """Mark the slice on screen in ``view`` as a key image (again: unmark it)."""
        if self.volume is None:
            return None
        index = self.slice_index(view)
        for n, k in enumerate(self.key_images):
            if k.view == view and k.slice_index == index:
                del self.key_images[n]
                self.sigKeyImagesChanged.emit()
                return None
        key = KeyImage(
            view,
            index,
            (float(self.cursor[0]), float(self.cursor[1]), float(self.cursor[2])),
            self.window,
            self.slab_mm,
            self.slab_mode,
        )
        self.key_images.append(key)
        self.sigKeyImagesChanged.emit()
        return key

    def render_key_image(self, key: KeyImage) -> np.ndarray:
        """The key image's pixels as uint8 grey (its own window and slab), rows = screen down."""
        assert self.volume is not None and self.source is not None
        plane = self.planes[key.view]
        image = self.source.extract(key.view, key.slice_index, slab_slices(plane, key.slab_mm), key.slab_mode)
        lo, hi = key.window.levels
        grey = np.clip((image.astype(np.float32) - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
        return 255 - grey if self.inverted else grey

    def set_findings(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        self._findings_version += 1
        if self.volume is not None:
            for kind in self.views:
                self._refresh_findings(kind)

    def focus_finding(self, finding: Finding) -> None:
        """Centre every view on a finding and zoom to about 4x its size (at least 40 mm).

        The centre is that of the nodule's extent (its box), not the detector's peak, which can sit
        on the margin of a large or irregular nodule.
        """
        if self.volume is None:
            return
        centre = (np.asarray(finding.bbox_min_xyz_mm, float) + np.asarray(finding.bbox_max_xyz_mm, float)) / 2.0
        self.set_cursor_mm(centre)
        size = max(40.0, 4.0 * finding.diameter_mm)
        for kind, view in self.views.items():
            u, v, _ = self.planes[kind].index_to_display(self.cursor)
            view.zoom_to(float(u), float(v), size)

    def set_slab(self, slab_mm: float, mode: str | None = None) -> None:
        """Slab thickness (0 = thin) and projection ("MIP" or "MinIP")."""
        self.slab_mm = max(0.0, float(slab_mm))
        if mode is not None:
            self.slab_mode = mode
        if self.volume is not None:
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
        self._boxes_at.clear()
        self._crosshair_at.clear()
        for kind in self.views:
            self._refresh_image(kind)
            self._refresh_overlay(kind)
            self._refresh_corners(kind)

    def _refresh_image(self, kind: ViewKind) -> None:
        assert self.volume is not None and self.source is not None
        plane, view = self.planes[kind], self.views[kind]
        index = self.slice_index(kind)
        slab = slab_slices(plane, self.slab_mm)
        view.slice_index = index
        rows = self._interp_rows.get(kind) if self.interpolate else None
        smooth = None
        if rows is not None and slab <= 1 and rows.out_rows <= self.source.smooth_out_rows(kind):
            smooth = self.source.smooth(kind, index)
        if smooth is not None:  # interpolated at square pixels in the background, at least the screen's rows
            view.set_image(smooth, self.window.levels)
        else:  # rows interpolated while drawing (cache not ready yet, slabs), or native pixels
            view.set_image(self.source.extract(kind, index, slab, self.slab_mode), self.window.levels, rows)
        view.set_measurements(self.measurements.on_slice(kind, index))

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
        plane, view = self.planes[kind], self.views[kind]
        index = self.slice_index(kind)
        boxes_at = (index, self._findings_version)
        if self._boxes_at.get(kind) != boxes_at:  # boxes depend on the slice and the findings only
            self._refresh_findings(kind)
            self._boxes_at[kind] = boxes_at
        cursor = self.cursor
        in_plane = (float(cursor[plane.u_axis]), float(cursor[plane.v_axis]))
        if self._crosshair_at.get(kind) != in_plane:  # scrolling this view leaves its crosshair alone
            u, v, _ = plane.index_to_display(cursor)
            view.set_cursor_display(float(u), float(v))
            self._crosshair_at[kind] = in_plane
        position = self.volume.geometry.index_to_mm(self._slice_centre(kind, index))
        lps_axis = {ViewKind.AXIAL: 2, ViewKind.CORONAL: 1, ViewKind.SAGITTAL: 0}[kind]
        axis_name = "xyz"[lps_axis]
        slab = f"  {self.slab_mode} {self.slab_mm:g} mm" if self.slab_mm > 0 else ""
        interpolated = (
            "  [interpolated slice]"
            if kind == ViewKind.AXIAL and plane.slice_axis == 0 and index in self.volume.interpolated_slices
            else ""
        )
        view.set_info(
            f"{index + 1}/{plane.n_slices}   {axis_name} = {position[lps_axis]:.1f} mm"
            f"   {plane.slice_mm:.2f} mm{slab}{interpolated}"
        )
        key = any(k.view == kind and k.slice_index == index for k in self.key_images)
        view.title_text = f"{kind.value.capitalize()}{'  ★ key image' if key else ''}"

    def corner_texts(self, kind: ViewKind) -> tuple[list[str], list[str]]:
        """The corner overlays of a view: study (top right) and display state (bottom right).

        Patient name and ID appear only when :attr:`show_patient` is on (a setting, off by default).
        """
        assert self.volume is not None
        v, h = self.volume, self.header
        top: list[str] = []
        if self.show_patient and h is not None and (h.patient_name or h.patient_id):
            top.append(" ".join(x for x in (h.patient_name, h.patient_id) if x))
        if h is not None and h.series_date:
            top.append(h.series_date)
        series = v.description.strip()
        if h is not None and h.series_number:
            series = f"Se {h.series_number}" + (f" {series}" if series else "")
        if series:
            top.append(series)
        if h is not None and h.kernel:
            top.append(f"Kernel {h.kernel}")
        thickness = v.slice_thickness_mm or (h.slice_thickness_mm if h is not None else None)
        if thickness:
            top.append(f"Thk {thickness:g} mm")
        zoom = self.views[kind].zoom_factor()
        bottom = [f"W {self.window.width:.0f}  L {self.window.center:.0f}", f"Zoom {zoom:.2f}×"]
        return top, bottom

    def _refresh_corners(self, kind: ViewKind) -> None:
        if self.volume is None:
            return
        top, bottom = self.corner_texts(kind)
        self.views[kind].set_corners(top, bottom)

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
        self.setAutoFillBackground(True)  # the gaps between the views (a palette: no style sheet over them)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.Window, QColor(32, 32, 32))
        self.setPalette(palette)
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

    def set_mode(self, mode: str) -> None:
        """The left button's mouse mode in every view (see :mod:`.slice_view`)."""
        self.controller.set_mode(mode)

    @property
    def mode(self) -> str:
        return self.views[ViewKind.AXIAL].mode if self.views else CROSSHAIR

    def active_kind(self) -> ViewKind:
        for kind, view in self.views.items():
            if view.hasFocus():
                return kind
        return self.maximised or ViewKind.AXIAL

    def focus_view(self, kind: ViewKind) -> None:
        self.views[kind].setFocus(Qt.FocusReason.OtherFocusReason)
