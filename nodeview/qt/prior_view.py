"""The prior study beside the current one: opened and registered in a worker, shown resliced
through the registration, synchronised with the current axial view, with a manual nudge.

How it stays in step
    The prior is shown in three views - axial, coronal and sagittal - each on the current study's
    plane of that kind (:func:`nodeview.core.followup.reslice.reslice`), so each prior view uses the
    same screen millimetres as the current view of its kind: the crosshair and the slices follow
    the current study's cursor through the registration, zoom and pan are copied from (and to) the
    current view of the same kind, and window/level comes from the viewer's controller. Scrolling
    or clicking in a prior view moves the current study's cursor (the controller stays the only
    writer of the viewer state). The prior's own findings, when known, are drawn mapped into the
    current study on each view.

Registration quality and nudge
    The panel shows the mean lung-surface distance before and after registration. If the prior is
    off, the spin boxes (mm, LPS x/y/z) or Shift+arrow keys in the prior view (1 mm; Shift+PageUp/
    PageDown along z) move it; the quality is re-measured at once.

Findings
    After Detect on the current study, "Compare findings" detects on the prior (same model, in the
    worker) and matches the findings through the registration
    (:func:`nodeview.core.followup.compare.compare_findings`): the panel lists each finding's change,
    prior size and VDT, the prior's findings are drawn (blue, "P#") in the prior view, and the report
    exported for this detection carries the comparison. A nudge re-matches at once.

The prior belongs to the current study on screen: opening another current study drops it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QRectF, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.views import ViewKind, ViewPlane
from .slice_view import SliceView
from .tasks import TaskRunner

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..core.detect.detector import DetectionResult, Detector
    from ..core.detect.findings import Finding
    from ..core.followup.compare import Comparison
    from ..core.followup.registration import Registration
    from ..core.volume import Volume
    from .viewer import ViewerController

log = logging.getLogger(__name__)
NUDGE_STEP_MM = 1.0
MAX_CHANGE_LINES = 12
PRIOR_BOX = QColor(80, 170, 255)


PRIOR_KINDS = (ViewKind.AXIAL, ViewKind.CORONAL, ViewKind.SAGITTAL)


class PriorSliceView(SliceView):
    """A view of the prior (axial, coronal or sagittal); Shift+arrows nudge instead of scrolling."""

    sigNudge = Signal(float, float, float)  # mm, LPS x y z

    def keyPressEvent(self, ev: QKeyEvent) -> None:
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            step = {
                Qt.Key.Key_Left: (-NUDGE_STEP_MM, 0.0, 0.0),
                Qt.Key.Key_Right: (NUDGE_STEP_MM, 0.0, 0.0),
                Qt.Key.Key_Up: (0.0, -NUDGE_STEP_MM, 0.0),
                Qt.Key.Key_Down: (0.0, NUDGE_STEP_MM, 0.0),
                Qt.Key.Key_PageUp: (0.0, 0.0, NUDGE_STEP_MM),
                Qt.Key.Key_PageDown: (0.0, 0.0, -NUDGE_STEP_MM),
            }.get(Qt.Key(ev.key()))
            if step is not None:
                self.sigNudge.emit(*step)
                ev.accept()
                return
        super().keyPressEvent(ev)


class PriorPanel(QWidget):
    """Prior views (axial, coronal, sagittal), registration status and quality, nudge boxes."""

    sigRegistered = Signal(object)  # Registration
    sigFailed = Signal(str)
    sigCompared = Signal(object)  # Comparison

    def __init__(
        self,
        controller: ViewerController,
        current_view: SliceView,
        parent: QWidget | None = None,
        current_views: Mapping[ViewKind, SliceView] | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.current_view = current_view
        #: the current study's view of each kind (zoom and pan are kept in step with it)
        self.current_views: dict[ViewKind, SliceView] = dict(current_views or {ViewKind.AXIAL: current_view})
        self.prior: Volume | None = None
        self.current: Volume | None = None
        self.registration: Registration | None = None
        self.prior_findings: list[Finding] = []
        self.prior_path = ""
        self.comparison: Comparison | None = None
        self.current_result: DetectionResult | None = None
        self.current_threshold = 0.5
        self._prior_candidates: list[Finding] = []
        #: gives the detector to run on the prior (called in the worker); set by the main window
        self.detector_provider: Callable[[], Detector] | None = None
        self._planes: dict[ViewKind, ViewPlane] = {}
        self._syncing = False
        self.runner = TaskRunner(self)
        self.runner.sigProgress.connect(self._on_progress)
        self.runner.sigFinished.connect(self._on_finished)
        self.runner.sigFailed.connect(self._on_failed)
        self.runner.sigCancelled.connect(lambda: self._set_status("Cancelled"))

        self.views: dict[ViewKind, PriorSliceView] = {}
        for kind in PRIOR_KINDS:
            view = PriorSliceView(kind, self)
            view.setObjectName("view-prior" if kind == ViewKind.AXIAL else f"view-prior-{kind.value}")
            view.title_text = f"Prior ({kind.value})"
            self.views[kind] = view
        self.view = self.views[ViewKind.AXIAL]
        self.title = QLabel("No prior opened (File › Open prior…)")
        self.title.setWordWrap(True)
        self.quality = QLabel("")
        self.quality.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.runner.cancel)
        self.nudge_boxes: list[QDoubleSpinBox] = []
        nudge_row = QHBoxLayout()
        nudge_row.addWidget(QLabel("Nudge (mm)"))
        for axis in "xyz":
            box = QDoubleSpinBox()
            box.setRange(-50.0, 50.0)
            box.setSingleStep(0.5)
            box.setDecimals(1)
            box.setPrefix(f"{axis} ")
            box.setToolTip(f"Move the prior along patient {axis} (LPS mm); Shift+arrows in the prior view")
            box.valueChanged.connect(self._on_nudge_boxes)
            nudge_row.addWidget(box)
            self.nudge_boxes.append(box)
        self.compare_button = QPushButton("Compare findings")
        self.compare_button.setToolTip("Detect on the prior and match its findings to the current ones (after Detect)")
        self.compare_button.clicked.connect(self.compare)
        self.compare_button.setEnabled(False)
        self.changes = QLabel("")
        self.changes.setWordWrap(True)
        self.changes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        reset = QPushButton("Reset")
        reset.clicked.connect(lambda: self.set_nudge((0.0, 0.0, 0.0)))
        nudge_row.addWidget(reset)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        col.addWidget(self.title)
        grid = QGridLayout()
        grid.setSpacing(2)
        grid.addWidget(self.views[ViewKind.AXIAL], 0, 0, 1, 2)
        grid.addWidget(self.views[ViewKind.CORONAL], 1, 0)
        grid.addWidget(self.views[ViewKind.SAGITTAL], 1, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        col.addLayout(grid, 1)
        col.addWidget(self.quality)
        col.addLayout(nudge_row)
        col.addWidget(self.compare_button)
        col.addWidget(self.changes)
        busy = QHBoxLayout()
        busy.addWidget(self.progress, 1)
        busy.addWidget(self.cancel_button)
        col.addLayout(busy)
        self._show_busy(False)
        self._enable_nudge(False)

        for kind, view in self.views.items():
            view.sigScroll.connect(lambda steps, k=kind: self.controller.scroll(k, steps))
            view.sigCursor.connect(self.controller.set_cursor)
            view.sigWindowDrag.connect(lambda dx, dy: current_view.sigWindowDrag.emit(dx, dy))
            view.sigNudge.connect(self.nudge_by)
            view.view_box.sigRangeChanged.connect(lambda *_a, k=kind: self._copy_range_to_current(k))
            other = self.current_views.get(kind)
            if other is not None:
                other.view_box.sigRangeChanged.connect(lambda *_a, k=kind: self._copy_range_from_current(k))
        self.controller.sigCursorChanged.connect(lambda _c: self.refresh())
        self.controller.sigWindowChanged.connect(self._set_levels)

    # ---- opening and registering ---------------------------------------------------------------
    def open_prior(self, path: str, current: Volume, series_uid: str | None = None) -> None:
        """Load ``path`` (its series ``series_uid``, else the default one) and register it to
        ``current`` in a worker (progress and Cancel here)."""
        from ..core.followup.registration import register
        from ..core.io.study import open_study

        self.clear()
        self.current = current
        self.prior_path = path
        self.title.setText(f"Prior: {os.path.basename(path.rstrip('/')) or path} — loading and registering…")
        self._show_busy(True)

        def work(progress, stop):  # type: ignore[no-untyped-def]
            prior = open_study(
                [path],
                series_uid=series_uid,
                progress=lambda d, n: progress(d * 30 // max(n, 1), 100),
                should_stop=stop,
            )
            reg = register(current, prior, lambda d, n: progress(30 + d * 70 // max(n, 1), 100), stop)
            return current, prior, reg

        self.runner.start(work)

    def set_prior(self, current: Volume, prior: Volume, registration: Registration) -> None:
        """Show an already registered prior (also what the worker's result goes through)."""
        self.current, self.prior, self.registration = current, prior, registration
        same = self.controller.volume is current  # the current views' planes, so screen mm agree
        self._planes = {
            kind: self.controller.planes[kind]
            if same and kind in self.controller.planes
            else ViewPlane.for_geometry(current.geometry, kind)
            for kind in PRIOR_KINDS
        }
        for kind, view in self.views.items():
            view.set_plane(self._planes[kind])
        date = prior.patient.study_date
        shown = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else "date unknown"
        self.title.setText(f"Prior CT of {shown}: {prior.description or 'series'} — {registration.method}")
        with (
            QSignalBlocker(self.nudge_boxes[0]),
            QSignalBlocker(self.nudge_boxes[1]),
            QSignalBlocker(self.nudge_boxes[2]),
        ):
            for box, v in zip(self.nudge_boxes, registration.nudge_mm, strict=True):
                box.setValue(v)
        self._enable_nudge(True)
        self._update_compare_button()
        self._show_quality()
        self._set_levels(self.controller.window)
        self.refresh(force=True)
        for kind in PRIOR_KINDS:
            self._copy_range_from_current(kind)

    def clear(self) -> None:
        """Forget the prior (another current study was opened)."""
        self.runner.cancel()
        self.prior = self.registration = None
        self.prior_findings = []
        self.comparison = None
        self._prior_candidates = []
        self.changes.setText("")
        self.compare_button.setEnabled(False)
        self._planes = {}
        for view in self.views.values():
            view.image_item.clear()
            view.set_overlays([])
        self.title.setText("No prior opened (File › Open prior…)")
        self.quality.setText("")
        self._enable_nudge(False)
        self._show_busy(False)

    def set_prior_findings(self, findings: list[Finding]) -> None:
        self.prior_findings = list(findings)
        self.refresh(force=True)

    def _on_finished(self, result: object) -> None:
        if isinstance(result, tuple) and len(result) == 4:
            self._on_compared(*result)
            return
        current, prior, reg = result  # type: ignore[misc]
        self._show_busy(False)
        if self.controller.volume is not current:  # the study on screen changed meanwhile: drop it
            self._set_status("The current study changed; open the prior again")
            return
        self.set_prior(current, prior, reg)
        self.sigRegistered.emit(reg)

    # ---- findings -----------------------------------------------------------------------------
    def set_current_result(self, result: DetectionResult | None, threshold: float) -> None:
        """The current study's detection (after Detect); a comparison made for another one is dropped."""
        if result is not self.current_result or abs(threshold - self.current_threshold) > 1e-12:
            self.comparison = None  # made for other reported findings
            self.changes.setText("")
            self.set_prior_findings([])
        self.current_result, self.current_threshold = result, threshold
        self._update_compare_button()

    def _update_compare_button(self) -> None:
        self.compare_button.setEnabled(
            self.registration is not None and self.current_result is not None and not self.runner.busy
        )

    def comparison_for(self, result: DetectionResult | None, threshold: float | None = None) -> Comparison | None:
        """The comparison made for ``result`` at ``threshold`` (None when there is none for them: the
        reported findings changed with the threshold)."""
        if result is None or result is not self.current_result:
            return None
        if threshold is not None and abs(threshold - self.current_threshold) > 1e-12:
            return None
        return self.comparison

    def compare(self) -> None:
        """Detect on the prior in the worker, then match (progress and Cancel in the panel)."""
        if self.prior is None or self.registration is None or self.current_result is None or self.current is None:
            return
        if self.detector_provider is None:
            return
        from ..core.followup.compare import compare_findings

        provider, prior, current = self.detector_provider, self.prior, self.current
        result, threshold, registration = self.current_result, self.current_threshold, self.registration
        reported = [f for f in result.findings if f.score >= threshold]

        def work(progress, stop):  # type: ignore[no-untyped-def]
            prior_result = provider().detect(prior, progress, stop, min_score=0.0)
            prior_reported = [f for f in prior_result.findings if f.score >= threshold]
            below = [f for f in prior_result.findings if 0.5 * threshold <= f.score < threshold]
            comparison = compare_findings(
                reported,
                prior_reported,
                registration,
                current.patient.study_date,
                prior.patient.study_date,
                prior_candidates=below,
                prior_series_uid=prior.series_uid,
            )
            return result, comparison, prior_reported, below

        self.changes.setText("Detecting on the prior…")
        self._show_busy(True)
        self.compare_button.setEnabled(False)
        self.runner.start(work)

    def _on_compared(
        self, result: DetectionResult, comparison: Comparison, prior: list[Finding], below: list[Finding]
    ) -> None:
        self._show_busy(False)
        if result is not self.current_result or self.registration is None:
            self._update_compare_button()
            return  # another detection or prior meanwhile: this comparison is not for what is on screen
        if self.registration is not comparison.registration:  # nudged meanwhile: match again
            comparison = self._rematch(comparison, prior, below)
        self._prior_candidates = below
        self.comparison = comparison
        self.set_prior_findings(prior)
        self._show_changes()
        self._update_compare_button()
        self.sigCompared.emit(comparison)

    def _rematch(self, old: Comparison, prior: list[Finding], below: list[Finding]) -> Comparison:
        from ..core.followup.compare import compare_findings

        assert self.current_result is not None and self.registration is not None
        reported = [f for f in self.current_result.findings if f.score >= self.current_threshold]
        return compare_findings(
            reported,
            prior,
            self.registration,
            old.current_date,
            old.prior_date,
            prior_candidates=below,
            prior_series_uid=old.prior_series_uid,
        )

    def _show_changes(self) -> None:
        cmp = self.comparison
        if cmp is None:
            self.changes.setText("")
            return
        lines = [cmp.comparison_line()]
        for fid in sorted(cmp.changes):
            c = cmp.changes[fid]
            if c.prior is None:
                lines.append(f"#{fid}: {c.change}")
                continue
            vdt = f", VDT {c.vdt_days:,.0f} d" if c.vdt_days is not None else ""
            lines.append(f"#{fid}: {c.change} (prior P{c.prior.id} {c.prior.diameter_mm:.1f} mm{vdt})")
        lines.extend(f"P{f.id}: resolved ({f.diameter_mm:.1f} mm)" for f in cmp.resolved)
        if len(lines) > MAX_CHANGE_LINES + 1:
            more = len(lines) - MAX_CHANGE_LINES
            lines = [*lines[:MAX_CHANGE_LINES], f"… and {more} more (all of them in the report)"]
        self.changes.setText("\n".join(lines))

    def _on_failed(self, message: str) -> None:
        self._show_busy(False)
        self._update_compare_button()
        if self.registration is not None:  # the comparison failed, not the prior
            self.changes.setText(f"The comparison failed: {message}")
            return
        self.title.setText(f"The prior could not be opened or registered: {message}")
        self.sigFailed.emit(message)

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)

    def _show_busy(self, on: bool) -> None:
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)
        if on:
            self.progress.setValue(0)

    def _set_status(self, text: str) -> None:
        self._show_busy(False)
        self.title.setText(text)

    # ---- nudge --------------------------------------------------------------------------------
    def _enable_nudge(self, on: bool) -> None:
        for box in self.nudge_boxes:
            box.setEnabled(on)

    def nudge(self) -> tuple[float, float, float]:
        return (self.nudge_boxes[0].value(), self.nudge_boxes[1].value(), self.nudge_boxes[2].value())

    def set_nudge(self, offset: tuple[float, float, float]) -> None:
        for box, v in zip(self.nudge_boxes, offset, strict=True):
            with QSignalBlocker(box):
                box.setValue(float(v))
        self._on_nudge_boxes()

    def nudge_by(self, dx: float, dy: float, dz: float) -> None:
        x, y, z = self.nudge()
        self.set_nudge((x + dx, y + dy, z + dz))

    def _on_nudge_boxes(self, _value: float = 0.0) -> None:
        if self.registration is None:
            return
        self.registration = self.registration.nudged(self.nudge())
        if self.comparison is not None:
            self.comparison = self._rematch(self.comparison, self.prior_findings, self._prior_candidates)
            self._show_changes()
            self.sigCompared.emit(self.comparison)
        self._show_quality()
        self.refresh(force=True)
        self.sigRegistered.emit(self.registration)

    def _show_quality(self) -> None:
        reg = self.registration
        if reg is None:
            return
        if reg.surface_after_mm is None:
            self.quality.setText(f"Registration: {reg.method}")
            return
        before = f" (lung centres only: {reg.surface_before_mm:.1f} mm)" if reg.surface_before_mm is not None else ""
        warn = "  — check the match, nudge if needed" if reg.surface_after_mm > 4.0 else ""
        self.quality.setText(
            f"Registration quality: lung surfaces {reg.surface_after_mm:.1f} mm apart on average{before}{warn}"
        )

    # ---- display ------------------------------------------------------------------------------
    @property
    def _plane(self) -> ViewPlane | None:
        """The axial plane (the prior's main view)."""
        return self._planes.get(ViewKind.AXIAL)

    def _set_levels(self, window: Any) -> None:
        for view in self.views.values():
            view.set_levels(window.levels)

    def refresh(self, force: bool = False) -> None:
        """Reslice the prior at the current slice of each view and copy the crosshair."""
        if self.prior is None or self.registration is None or self.current is None or not self._planes:
            return
        if self.controller.volume is not self.current:
            return
        from ..core.followup.reslice import reslice

        for kind, view in self.views.items():
            plane = self._planes[kind]
            k = self.controller.slice_index(kind)
            if force or k != view.slice_index or view.image_item.image is None:
                image = reslice(self.prior, self.current.geometry, self.registration.current_to_prior, plane, k)
                view.slice_index = k
                view.set_image(image, self.controller.window.levels)
            u, v, _ = plane.index_to_display(self.controller.cursor)
            view.set_cursor_display(float(u), float(v))
            self._draw_prior_findings(kind, k)
            through = "   prior resliced through the registration" if kind == ViewKind.AXIAL else ""
            view.set_info(f"current slice {k + 1}/{plane.n_slices}{through}")

    def _draw_prior_findings(self, kind: ViewKind, k: int) -> None:
        view, plane = self.views[kind], self._planes.get(kind)
        if not self.prior_findings or self.registration is None or self.current is None or plane is None:
            view.set_overlays([])
            return
        g = self.current.geometry
        axis = plane.slice_axis
        boxes = []
        for f in self.prior_findings:
            centre = self.registration.to_current([f.center_xyz_mm])[0]
            idx = g.mm_to_index(centre)
            r = f.diameter_mm / 2.0
            if abs((idx[axis] - k) * g.spacing_zyx[axis]) > r:
                continue
            u, v, _ = plane.index_to_display(idx)
            boxes.append((float(u) - r, float(v) - r, float(u) + r, float(v) + r, PRIOR_BOX, f"P{f.id}"))
        view.set_overlays(boxes)

    def _copy_range_from_current(self, kind: ViewKind = ViewKind.AXIAL) -> None:
        other = self.current_views.get(kind)
        if other is not None:
            self._sync_range(other, self.views[kind])

    def _copy_range_to_current(self, kind: ViewKind = ViewKind.AXIAL) -> None:
        other = self.current_views.get(kind)
        if other is not None:
            self._sync_range(self.views[kind], other)

    def _sync_range(self, src: SliceView, dst: SliceView) -> None:
        """Give ``dst`` the centre and the millimetres per pixel of ``src`` (not its rectangle: the
        views differ in shape, and copying rectangles between aspect-locked views grows them)."""
        if self._syncing or not self._planes:
            return
        rect = src.view_box.viewRect()
        width_px = max(src.view_box.width(), 1.0)
        mm_per_px = rect.width() / width_px
        w, h = dst.view_box.width() * mm_per_px, dst.view_box.height() * mm_per_px
        if w <= 0 or h <= 0:
            return
        target = QRectF(rect.center().x() - w / 2, rect.center().y() - h / 2, w, h)
        now = dst.view_box.viewRect()
        tol = 1e-3 * max(w, h)
        if all(abs(a - b) < tol for a, b in zip(_edges(now), _edges(target), strict=True)):
            return
        self._syncing = True
        try:
            dst.view_box.setRange(rect=target, padding=0)
        finally:
            self._syncing = False


def _edges(r: QRectF) -> tuple[float, float, float, float]:
    return (r.left(), r.top(), r.right(), r.bottom())


class PriorDock(QDockWidget):
    """The dock that holds the :class:`PriorPanel` (hidden until a prior is opened)."""

    def __init__(
        self,
        window: QWidget,
        controller: ViewerController,
        current_view: SliceView,
        current_views: Mapping[ViewKind, SliceView] | None = None,
    ) -> None:
        super().__init__("Prior study", window)
        self.setObjectName("prior-dock")
        self.panel = PriorPanel(controller, current_view, self, current_views)
        self.setWidget(self.panel)
        self.setMinimumWidth(520)
        self.hide()

    def open_dialog(self, current: Volume | None, start_dir: str) -> None:
        if current is None:
            return
        folder = QFileDialog.getExistingDirectory(self, "Open prior study (DICOM folder)", start_dir)
        if folder:
            self.open(folder, current)

    def open(self, path: str, current: Volume, series_uid: str | None = None) -> None:
        self.show()
        self.panel.open_prior(path, current, series_uid)


__all__ = ["PriorDock", "PriorPanel", "PriorSliceView"]
