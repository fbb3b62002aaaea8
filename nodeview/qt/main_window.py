"""NodeView's main window: opening studies, the three views, window/level, slabs; the reading
tools (mouse modes, measurements, cine, key images, tag browser) are installed by :mod:`.reading`."""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from .. import RESEARCH_NOTICE, __version__
from ..core.views import ViewKind
from ..core.volume import Volume
from ..core.windowing import PRESETS, Window
from ..resources import demo_attribution, demo_study_dir
from .findings_panel import FindingsPanel
from .measurements import ANGLE, DISTANCE, ELLIPSE
from .planes import SLAB_MODES
from .reading import install_reading_actions
from .series_picker import SeriesPicker
from .series_strip import MIME_SERIES, SeriesStrip, series_label
from .start_page import StartPage
from .study_info import SeriesHeader, read_series_header, study_title
from .tasks import TaskRunner
from .viewer import ViewerWidget
from .widgets import AboutDialog, LoadingOverlay

if TYPE_CHECKING:
    from ..core.detect.detector import Detector
    from ..core.io.dicom import Discovery, SeriesInfo

# The readers, the detector (scipy, onnxruntime) and the report writer (Pillow) are imported
# when first used, not at start-up: the window appears about a second sooner.

log = logging.getLogger(__name__)
SLAB_CHOICES_MM = (0.0, 5.0, 10.0, 15.0)
DICOM_PRESET = "DICOM default"
MAX_RECENT = 10


def model_card_text(model_path: str) -> str:
    """The model card (``<model>.md`` beside the model), or a line saying there is none."""
    card = Path(model_path).with_suffix(".md")
    try:
        return card.read_text(encoding="utf-8")
    except OSError:
        return f"No model card found ({card.name}). No default model is bundled yet."


def default_settings() -> QSettings:
    """The user's settings; ``NODEVIEW_SETTINGS_DIR`` redirects them (tests, portable installs)."""
    folder = os.environ.get("NODEVIEW_SETTINGS_DIR")
    if folder:
        return QSettings(os.path.join(folder, "nodeview.ini"), QSettings.Format.IniFormat)
    return QSettings("NodeView", "NodeView")


class MainWindow(QMainWindow):
    """Shows state; loading and computing happen in core functions run by a :class:`TaskRunner`."""

    sigVolumeShown = Signal(object)  # Volume
    sigLoadFailed = Signal(str)
    sigDetectionDone = Signal(object)  # DetectionResult
    sigReportWritten = Signal(object)  # list[Path]: the pages, then the JSON
    sigDicomExported = Signal(object)  # core.export.DicomExport
    sigFindingsLoaded = Signal(object)  # list[core.export.readback.LoadedReport] shown in the panel

    def __init__(self, settings: QSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or default_settings()
        self.setWindowTitle(f"NodeView {__version__}")
        self.resize(1500, 720)
        self.setAcceptDrops(True)
        self.volume: Volume | None = None
        self.source_paths: list[str] = []
        self.auto_pick_default = False  # screenshot mode: never block on the series picker
        self.detect_on_open = False  # ``nodeview PATH --detect``: detect as soon as the study is shown
        self._detect_caution = ""
        self._study_actions: list[QAction] = []
        self.discovery: Discovery | None = None  # what the last scan found (the series strip lists it)
        self.current_series: SeriesInfo | None = None
        self._strip_discovery: Discovery | None = None
        self._loading_series: SeriesInfo | None = None
        self.runner = TaskRunner(self)
        self.runner.sigProgress.connect(self._on_progress)
        self.runner.sigFailed.connect(self._on_failed)
        self.runner.sigCancelled.connect(self._on_cancelled)
        self.runner.sigFinished.connect(self._on_task_finished)
        self._pending: str | None = None  # "scan", "load", "detect", "report" or "dicom"
        self._detector: Detector | None = None
        self.header: SeriesHeader | None = None
        #: bumped whenever another study is shown; results of work started for an older one are dropped
        self.study_generation = 0
        self._task_study: int | None = None  # the study generation the running detect/report/dicom task belongs to
        self._opening: list[str] = []  # what the running scan/load is opening (for the cancel message)

        self.viewer = ViewerWidget(self)
        self.controller = self.viewer.controller
        self.start_page = StartPage(self)
        self.start_page.sigOpenFolder.connect(self.open_folder_dialog)
        self.start_page.sigOpenFile.connect(self.open_file_dialog)
        self.start_page.sigOpenPath.connect(lambda p: self.open_paths([p]))
        self.start_page.sigOpenDemo.connect(self.open_demo)

        self.banner = QLabel("", self)
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #5a4a10; color: #ffe9a0; padding: 4px 8px;")
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()
        viewer_page = QWidget(self)
        col = QVBoxLayout(viewer_page)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.banner)
        col.addWidget(self.viewer, 1)
        self.stack = QStackedWidget(self)
        self.stack.addWidget(self.start_page)
        self.stack.addWidget(viewer_page)
        self.setCentralWidget(self.stack)
        self.loading_overlay = LoadingOverlay(self.stack)
        self.loading_overlay.sigCancel.connect(self.cancel_work)

        self.findings_panel = FindingsPanel(self)
        self.findings_panel.sigVisibleChanged.connect(self.controller.set_findings)
        self.findings_panel.sigFocus.connect(self.controller.focus_finding)
        self.findings_dock = QDockWidget("Findings", self)
        self.findings_dock.setObjectName("findings-dock")
        self.findings_dock.setWidget(self.findings_panel)
        self.findings_dock.setMinimumWidth(560)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.findings_dock)
        self.findings_dock.hide()
        self.series_strip = SeriesStrip(self)
        self.series_strip.sigOpenSeries.connect(self.open_series)
        self.series_dock = QDockWidget("Series", self)
        self.series_dock.setObjectName("series-dock")
        self.series_dock.setWidget(self.series_strip)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.series_dock)
        self.series_dock.hide()
        for view in self.viewer.views.values():  # drops (files, series thumbnails) go to the window
            view.setAcceptDrops(False)
            view.viewport().setAcceptDrops(False)
        from .prior_view import PriorDock

        self.prior_dock = PriorDock(self, self.controller, self.viewer.views[ViewKind.AXIAL], self.viewer.views)
        self.prior_dock.panel.detector_provider = self._shared_detector
        # the prior comparison follows the reported findings when the threshold changes
        self.findings_panel.sigVisibleChanged.connect(
            lambda _shown: self.prior_dock.panel.set_current_result(
                self.findings_panel.result, self.findings_panel.threshold
            )
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.prior_dock)

        from .dicom_readback import ReadBack

        self.readback = ReadBack(self)  # loaded (not detected) findings from SRs beside the series
        from .prior_finder import PriorFinder

        self.prior_finder = PriorFinder(self)  # an earlier study of the patient beside this one
        self._build_status_bar()
        self._build_actions()
        self._build_toolbar()
        self.controller.sigWindowChanged.connect(self._sync_window_widgets)
        self.controller.sigHover.connect(self._on_hover)
        self._refresh_recent()
        self._update_actions()

    # ---- construction ------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.hover_label = QLabel("")
        self.hover_label.setMinimumWidth(420)
        bar.addWidget(self.hover_label, 1)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_work)
        for w in (self.progress, self.cancel_button):
            w.hide()
            bar.addPermanentWidget(w)
        notice = QLabel(f"<b>{RESEARCH_NOTICE}</b>")
        notice.setStyleSheet("color: #c0392b; padding-right: 6px;")
        bar.addPermanentWidget(notice)

    def _action(  # type: ignore[no-untyped-def]
        self, text: str, slot, shortcut: str | QKeySequence | None = None, checkable=False, tip: str = ""
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        plain = text.replace("&", "").rstrip("…")
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip or plain} ({keys})" if keys else (tip or plain))
        action.setStatusTip(tip or plain)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(self._action("Open &folder…", self.open_folder_dialog, QKeySequence.StandardKey.Open))
        file_menu.addAction(self._action("Open f&ile…", self.open_file_dialog, "Ctrl+Shift+O"))
        file_menu.addAction(self._action("Open &demo study", self.open_demo))
        file_menu.addAction(self._action("Open &prior…", self.open_prior_dialog))
        file_menu.addAction(self.prior_finder.action)
        self.recent_menu = file_menu.addMenu("&Recent")
        file_menu.addSeparator()
        self.export_report_action = self._action(
            "Export &report…",
            self.export_report,
            "Ctrl+E",
            tip="PNG report with key images and a JSON sidecar (after Detect)",
        )
        file_menu.addAction(self.export_report_action)
        self.export_dicom_action = self._action("Export &DICOM (SR, SEG)…", self.export_dicom)
        self.export_dicom_action.setEnabled(False)
        self.export_dicom_action.setToolTip("TID 1500 SR and SEG of the reviewed findings, new series (after Detect)")
        file_menu.addAction(self.export_dicom_action)
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Query PACS…", self.open_pacs_dialog, "Ctrl+Shift+Q"))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))

        view_menu = menu.addMenu("&View")
        layout_group = QActionGroup(self)
        self.layout_actions: dict[ViewKind | None, QAction] = {}
        for kind, text, key in [
            (None, "Layout 1×3", "F1"),
            (ViewKind.AXIAL, "Axial only", "F2"),
            (ViewKind.CORONAL, "Coronal only", "F3"),
            (ViewKind.SAGITTAL, "Sagittal only", "F4"),
        ]:
            act = self._action(text, lambda _=False, k=kind: self.set_layout(k), key, checkable=True)
            layout_group.addAction(act)
            view_menu.addAction(act)
            self.layout_actions[kind] = act
        self.layout_actions[None].setChecked(True)
        view_menu.addAction(self._action("Maximise / restore active view", self._toggle_maximise, "M"))
        view_menu.addAction(self._action("Reset zoom (all views)", self._reset_all_zoom, "Shift+R"))
        view_menu.addSeparator()
        for n, name in enumerate(PRESETS, start=1):
            act = self._action(f"Window: {name}", lambda _=False, p=name: self.apply_preset(p), str(n))
            view_menu.addAction(act)
            self._study_actions.append(act)
        n_presets = len(PRESETS) + 1
        self.dicom_preset_action = self._action(
            "Window: DICOM default",
            lambda: self.apply_preset(DICOM_PRESET),
            str(n_presets),
            tip="The window stored in the series' DICOM header (WindowCenter/WindowWidth)",
        )
        view_menu.addAction(self.dicom_preset_action)
        view_menu.addSeparator()
        slab_group = QActionGroup(self)
        self.slab_actions: dict[tuple[float, str], QAction] = {}
        for mode in SLAB_MODES:
            for mm in SLAB_CHOICES_MM:
                if mm == 0 and mode != SLAB_MODES[0]:
                    continue
                text = "Thin slice (no slab)" if mm == 0 else f"Thick slab: {mode} {mm:g} mm"
                act = self._action(text, lambda _=False, v=mm, m=mode: self.set_slab(v, m), checkable=True)
                slab_group.addAction(act)
                view_menu.addAction(act)
                self._study_actions.append(act)
                self.slab_actions[(mm, mode)] = act
        self.slab_actions[(0.0, "MIP")].setChecked(True)
        for text, slot, key, tip in [
            ("Cycle slab thickness", self._cycle_slab, "P", "Thin → 5 → 10 → 15 mm slab (keeps MIP or MinIP)"),
            ("Switch MIP / MinIP", self._toggle_slab_mode, "Shift+P", "Maximum or minimum intensity projection"),
        ]:
            act = self._action(text, slot, key, tip=tip)
            view_menu.addAction(act)
            self._study_actions.append(act)
        view_menu.addSeparator()
        self.view_menu = view_menu
        install_reading_actions(self, view_menu)

        detect_menu = menu.addMenu("&Detection")
        self.detect_action = self._action(
            "&Detect nodules", self.detect, "Ctrl+D", tip="Find lung nodules in the CT series on screen"
        )
        detect_menu.addAction(self.detect_action)
        detect_menu.addAction(self._action("Load &model…", self.load_model_dialog))
        self.auto_detect_action = self._action("Detect automatically on open", self._toggle_auto_detect, checkable=True)
        self.auto_detect_action.setChecked(self.settings.value("auto_detect", False, type=bool))
        detect_menu.addAction(self.auto_detect_action)
        detect_menu.addAction(self.findings_dock.toggleViewAction())

        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self._action("&About NodeView", self.show_about))

    def _build_toolbar(self) -> None:
        bar = QToolBar("Main", self)
        bar.setMovable(False)
        self.addToolBar(bar)
        bar.addWidget(QLabel(" Window "))
        self.preset_box = QComboBox()
        self.preset_box.addItems([*PRESETS, "custom"])
        self.preset_box.setToolTip("Window presets (keys 1-4); right-drag in a view adjusts")
        self.preset_box.activated.connect(lambda i: self.apply_preset(self.preset_box.itemText(i)))
        bar.addWidget(self.preset_box)
        bar.addWidget(QLabel("  L "))
        self.level_box = QDoubleSpinBox()
        self.level_box.setRange(-2000, 4000)
        self.level_box.setDecimals(0)
        self.level_box.setKeyboardTracking(False)
        bar.addWidget(self.level_box)
        bar.addWidget(QLabel(" W "))
        self.width_box = QDoubleSpinBox()
        self.width_box.setRange(1, 6000)
        self.width_box.setDecimals(0)
        self.width_box.setKeyboardTracking(False)
        bar.addWidget(self.width_box)
        self.level_box.valueChanged.connect(self._on_window_entered)
        self.width_box.valueChanged.connect(self._on_window_entered)
        bar.addSeparator()
        bar.addWidget(QLabel(" Slab "))
        self.slab_box = QComboBox()
        self.slab_box.setToolTip("Thick slab: MIP shows vessels and nodules, MinIP airways (P, Shift+P)")
        for mm, mode in self.slab_actions:
            self.slab_box.addItem("thin" if mm == 0 else f"{mode} {mm:g} mm", (mm, mode))
        self.slab_box.activated.connect(lambda i: self.set_slab(*self.slab_box.itemData(i)))
        bar.addWidget(self.slab_box)
        bar.addSeparator()
        bar.addAction(self.detect_action)
        bar.addSeparator()
        for mode in (DISTANCE, ANGLE, ELLIPSE):
            bar.addAction(self.mode_actions[mode])
        bar.addAction(self.layout_actions[None])
        self._updating_window_widgets = False
        self._sync_window_widgets(self.controller.window)

    # ---- opening -----------------------------------------------------------------------------
    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._last_dir())
        if folder:
            self.open_paths([folder])

    def open_file_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Open CT files",
            self._last_dir(),
            "CT images (*.dcm *.DCM *.mhd *.mha *.nii *.nii.gz *.nrrd *.nhdr);;All files (*)",
        )
        if files:
            self.open_paths(files)

    def open_demo(self) -> None:
        self.open_paths([str(demo_study_dir())])

    def open_paths(self, paths: Sequence[str | os.PathLike[str]], series_uid: str | None = None) -> None:
        """Scan ``paths`` in a worker; then pick a series (dialog if several) and load it.

        While it runs, Detect and Export are disabled: they would act on the study still on screen.
        """
        self.source_paths = [os.fspath(p) for p in paths]
        self._opening = list(self.source_paths)
        self._requested_series = series_uid
        self._pending = "scan"
        self._task_study = None
        self._show_busy("Reading headers…")
        items = list(self.source_paths)
        from ..core.io.study import scan

        self.runner.start(lambda progress, stop: scan(items, progress, stop))

    def load_series(self, series: SeriesInfo) -> None:
        self._loading_series = series
        self._pending = "load"
        self._show_busy(f"Loading {series.n_images} images…")
        from ..core.io.dicom import load_series

        def work(progress, stop):  # type: ignore[no-untyped-def]
            volume = load_series(series, progress, stop)
            return volume, read_series_header(series, volume)

        self.runner.start(work)

    def _load_image_file(self, path: str) -> None:
        self._pending = "load"
        self._show_busy("Loading…")
        from ..core.io.sitk import read_image_file

        self.discovery = None
        self._loading_series = None
        self.runner.start(lambda progress, stop: (read_image_file(path, progress, stop), None))

    @property
    def loading(self) -> bool:
        """True while a study is being opened (headers or pixels)."""
        return self._pending in ("scan", "load")

    def _on_task_finished(self, result: object) -> None:
        from ..core.detect.detector import DetectionResult
        from ..core.io.study import StudySource

        stage, self._pending = self._pending, None
        task_study, self._task_study = self._task_study, None
        if stage in ("detect", "report", "dicom") and task_study != self.study_generation:
            # started for a study that is no longer on screen: never show it on this one
            self._hide_busy()
            log.info("dropped a %s result of a study no longer shown", stage)
            return
        if stage == "scan":
            assert isinstance(result, StudySource)
            if result.image_file is not None:
                self._load_image_file(result.image_file)
                return
            assert result.discovery is not None
            self.discovery = result.discovery
            series = self._choose_series(result.discovery)
            if series is None:
                self._hide_busy()
                self._say_open_cancelled("no series chosen")
                return
            self.load_series(series)
        elif stage == "load":
            assert isinstance(result, tuple)
            volume, header = result
            self._hide_busy()
            self.show_volume(volume, header)
        elif stage == "detect":
            assert isinstance(result, DetectionResult)
            self._hide_busy()
            self.findings_panel.set_result(
                result, extra_caveats=(self._detect_caution,) if self._detect_caution else ()
            )
            if not self.findings_dock.isVisible():
                self.findings_dock.show()
                self.resizeDocks([self.findings_dock], [min(700, self.width() // 3)], Qt.Orientation.Horizontal)
            self.findings_panel.select_top()
            self.statusBar().showMessage(
                f"Detection done in {sum(result.timings_s.values()):.1f} s: "
                f"{len(self.findings_panel.shown())} finding(s) at the operating point.",
                10000,
            )
            self._update_actions()
            self.prior_dock.panel.set_current_result(result, self.findings_panel.threshold)
            self.sigDetectionDone.emit(result)
        elif stage == "report":
            assert isinstance(result, list)
            self._hide_busy()
            n_keys = sum(1 for p in result if "-key" in p.name)
            pages = len(result) - 1 - n_keys
            keys = f", {n_keys} key image(s)" if n_keys else ""
            self.statusBar().showMessage(
                f"Report saved: {result[0]} ({pages} page(s){keys} and {result[-1].name})", 15000
            )
            self.sigReportWritten.emit(result)
        elif stage == "dicom":
            self._hide_busy()
            self.statusBar().showMessage(f"DICOM written: {', '.join(p.name for p in result.paths)}", 15000)  # type: ignore[attr-defined]
            self.sigDicomExported.emit(result)

    def _choose_series(self, discovery: Discovery) -> SeriesInfo | None:
        if self._requested_series:
            return discovery.find(self._requested_series)
        default = discovery.default_series()
        if len(discovery.series) == 1 or self.auto_pick_default:
            return default
        picker = SeriesPicker(discovery, default, self)
        return picker.selected_series() if picker.exec() else None

    def show_volume(self, volume: Volume, header: SeriesHeader | None = None) -> None:
        self.volume = volume
        self.header = header
        self.study_generation += 1
        self.prior_dock.panel.clear()  # a prior belongs to the study it was registered to
        self.findings_panel.set_result(None)
        self.controller.set_volume(volume)
        self.controller.set_header(header)
        self.stack.setCurrentIndex(1)
        self.setWindowTitle(f"NodeView {__version__} — {study_title(volume, header)}")
        notes = list(volume.warnings)
        if not self.is_ct():
            notes.append(
                f"This is a {volume.modality} series: the nodule detector is for CT only, so Detect is disabled."
            )
        if notes:
            items = "".join(f"<li>{html.escape(w)}</li>" for w in notes)
            self.banner.setText(f"<b>The loader noticed:</b><ul style='margin:0'>{items}</ul>")
            self.banner.show()
        else:
            self.banner.hide()
        self._rebuild_presets()
        self._update_series_strip()
        shape = "×".join(str(v) for v in volume.shape_zyx)
        sp = ", ".join(f"{v:.2f}" for v in volume.spacing_zyx)
        self.statusBar().showMessage(f"Loaded {shape} voxels, spacing z,y,x {sp} mm", 6000)
        self._add_recent(self.source_paths)
        self._update_actions()
        self.viewer.focus_view(ViewKind.AXIAL)
        self.sigVolumeShown.emit(volume)
        self.readback.start(self.source_paths, volume)  # SR findings and SEG overlays beside the series
        self.prior_finder.start(self.source_paths, volume)  # an earlier study of the patient beside it
        if self.detect_on_open:
            self.detect(force=True)  # asked for on the command line: run (with a caution on non-CT)
        elif self.auto_detect_action.isChecked() and self.is_ct() and os.path.isfile(self.model_path()):
            self.detect()

    def _update_series_strip(self) -> None:
        """List the study's series when it has several (a thumbnail each); hide the strip otherwise."""
        self.current_series, self._loading_series = self._loading_series, None
        d = self.discovery
        several = d is not None and sum(not s.is_localizer for s in d.series) > 1
        key = self.current_series.key if self.current_series is not None else None
        if several and d is not self._strip_discovery:
            self.series_strip.set_discovery(d, key)
            self._strip_discovery = d
        elif not several:
            self.series_strip.set_discovery(None)
            self._strip_discovery = None
        self.series_strip.mark_current(key)
        self.series_dock.setVisible(several)

    def is_ct(self) -> bool:
        return self.volume is not None and self.volume.modality in ("CT", "")

    def _update_actions(self) -> None:
        """Enable what makes sense now: nothing study-bound without a study or while one is opening."""
        has_study = self.volume is not None and not self.loading
        ct = has_study and self.is_ct()
        self.detect_action.setEnabled(ct and self._pending != "detect")
        if self.volume is not None and not self.is_ct():
            self.detect_action.setToolTip(f"Detect is for CT series; this one is {self.volume.modality} (Ctrl+D)")
        elif self.loading:
            self.detect_action.setToolTip("Wait until the study has opened (Ctrl+D)")
        else:
            self.detect_action.setToolTip("Find lung nodules in the CT series on screen (Ctrl+D)")
        self.export_report_action.setEnabled(has_study and self.findings_panel.result is not None)
        self.export_dicom_action.setEnabled(has_study and self.findings_panel.result is not None)
        for action in self.study_actions():
            action.setEnabled(has_study)
        self.dicom_preset_action.setEnabled(has_study and DICOM_PRESET in self.presets())
        for w in (self.preset_box, self.level_box, self.width_box, self.slab_box):
            w.setEnabled(has_study)
        self.start_page.setEnabled(not self.loading)

    def study_actions(self) -> list[QAction]:
        """Actions that act on the study on screen (disabled while none is shown)."""
        return [a for a in self._study_actions if a is not None]

    # ---- prior study (follow-up) ---------------------------------------------------------------
    def open_prior_dialog(self) -> None:
        if self.volume is None:
            self.statusBar().showMessage("Open the current study first", 4000)
            return
        self.prior_dock.open_dialog(self.volume, self._last_dir())
        if self.prior_dock.isVisible():
            self.set_layout(None)  # the three views, beside the prior's three

    def open_prior(self, path: str, series_uid: str | None = None) -> None:
        """Open ``path`` (its ``series_uid``, else its default series) as the prior of the study on
        screen: registered in a worker, shown beside it."""
        if self.volume is None:
            self.statusBar().showMessage("Open the current study first", 4000)
            return
        self.set_layout(None)  # the three views, beside the prior's three
        self.prior_dock.open(path, self.volume, series_uid)

    def _shared_detector(self) -> Detector:
        """The detector of the current model (made on first use; also runs on the prior, in its worker)."""
        path = self.model_path()
        if self._detector is None or self._detector.info.path != path:
            from ..core.detect.detector import Detector

            self._detector = Detector(path)
        return self._detector

    # ---- detection ---------------------------------------------------------------------------
    def model_path(self) -> str:
        from ..core.detect.models import default_model_path

        return str(self.settings.value("model_path", "") or default_model_path())

    def load_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load nodule model", self._last_dir(), "ONNX models (*.onnx)")
        if path:
            self.settings.setValue("model_path", path)
            self._detector = None

    def _toggle_auto_detect(self, on: bool) -> None:
        self.settings.setValue("auto_detect", bool(on))

    def detect(self, force: bool = False) -> None:
        """Run the detector on the shown volume in a worker (progress and Cancel in the status bar).

        Refused while another study is opening (it would run on the one still on screen), and on
        non-CT series unless ``force`` (then with a caution in the findings panel).
        """
        if self.loading:
            self.statusBar().showMessage("A study is opening: Detect waits until it is on screen", 5000)
            return
        if self.volume is None:
            self.statusBar().showMessage("Open a study first", 4000)
            return
        if not self.is_ct():
            if not force:
                self.statusBar().showMessage(f"Detect is for CT series; this one is {self.volume.modality}", 6000)
                return
            self._detect_caution = (
                f"This is a {self.volume.modality} series. The detector was made for CT in Hounsfield units: "
                "its findings here mean nothing."
            )
        else:
            self._detect_caution = ""
        path = self.model_path()
        if not os.path.isfile(path):
            self._on_failed(f"No nodule model at {path}. Use Detection › Load model… to choose an ONNX model.")
            return
        volume = self.volume
        if self._detector is None or self._detector.info.path != path:
            self._detector = None

        def work(progress, stop):  # type: ignore[no-untyped-def]
            if self._detector is None:
                from ..core.detect.detector import Detector

                self._detector = Detector(path)
            return self._detector.detect(volume, progress, stop, min_score=0.0)

        self._start_study_task("detect", "Detecting nodules…", work)

    # ---- report ------------------------------------------------------------------------------
    def report_reviews(self) -> dict[int, str]:
        """The findings panel's review decisions in the report's terms (pending = unreviewed)."""
        from ..core.report.render import ACCEPTED, REJECTED, UNREVIEWED

        return {
            fid: status if status in (ACCEPTED, REJECTED) else UNREVIEWED
            for fid, status in self.findings_panel.status.items()
        }

    def export_report(self) -> None:
        """Ask where to write the report (and whether to anonymize), then write it in a worker."""
        result = self.findings_panel.result
        if self.loading:
            self.statusBar().showMessage("A study is opening: export waits until it is on screen", 5000)
            return
        if self.volume is None or result is None:
            self.statusBar().showMessage("Detect nodules first (Ctrl+D)", 4000)
            return
        folder = str(self.settings.value("report_dir", "") or self._last_dir())
        from .report_dialog import ReportDialog

        dialog = ReportDialog(
            self.volume, result.findings, self.report_reviews(), self.findings_panel.threshold, folder, self
        )
        if dialog.exec():
            self.settings.setValue("report_dir", dialog.folder())
            self.save_report(dialog.folder(), dialog.stem(), dialog.anonymize())

    def confirm_overwrite(self, existing: list[Path]) -> bool:
        names = "\n".join(p.name for p in existing[:6]) + ("\n…" if len(existing) > 6 else "")
        answer = QMessageBox.question(
            self,
            "Replace the report?",
            f"A report with this name already exists in {existing[0].parent}:\n\n{names}\n\nReplace it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def save_report(self, folder: str, stem: str, anonymize: bool) -> None:
        """Write the report of the current detection (threshold and reviews as in the findings panel)."""
        result, volume = self.findings_panel.result, self.volume
        if result is None or volume is None:
            return
        if self.runner.busy:
            self.statusBar().showMessage("Wait for the current task to finish, or cancel it", 5000)
            return
        from ..core.report.render import existing_report_files, write_report

        existing = existing_report_files(folder, stem)
        overwrite = bool(existing)
        if existing and not self.confirm_overwrite(existing):
            self.statusBar().showMessage("Report not saved", 4000)
            return
        reviews, threshold = self.report_reviews(), self.findings_panel.threshold
        timings = dict(result.timings_s)
        keys = [(k.describe(), self.controller.render_key_image(k)) for k in self.controller.key_images]
        comparison = self.prior_dock.panel.comparison_for(result, threshold)

        def work(progress, stop):  # type: ignore[no-untyped-def]
            from .reading import write_key_images

            paths = write_report(
                folder,
                volume,
                result,
                reviews,
                threshold,
                stem=stem,
                anonymize=anonymize,
                overwrite=overwrite,
                timings=timings,
                progress=progress,
                should_stop=stop,
                comparison=comparison,
            )
            return [*paths[:-1], *write_key_images(folder, stem, keys), paths[-1]]

        self._start_study_task("report", "Writing the report…", work)

    def export_dicom(self) -> None:
        """File › Export DICOM…: the SR/SEG of the detection on screen (panel threshold and reviews)."""
        result = self.findings_panel.result
        if self.loading:
            self.statusBar().showMessage("A study is opening: export waits until it is on screen", 5000)
            return
        if self.volume is None or result is None:
            self.statusBar().showMessage("Detect nodules first (Ctrl+D)", 4000)
            return
        from .dicom_export_dialog import DicomExportDialog

        folder = str(self.settings.value("dicom_dir", "") or self._last_dir())
        from .pacs_dialog import load_nodes

        reviews, threshold = self.report_reviews(), self.findings_panel.threshold
        dialog = DicomExportDialog(result.findings, reviews, threshold, folder, self, load_nodes(self.settings))
        if dialog.exec():
            self.settings.setValue("dicom_dir", dialog.folder())
            self.start_dicom_export(dialog.folder(), dialog.anonymize(), dialog.secondary_capture(), dialog.send_to())

    def start_dicom_export(self, folder: str, anonymize: bool, secondary_capture: bool, send_to: Any = None) -> bool:
        """Export the current detection (the panel's threshold and reviews) as SR and SEG in a worker.

        The result arrives as the ``"dicom"`` task (a :class:`~nodeview.core.export.DicomExport`); with
        ``send_to`` (a :class:`~nodeview.core.pacs.PacsNode`) the objects are then sent with C-STORE.
        When the prior panel holds a comparison made for these findings, the SR carries it.
        Returns False when nothing was started (no detection, or another task is running).
        """
        result, volume = self.findings_panel.result, self.volume
        if result is None or volume is None:
            self.statusBar().showMessage("Detect nodules first (Ctrl+D)", 4000)
            return False
        if self.runner.busy:
            self.statusBar().showMessage("Wait for the current task to finish, or cancel it", 5000)
            return False
        from .dicom_export_dialog import dicom_export_work
        from .pacs_dialog import local_ae

        threshold = self.findings_panel.threshold
        panel = self.prior_dock.panel  # the comparison with a prior, when one was made for these findings
        work = dicom_export_work(
            folder, volume, result, self.report_reviews(), threshold, list(self.source_paths),
            local_ae(self.settings), anonymize, secondary_capture, send_to,
            comparison=panel.comparison_for(result, threshold), prior_path=panel.prior_path,
            prior_volume=panel.prior,
        )  # fmt: skip
        self._start_study_task("dicom", "Writing DICOM SR and SEG…", work)
        return True

    def open_with_prior(self, folder: str, prior_folder: str) -> None:
        """Open ``folder`` and, once it is on screen, ``prior_folder`` as its prior (PACS "Retrieve
        with prior"). Another study shown first (the load failed or was replaced) drops the prior."""
        generation = self.study_generation

        def shown(volume: Volume) -> None:
            self.sigVolumeShown.disconnect(shown)
            if self.study_generation == generation + 1 and self.volume is volume:
                self.open_prior(prior_folder)

        self.sigVolumeShown.connect(shown)
        self.open_paths([folder])

    def open_pacs_dialog(self) -> None:
        """File › Query PACS…: query/retrieve in a dialog; a retrieved study opens here."""
        from .pacs_dialog import PacsDialog

        dialog = PacsDialog(self.settings, self)
        dialog.sigOpenStudy.connect(lambda folder: self.open_paths([folder]))
        dialog.sigOpenWithPrior.connect(self.open_with_prior)
        dialog.show()

    def cancel_work(self) -> None:
        self.runner.cancel()
        if self._pending == "detect" and self._detector is not None:
            self._detector.cancel()  # interrupts a running onnxruntime batch

    def _on_failed(self, message: str) -> None:
        stage, self._pending = self._pending, None
        self._task_study = None
        self._hide_busy()
        self.sigLoadFailed.emit(message)
        if stage in ("scan", "load") and self.volume is not None:
            message = f"{message} (still showing {study_title(self.volume, self.header)})"
        if self.isVisible() and not self.auto_pick_default:
            title = {"report": "NodeView could not write the report", "dicom": "NodeView could not export DICOM"}.get(
                stage or "", "NodeView could not open this"
            )
            QMessageBox.warning(self, title, message)
        self.statusBar().showMessage(message, 10000)

    def _on_cancelled(self) -> None:
        stage, self._pending = self._pending, None
        self._task_study = None
        self._hide_busy()
        if stage in ("scan", "load"):
            self._say_open_cancelled("cancelled")
        else:
            what = {"detect": "Detection", "report": "Report"}.get(stage or "", "Task")
            self.statusBar().showMessage(f"{what} cancelled", 6000)

    def _say_open_cancelled(self, why: str) -> None:
        """A load that stopped says so, and says which study is still on screen."""
        name = ", ".join(os.path.basename(p.rstrip("/")) or p for p in self._opening) or "the study"
        still = f" Still showing {study_title(self.volume, self.header)}." if self.volume is not None else ""
        text = f"Opening {name} was {why}.{still}"
        self.statusBar().showMessage(text, 10000)
        if self.volume is not None:
            self.banner.setText(f"<b>{html.escape(text)}</b>")
            self.banner.show()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.loading_overlay.set_progress(done, total)

    def _start_study_task(self, kind: str, text: str, work: Any) -> None:
        """Run ``work`` as the ``kind`` task of the study on screen: its result is dropped if another
        study is shown before it ends (``study_generation``)."""
        self._pending = kind
        self._task_study = self.study_generation
        self._show_busy(text)
        self.runner.start(work)

    def _show_busy(self, text: str) -> None:
        self.statusBar().showMessage(text)
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        if self.loading:
            self.loading_overlay.start(text)
        self._update_actions()

    def _hide_busy(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()
        self.loading_overlay.stop()
        self.statusBar().clearMessage()
        self._update_actions()

    # ---- recent ------------------------------------------------------------------------------
    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, paths: list[str]) -> None:
        if not paths:
            return
        entry = paths[0] if len(paths) == 1 else os.path.dirname(paths[0])
        recent = [entry] + [r for r in self._recent() if r != entry]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self.settings.setValue("last_dir", os.path.dirname(entry.rstrip("/")) or entry)
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        recent = self._recent()
        for path in recent:
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        self.recent_menu.setEnabled(bool(recent))
        self.start_page.set_recent(recent)

    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", str(Path.home())))

    # ---- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasFormat(MIME_SERIES) or (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        mime = event.mimeData()
        if mime.hasFormat(MIME_SERIES):  # a thumbnail of the series strip dropped into a view
            series = self.series_strip.series.get(bytes(mime.data(MIME_SERIES).data()).decode())
            if series is not None:
                event.acceptProposedAction()
                self.open_series(series)
            return
        paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def open_series(self, series: SeriesInfo) -> None:
        """Open another series of the study already scanned (series strip: click or drop)."""
        if self.loading:
            self.statusBar().showMessage("A study is opening: wait or cancel it first", 5000)
            return
        if self.volume is not None and series.series_uid == self.volume.series_uid and self.current_series is series:
            return
        self._opening = [series_label(series).replace("\n", " ")]
        self.load_series(series)

    # ---- window / level, slab, layout, rulers ------------------------------------------------
    def presets(self) -> dict[str, Window]:
        """The window presets: the fixed ones, then the DICOM header's default window when it has one."""
        out = dict(PRESETS)
        if self.header is not None and self.header.default_window is not None:
            out[DICOM_PRESET] = self.header.default_window
        return out

    def apply_preset(self, name: str) -> None:
        presets = self.presets()
        if name in presets:
            self.controller.set_window(presets[name])

    def _rebuild_presets(self) -> None:
        self._updating_window_widgets = True
        try:
            self.preset_box.clear()
            self.preset_box.addItems([*self.presets(), "custom"])
        finally:
            self._updating_window_widgets = False
        self.dicom_preset_action.setEnabled(DICOM_PRESET in self.presets())
        self._sync_window_widgets(self.controller.window)

    def _on_window_entered(self) -> None:
        if self._updating_window_widgets:
            return
        self.controller.set_window(Window(self.level_box.value(), self.width_box.value()))

    def _sync_window_widgets(self, window: Window) -> None:
        self._updating_window_widgets = True
        try:
            self.level_box.setValue(window.center)
            self.width_box.setValue(window.width)
            name = next((n for n, w in self.presets().items() if w == window), "custom")
            self.preset_box.setCurrentText(name)
        finally:
            self._updating_window_widgets = False

    def set_slab(self, mm: float, mode: str | None = None) -> None:
        mode = mode or self.controller.slab_mode
        self.controller.set_slab(mm, mode)
        key = (0.0, "MIP") if mm == 0 else (mm, mode)
        if key in self.slab_actions:
            self.slab_actions[key].setChecked(True)
            self.slab_box.setCurrentIndex(list(self.slab_actions).index(key))

    def _cycle_slab(self) -> None:
        mm = self.controller.slab_mm
        i = SLAB_CHOICES_MM.index(mm) if mm in SLAB_CHOICES_MM else 0
        self.set_slab(SLAB_CHOICES_MM[(i + 1) % len(SLAB_CHOICES_MM)])

    def _toggle_slab_mode(self) -> None:
        mode = "MinIP" if self.controller.slab_mode == "MIP" else "MIP"
        self.set_slab(self.controller.slab_mm or SLAB_CHOICES_MM[1], mode)

    def set_layout(self, kind: ViewKind | None) -> None:
        self.viewer.set_layout(kind)
        self.layout_actions[kind].setChecked(True)

    def _toggle_maximise(self) -> None:
        kind = self.viewer.active_kind()
        self.set_layout(None if self.viewer.maximised == kind else kind)

    def _reset_all_zoom(self) -> None:
        for view in self.viewer.views.values():
            view.reset_zoom()

    def _on_hover(self, info: object) -> None:
        if info is None:
            self.hover_label.setText("")
            return
        (k, j, i), hu, xyz = info  # type: ignore[misc]
        self.hover_label.setText(
            f"HU {hu:>6}   x {xyz[0]:7.1f}  y {xyz[1]:7.1f}  z {xyz[2]:7.1f} mm (LPS)   voxel [{k}, {j}, {i}]"
        )

    # ---- about and closing -------------------------------------------------------------------
    def about_text(self) -> str:
        attribution = html.escape(demo_attribution()).replace("\n", "<br>")
        return (
            f"<h3>NodeView {__version__}</h3>"
            "<p>A lung-CT viewer with a research lung-nodule detector.</p>"
            f"<p style='color:#c0392b'><b>{RESEARCH_NOTICE}</b> The detector's output must not be used "
            "for clinical decisions.</p>"
            "<p><b>Demo study:</b> LIDC-IDRI-0002, The Cancer Imaging Archive, licensed "
            "<a href='https://creativecommons.org/licenses/by/3.0/'>CC BY 3.0</a>.</p>"
            f"<p style='font-size:small'>{attribution}</p>"
        )

    def show_about(self) -> None:
        dialog = AboutDialog(self.about_text(), model_card_text(self.model_path()), self)
        dialog.exec()

    def closeEvent(self, event) -> None:  # type: ignore[no-untyped-def]
        self.runner.cancel()
        self.prior_dock.panel.runner.cancel()
        self.prior_finder.runner.cancel()
        self.runner.wait(5.0)
        self.prior_dock.panel.runner.wait(5.0)
        self.prior_finder.runner.wait(5.0)
        super().closeEvent(event)
