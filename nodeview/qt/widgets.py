"""Small widgets of the main window: the About dialog and the loading overlay."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)


class AboutDialog(QDialog):
    """Version, notice and attribution on top; the model card rendered from Markdown, scrolling.

    Sized to fit the screen it opens on (at most 80 % of its available height), so the OK button is
    always on screen; the card scrolls inside its :class:`QTextBrowser`.
    """

    def __init__(self, about_html: str, card_markdown: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About NodeView")
        col = QVBoxLayout(self)
        head = QLabel(about_html)
        head.setWordWrap(True)
        head.setOpenExternalLinks(True)
        head.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        col.addWidget(head)
        col.addWidget(QLabel("<b>Model card</b>"))
        self.card = QTextBrowser(self)
        self.card.setOpenExternalLinks(True)
        self.card.setMarkdown(card_markdown)
        col.addWidget(self.card, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok, self)
        buttons.accepted.connect(self.accept)
        col.addWidget(buttons)
        screen = (parent.screen() if parent is not None else None) or QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen is not None else None
        width, height = 820, 760
        if avail is not None:
            width = min(width, int(avail.width() * 0.9))
            height = min(height, int(avail.height() * 0.8))
        self.resize(width, height)


class LoadingOverlay(QWidget):
    """Covers its parent (the central area) while a study opens: dims it, blocks clicks, shows
    what is happening with a large progress bar and a Cancel button."""

    sigCancel = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        col = QVBoxLayout(self)
        col.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label = QLabel("")
        self.label.setStyleSheet("color: white; font-size: 18px; background: transparent;")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.bar = QProgressBar()
        self.bar.setMinimumWidth(420)
        self.bar.setTextVisible(True)
        self.cancel = QPushButton("Cancel (Esc)")
        self.cancel.clicked.connect(self.sigCancel.emit)
        for w in (self.label, self.bar):
            col.addWidget(w, alignment=Qt.AlignmentFlag.AlignCenter)
        col.addWidget(self.cancel, alignment=Qt.AlignmentFlag.AlignCenter)
        parent.installEventFilter(self)
        self.hide()

    def start(self, text: str) -> None:
        self.label.setText(text)
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.setGeometry(self.parentWidget().rect())
        self.show()
        self.raise_()

    def set_progress(self, done: int, total: int) -> None:
        if self.isVisible():
            self.bar.setRange(0, max(total, 1))
            self.bar.setValue(done)

    def stop(self) -> None:
        self.hide()

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:
        if obj is self.parentWidget() and ev.type() == QEvent.Type.Resize:
            self.setGeometry(self.parentWidget().rect())
        return False

    def paintEvent(self, ev: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 160))
        painter.end()

    def keyPressEvent(self, ev) -> None:  # type: ignore[no-untyped-def]
        if ev.key() == Qt.Key.Key_Escape:
            self.sigCancel.emit()
        else:
            super().keyPressEvent(ev)
