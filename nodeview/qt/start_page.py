"""The page shown before a study is open: open folder/file, recent studies, the demo study."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

from .. import RESEARCH_NOTICE, __version__


class StartPage(QWidget):
    sigOpenFolder = Signal()
    sigOpenFile = Signal()
    sigOpenDemo = Signal()
    sigOpenPath = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setStyleSheet(
            "QWidget { background: #1e1e1e; color: #e0e0e0; }"
            "QPushButton { background: #2f5f8f; color: white; padding: 10px 18px; font-size: 14px; border: 0;"
            " border-radius: 4px; min-width: 260px; }"
            "QPushButton:hover { background: #3b76b0; }"
            "QListWidget { background: #262626; border: 1px solid #3a3a3a; font-size: 13px; }"
        )
        col = QVBoxLayout(self)
        col.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title = QLabel(f"<h1>NodeView</h1><p>Lung-CT viewer · version {__version__}</p>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(title)
        for text, signal in [
            ("Open folder…  (Ctrl+O)", self.sigOpenFolder),
            ("Open file…  (Ctrl+Shift+O)", self.sigOpenFile),
            ("Open the demo study (LIDC-IDRI-0002)", self.sigOpenDemo),
        ]:
            button = QPushButton(text)
            button.clicked.connect(signal.emit)
            col.addWidget(button, alignment=Qt.AlignmentFlag.AlignCenter)
        hint = QLabel("…or drop a DICOM folder, DICOM files or a .mhd/.nii/.nrrd file onto this window.")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(hint)
        col.addWidget(QLabel("<b>Recent studies</b>"), alignment=Qt.AlignmentFlag.AlignCenter)
        self.recent_list = QListWidget()
        self.recent_list.setMaximumWidth(700)
        self.recent_list.setMinimumWidth(500)
        self.recent_list.setMaximumHeight(180)
        self.recent_list.itemActivated.connect(lambda item: self.sigOpenPath.emit(item.text()))
        col.addWidget(self.recent_list, alignment=Qt.AlignmentFlag.AlignCenter)
        notice = QLabel(f"<b style='color:#e74c3c'>{RESEARCH_NOTICE}</b>")
        notice.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(notice)

    def set_recent(self, paths: list[str]) -> None:
        self.recent_list.clear()
        self.recent_list.addItems(paths)
