"""Start the GUI: ``nodeview [PATH] [--screenshot OUT.png]``."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)


def run_gui(
    paths: Sequence[str],
    screenshot: str | None = None,
    overwrite: bool = False,
    series_uid: str | None = None,
    window_preset: str | None = None,
    slab_mm: float | None = None,
    size: tuple[int, int] | None = None,
    timeout_s: float = 120.0,
    detect: bool = False,
    prior: str | None = None,
) -> int:
    """Run the main window. With ``screenshot``, open PATH, render, save the window as PNG and exit.

    With ``detect``, run the nodule detector as soon as the study is shown; a screenshot then waits
    for the findings (boxes and table) before it is taken.

    With ``prior``, that study is opened as the prior of PATH once PATH is shown (registered beside
    it); a screenshot then waits for the registration. ``prior="auto"``: the prior found beside PATH
    (same PatientID, earlier date: :mod:`.prior_finder`); none found is said on stderr (and fails a
    screenshot, exit 2).

    Returns the process exit code: 0 success, 2 when PATH cannot be opened in screenshot mode or
    the screenshot cannot be written. The screenshot is written by :func:`~..core.outputs.write_file_set`:
    an existing file is replaced only with ``overwrite``, atomically.
    """
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .style import apply_dark_style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("NodeView")
    app.setOrganizationName("NodeView")
    from PySide6.QtGui import QIcon

    from ..resources import resources_dir

    icon = resources_dir() / "icons" / "nodeview.svg"
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    apply_dark_style(app)
    window = MainWindow()
    window.detect_on_open = detect
    if size:
        window.resize(*size)
    exit_code = [0]

    if screenshot:
        window.auto_pick_default = True

        def save(_volume: object = None) -> None:
            if window_preset:
                window.apply_preset(window_preset)
            if slab_mm:
                window.set_slab(slab_mm)
            app.processEvents()
            QTimer.singleShot(300, finish)

        def finish() -> None:
            _save_screenshot(window.grab(), screenshot, overwrite, exit_code)
            app.quit()

        def failed(message: str) -> None:
            print(f"nodeview: {message}", file=sys.stderr)
            exit_code[0] = 2
            app.quit()

        def timed_out() -> None:
            print(f"nodeview: timed out after {timeout_s:g} s", file=sys.stderr)
            exit_code[0] = 1
            app.quit()

        if prior:
            window.prior_dock.panel.sigRegistered.connect(save)
            window.prior_dock.panel.sigFailed.connect(failed)
        else:
            window.sigVolumeShown.connect(lambda _v: None if detect else save())
            window.sigDetectionDone.connect(lambda _r: save())
        window.sigLoadFailed.connect(failed)
        QTimer.singleShot(int(timeout_s * 1000), timed_out)
    if prior == "auto":

        def open_found_once(candidates: object) -> None:
            window.prior_finder.sigFound.disconnect(open_found_once)
            if candidates:
                window.prior_finder.compare()
                return
            message = "--prior auto: no earlier study of the same patient was found beside the current one"
            print(f"nodeview: {message}", file=sys.stderr)
            if screenshot:
                exit_code[0] = 2
                app.quit()

        window.prior_finder.sigFound.connect(open_found_once)
    elif prior:

        def open_prior_once(_volume: object) -> None:
            window.sigVolumeShown.disconnect(open_prior_once)
            window.open_prior(prior)

        window.sigVolumeShown.connect(open_prior_once)
    window.show()
    prewarm = None if screenshot else start_prewarm()
    if paths:
        window.open_paths(list(paths), series_uid=series_uid)
    elif screenshot:
        QTimer.singleShot(300, lambda: (_save_screenshot(window.grab(), screenshot, overwrite, exit_code), app.quit()))
    app.exec()
    window.runner.cancel()
    window.runner.wait(5.0)
    if prewarm is not None:
        prewarm.join(10.0)  # never leave an import half done at interpreter exit
    return exit_code[0] if screenshot else 0


def _save_screenshot(pixmap: object, path: str, overwrite: bool, exit_code: list[int]) -> None:
    """Encode the grabbed window as PNG and write it without ever replacing a file unasked."""
    from pathlib import Path

    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    from ..core.errors import NodeViewError
    from ..core.outputs import write_file_set

    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    ok = pixmap.save(buffer, "PNG")  # type: ignore[attr-defined]
    buffer.close()
    if not ok:
        print(f"nodeview: could not encode the screenshot {path}", file=sys.stderr)
        exit_code[0] = 1
        return
    try:
        write_file_set([(Path(path), bytes(data.data()))], overwrite=overwrite, what="screenshot")
    except NodeViewError as exc:
        print(f"nodeview: {exc}", file=sys.stderr)
        exit_code[0] = 2


def start_prewarm() -> threading.Thread:
    """Import the detector stack (onnxruntime, the core detector) in a background thread at launch.

    The window shows without waiting for it (the imports stay lazy for start-up time), and the
    first Detect neither waits for the imports nor stalls the GUI with them: onnxruntime's C
    extension holds the GIL for 50-130 ms while it initialises, which measured as the longest
    event-loop stall of a first detection when it happened then.
    """

    def run() -> None:
        from ..core.parallel import lower_thread_priority

        lower_thread_priority()
        try:
            import onnxruntime  # noqa: F401

            from ..core.detect import detector  # noqa: F401
        except Exception:  # a broken install shows its message when Detect is used
            pass

    thread = threading.Thread(target=run, name="nodeview-prewarm", daemon=True)
    thread.start()
    return thread
