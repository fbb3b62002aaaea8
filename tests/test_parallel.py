"""The array thread pool: order, errors, nesting, and answers that do not depend on the thread count."""

import itertools
import os
import sys
import threading

import numpy as np
import pytest

from nodeview.core import parallel
from nodeview.core.detect.candidates import find_peaks, propose
from nodeview.core.detect.lung import segment_lungs
from nodeview.core.detect.patches import extract_patches
from tests.test_candidates import _chest


def test_chunks_cover_the_range_in_order():
    assert parallel.chunks(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert parallel.chunks(2, 5) == [(0, 1), (1, 2)]
    assert parallel.chunks(0, 4) == []
    for n in (1, 7, 64, 261):
        for parts in (1, 2, 3, 8):
            pieces = parallel.chunks(n, parts)
            assert pieces[0][0] == 0 and pieces[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
            assert max(b - a for a, b in pieces) - min(b - a for a, b in pieces) <= 1


def test_map_ordered_keeps_order_and_uses_threads():
    names = set()

    def work(x):
        names.add(threading.current_thread().name)
        return x * x

    assert parallel.map_ordered(work, list(range(50)), threads=2) == [x * x for x in range(50)]
    assert any(n.startswith("nodeview-array") for n in names)
    names.clear()
    assert parallel.map_ordered(work, [1, 2, 3], threads=1) == [1, 4, 9]
    assert names == {threading.current_thread().name}  # one thread: the caller's


def test_map_ordered_raises_the_first_error():
    def work(x):
        if x == 3:
            raise ValueError("three")
        return x

    with pytest.raises(ValueError, match="three"):
        parallel.map_ordered(work, list(range(6)), threads=2)


def test_nested_calls_do_not_deadlock():
    def inner(x):
        return sum(parallel.map_ordered(lambda y: y + x, [1, 2, 3], threads=2))

    assert parallel.map_ordered(inner, [0, 10, 20, 30], threads=2) == [6, 36, 66, 96]


def test_thread_count_from_environment(monkeypatch):
    monkeypatch.setenv("NODEVIEW_THREADS", "1")
    assert parallel.thread_count() == 1
    monkeypatch.setenv("NODEVIEW_THREADS", "999")
    assert parallel.thread_count() == parallel.MAX_THREADS
    monkeypatch.setenv("NODEVIEW_THREADS", "two")
    assert 1 <= parallel.thread_count() <= parallel.MAX_THREADS


def test_detector_stages_give_the_same_answer_on_1_and_3_threads(monkeypatch):
    hu, g, centres, _, _ = _chest(3)
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("NODEVIEW_THREADS", threads)
        lung = segment_lungs(hu, g)
        peaks = find_peaks(hu, g, lung)
        candidates = propose(hu, g, lung)
        patches = extract_patches(hu, g, [c.center_xyz_mm for c in candidates])
        results.append((lung.mask_zyx, peaks, candidates, patches))
    (m1, p1, c1, x1), (m3, p3, c3, x3) = results
    assert len(p1) > 0 and len(c1) > 0
    np.testing.assert_array_equal(m1, m3)
    for field in ("index_zyx", "scale", "sigma_mm", "response", "features"):
        np.testing.assert_array_equal(getattr(p1, field), getattr(p3, field))
    assert c1 == c3
    np.testing.assert_array_equal(x1, x3)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are a Linux feature")
def test_background_priority_is_per_thread_and_reaches_pool_work():
    main_nice = os.getpriority(os.PRIO_PROCESS, os.getpid())
    seen = {}

    def background():
        seen["ok"] = parallel.lower_thread_priority(5)
        seen["self"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["pool"] = parallel.map_ordered(
            lambda _: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), list(range(4)), threads=2
        )

    t = threading.Thread(target=background)
    t.start()
    t.join()
    assert seen["ok"] is True
    assert seen["self"] == min(19, main_nice + 5)
    assert all(n >= seen["self"] for n in seen["pool"])  # pool threads ran its work at its priority
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == main_nice  # the process (GUI thread) is untouched


def test_measurement_shortcuts_match_the_plain_computation():
    """The bounding-box opening and the sliced lung box give exactly what the plain calls give."""
    from scipy import ndimage

    from nodeview.core.detect.findings import _lung_box, _opening_in_bbox
    from nodeview.core.detect.lung import LungMask

    rng = np.random.default_rng(5)
    for shape in [(9, 12, 14), (20, 31, 17), (5, 5, 5)]:
        for density in (0.0, 0.2, 0.6, 0.95):
            mask = ndimage.binary_dilation(rng.random(shape) < density * 0.3) if density else np.zeros(shape, bool)
            np.testing.assert_array_equal(_opening_in_bbox(mask), ndimage.binary_opening(mask))
    coarse = rng.random((30, 20, 20)) < 0.5
    lung = LungMask(coarse, 2, 1.0)
    for box in [
        (slice(0, 30), slice(0, 40), slice(0, 40)),
        (slice(3, 11), slice(5, 23), slice(9, 40)),
        (slice(29, 30), slice(39, 40), slice(0, 1)),
    ]:
        k = np.arange(box[0].start, box[0].stop)
        j = np.minimum(np.arange(box[1].start, box[1].stop) // 2, 19)
        i = np.minimum(np.arange(box[2].start, box[2].stop) // 2, 19)
        expected = coarse[np.ix_(k, j, i)]
        np.testing.assert_array_equal(_lung_box(lung, box, expected.shape), expected)
