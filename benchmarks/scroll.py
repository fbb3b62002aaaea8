"""Slice-scrolling benchmark: milliseconds per slice step, NodeView vs a bare pyqtgraph ImageItem.

Measures, in the same run and process, the time of one slice step followed by one rendered
frame in a ~512 x 512 px view that carries 10 overlay items (detection-like boxes with labels):

* ``reference`` - a bare ``pg.GraphicsView`` + ``pg.ViewBox`` + ``pg.ImageItem`` (512 x 512 px
  viewport); a step is ``img.setImage(planes[k], levels=(-1350, 150), autoLevels=False)`` on a
  precomputed int16 array (axial: ``volume[k]``; coronal/sagittal: precomputed contiguous planes);
* ``bare``      - the same with no overlay items (axial only): the floor of a pyqtgraph ImageItem;
* ``nodeview``  - a :class:`nodeview.qt.viewer.ViewerWidget` holding a synthetic 300 x 512 x 512
  int16 volume (``controller.set_volume``), maximised to one view (``set_layout(kind)``) and sized
  so that view's viewport is 512 x 512 px; a step is ``controller.scroll(kind, +-1)`` (which
  takes the plane from ``PlaneSource``, sets the image, the crosshair and the info text). The
  coronal and sagittal views are interpolated between slices as in the app (rows made by linear
  interpolation in HU up to square pixels, at most as many rows as columns: 300 -> 448 rows at the
  default spacing, 512 at 2.5 mm); NodeView builds, in a background thread when the volume is set, a
  copy of the volume in sagittal display order and the interpolated coronal and sagittal planes
  (the script waits for them and prints their sizes, build times and the RSS they add). The
  reference shows NodeView's native-resolution planes (plain pyqtgraph, 300 rows), or with
  ``--ref-smooth`` the interpolated planes precomputed (the same picture). ``--slice-mm`` sets the
  slice spacing (1.0; the reformats of 2.5 mm slices are where interpolation shows most).

``--layout 1x3`` measures the app's default layout instead: one ViewerWidget with the three views side by
side (``set_layout(None)``, each viewport 512 x 512 px, the same overlays in each), every view scrolled in
turn, against plain pyqtgraph built the same way (:func:`make_reference_1x3`: three ImageItems in one
QGridLayout window, the same overlays, a ``pg.InfiniteLine`` crosshair in each view that follows the other
views' slices). A step there repaints all three views. The script also prints the ImageItem paints per step
in the whole window.

Both are followed by the same synchronous frame, by default ``QApplication.processEvents()``: the
item's ``update()`` only schedules work, and processing the posted events runs the scene's dirty
item pass, delivers the window's UpdateRequest, paints the viewport (``ImageItem.paint`` converts the
int16 plane through the levels to a QImage and draws it, then the overlays) and flushes the backing
store to the platform - what the event loop does after a wheel event. The script checks it: every
timed step must paint the image item exactly once (``frames/step`` column), and a verification pass
grabs the window from the screen after each step and requires the shown pixels to change.
``--sync repaint`` uses ``view.viewport().repaint()`` instead (also one frame per step, but leaves the
scene's queued update pending).

Steps go back and forth around the middle slice (+1 x N/4, -1 x N/2, +1 x N/4). Each case is warmed
up, then timed in ``--rounds`` short blocks of ``--steps`` steps, interleaved: in every round each
view's reference and NodeView run back to back (which one first alternates every round, and the order
of the views is reversed every other round), so a load change on a shared machine hits both sides of
a comparison alike. Per-step times are pooled; the table gives the medians and the ratio of the
medians (wall clock, and process CPU time - ``time.process_time``, which other processes' load does
not inflate), and the median over rounds of the per-round ratio with its range. (Hardware instruction
counters would be steadier still, but ``perf stat -e instructions:u`` reports them "not supported" in
this VM.) Run from the repository root::

    .venv/bin/python benchmarks/scroll.py [--steps 60] [--rounds 15] [--platform offscreen|xcb]

``--platform xcb`` re-runs itself under ``xvfb-run`` when there is no DISPLAY. ``--profile`` adds a
cProfile of NodeView's steps and a wrapper-timed breakdown of step and frame for every case. All
ImageItems are created after ``nodeview.qt`` is imported, so the reference gets the app's pyqtgraph
options (``imageAxisOrder="row-major"``: a ``col-major`` item would transpose every frame and cost
about 1 ms more). It always exits 0: the PASS/MISS lines are information, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import itertools
import os
import platform
import pstats
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_MS = 4.0
FLOOR_NOTE_MS = 2.0
LEVELS = (-1350.0, 150.0)  # lung window: centre -600, width 1500
N_OVERLAYS = 10
VIEW_PX = 512
SPACING_ZYX = (1.0, 0.7, 0.7)
TARGET_RATIO = 1.2  # issue 24: NodeView <= 1.2x the reference in every view


# ------------------------------------------------------------------------------------------------
# Arguments and platform (before Qt is imported)
# ------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per case and round (60)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds, interleaved, order alternating (15)")
    parser.add_argument("--warmup", type=int, default=60, help="untimed steps per case first (60)")
    parser.add_argument("--slices", type=int, default=300, help="volume slices (300)")
    parser.add_argument("--size", type=int, default=512, help="rows = columns of the volume (512)")
    parser.add_argument(
        "--platform",
        choices=["offscreen", "xcb"],
        default="offscreen",
        help="Qt platform plugin (offscreen); xcb runs under xvfb-run when DISPLAY is unset",
    )
    parser.add_argument(
        "--sync",
        choices=["events", "repaint"],
        default="events",
        help="how a frame is forced: QApplication.processEvents() (default) or viewport().repaint()",
    )
    parser.add_argument(
        "--overlay",
        choices=["rect", "roi"],
        default="rect",
        help="overlay boxes: QGraphicsRectItem (default) or pg.RectROI; each with a pg.TextItem",
    )
    parser.add_argument("--no-bare", action="store_true", help="skip the bare ImageItem (no overlays) floor case")
    parser.add_argument("--slice-mm", type=float, default=SPACING_ZYX[0], help="slice spacing in mm (1.0)")
    parser.add_argument(
        "--ref-smooth",
        action="store_true",
        help="the coronal/sagittal references show NodeView's interpolated planes, precomputed",
    )
    parser.add_argument("--views", default="axial,coronal,sagittal", help="NodeView views to measure")
    parser.add_argument(
        "--layout",
        choices=["max", "1x3"],
        default="max",
        help="max: each view maximised alone (set_layout(kind), default); 1x3: the three views side by side "
        "in one window (set_layout(None), the app's default layout), each view scrolled in turn",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile NodeView's steps and print a timed breakdown of step and frame "
        "(adds paint wrappers, a few microseconds per frame, to all cases)",
    )
    return parser.parse_args(argv)


def setup_platform(args: argparse.Namespace, argv: list[str]) -> None:
    if args.platform == "xcb" and not os.environ.get("DISPLAY"):
        xvfb = shutil.which("xvfb-run")
        if xvfb is None:
            sys.exit("--platform xcb needs a DISPLAY or xvfb-run")
        os.execv(
            xvfb, [xvfb, "-a", "-s", "-screen 0 2400x1300x24", sys.executable, str(Path(__file__).resolve()), *argv]
        )
    os.environ["QT_QPA_PLATFORM"] = args.platform


# ------------------------------------------------------------------------------------------------
# Synthetic volume
# ------------------------------------------------------------------------------------------------
def make_volume(n_slices: int, size: int, seed: int = 0) -> np.ndarray:
    """Chest-like int16 HU: air -1000, body 40, lungs -850 (tapering along z), spine 400, noise +-40."""
    rng = np.random.default_rng(seed)
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    body = (xx / 0.85) ** 2 + (yy / 0.62) ** 2 <= 1.0
    spine = xx**2 + ((yy - 0.42) / 1.1) ** 2 <= 0.09**2
    base = np.where(body, np.int16(40), np.int16(-1000)).astype(np.int16)
    vol = np.empty((n_slices, size, size), dtype=np.int16)
    for k in range(n_slices):
        zn = 2.0 * k / max(n_slices - 1, 1) - 1.0
        s = float(np.sqrt(max(0.0, 1.0 - ((zn - 0.1) / 0.95) ** 2)))
        img = base.copy()
        if s > 0.05:
            lungs = (((xx + 0.40) / (0.30 * s)) ** 2 + ((yy + 0.02) / (0.45 * s)) ** 2 <= 1.0) | (
                ((xx - 0.40) / (0.26 * s)) ** 2 + ((yy + 0.02) / (0.42 * s)) ** 2 <= 1.0
            )
            img[lungs] = -850
        img[spine] = 400
        img += rng.integers(-40, 41, size=(size, size), dtype=np.int16)
        vol[k] = img
    return vol


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def step_deltas(steps: int) -> list[int]:
    """+1 x steps/4, -1 x steps/2, +1 x the rest: back and forth, ending where it started."""
    q = max(1, steps // 4)
    out = [1] * q + [-1] * (2 * q) + [1] * q
    return out[:steps] if len(out) >= steps else out + [1, -1] * ((steps - len(out)) // 2 + 1)


# ------------------------------------------------------------------------------------------------
# The cases
# ------------------------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    kind: str  # axial / coronal / sagittal
    window: Any  # top-level QWidget
    view: Any  # the pg.GraphicsView shown
    image_item: Any
    step: Callable[[int], None]  # one slice step (+1 or -1), no painting
    image_shape: tuple[int, int] = (0, 0)
    total_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # process CPU time of step + frame
    round_ms: list[float] = field(default_factory=list)  # median step of each round
    update_ms: list[float] = field(default_factory=list)
    frame_ms: list[float] = field(default_factory=list)
    paints: int = 0
    timed_steps: int = 0
    window_items: list = field(default_factory=list)  # every ImageItem in the window (1x3: three)
    window_paints: int = 0  # paints of all of them during the timed steps


def add_overlays(
    view_box,
    w: float,
    h: float,
    how: str,
    rng: np.random.Generator,  # type: ignore[no-untyped-def]
    n_items: int = N_OVERLAYS,
) -> list:
    """n_items detection-like boxes with a text label each, in the view box's coordinates (w x h)."""
    import pyqtgraph as pg
    from PySide6.QtGui import QColor, QPen
    from PySide6.QtWidgets import QGraphicsRectItem

    items = []
    for n in range(n_items):
        bw, bh = rng.uniform(0.03, 0.08) * w, rng.uniform(0.03, 0.08) * h
        x, y = rng.uniform(0.1 * w, 0.85 * w), rng.uniform(0.15 * h, 0.85 * h)
        if how == "roi":
            box = pg.RectROI([x, y], [bw, bh], pen=pg.mkPen("#ffb000", width=2), movable=False)
        else:
            box = QGraphicsRectItem(x, y, bw, bh)
            pen = QPen(QColor("#ffb000"), 2)
            pen.setCosmetic(True)
            box.setPen(pen)
        box.setZValue(20)
        label = pg.TextItem(f"#{n + 1} p={rng.uniform(0.5, 1.0):.2f}", color="#ffb000", anchor=(0, 1))
        label.setPos(x, y)
        label.setZValue(20)
        view_box.addItem(box)
        view_box.addItem(label)
        items += [box, label]
    return items


def plain_image_view(image, rect_mm):  # type: ignore[no-untyped-def]
    """A plain pyqtgraph GraphicsView + ViewBox + ImageItem showing ``image`` over ``rect_mm`` (w, h) in mm,
    the same on-screen size as NodeView's mm scene: the reference every case is measured against."""
    import pyqtgraph as pg
    from PySide6.QtCore import QRectF

    view = pg.GraphicsView(background="k")
    vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
    view.setCentralItem(vb)
    img = pg.ImageItem()
    img.setAutoDownsample(False)
    vb.addItem(img)
    img.setImage(image, levels=LEVELS, autoLevels=False)
    w_mm, h_mm = rect_mm
    img.setRect(QRectF(0.0, 0.0, w_mm, h_mm))
    vb.setRange(QRectF(0.0, 0.0, w_mm, h_mm), padding=0.02)
    return view, vb, img


def make_reference(
    kind: str,
    planes: dict[int, np.ndarray],
    start: int,
    rect_mm: tuple[float, float],
    how: str,
    n_items: int = N_OVERLAYS,
    name: str = "",
) -> Case:

    view, vb, img = plain_image_view(planes[start], rect_mm)
    w_mm, h_mm = rect_mm
    view._bench_overlays = add_overlays(vb, w_mm, h_mm, how, np.random.default_rng(1), n_items)  # keep them
    view.resize(VIEW_PX, VIEW_PX)
    view.setWindowTitle(f"reference {kind}")
    state = {"k": start}

    def step(delta: int) -> None:
        state["k"] += delta
        img.setImage(planes[state["k"]], levels=LEVELS, autoLevels=False)

    return Case(name or f"reference {kind}", kind, view, view, img, step, tuple(planes[start].shape))


def make_nodeview(kind_name: str, volume, how: str) -> Case:  # type: ignore[no-untyped-def]
    from nodeview.core.views import ViewKind
    from nodeview.qt.viewer import ViewerWidget

    kind = ViewKind(kind_name)
    widget = ViewerWidget()
    widget.controller.set_volume(volume)
    source = widget.controller.source
    if source is not None and not source.wait(120):
        print("WARNING: the plane cache was not built within 120 s")
    widget.set_layout(kind)
    view = widget.views[kind]
    w_mm, h_mm = widget.controller.planes[kind].size_mm
    view._bench_overlays = add_overlays(view.view_box, w_mm, h_mm, how, np.random.default_rng(1))
    widget.resize(VIEW_PX, VIEW_PX)
    widget.setWindowTitle(f"nodeview {kind_name}")
    controller = widget.controller

    def step(delta: int) -> None:
        controller.scroll(kind, delta)

    return Case(
        f"NodeView {kind_name}", kind_name, widget, view, view.image_item, step, tuple(view.image_item.image.shape)
    )


def make_reference_1x3(
    view_planes: dict,  # ViewKind -> ViewPlane, in column order
    images: dict,  # ViewKind -> {slice index: 2-D array shown}
    start_zyx: tuple[int, int, int] | np.ndarray,
    how: str,
) -> list[Case]:
    """Plain pyqtgraph in NodeView's 1x3 layout: three GraphicsView + ViewBox + ImageItem side by side in one
    QWidget (QGridLayout, no margins, 2 px spacing, equal stretch), each with the 10 boxes and labels and a
    crosshair of two ``pg.InfiniteLine``; scrolling view k sets k's image and moves, in the two other views,
    the crosshair line at k's slice (positions looked up in tables made here). One Case per scrolled view,
    all sharing the window."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QGridLayout, QWidget

    window = QWidget()
    grid = QGridLayout(window)
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setSpacing(2)
    cursor = np.asarray(start_zyx, dtype=np.int64).copy()
    views: dict = {}
    items: dict = {}
    lines: dict = {}  # kind -> (vertical line at u, horizontal line at v)
    for col, (kind, plane) in enumerate(view_planes.items()):
        view, vb, img = plain_image_view(images[kind][int(cursor[plane.slice_axis])], plane.size_mm)
        w_mm, h_mm = plane.size_mm
        view._bench_overlays = add_overlays(vb, w_mm, h_mm, how, np.random.default_rng(1))
        u, v, _ = plane.index_to_display(cursor)
        pair = (
            pg.InfiniteLine(pos=float(u), angle=90, movable=False, pen=pg.mkPen("#30c030", width=0)),
            pg.InfiniteLine(pos=float(v), angle=0, movable=False, pen=pg.mkPen("#3090ff", width=0)),
        )
        for line in pair:
            line.setZValue(10)
            vb.addItem(line, ignoreBounds=True)
        grid.addWidget(view, 0, col)
        grid.setColumnStretch(col, 1)
        views[kind], items[kind], lines[kind] = view, img, pair
    window.resize(3 * VIEW_PX + 4, VIEW_PX)
    window.setWindowTitle("reference 1x3")

    # crossing[k] = [(line, {slice index of k: line position in mm})] for the views crossing k's slice
    crossing: dict = {}
    for k, plane_k in view_planes.items():
        axis = plane_k.slice_axis
        crossing[k] = []
        for j, plane_j in view_planes.items():
            if j == k:
                continue
            which = 0 if plane_j.u_axis == axis else 1  # the vertical line follows u, the horizontal one v
            table = {}
            for index in images[k]:
                at = cursor.astype(np.float64)
                at[axis] = index
                table[index] = float(plane_j.index_to_display(at)[which])
            crossing[k].append((lines[j][which], table))

    def make_step(kind) -> Callable[[int], None]:  # type: ignore[no-untyped-def]
        axis, img, planes_k, cross = view_planes[kind].slice_axis, items[kind], images[kind], crossing[kind]

        def step(delta: int) -> None:
            cursor[axis] += delta
            index = int(cursor[axis])
            img.setImage(planes_k[index], levels=LEVELS, autoLevels=False)
            for line, table in cross:
                line.setValue(table[index])

        return step

    all_items = list(items.values())
    return [
        Case(
            f"reference 1x3 {kind.value}",
            kind.value,
            window,
            views[kind],
            items[kind],
            make_step(kind),
            tuple(items[kind].image.shape),
            window_items=all_items,
        )
        for kind in view_planes
    ]


def make_nodeview_1x3(volume, how: str) -> list[Case]:  # type: ignore[no-untyped-def]
    """NodeView's ViewerWidget in its 1x3 layout (``set_layout(None)``), the 10 boxes and labels in each view;
    one Case per scrolled view (``controller.scroll(kind, +-1)``), all sharing the window."""
    from nodeview.core.views import ViewKind
    from nodeview.qt.viewer import ViewerWidget

    widget = ViewerWidget()
    widget.controller.set_volume(volume)
    source = widget.controller.source
    if source is not None and not source.wait(120):
        print("WARNING: the plane cache was not built within 120 s")
    widget.set_layout(None)
    for kind in ViewKind:
        view = widget.views[kind]
        w_mm, h_mm = widget.controller.planes[kind].size_mm
        view._bench_overlays = add_overlays(view.view_box, w_mm, h_mm, how, np.random.default_rng(1))
    widget.resize(3 * VIEW_PX + 4, VIEW_PX)
    widget.setWindowTitle("nodeview 1x3")
    controller = widget.controller
    all_items = [widget.views[kind].image_item for kind in ViewKind]

    def make_step(kind) -> Callable[[int], None]:  # type: ignore[no-untyped-def]
        def step(delta: int) -> None:
            controller.scroll(kind, delta)

        return step

    return [
        Case(
            f"NodeView 1x3 {kind.value}",
            kind.value,
            widget,
            widget.views[kind],
            widget.views[kind].image_item,
            make_step(kind),
            tuple(widget.views[kind].image_item.image.shape),
            window_items=all_items,
        )
        for kind in ViewKind
    ]


def bring_to_front(case: Case) -> None:
    from PySide6.QtWidgets import QApplication

    case.window.raise_()
    case.window.activateWindow()
    QApplication.processEvents()


def fit_viewport(case: Case, app) -> None:  # type: ignore[no-untyped-def]
    """Resize the top-level window until the shown view's viewport is VIEW_PX x VIEW_PX."""
    for _ in range(5):
        app.processEvents()
        vp = case.view.viewport().size()
        dw, dh = VIEW_PX - vp.width(), VIEW_PX - vp.height()
        if dw == 0 and dh == 0:
            return
        case.window.resize(case.window.width() + dw, case.window.height() + dh)


# ------------------------------------------------------------------------------------------------
# Measuring
# ------------------------------------------------------------------------------------------------
class PaintCounter:
    """Counts ImageItem.paint calls per item; with ``timed`` also sums the time of the paint methods.

    Class-level wrappers in this process only. They must be installed before anything is painted:
    PySide caches which Python override a C++ virtual (``paint``) resolves to.
    """

    def __init__(self, timed: bool = False) -> None:
        import pyqtgraph as pg

        self.counts: dict[int, int] = {}
        self.seconds: dict[str, float] = {}
        counts, seconds, clock = self.counts, self.seconds, time.perf_counter
        image_paint, text_paint = pg.ImageItem.paint, pg.TextItem.paint

        def paint(item, *args):  # type: ignore[no-untyped-def]
            counts[id(item)] = counts.get(id(item), 0) + 1
            if not timed:
                return image_paint(item, *args)
            t0 = clock()
            try:
                return image_paint(item, *args)
            finally:
                seconds["ImageItem.paint"] = seconds.get("ImageItem.paint", 0.0) + clock() - t0

        def paint_text(item, *args):  # type: ignore[no-untyped-def]
            t0 = clock()
            try:
                return text_paint(item, *args)
            finally:
                seconds["TextItem.paint"] = seconds.get("TextItem.paint", 0.0) + clock() - t0

        pg.ImageItem.paint = paint
        if timed:
            pg.TextItem.paint = paint_text
            from nodeview.qt.slice_view import SliceView

            foreground = SliceView.drawForeground

            def draw_foreground(view, *args):  # type: ignore[no-untyped-def]
                t0 = clock()
                try:
                    return foreground(view, *args)
                finally:
                    seconds["drawForeground"] = seconds.get("drawForeground", 0.0) + clock() - t0

            SliceView.drawForeground = draw_foreground

    def of(self, item) -> int:  # type: ignore[no-untyped-def]
        return self.counts.get(id(item), 0)


def make_sync(mode: str, app) -> Callable[[Case], None]:  # type: ignore[no-untyped-def]
    if mode == "repaint":
        return lambda case: case.view.viewport().repaint()
    return lambda case: app.processEvents()


def run_steps(case: Case, deltas: list[int], sync: Callable[[Case], None], counter: PaintCounter, record: bool) -> None:
    clock, cpu = time.perf_counter, time.process_time
    before = counter.of(case.image_item)
    before_all = sum(counter.of(item) for item in case.window_items)
    totals = []
    for d in deltas:
        c0 = cpu()
        t0 = clock()
        case.step(d)
        t1 = clock()
        sync(case)
        t2 = clock()
        c2 = cpu()
        if record:
            case.update_ms.append((t1 - t0) * 1e3)
            case.frame_ms.append((t2 - t1) * 1e3)
            totals.append((t2 - t0) * 1e3)
            case.cpu_ms.append((c2 - c0) * 1e3)
    if record:
        case.total_ms.extend(totals)
        case.round_ms.append(statistics.median(totals))
        case.paints += counter.of(case.image_item) - before
        case.window_paints += sum(counter.of(item) for item in case.window_items) - before_all
        case.timed_steps += len(deltas)


def verify_frames(case: Case, sync: Callable[[Case], None], app, n: int = 6) -> str:  # type: ignore[no-untyped-def]
    """Grab the window from the screen after each of n steps; the shown pixels must change each time."""
    screen = case.window.screen() or app.primaryScreen()
    vp = case.view.viewport()
    origin = vp.mapTo(case.window, vp.rect().topLeft())
    hashes = []
    for d in [1] * (n // 2) + [-1] * (n - n // 2):
        case.step(d)
        sync(case)
        pix = screen.grabWindow(case.window.winId(), origin.x(), origin.y(), vp.width(), vp.height())
        image = pix.toImage()
        raw = bytes(image.constBits()) if image.sizeInBytes() else b""
        hashes.append(hashlib.sha1(raw).hexdigest())
    distinct_consecutive = all(a != b for a, b in itertools.pairwise(hashes))
    if not raw:
        return "grab empty"
    return "changes every step" if distinct_consecutive else "NOT CHANGING"


def breakdown(
    pairs: list[tuple[Case, Case]], deltas: list[int], sync: Callable[[Case], None], counter: PaintCounter
) -> None:
    """ms per step in NodeView's parts (and the reference's), timed by wrappers, not by the profiler."""
    import pyqtgraph as pg

    from nodeview.qt.planes import PlaneSource
    from nodeview.qt.slice_view import OpaqueImageItem, SliceView
    from nodeview.qt.viewer import ViewerController

    acc = counter.seconds  # the paint wrappers add to it too
    originals = []

    def wrap(cls, name: str, label: str) -> None:  # type: ignore[no-untyped-def]
        fn = cls.__dict__[name]
        originals.append((cls, name, fn))

        def timed(*a, **k):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[label] = acc.get(label, 0.0) + time.perf_counter() - t0

        setattr(cls, name, timed)

    parts = [  # (class, method or None for a row computed here, label)
        (None, "step", "step (the call before the frame)"),
        (ViewerController, "_refresh_image", "  _refresh_image (the scrolled view)"),
        (PlaneSource, "extract", "    PlaneSource.extract (cached or ViewPlane.extract)"),
        (SliceView, "set_image", "    SliceView.set_image (ImageItem.setImage)"),
        (ViewerController, "_refresh_overlay", "  _refresh_overlay (x3 views, 2 of them hidden)"),
        (SliceView, "set_cursor_display", "    set_cursor_display (x3, crosshair lines)"),
        (SliceView, "set_info", "    set_info (x3, QLabel text + layout)"),
        (None, "frame", "frame (the sync)"),
        (None, "ImageItem.paint", "  ImageItem.paint"),
        (pg.ImageItem, "render", "    ImageItem.render (levels -> ARGB QImage)"),
        (OpaqueImageItem, "render", "    ImageItem.render (levels -> ARGB QImage)"),  # NodeView's (same row)
        (None, "drawImage", "    rest of paint (QPainter.drawImage, scaled)"),
        (None, "TextItem.paint", "  TextItem.paint (x10 labels)"),
        (None, "drawForeground", "  SliceView.drawForeground (letters, corners, slice)"),
        (None, "rest", "  rest (scene, boxes, crosshair, background, flush)"),
    ]
    for cls, name, label in parts:
        if cls is not None:
            wrap(cls, name, label)
    cases = [c for pair in pairs for c in pair]
    results = []
    try:
        for c in cases:
            bring_to_front(c)
            acc.clear()
            step_s = frame_s = 0.0
            for d in deltas:
                t0 = time.perf_counter()
                c.step(d)
                t1 = time.perf_counter()
                sync(c)
                t2 = time.perf_counter()
                step_s, frame_s = step_s + t1 - t0, frame_s + t2 - t1
            r = {label: acc.get(label, 0.0) for _, _, label in parts}
            r.update(
                {
                    "step (the call before the frame)": step_s,
                    "frame (the sync)": frame_s,
                    "  ImageItem.paint": acc.get("ImageItem.paint", 0.0),
                    "  TextItem.paint (x10 labels)": acc.get("TextItem.paint", 0.0),
                    "  SliceView.drawForeground (letters, corners, slice)": acc.get("drawForeground", 0.0),
                }
            )
            r["    rest of paint (QPainter.drawImage, scaled)"] = (
                r["  ImageItem.paint"] - r["    ImageItem.render (levels -> ARGB QImage)"]
            )
            r["  rest (scene, boxes, crosshair, background, flush)"] = (
                frame_s
                - r["  ImageItem.paint"]
                - r["  TextItem.paint (x10 labels)"]
                - r["  SliceView.drawForeground (letters, corners, slice)"]
            )
            results.append({k: v / len(deltas) * 1e3 for k, v in r.items()})
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)
    print("\nWhere the time goes (mean ms per step over one more pass, wrapper timings; indented rows are parts")
    print("of the row above; 'ref' = the reference of the same view):")
    print(f"{'':<50}" + "".join(f"{('ref ' if i % 2 == 0 else 'NV ') + c.kind[:3]:>9}" for i, c in enumerate(cases)))
    for label in dict.fromkeys(label for _, _, label in parts):  # each row once
        print(f"{label:<50}" + "".join(f"{r.get(label, 0.0):9.2f}" for r in results))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


# ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    setup_platform(args, argv)

    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import qInstallMessageHandler, qVersion
    from PySide6.QtWidgets import QApplication

    def quiet(mode, context, message):  # type: ignore[no-untyped-def]  # drop the offscreen plugin's noise
        if not message.startswith("This plugin does not support"):
            sys.stderr.write(message + "\n")

    qInstallMessageHandler(quiet)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    import pyqtgraph as pg

    from nodeview.core.geometry import Geometry
    from nodeview.core.views import ViewKind, planes_for
    from nodeview.core.volume import Volume
    from nodeview.qt import viewer  # noqa: F401  (import first: sets pyqtgraph's global options the way the app does)
    from nodeview.qt.planes import RowInterpolator

    # ImageItem reads imageAxisOrder when it is created: every item here must be made after this point,
    # or a 'col-major' reference would transpose (and slow down) every frame.
    axis_order = pg.getConfigOption("imageAxisOrder")
    counter = PaintCounter(timed=args.profile)
    sync = make_sync(args.sync, app)

    print(
        f"Python {platform.python_version()}, Qt {qVersion()} (PySide6 {pyside_version}), "
        f"pyqtgraph {pg.__version__}, numpy {np.__version__}; platform '{app.platformName()}', "
        f"{os.cpu_count()} CPUs; sync = {args.sync}; overlays = {N_OVERLAYS} x ({args.overlay} box + TextItem); "
        f"imageAxisOrder {axis_order}, antialias {pg.getConfigOption('antialias')}"
    )
    t0 = time.perf_counter()
    hu = make_volume(args.slices, args.size)
    spacing = (args.slice_mm, *SPACING_ZYX[1:])
    geometry = Geometry(shape_zyx=hu.shape, spacing_zyx=spacing, origin_xyz=(0.0, 0.0, 0.0))
    volume = Volume(hu_zyx=hu, geometry=geometry, description="synthetic scroll benchmark")
    planes = planes_for(geometry)
    print(
        f"Synthetic volume {hu.shape} int16, spacing {spacing} mm (z, y, x), "
        f"{hu.nbytes / 1e6:.0f} MB, made in {time.perf_counter() - t0:.1f} s"
    )

    deltas = step_deltas(args.steps)
    warm = step_deltas(args.warmup)
    kinds = [k.strip() for k in args.views.split(",") if k.strip()]
    for k in kinds:
        ViewKind(k)  # validate
    cases: list[Case] = []
    pairs: list[tuple[Case, Case]] = []

    def reference_images(k: str) -> dict[int, np.ndarray]:
        """The images the reference of view k shows, around its middle slice."""
        plane = planes[ViewKind(k)]
        mid = (plane.n_slices - 1) // 2
        lo, hi = mid - len(deltas) - 2, mid + len(deltas) + 2
        if k == "axial" and plane.slice_axis == 0 and not (plane.u_flip or plane.v_flip):
            ref_planes = {i: hu[i] for i in range(max(0, lo), min(plane.n_slices, hi + 1))}  # views of the array
        else:  # precompute exactly the images NodeView shows (contiguous int16)
            ref_planes = {i: plane.extract(hu, i) for i in range(max(0, lo), min(plane.n_slices, hi + 1))}
        interp = RowInterpolator.for_plane(plane) if args.ref_smooth else None
        if interp is not None:  # the same interpolated picture as NodeView, precomputed
            ref_planes = {i: interp(p) for i, p in ref_planes.items()}
        return ref_planes

    def print_caches(name: str, nv: Case, rss0: float) -> None:
        src = nv.window.controller.source
        smooth_bytes = getattr(src, "smooth_bytes", 0)  # (getattr: the script also measures older versions)
        if src is not None and (src.cache_bytes or smooth_bytes):
            rows = getattr(src, "smooth_rows", {})
            smooth = ", ".join(f"{kk.value} {r.n_rows}->{r.out_rows} rows" for kk, r in rows.items())
            print(
                f"NodeView {name}: native plane cache {src.cache_bytes / 2**20:.0f} MiB (built in "
                f"{src.build_seconds or 0:.2f} s), interpolated reformat caches {smooth_bytes / 2**20:.0f} MiB "
                f"({smooth or 'none'}; built in {getattr(src, 'smooth_seconds', None) or 0:.2f} s), all in a "
                f"background thread; process RSS +{rss_mb() - rss0:.0f} MiB"
            )

    if args.layout == "1x3":  # one window per side, the three views in it; pairs = one per scrolled view
        rss0 = rss_mb()
        nv_cases = {c.kind: c for c in make_nodeview_1x3(volume, args.overlay)}
        print_caches("1x3", nv_cases["axial"], rss0)
        start = np.rint(nv_cases["axial"].window.controller.cursor).astype(np.int64)
        view_planes = {kind: planes[kind] for kind in ViewKind}  # the app's column order
        for kind, plane in view_planes.items():  # start where NodeView's cursor is
            start[plane.slice_axis] = nv_cases["axial"].window.controller.slice_index(kind)
        images = {}
        for kind, plane in view_planes.items():
            at = int(start[plane.slice_axis])
            images[kind] = reference_images(kind.value)
            if at not in images[kind]:
                sys.exit(f"NodeView's {kind.value} slice {at} is not among the reference's images")
        ref_cases = {c.kind: c for c in make_reference_1x3(view_planes, images, start, args.overlay)}
        for window_case in (ref_cases["axial"], nv_cases["axial"]):
            window_case.window.show()
            fit_viewport(window_case, app)
        for k in kinds:
            pairs.append((ref_cases[k], nv_cases[k]))
            cases += [ref_cases[k], nv_cases[k]]
    for k in kinds if args.layout == "max" else []:
        plane = planes[ViewKind(k)]
        mid = (plane.n_slices - 1) // 2
        ref = make_reference(k, reference_images(k), mid, plane.size_mm, args.overlay)
        rss0 = rss_mb()
        nv = make_nodeview(k, volume, args.overlay)
        print_caches(k, nv, rss0)
        for c in (ref, nv):
            c.window.show()
            fit_viewport(c, app)
            cases.append(c)
        pairs.append((ref, nv))
    bare = None
    if not args.no_bare:  # the floor: a bare ImageItem with no overlays, axial planes
        plane = planes[ViewKind.AXIAL]
        mid = (plane.n_slices - 1) // 2
        bare = make_reference(
            "axial",
            {i: hu[i] for i in range(max(0, mid - len(deltas)), min(plane.n_slices, mid + len(deltas) + 1))},
            mid,
            plane.size_mm,
            args.overlay,
            n_items=0,
            name="bare axial, no overlay",
        )
        bare.window.show()
        fit_viewport(bare, app)
        cases.insert(0, bare)
    orders = {c.name: c.image_item.axisOrder for c in cases}
    if len(set(orders.values())) != 1:
        print(f"WARNING: ImageItems differ in axisOrder: {orders}")
    if args.layout == "1x3":  # the two wide windows one above the other, the floor's to their right
        wide = list({id(c.window): c.window for c in cases if c is not bare}.values())
        for n, w in enumerate(wide):
            w.move(20, 20 + n * (VIEW_PX + 100))
        if bare is not None:
            bare.window.move(20 + 3 * VIEW_PX + 60, 20)
    else:
        for n, c in enumerate(cases):  # tile the windows (an X server does not paint hidden parts of windows)
            c.window.move(20 + (n % 4) * (VIEW_PX + 60), 20 + (n // 4) * (VIEW_PX + 100))
    app.processEvents()

    print("\nWarm-up and frame check (grab of the viewport from the screen after each step):")
    for c in cases:
        bring_to_front(c)
        run_steps(c, warm, sync, counter, record=False)
        vp = c.view.viewport().size()
        print(
            f"  {c.name:<22} viewport {vp.width()}x{vp.height()} px, image {c.image_item.qimage.width()}x{c.image_item.qimage.height()} "
            f"px: {verify_frames(c, sync, app)}"
        )

    print(
        f"\nTiming {args.rounds} rounds x {len(deltas)} steps per case, interleaved (each view's reference and "
        "NodeView back to back, which first alternating)..."
    )
    for r in range(args.rounds):
        groups: list[list[Case]] = [[bare]] if bare is not None else []
        groups += [[ref, nv] if r % 2 == 0 else [nv, ref] for ref, nv in pairs]
        if r % 4 >= 2:
            groups.reverse()
        for c in itertools.chain.from_iterable(groups):
            bring_to_front(c)
            gc.collect()
            run_steps(c, deltas, sync, counter, record=True)

    header = (
        f"{'case':<22} {'image':>8} {'median ms':>9} {'p95 ms':>7} {'mean ms':>7} {'update':>7} "
        f"{'frame':>7} {'cpu ms':>7} {'frames/step':>11} {'vs ref':>6} {'cpu vs':>6} {'rounds: median [min-max]':>25}"
    )
    print("\nms per slice step (step + one synchronous frame); 'update' and 'frame' are the medians of the")
    print("two parts (the step call, then the sync), 'cpu ms' the median process CPU time of a step; 'vs ref' =")
    print("median NodeView / median reference of the same view (wall clock), 'cpu vs' the same for CPU time;")
    print("'rounds' = the per-round ratio (NodeView's median / the reference's, same round): median [min-max]:\n")
    print(header)
    print("-" * len(header))
    verdicts = []
    if bare is not None:
        med = statistics.median(bare.total_ms)
        print(
            f"{bare.name:<22} {'512x512':>8} {med:9.2f} {pct(bare.total_ms, 95):7.2f} "
            f"{statistics.fmean(bare.total_ms):7.2f} {statistics.median(bare.update_ms):7.2f} "
            f"{statistics.median(bare.frame_ms):7.2f} {statistics.median(bare.cpu_ms):7.2f} "
            f"{bare.paints / bare.timed_steps:11.2f}  (floor)"
        )
    for ref, nv in pairs:
        for c in (ref, nv):
            med = statistics.median(c.total_ms)
            q = c.image_item.qimage  # the pixels drawn (interpolated rows included)
            shape = f"{q.width()}x{q.height()}" if q is not None else "?"
            fps = c.paints / c.timed_steps if c.timed_steps else float("nan")
            ratio = med / statistics.median(ref.total_ms)
            cpu_ratio = statistics.median(c.cpu_ms) / statistics.median(ref.cpu_ms)
            per_round = [a / b for a, b in zip(c.round_ms, ref.round_ms, strict=True)]
            rounds = f"{statistics.median(per_round):.2f} [{min(per_round):.2f}-{max(per_round):.2f}]"
            is_nv = c is nv
            verdict = ("PASS" if ratio <= TARGET_RATIO else "MISS") if is_nv else "(reference)"
            print(
                f"{c.name:<22} {shape:>8} {med:9.2f} {pct(c.total_ms, 95):7.2f} {statistics.fmean(c.total_ms):7.2f} "
                f"{statistics.median(c.update_ms):7.2f} {statistics.median(c.frame_ms):7.2f} "
                f"{statistics.median(c.cpu_ms):7.2f} {fps:11.2f} "
                f"{(f'{ratio:.2f}' if is_nv else '1.00'):>6} {(f'{cpu_ratio:.2f}' if is_nv else '1.00'):>6} "
                f"{(rounds if is_nv else ''):>25}  {verdict}"
            )
            if is_nv:
                verdicts.append((c, med, pct(c.total_ms, 95), ratio, cpu_ratio))
    if args.layout == "1x3":
        print(
            "\n1x3: ImageItem.paint calls per step in the whole window (the scrolled view's image, plus the other "
            "two views' images where their crosshair moved):"
        )
        for ref, nv in pairs:
            print(
                "  " + "; ".join(f"{c.name}: {c.window_paints / c.timed_steps:.2f}" for c in (ref, nv) if c.timed_steps)
            )
    print(
        f"\nTargets (NodeView, median <= {TARGET_RATIO:g}x the reference of the same view; also shown: <= "
        f"{TARGET_MS:g} ms; a bare ImageItem's floor is about {FLOOR_NOTE_MS:g} ms):"
    )
    bare_med = statistics.median(bare.total_ms) if bare is not None else None
    for c, med, p95, ratio, cpu_ratio in verdicts:
        vs_bare = f", {med / bare_med:.2f}x bare" if bare_med else ""
        print(
            f"  {c.name:<20}: {med:.2f} ms median (p95 {p95:.2f} ms), {ratio:.2f}x reference (CPU time "
            f"{cpu_ratio:.2f}x){vs_bare}  "
            f"ratio {'PASS' if ratio <= TARGET_RATIO else 'MISS'}, {TARGET_MS:g} ms {'PASS' if med <= TARGET_MS else 'MISS'}"
        )

    if args.profile:
        for _, nv in pairs:
            bring_to_front(nv)
            prof = cProfile.Profile()
            prof.enable()
            run_steps(nv, deltas, sync, counter, record=False)
            prof.disable()
            print(f"\ncProfile of {len(deltas)} steps of {nv.name} (+ frames), top 15 by own time:")
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
            print(f"cProfile of {nv.name}, top 25 by cumulative time:")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        breakdown(pairs, deltas, sync, counter)

    for c in cases:
        c.window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
