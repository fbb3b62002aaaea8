"""The reading tools of the main window: mouse modes, display switches, cine, measurements, key
images and the DICOM tag browser, with the keys of the common viewers (RadiAnt, Horos, Weasis).

==============  ===========================================================================
key             action
==============  ===========================================================================
Esc             crosshair mode (left click/drag moves the crosshair; the default)
W / Z / T / S   left drag = window/level / zoom / pan / scroll slices (Ctrl: 4x faster)
D / N / E       measure a distance / an angle (drag one arm, click the other) / an ellipse ROI
Ctrl+Z, Del     undo the last measurement change / delete the selected measurement
H               crosshair (reference lines) on/off
I               invert grey scale
O               corner overlays on/off (study date, series, kernel, thickness, W/L, zoom)
C               cine on/off in the active view (speed in frames/s on the toolbar)
K               mark/unmark the slice on screen as a key image (saved with the report)
F12             DICOM tags of the current slice
==============  ===========================================================================

Slab thickness cycles with P (Shift+P: MIP/MinIP), not S, which is the scroll mode here as in
the other viewers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from .. import RESEARCH_NOTICE
from .measurements import ANGLE, DISTANCE, ELLIPSE
from .slice_view import CROSSHAIR, PAN, SCROLL, WINDOW, ZOOM
from .study_info import IDENTIFYING_KEYWORDS, read_tags

if TYPE_CHECKING:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QStatusBar

    from .study_info import SeriesHeader
    from .viewer import ViewerController, ViewerWidget


class ReadingHost(Protocol):
    """What the reading tools need of the window they are installed on (the main window is one).

    The window provides the first group; :func:`install_reading_actions` creates the second on it.
    """

    viewer: ViewerWidget
    controller: ViewerController
    settings: QSettings
    header: SeriesHeader | None
    _study_actions: list[QAction]

    @property
    def loading(self) -> bool: ...
    def cancel_work(self) -> None: ...
    def statusBar(self) -> QStatusBar: ...
    def addToolBar(self, toolbar: QToolBar) -> None: ...
    def addDockWidget(self, area: Qt.DockWidgetArea, dock: QDockWidget) -> None: ...
    def _action(
        self, text: str, slot: Any, shortcut: Any = None, checkable: bool = False, tip: str = ""
    ) -> QAction: ...

    # created by install_reading_actions
    mode_actions: dict[str, QAction]
    crosshair_action: QAction
    invert_action: QAction
    corners_action: QAction
    interpolate_action: QAction
    patient_overlay_action: QAction
    cine_action: QAction
    cine_fps_box: QDoubleSpinBox
    key_image_action: QAction
    undo_action: QAction
    tags_action: QAction
    measure_panel: MeasurementPanel
    measure_dock: QDockWidget
    tag_browser: TagBrowser

MODE_KEYS = [
    (CROSSHAIR, "Crosshair", "Esc", "Left click/drag moves the crosshair"),
    (WINDOW, "Window/level", "W", "Left drag: window (horizontal) and level (vertical); Ctrl: faster"),
    (ZOOM, "Zoom", "Z", "Left drag: zoom"),
    (PAN, "Pan", "T", "Left drag: pan"),
    (SCROLL, "Scroll", "S", "Left drag: scroll slices; Ctrl: faster"),
    (DISTANCE, "Distance", "D", "Left drag: measure a distance in mm (kept on its slice)"),
    (ANGLE, "Angle", "N", "Drag one arm (or click its two ends), then click the end of the other arm"),
    (ELLIPSE, "Ellipse ROI", "E", "Left drag: ellipse ROI with mean and SD HU and its area"),
]


def install_reading_actions(window: ReadingHost, menu: QMenu) -> None:
    """Add the reading tools to ``window`` (its View menu, a toolbar and a measurement dock)."""
    ctl = window.controller
    tools = menu.addMenu("Mouse &mode")
    group = QActionGroup(window)
    window.mode_actions = {}
    for mode, text, key, tip in MODE_KEYS:
        act = window._action(text, lambda _=False, m=mode: set_mode(window, m), key, checkable=True, tip=tip)
        group.addAction(act)
        tools.addAction(act)
        window.mode_actions[mode] = act
        if mode != CROSSHAIR:
            window._study_actions.append(act)
    window.mode_actions[CROSSHAIR].setChecked(True)

    def toggle(text: str, key: str, tip: str, slot, checked: bool) -> QAction:  # type: ignore[no-untyped-def]
        act = window._action(text, slot, key, checkable=True, tip=tip)
        act.setChecked(checked)
        menu.addAction(act)
        return act

    window.crosshair_action = toggle(
        "Crosshair / reference lines", "H", "Show or hide the crosshair lines", ctl.set_crosshair_visible, True
    )
    window.invert_action = toggle("Invert grey scale", "I", "White air, black bone", ctl.set_inverted, False)
    window.corners_action = toggle(
        "Corner overlays", "O", "Study date, series, kernel, slice thickness, W/L and zoom", ctl.set_show_corners, True
    )
    window.interpolate_action = toggle(
        "Interpolate reformats",
        "",
        "Coronal and sagittal views linearly interpolated between slices",
        ctl.set_interpolate,
        True,
    )
    show_patient = bool(window.settings.value("overlay_patient", False, type=bool))
    ctl.set_show_patient(show_patient)

    def set_patient(on: bool) -> None:
        window.settings.setValue("overlay_patient", bool(on))
        ctl.set_show_patient(on)

    window.patient_overlay_action = toggle(
        "Show patient name and ID in overlays",
        "",
        "Off by default: the screen may be seen by others",
        set_patient,
        show_patient,
    )
    menu.addSeparator()
    window.cine_action = window._action(
        "Cine", lambda on: toggle_cine(window, on), "C", checkable=True, tip="Play the slices of the active view"
    )
    menu.addAction(window.cine_action)
    ctl.sigCineChanged.connect(window.cine_action.setChecked)
    window.key_image_action = window._action(
        "Key image", lambda: toggle_key_image(window), "K", tip="Mark or unmark this slice for the report"
    )
    menu.addAction(window.key_image_action)
    window.undo_action = window._action(
        "Undo measurement",
        lambda: ctl.measurements.undo(),
        QKeySequence.StandardKey.Undo,
        tip="Undo the last add or delete",
    )
    menu.addAction(window.undo_action)
    window.tags_action = window._action(
        "DICOM tags…", lambda: show_tags(window), "F12", tip="The header of the slice under the crosshair"
    )
    menu.addAction(window.tags_action)
    for act in (
        window.crosshair_action,
        window.invert_action,
        window.cine_action,
        window.key_image_action,
        window.undo_action,
        window.tags_action,
    ):
        window._study_actions.append(act)

    bar = QToolBar("Reading", window)
    bar.setObjectName("reading-toolbar")
    bar.setMovable(False)
    for mode in (CROSSHAIR, WINDOW, ZOOM, PAN, SCROLL):
        bar.addAction(window.mode_actions[mode])
    bar.addSeparator()
    bar.addAction(window.cine_action)
    window.cine_fps_box = QDoubleSpinBox()
    window.cine_fps_box.setRange(1, 60)
    window.cine_fps_box.setDecimals(0)
    window.cine_fps_box.setValue(ctl.cine_fps)
    window.cine_fps_box.setSuffix(" fps")
    window.cine_fps_box.setToolTip("Cine speed in slices per second")
    window.cine_fps_box.valueChanged.connect(ctl.set_cine_fps)
    bar.addWidget(window.cine_fps_box)
    window.addToolBar(bar)

    window.measure_panel = MeasurementPanel(window)
    window.measure_dock = QDockWidget("Measurements && key images", window)
    window.measure_dock.setObjectName("measurements-dock")
    window.measure_dock.setWidget(window.measure_panel)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, window.measure_dock)
    window.measure_dock.hide()
    menu.addAction(window.measure_dock.toggleViewAction())
    ctl.measurements.sigChanged.connect(lambda: _show_dock(window))
    ctl.sigKeyImagesChanged.connect(lambda: _show_dock(window))


def _show_dock(window: ReadingHost) -> None:
    window.measure_panel.refresh()
    if window.controller.measurements.items or window.controller.key_images:
        window.measure_dock.show()


def set_mode(window: ReadingHost, mode: str) -> None:
    if mode == CROSSHAIR and window.loading:  # Esc while a study opens: cancel the opening
        window.cancel_work()
    window.viewer.set_mode(mode)
    window.mode_actions[mode].setChecked(True)
    window.statusBar().showMessage(f"Mouse mode: {mode} (Esc: crosshair)", 3000)


def toggle_cine(window: ReadingHost, on: bool) -> None:
    ctl = window.controller
    if on and ctl.volume is not None:
        ctl.start_cine(window.viewer.active_kind(), window.cine_fps_box.value())
    else:
        ctl.stop_cine()


def toggle_key_image(window: ReadingHost) -> None:
    key = window.controller.add_key_image(window.viewer.active_kind())
    n = len(window.controller.key_images)
    window.controller.refresh_all()
    window.statusBar().showMessage(
        f"Key image added ({n} in all): {key.describe()}" if key else f"Key image removed ({n} left)", 4000
    )


def current_slice_file(window: ReadingHost) -> str | None:
    """The file of the axial slice under the crosshair (None: interpolated, or not DICOM)."""
    header, ctl = window.header, window.controller
    if header is None or not header.slice_files or ctl.volume is None:
        return None
    k = int(round(ctl.cursor[0]))
    return header.slice_files[k] if 0 <= k < len(header.slice_files) else None


def show_tags(window: ReadingHost) -> None:
    path = current_slice_file(window)
    if path is None:
        window.statusBar().showMessage("No DICOM header for this slice (interpolated, or not a DICOM series)", 5000)
        return
    dialog = TagBrowser(path, window)
    window.tag_browser = dialog
    dialog.show()


class TagBrowser(QDialog):
    """The DICOM header of one slice, filterable. Patient tags are shown here only (never logged)."""

    def __init__(self, path: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM tags of the current slice")
        self.resize(760, 620)
        col = QVBoxLayout(self)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter (tag, keyword or value)")
        col.addWidget(self.filter)
        self.rows = read_tags(path)
        self.table = QTableWidget(len(self.rows), 4, self)
        self.table.setHorizontalHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, row in enumerate(self.rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if row[1] in IDENTIFYING_KEYWORDS:
                    item.setToolTip("Identifying: shown here only")
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        col.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        col.addWidget(buttons)
        self.filter.textChanged.connect(self._apply_filter)

    def _apply_filter(self, text: str) -> None:
        t = text.lower()
        for r, row in enumerate(self.rows):
            self.table.setRowHidden(r, bool(t) and not any(t in v.lower() for v in row))

    def value_of(self, keyword: str) -> str | None:
        return next((row[3] for row in self.rows if row[1] == keyword), None)


class MeasurementPanel(QWidget):
    """Every measurement of the study (any slice) and the key images; go to, delete, undo."""

    def __init__(self, window: ReadingHost) -> None:
        super().__init__(window)
        self.window_ = window
        ctl = window.controller
        col = QVBoxLayout(self)
        col.addWidget(QLabel("<b>Measurements</b> (each shown on its own slice)"))
        self.list = QListWidget()
        self.list.itemActivated.connect(self._go)
        self.list.itemClicked.connect(self._go)
        col.addWidget(self.list, 2)
        row = QHBoxLayout()
        self.delete_button = QPushButton("Delete (Del)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo (Ctrl+Z)")
        self.undo_button.clicked.connect(lambda: ctl.measurements.undo())
        row.addWidget(self.delete_button)
        row.addWidget(self.undo_button)
        col.addLayout(row)
        col.addWidget(QLabel("<b>Key images</b> (K; saved with the report)"))
        self.keys = QListWidget()
        self.keys.itemActivated.connect(self._go_key)
        self.keys.itemClicked.connect(self._go_key)
        col.addWidget(self.keys, 1)
        delete = QAction(self.list)
        delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(self.delete_selected)
        self.list.addAction(delete)

    def refresh(self) -> None:
        ctl = self.window_.controller
        self.list.clear()
        for m in ctl.measurements.items:
            item = QListWidgetItem(m.describe())
            item.setData(Qt.ItemDataRole.UserRole, m.id)
            self.list.addItem(item)
        self.keys.clear()
        for n, k in enumerate(ctl.key_images):
            item = QListWidgetItem(f"{n + 1}. {k.describe()}")
            item.setData(Qt.ItemDataRole.UserRole, n)
            self.keys.addItem(item)

    def delete_selected(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.window_.controller.measurements.delete(int(item.data(Qt.ItemDataRole.UserRole)))

    def _go(self, item: QListWidgetItem) -> None:
        ctl = self.window_.controller
        m = next((x for x in ctl.measurements.items if x.id == item.data(Qt.ItemDataRole.UserRole)), None)
        if m is not None:
            ctl.go_to_measurement(m)

    def _go_key(self, item: QListWidgetItem) -> None:
        ctl = self.window_.controller
        n = int(item.data(Qt.ItemDataRole.UserRole))
        if 0 <= n < len(ctl.key_images):
            k = ctl.key_images[n]
            ctl.set_window(k.window)
            ctl.scroll_to(k.view, k.slice_index)


def write_key_images(folder: str | os.PathLike[str], stem: str, keys: list[tuple[str, np.ndarray]]) -> list[Path]:
    """Write each key image as ``STEM-key1.png``, ... beside the report (replacing older ones of the
    same name), with a caption naming the view, slice and window, and the research-use notice.
    No patient data: the caption is made from the view state only."""
    from PIL import Image, ImageDraw

    out: list[Path] = []
    for n, (caption, grey) in enumerate(keys, start=1):
        h, w = grey.shape
        scale = max(1, 512 // max(h, w))
        image = Image.fromarray(np.ascontiguousarray(grey), mode="L").resize(
            (w * scale, h * scale), Image.Resampling.BILINEAR
        )
        canvas = Image.new("L", (image.width, image.height + 36), 0)
        canvas.paste(image, (0, 0))
        draw = ImageDraw.Draw(canvas)
        draw.text((4, image.height + 3), f"Key image {n}: {caption}", fill=255)
        draw.text((4, image.height + 19), RESEARCH_NOTICE, fill=200)
        path = Path(folder) / f"{stem}-key{n}.png"
        tmp = path.with_name(path.name + ".part")
        canvas.save(tmp, format="PNG")
        os.replace(tmp, path)
        out.append(path)
    return out
