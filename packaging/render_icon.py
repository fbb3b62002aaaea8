"""Render the SVG app icon with Qt:  render_icon.py SVG OUT SIZE

OUT ending in ``.png`` gets one SIZE x SIZE image. ``.ico`` (Windows executable icon, 16-256 px)
and ``.icns`` (macOS bundle icon, up to SIZE px) are written with Pillow from a SIZE render;
resources/icons/nodeview.ico and nodeview.icns were made so (QT_QPA_PLATFORM=offscreen):
    python packaging/render_icon.py resources/icons/nodeview.svg resources/icons/nodeview.ico 256
    python packaging/render_icon.py resources/icons/nodeview.svg resources/icons/nodeview.icns 512
"""

import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main(svg: str, out: str, size: int) -> int:
    app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841 - Qt needs it for painting
    renderer = QSvgRenderer(svg)
    if not renderer.isValid():
        print(f"render_icon: cannot read {svg}", file=sys.stderr)
        return 1
    suffix = Path(out).suffix.lower()
    if suffix == ".png":
        ok = render(renderer, size).save(out)
    else:
        from PIL import Image

        with tempfile.TemporaryDirectory() as tmp:
            png = str(Path(tmp) / "icon.png")
            ok = render(renderer, size).save(png)
            if ok:
                image = Image.open(png)
                if suffix == ".ico":
                    sizes = [(s, s) for s in (16, 24, 32, 48, 64, 128, 256) if s <= size]
                    image.save(out, sizes=sizes)
                else:
                    image.save(out)  # .icns: Pillow writes the sizes it can make from this one
    if not ok:
        print(f"render_icon: cannot write {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
