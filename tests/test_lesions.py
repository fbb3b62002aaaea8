"""One finding per lesion, measured on the whole lesion; finding scores that rank; the Lung-RADS hint
of the whole lesion (issue 21).

Synthetic lesions come from ``training/data/synth/nodules.py``'s nodule models (part-solid, lobulated, large,
a mass) rendered into the small chest phantom of ``test_candidates``; several candidates are put on
each lesion, as the proposer does on a large or part-solid nodule, and the detector's lesion step
must return exactly one finding for them. The real scans run the bundled cascade end to end.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from nodeview.core.detect.candidates import MergedFinding
from nodeview.core.detect.detector import MASS_CAVEAT, Detector, findings_json
from nodeview.core.detect.findings import group_lesions, lung_rads_hint, measure_finding
from nodeview.core.detect.lung import segment_lungs
from nodeview.core.detect.scores import SCORE_TEMPERATURE, logit_from_score, score_from_logit, score_from_probability
from nodeview.core.geometry import Geometry
from nodeview.core.progress import never_stop
from nodeview.core.volume import Volume

from .conftest import SHARED_DATA, need
from .test_candidates import _chest

synth = pytest.importorskip("training.data.synth.nodules")


def _phantom_with(kind: str, diameter_mm: float, margin: str, seed: int = 3):
    """The chest phantom of ``test_candidates`` with its nodules removed (lungs refilled) and one
    synthetic nodule of ``kind`` rendered into the right lung's middle. Returns (volume, model)."""
    rng = np.random.default_rng(seed)
    _, g, _, _, lungs = _chest(0)
    shape = g.shape_zyx
    hu = np.full(shape, -1000.0, dtype=np.float32)
    z, y, x = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]].astype(np.float32)
    body = ((y * 0.75 - 60) / 55) ** 2 + ((x * 0.75 - 60) / 58) ** 2 < 1
    hu[body] = 40
    hu[lungs] = -850
    geometry = Geometry(g.shape_zyx, g.spacing_zyx, g.origin_xyz)
    centre = geometry.index_to_mm((50 / 1.25, 58 / 0.75, 33 / 0.75))  # the right lung's middle
    model = synth.sample_nodule(rng, kind=kind, diameter_mm=diameter_mm, margin=margin, location="isolated")
    model = model.with_center(tuple(float(v) for v in centre))
    render = synth.render_nodule(model, geometry)
    assert render is not None
    synth.blend_nodule(hu, render)
    hu += rng.normal(0, 15, shape).astype(np.float32)
    volume = Volume(np.rint(hu).astype(np.int16), geometry, series_uid="1.2.3.4", description="lesion phantom")
    return volume, model


def _fragments(model, n: int = 6, seed: int = 0):
    """Candidate centres spread over the lesion (its centre and points up to 0.4 of its diameter
    away), as the DoG proposer leaves on a large, lobulated or part-solid nodule."""
    rng = np.random.default_rng(seed)
    c = np.asarray(model.center_xyz_mm)
    out = [c]
    for _ in range(n - 1):
        d = rng.normal(size=3)
        out.append(c + d / np.linalg.norm(d) * rng.uniform(0.15, 0.4) * model.diameter_mm)
    return np.asarray(out)


def _lesion_step(volume, centres, model_diameter_mm: float = 4.0):
    """Run the detector's lesion step on candidates at ``centres`` (best first), each its own
    finding after the distance merge, as fragments with a small predicted diameter."""
    lung = segment_lungs(volume.hu_zyx, volume.geometry)
    n = len(centres)
    merged = [MergedFinding(i, (i,), tuple(float(v) for v in c)) for i, c in enumerate(centres)]
    score = np.linspace(0.95, 0.85, n)
    scores = {
        "diameter_mm": np.full(n, model_diameter_mm, np.float32),
        "malignancy_prob": np.linspace(0.9, 0.1, n).astype(np.float32),
    }
    return Detector._lesions(volume, lung, merged, score, scores, 0.0, never_stop)


@pytest.mark.parametrize(
    "kind, diameter_mm, margin",
    [
        ("solid", 22.0, "smooth"),  # large
        ("solid", 16.0, "lobulated"),
        ("part-solid", 18.0, "smooth"),
        ("part-solid", 14.0, "lobulated"),
        ("ground-glass", 20.0, "smooth"),
    ],
)
def test_fragments_of_one_lesion_become_one_finding(kind, diameter_mm, margin):
    volume, model = _phantom_with(kind, diameter_mm, margin)
    findings = _lesion_step(volume, _fragments(model))
    assert len(findings) == 1, [(f.center_xyz_mm, f.diameter_mm) for f in findings]
    (f,) = findings
    assert f.measured and f.n_candidates == 6
    # measured on the whole lesion, not a fragment (the model said 4 mm), placed at its centre
    assert 0.7 * diameter_mm <= f.diameter_mm <= 1.3 * diameter_mm, (f.diameter_mm, diameter_mm)
    assert np.linalg.norm(np.subtract(f.center_xyz_mm, model.center_xyz_mm)) < 0.25 * diameter_mm
    # the best candidate's score and malignancy
    assert f.score == pytest.approx(0.95) and f.malignancy == pytest.approx(0.9)
    if kind == "part-solid":
        assert f.type == "part-solid" and 0.0 < f.solid_diameter_mm < f.diameter_mm
    elif kind == "solid":
        assert f.type == "solid" and f.lung_rads == "4B"


def test_two_nodules_side_by_side_stay_two():
    volume, model = _phantom_with("solid", 8.0, "smooth")
    c = np.asarray(model.center_xyz_mm)
    other = c + np.array([0.0, 0.0, 14.0])  # 14 mm above, in the same lung
    g = volume.geometry
    hu = volume.hu_zyx.copy()
    k, j, i = np.indices(hu.shape)
    pts = g.index_to_mm(np.stack([k, j, i], -1).reshape(-1, 3).astype(float)).reshape(*hu.shape, 3)
    hu[np.linalg.norm(pts - other, axis=-1) < 3.0] = 30
    volume = Volume(hu, g, series_uid="1.2.3.5", description="two nodules")
    findings = _lesion_step(volume, np.stack([c, other]))
    assert len(findings) == 2


def test_small_nodule_gets_its_own_diameter_and_lung_rads_4a():
    """The issue's 8.8 mm nodule, reported as fragments of 3.6 and 2.9 mm with Lung-RADS 2: one
    finding, measured whole (mean diameter about 8.8 mm), Lung-RADS 4A."""
    volume, model = _phantom_with("solid", 8.8, "smooth", seed=5)
    c = np.asarray(model.center_xyz_mm)
    centres = np.stack([c + [2.0, 0.0, 0.0], c - [1.5, 1.0, 0.0]])
    findings = _lesion_step(volume, centres, model_diameter_mm=3.6)
    assert len(findings) == 1
    (f,) = findings
    assert f.diameter_mm == pytest.approx(8.8, abs=1.2) and f.type == "solid"
    assert f.lung_rads == lung_rads_hint("solid", f.diameter_mm) == "4A"


def test_lung_rads_v2022_baseline_table():
    sizes = (5.9, 6.0, 7.9, 8.0, 8.8, 14.9, 15.0)
    assert [lung_rads_hint("solid", d) for d in sizes] == ["2", "3", "3", "4A", "4A", "4A", "4B"]
    assert lung_rads_hint("part-solid", 5.9, 3.0) == "2"
    assert [lung_rads_hint("part-solid", 12, s) for s in (5.9, 6.0, 7.9, 8.0)] == ["3", "4A", "4A", "4B"]
    assert [lung_rads_hint("ground-glass", d) for d in (29.9, 30.0)] == ["2", "3"]


def test_a_40_mm_mass_is_one_finding_labelled_mass():
    volume, model = _phantom_with("solid", 40.0, "smooth")
    findings = _lesion_step(volume, _fragments(model), model_diameter_mm=20.0)
    assert len(findings) == 1
    (f,) = findings
    assert f.category == "mass" and f.diameter_mm > 30.0 and f.to_json()["category"] == "mass"


def test_group_lesions_by_centre_or_overlap():
    a = np.arange(100, 200, dtype=np.int64)
    b = np.arange(150, 260, dtype=np.int64)  # overlaps a by half of a
    c = np.arange(1000, 1010, dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    centres = np.array([150, 200, 1005, 120, 5000])
    assert group_lesions(centres, [a, b, c, empty, empty]) == [[0, 1, 3], [2], [4]]


def test_an_unsegmented_best_finding_joins_the_lesion_holding_its_centre():
    """The best finding's own segmentation can come back empty (its centre on a sliver of a mass
    that the opening removes); a later finding whose lesion holds that centre is the same lesion,
    and overlap with the lesion is then judged against that later mask, not one voxel."""
    a = np.arange(100, 200, dtype=np.int64)
    b = np.arange(199, 400, dtype=np.int64)  # shares one voxel with a
    empty = np.zeros(0, dtype=np.int64)
    assert group_lesions(np.array([150, 120, 300]), [empty, a, b]) == [[0, 1], [2]]
    assert group_lesions(np.array([50, 5000]), [empty, a]) == [[0], [1]]


def test_a_finding_that_bridges_two_lesions_joins_them():
    """Two fragments of a mass reached apart (their masks disjoint), then a finding whose mask
    overlaps both: one lesion, best first, not two with the bridge in the first."""
    a = np.arange(100, 200, dtype=np.int64)
    b = np.arange(1000, 1100, dtype=np.int64)
    bridge = np.arange(180, 1020, dtype=np.int64)
    c = np.arange(5000, 5010, dtype=np.int64)
    assert group_lesions(np.array([150, 1050, 5005, 600]), [a, b, c, bridge]) == [[0, 1, 3], [2]]


def test_a_mass_territory_groups_findings_on_the_tumour_bulk():
    """A finding on a tumour's bulk outside the lung mask (unsegmented, the best) joins the mass whose
    territory holds its centre; a finding in no territory keeps its own; a territory does not join
    masks by overlap (it only holds centres)."""
    mass = np.arange(100, 200, dtype=np.int64)
    territory = np.arange(100, 400, dtype=np.int64)  # the mass and the tissue beside it
    empty = np.zeros(0, dtype=np.int64)
    centres = np.array([350, 150, 5000])
    assert group_lesions(centres, [empty, mass, empty], [empty, territory, empty]) == [[0, 1], [2]]
    assert group_lesions(centres, [empty, mass, empty]) == [[0], [1], [2]]  # without: the tumour split
    other = np.arange(300, 320, dtype=np.int64)  # a mask in the territory, its centre elsewhere: no join
    assert group_lesions(np.array([150, 5010]), [mass, other], [territory, empty]) == [[0], [1]]


def test_lesion_measured_whole_when_the_best_candidate_does_not_segment(monkeypatch):
    """End to end through the lesion step: the best candidate's segmentation fails; its lesion is
    still one finding, measured on the other candidates' voxels, with the best candidate's score."""
    import nodeview.core.detect.detector as detector_module

    volume, model = _phantom_with("solid", 22.0, "smooth")
    centres = _fragments(model)
    real = detector_module.segment_lesion

    def failing_first(vol, lung, centre, diameter):
        if np.allclose(centre, centres[0]):
            return np.zeros(0, dtype=np.int64)
        return real(vol, lung, centre, diameter)

    monkeypatch.setattr(detector_module, "segment_lesion", failing_first)
    findings = _lesion_step(volume, centres)
    assert len(findings) == 1, [(f.center_xyz_mm, f.diameter_mm, f.measured) for f in findings]
    (f,) = findings
    assert f.measured and f.n_candidates == 6 and f.score == pytest.approx(0.95)
    assert f.diameter_mm == pytest.approx(22.0, rel=0.25)


def test_scores_are_a_monotonic_map_of_the_fused_log_odds():
    fused = np.array([-30.0, -5.0, 0.0, 5.59, 12.0, 12.0001, 25.0, 40.0])
    s = score_from_logit(fused)
    assert np.all(np.diff(s) > 0) and np.all(s < 1.0) and np.all(s > 0.0)
    assert s[2] == 0.5 and score_from_probability(0.5) == 0.5
    p = 0.996275
    assert score_from_probability(p) == pytest.approx(float(score_from_logit(np.log(p / (1 - p)))))
    assert logit_from_score(float(s[4])) == pytest.approx(12.0)
    # a threshold and a score compare as their fused probabilities do
    for q in (0.3, 0.9, 0.999):
        assert (score_from_probability(q) >= score_from_probability(p)) == (q >= p)
    assert SCORE_TEMPERATURE > 1


def _readers_nodule():
    with open(need(SHARED_DATA / "real-ct" / "LIDC-IDRI-0002-readers.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    centre = np.mean([[float(r[f"centroid_{a}_mm"]) for a in "xyz"] for r in rows], axis=0)
    return centre


@pytest.fixture(scope="module")
def lidc_result(lidc_volume):
    from nodeview.core.detect.models import default_model_path

    detector = Detector(default_model_path())
    return detector, detector.detect(lidc_volume, min_score=0.0)


def test_lidc_0002_one_finding_for_the_readers_nodule(lidc_result, lidc_volume):
    """Readers: one ground-glass nodule; the readers' contours give a mean diameter of 22-23 mm on its
    largest section (long 25.5-27.3 mm, short 18.8 mm, ``071.xml``)."""
    detector, result = lidc_result
    centre = _readers_nodule()
    shown = [f for f in result.findings if f.score >= detector.info.threshold]
    on = [f for f in result.findings if np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) <= 16.0]
    assert len(on) == 1, [(f.score, f.center_xyz_mm, f.diameter_mm) for f in on]
    (f,) = on
    assert f in shown and f.measured
    assert 16.0 <= f.diameter_mm <= 28.0, f.diameter_mm
    assert f.category == "nodule"


def test_lidc_0002_scores_rank_without_a_plateau(lidc_result, lidc_volume):
    detector, result = lidc_result
    scores = [f.score for f in result.findings]
    top = scores[:20]
    assert len(set(top)) == len(top) and max(scores) < 1.0
    assert scores == sorted(scores, reverse=True)
    doc = findings_json(result, lidc_volume, 0.0, True, {})
    assert doc["threshold"] == detector.info.threshold and doc["min_score"] == 0.0
    json_scores = [x["score"] for x in doc["findings"]]
    assert len(set(json_scores[:20])) == len(json_scores[:20]) and max(json_scores) < 1.0
    strict = findings_json(result, lidc_volume, detector.info.threshold, True, {})
    assert strict["min_score"] == strict["threshold"] and all(
        x["score"] >= strict["threshold"] for x in strict["findings"]
    )


def test_synthetic_scan_scores_rank_without_a_plateau():
    from nodeview.core.detect.models import default_model_path

    hu, g, _, _, _ = _chest(0)
    volume = Volume(hu, Geometry(g.shape_zyx, g.spacing_zyx, g.origin_xyz), series_uid="1.2.3", description="chest")
    result = Detector(default_model_path()).detect(volume, min_score=0.0)
    top = [f.score for f in result.findings[:10]]
    assert len(top) >= 2 and len(set(top)) == len(top) and max(top) < 1.0


def test_measure_finding_keeps_its_signature():
    volume, model = _phantom_with("solid", 10.0, "smooth")
    lung = segment_lungs(volume.hu_zyx, volume.geometry)
    f = measure_finding(volume, lung, tuple(model.center_xyz_mm), 4.0, 0.9, 0.5)
    assert f.measured and f.diameter_mm == pytest.approx(10.0, rel=0.25)
    u = measure_finding(volume, lung, tuple(model.center_xyz_mm), 4.0, 0.9, 0.5, segment=False)
    assert not u.measured and u.type == "unmeasured" and u.diameter_mm == 4.0


A0001 = SHARED_DATA / "real-ct" / "Lung-PET-CT-Dx-A0001"


def _a0001_box(series_dir, volume):
    """The radiologists' box of the tumour in LPS mm, (min xyz, max xyz): each annotated image's
    VOC box (pixel xmin/ymin/xmax/ymax, named by the image's SOPInstanceUID) through the slices they lie on."""
    import xml.etree.ElementTree as ET

    import pydicom

    z_of = {}
    for path in series_dir.rglob("*"):
        if path.is_file():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            z_of[str(ds.SOPInstanceUID)] = [float(v) for v in ds.ImagePositionPatient]
    corners = []
    for xml in sorted((A0001 / "annotations").glob("*.xml")):
        uid = xml.stem
        if uid not in z_of:
            continue
        box = ET.parse(xml).getroot().find("object/bndbox")
        x0, y0, x1, y1 = (int(box.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
        k = volume.geometry.mm_to_index(z_of[uid])[0]
        corners += [volume.geometry.index_to_mm((k, j, i)) for j in (y0, y1) for i in (x0, x1)]
    corners = np.asarray(corners)
    assert len(corners) >= 8
    return corners.min(axis=0), corners.max(axis=0)


@pytest.mark.parametrize("kernel", ["B", "L"])
def test_a0001_tumour_is_one_mass_finding(kernel):
    from nodeview.core.detect.models import default_model_path
    from nodeview.core.io.study import open_study

    series = need(A0001 / f"chest-5mm-kernel-{kernel}")
    volume = open_study([series])
    lo, hi = _a0001_box(series, volume)
    detector = Detector(default_model_path())
    result = detector.detect(volume, min_score=0.0)
    shown = [f for f in result.findings if f.score >= detector.info.threshold]
    inside = [
        f for f in shown if np.all(np.asarray(f.center_xyz_mm) >= lo) and np.all(np.asarray(f.center_xyz_mm) <= hi)
    ]
    assert len(inside) == 1, [(f.score, f.center_xyz_mm, f.diameter_mm) for f in inside]
    (f,) = inside
    assert f.diameter_mm > 30.0 and f.category == "mass", (f.diameter_mm, f.type)
    assert f.type in ("solid", "part-solid") and f.lung_rads == "4B"
    # its solid bulk lies outside the lung mask, so it is measured on its part inside: the reader is told
    assert MASS_CAVEAT in result.caveats


@pytest.mark.parametrize("diameter_mm, category, lung_rads", [(40.0, "mass", "4B"), (8.8, "nodule", "4A")])
def test_bundled_cascade_reports_one_finding(diameter_mm, category, lung_rads):
    """End to end with the bundled models: a synthetic 40 mm mass and an 8.8 mm solid nodule are each
    one finding at the operating threshold, measured whole, with the lesion's Lung-RADS hint."""
    from nodeview.core.detect.models import default_model_path

    volume, model = _phantom_with("solid", diameter_mm, "smooth")
    detector = Detector(default_model_path())
    result = detector.detect(volume, min_score=0.0)
    near = [
        f
        for f in result.findings
        if np.linalg.norm(np.subtract(f.center_xyz_mm, model.center_xyz_mm)) <= diameter_mm / 2
    ]
    assert len(near) == 1, [(f.score, f.center_xyz_mm, f.diameter_mm) for f in near]
    (f,) = near
    assert f.score >= detector.info.threshold and f.measured
    assert f.diameter_mm == pytest.approx(diameter_mm, rel=0.2)
    assert f.category == category and f.type == "solid" and f.lung_rads == lung_rads
    assert (MASS_CAVEAT in result.caveats) == (category == "mass")


def _ball_with_vessels(spacing_zyx: tuple[float, float, float]) -> tuple[Volume, np.ndarray]:
    """A 16 mm solid ball in aerated lung with two 5 mm vessels running from it to the region's edge."""
    shape = (int(80 / spacing_zyx[0]), int(80 / spacing_zyx[1]), int(80 / spacing_zyx[2]))
    g = Geometry(shape, spacing_zyx, (0.0, 0.0, 0.0))
    hu = np.full(shape, -850, dtype=np.int16)
    k, j, i = np.indices(shape)
    z, y, x = k * spacing_zyx[0], j * spacing_zyx[1], i * spacing_zyx[2]
    c = np.array([40.0, 40.0, 40.0])  # mm (z, y, x)
    hu[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 8.0**2] = 30
    hu[((z - c[0]) ** 2 + (y - c[1]) ** 2 <= 2.5**2) & (x >= c[2])] = 30  # along +x
    hu[((z - c[0]) ** 2 + (x - c[2]) ** 2 <= 2.5**2) & (y <= c[1])] = 30  # along -y
    centre = g.index_to_mm(c / np.asarray(spacing_zyx))
    return Volume(hu, g, series_uid="1.2.3.11", description="ball with vessels"), centre


def test_attached_vessels_are_cut_from_the_lesion():
    """A vessel attached to a nodule is not nodule: the opening with a ball of half the lesion's depth
    cuts them (before it, the region grew along them: mean diameter 18.5 mm for this 16 mm ball)."""
    volume, centre = _ball_with_vessels((1.25, 0.7, 0.7))
    lung = segment_lungs(volume.hu_zyx, volume.geometry)
    f = measure_finding(volume, lung, tuple(float(v) for v in centre), 6.0, 0.9, 0.5)
    assert f.measured
    assert 14.0 <= f.long_axis_mm <= 19.0 and 14.0 <= f.diameter_mm <= 18.0, (f.long_axis_mm, f.diameter_mm)
    assert np.linalg.norm(np.subtract(f.center_xyz_mm, centre)) < 1.5


@pytest.mark.parametrize("slice_mm", [2.5, 5.0])
def test_mass_territory_holds_the_bulk_the_lung_mask_leaves_out(slice_mm):
    """A 50 mm solid mass broad-based on the chest wall indents the lung deeper than the lung mask's
    closing reaches, so its bulk lies outside the mask; a candidate on its ground-glass rim (inside the
    mask) segments the rim alone. The rim is a mass, and its territory holds most of the solid bulk
    but not the chest wall beyond: a finding on the bulk groups with it (the rim is what is measured)."""
    from nodeview.core.detect.findings import segment_lesion, territory_if_mass

    rng = np.random.default_rng(1)
    shape = (int(120 / slice_mm), 200, 220)
    geometry = Geometry(shape, (slice_mm, 0.8, 0.8), (0.0, 0.0, 0.0))
    z, y, x = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]].astype(np.float32)
    zm, ym, xm = z * slice_mm, y * 0.8, x * 0.8
    hu = np.full(shape, -1000.0, dtype=np.float32)
    body = ((ym - 80) / 75) ** 2 + ((xm - 88) / 85) ** 2 < 1
    hu[body] = 40.0
    lung = ((ym - 80) / 55) ** 2 + ((xm - 80) / 60) ** 2 + ((zm - 60) / 50) ** 2 < 1
    hu[lung] = -850.0
    c = np.array([125.0, 80.0, 60.0])  # x, y, z mm: 15 mm inside the lung's lateral edge
    r = np.sqrt((xm - c[0]) ** 2 + (ym - c[1]) ** 2 + (zm - c[2]) ** 2)
    mass = (r <= 25.0) & body
    halo = (r > 25.0) & (r <= 33.0) & lung  # ground glass around it, in the lung
    hu[mass] = 35.0
    hu[halo] = -450.0
    hu += rng.normal(0, 15, shape).astype(np.float32)
    volume = Volume(np.rint(hu).astype(np.int16), geometry, series_uid="1.2.3.6", description="mass on the wall")
    lung_mask = segment_lungs(volume.hu_zyx, geometry)
    assert (lung_mask.full_resolution(shape) & mass).sum() < 0.05 * mass.sum()  # the bulk is outside the mask
    voxels = segment_lesion(volume, lung_mask, (c[0] - 29.0, c[1], c[2]), 15.0)
    rim = np.zeros(shape, dtype=bool)
    rim.reshape(-1)[voxels] = True
    assert (rim & mass).sum() < 0.05 * mass.sum()  # measured on the rim inside the lung
    territory = np.zeros(shape, dtype=bool)
    territory.reshape(-1)[territory_if_mass(volume, lung_mask, voxels)] = True
    assert (territory & mass).sum() >= 0.6 * mass.sum()
    assert (territory & ~(mass | halo)).sum() <= 0.05 * territory.sum()  # not the chest wall
    assert len(territory_if_mass(volume, lung_mask, voxels[: len(voxels) // 50])) == 0  # a fragment: no territory
