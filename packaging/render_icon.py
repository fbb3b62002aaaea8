"""Render the SVG app icon to a PNG (and a .ico on Windows builds) with Qt: render_icon.py SVG PNG SIZE."""

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer


def main(svg: str, png: str, size: int) -> int:
    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - Qt needs it for fonts/painting
    renderer = QSvgRenderer(svg)
    if not renderer.isValid():
        print(f"render_icon: cannot read {svg}", file=sys.stderr)
        return 1
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    if not image.save(png):
        print(f"render_icon: cannot write {png}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
