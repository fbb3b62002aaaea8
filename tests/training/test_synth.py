"""Data sources (a) synthetic chest CT and (b) nodules inserted into real CT.

Generator invariants (anatomy HU, noise, nodules where and as large as annotated), DICOM round
trips through the real loader, the written malignancy rule, insertion into a crop of the shared
LIDC-IDRI-0002 scan, and the make_data command line. Small matrices keep the file fast.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from nodeview.core.detect.lung import segment_lungs
from nodeview.core.geometry import Geometry
from nodeview.core.io.study import open_study
from nodeview.core.volume import Volume
from training.data import make_data
from training.data.annotations import NoduleAnnotation, read_records_csv, write_records_csv
from training.data.insert import estimate_noise, insert_nodules, write_inserted
from training.data.synth import anatomy, dicom, generator, nodules, scanner

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LIDC_DIR = SHARED_DATA / "real-ct" / "LIDC-IDRI-0002"

OVERVIEW = dict(shape_zyx=(40, 128, 128), spacing_zyx=(2.5, 3.0, 3.0))


# ---- helpers ------------------------------------------------------------------------------------
def ball(vol: Volume, center_xyz: tuple[float, float, float], r_mm: float, r_in_mm: float = 0.0) -> np.ndarray:
    """HU of the voxels whose centres lie within r_mm (and beyond r_in_mm) of an LPS point; the
    nearest voxel when the ball holds none."""
    g = vol.geometry
    c = g.mm_to_index(center_xyz)
    half = np.ceil(r_mm / g.spacing_zyx).astype(int) + 1
    ci = np.rint(c).astype(int)
    lo = np.maximum(ci - half, 0)
    hi = np.minimum(ci + half + 1, np.asarray(g.shape_zyx))
    kk, jj, ii = np.meshgrid(*(np.arange(lo[a], hi[a]) for a in range(3)), indexing="ij")
    d = np.sqrt(sum(((idx - c[a]) * g.spacing_zyx[a]) ** 2 for a, idx in enumerate((kk, jj, ii))))
    sel = (d <= r_mm) & (d >= r_in_mm)
    vals = vol.hu_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]][sel]
    if vals.size == 0:
        k, j, i = g.mm_to_voxel(center_xyz)
        vals = vol.hu_zyx[k : k + 1, j, i]
    return vals


def measured_diameter(vol: Volume, ann: NoduleAnnotation, threshold: float) -> float:
    """Equivalent diameter of the connected blob above ``threshold`` that holds the centre,
    restricted to 1.35 radii (attached vessels are cut off)."""
    g = vol.geometry
    r = 0.5 * ann.diameter_mm
    c = g.mm_to_index(ann.center_xyz_mm)
    half = np.ceil(1.5 * r / g.spacing_zyx).astype(int) + 2
    ci = np.rint(c).astype(int)
    lo = np.maximum(ci - half, 0)
    hi = np.minimum(ci + half + 1, np.asarray(g.shape_zyx))
    sub = vol.hu_zyx[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    kk, jj, ii = np.meshgrid(*(np.arange(lo[a], hi[a]) for a in range(3)), indexing="ij")
    d = np.sqrt(sum(((idx - c[a]) * g.spacing_zyx[a]) ** 2 for a, idx in enumerate((kk, jj, ii))))
    blob = (sub > threshold) & (d <= 1.35 * r)
    labels, _ = ndimage.label(blob)
    core = labels[(d <= 0.35 * r) & blob]
    if core.size == 0:
        return 0.0
    keep = labels == np.bincount(core).argmax()
    volume = float(keep.sum() * np.prod(g.spacing_zyx))
    return (6.0 * volume / math.pi) ** (1.0 / 3.0)


def check_kind_hu(vol: Volume, ann: NoduleAnnotation) -> None:
    r = 0.5 * ann.diameter_mm
    inner = ball(vol, ann.center_xyz_mm, max(0.3 * r, 0.6 * float(vol.geometry.spacing_zyx.min())))
    med, top = float(np.median(inner)), float(inner.max())
    if ann.kind == "solid":
        assert med > -100, (ann, med)
    elif ann.kind == "ground-glass":
        assert -800 < med < -300, (ann, med)
    elif ann.kind == "part-solid":
        assert -750 < med < 120, (ann, med)
    elif ann.kind == "calcified":
        assert top > 200, (ann, top)
    else:  # pragma: no cover
        raise AssertionError(ann.kind)


# ---- anatomy and acquisition ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def overview() -> generator.SyntheticScan:
    return generator.generate_scan_full(3, **OVERVIEW, n_nodules=0, noise_sd_hu=20.0)


def test_overview_anatomy(overview: generator.SyntheticScan) -> None:
    vol = overview.volume
    hu = vol.hu_zyx
    assert hu.dtype == np.int16 and hu.shape == (40, 128, 128)
    assert overview.annotations == []
    # lungs: found by the viewer's own segmentation, parenchyma around -850 HU
    lungs = segment_lungs(hu, vol.geometry).full_resolution(hu.shape)
    assert lungs.sum() * np.prod(vol.spacing_zyx) / 1000 > 300  # ml
    assert -900 < float(np.median(hu[lungs])) < -790
    # body outline: air in the corners, a body occupying much of the field, fat and muscle
    mid = hu[20]
    corners = np.concatenate([mid[:4, :4].ravel(), mid[:4, -4:].ravel(), mid[-4:, :4].ravel()])
    assert np.all(corners < -900)
    body = (mid > -500).mean()
    assert 0.2 < body < 0.85
    assert ((hu > -130) & (hu < -70)).sum() > 0.02 * hu.size  # subcutaneous / mediastinal fat
    assert ((hu > 20) & (hu < 80)).sum() > 0.03 * hu.size  # muscle, heart, vessels
    # bone: ribs, spine, sternum
    assert int(hu.max()) > 600
    assert (hu > 300).sum() > 0.002 * hu.size
    # the spine is posterior: dense voxels lie mostly behind the body's centre
    kk, jj, ii = np.nonzero(hu > 250)
    assert np.mean(jj) > 64


def test_noise_sd_as_requested(overview: generator.SyntheticScan) -> None:
    clean = generator.generate_scan_full(3, **OVERVIEW, n_nodules=0, noise_sd_hu=0.0).volume.hu_zyx.astype(np.float32)
    noisy = overview.volume.hu_zyx.astype(np.float32)
    sel = (clean > -900) & (clean < 3000)
    diff = (noisy - clean)[sel]
    assert abs(float(diff.mean())) < 2.0
    assert 17.0 < float(diff.std()) < 23.0


def test_deterministic_and_seed_dependent() -> None:
    a, ann_a = generator.generate_scan(7, (16, 64, 64), n_nodules=(1, 2))
    b, ann_b = generator.generate_scan(7, (16, 64, 64), n_nodules=(1, 2))
    c, _ = generator.generate_scan(8, (16, 64, 64), n_nodules=(1, 2))
    assert np.array_equal(a.hu_zyx, b.hu_zyx) and a.geometry == b.geometry and ann_a == ann_b
    assert a.series_uid == b.series_uid != c.series_uid
    assert not (a.hu_zyx.shape == c.hu_zyx.shape and np.array_equal(a.hu_zyx, c.hu_zyx))


def test_default_acquisition_is_a_full_chest() -> None:
    rng = np.random.default_rng(0)
    p = anatomy._Patient(rng, contrast=False)
    acq = scanner._sample_acquisition(rng, p, False, None, None, None, None, None)
    nz, ny, nx = acq.shape_zyx
    assert (ny, nx) == (512, 512)
    assert 0.55 <= acq.spacing_zyx[1] <= 0.9
    assert acq.slice_thickness_mm in (1.0, 1.25, 2.5, 5.0)
    assert 250 <= nz * acq.spacing_zyx[0] <= 420  # apex to upper abdomen
    assert 10 <= acq.noise_sd_hu <= 40 and 0.6 <= acq.psf_fwhm_mm <= 1.0


# ---- nodules ----------------------------------------------------------------------------------------
_NODULE_SCANS: dict[str, generator.SyntheticScan] = {}


def nodule_scan(kind: str) -> generator.SyntheticScan:
    """A high-resolution partial field of view with isolated nodules of one kind."""
    if kind not in _NODULE_SCANS:
        _NODULE_SCANS[kind] = generator.generate_scan_full(
            40 + nodules.KINDS.index(kind),
            (48, 150, 150),
            (1.25, 1.5, 1.5),
            n_nodules=3,
            kinds=(kind,),
            locations=("isolated",),
            margins=("smooth", "lobulated"),
            diameter_range_mm=(9.0, 16.0),
            noise_sd_hu=12.0,
        )
    return _NODULE_SCANS[kind]


@pytest.mark.parametrize("kind", nodules.KINDS)
def test_nodules_where_annotated(kind: str) -> None:
    scan = nodule_scan(kind)
    vol = scan.volume
    assert len(scan.annotations) >= 2
    for ann in scan.annotations:
        assert ann.kind == kind and ann.location == "isolated" and ann.source == "synthetic"
        assert vol.geometry.contains_mm(ann.center_xyz_mm)
        r = 0.5 * ann.diameter_mm
        # inside the lungs: surrounded by parenchyma
        shell = ball(vol, ann.center_xyz_mm, r + 6.0, r + 3.0)
        assert float(np.median(shell)) < -650, ann
        check_kind_hu(vol, ann)


@pytest.mark.parametrize("kind", nodules.KINDS)
def test_nodule_diameters(kind: str) -> None:
    scan = nodule_scan(kind)
    vol = scan.volume
    for ann in scan.annotations:
        r = 0.5 * ann.diameter_mm
        bg = float(np.median(ball(vol, ann.center_xyz_mm, r + 6.0, r + 3.0)))
        body_hu = {"solid": 40.0, "calcified": 40.0, "ground-glass": None, "part-solid": None}[kind]
        if body_hu is None:  # ground glass: its own level, measured at the centre
            body_hu = float(np.median(ball(vol, ann.center_xyz_mm, 0.4 * r)))
            if kind == "part-solid":
                body_hu = min(body_hu, -450.0)
        d = measured_diameter(vol, ann, 0.5 * (bg + body_hu))
        assert abs(d - ann.diameter_mm) < 0.25 * ann.diameter_mm, (ann, d)


def test_masses_are_solid_and_measure_their_diameter() -> None:
    """``masses=1``: the first lesion is a solid mass of 32-60 mm (no kind's nodule range goes past 40 mm), placed in
    the lung and as large as annotated; it counts as one of the scan's lesions, and the others are drawn as before."""
    scan = generator.generate_scan_full(240, n_nodules=(2, 2), masses=1, locations=("isolated",), noise_sd_hu=0.0)
    vol = scan.volume
    mass, *others = scan.annotations
    assert mass.kind == "solid" and generator.MASS_DIAMETER_MM[0] <= mass.diameter_mm <= generator.MASS_DIAMETER_MM[1]
    assert mass.location == "isolated"
    assert len(others) == 1 and others[0].diameter_mm <= 40.0
    r = 0.5 * mass.diameter_mm
    assert float(np.median(ball(vol, mass.center_xyz_mm, 0.5 * r))) > -100  # solid all through
    bg = float(np.median(ball(vol, mass.center_xyz_mm, r + 6.0, r + 3.0)))
    assert bg < -650  # in aerated lung
    d = measured_diameter(vol, mass, 0.5 * (bg + 40.0))
    assert abs(d - mass.diameter_mm) < 0.25 * mass.diameter_mm, (mass, d)
    # without masses the seed draws what it always drew: no lesion over the nodule ranges
    plain = generator.generate_scan_full(241, n_nodules=(1, 1), noise_sd_hu=0.0)
    assert all(a.diameter_mm <= 40.0 for a in plain.annotations)


def test_nodule_model_volume_matches_diameter() -> None:
    rng = np.random.default_rng(1)
    for margin in ("smooth", "lobulated", "spiculated"):
        m = nodules.sample_nodule(rng, kind="solid", margin=margin, diameter_mm=12.0)
        g = np.stack(np.meshgrid(*(np.linspace(-20, 20, 81),) * 3, indexing="ij"), -1).reshape(-1, 3)
        d_body = nodules._spheres_distance(g / m.axes, m.lobes) * float(m.axes.min())
        vol = float((d_body < 0).sum()) * 0.5**3
        assert abs((6 * vol / math.pi) ** (1 / 3) - 12.0) < 0.6


def test_locations_touch_pleura_and_vessels() -> None:
    args = dict(shape_zyx=(48, 150, 150), spacing_zyx=(1.25, 1.5, 1.5), kinds=("solid",), noise_sd_hu=0.0)
    for loc, seed in (("juxta-pleural", 50), ("juxta-vascular", 51)):
        scan = generator.generate_scan_full(seed, **args, n_nodules=2, locations=(loc,), diameter_range_mm=(8.0, 12.0))
        # the same patient without nodules: nodules are drawn after the anatomy
        background = generator.generate_scan_full(seed, **args, n_nodules=0).volume
        assert scan.annotations, loc
        for ann in scan.annotations:
            assert ann.location == loc
            r = 0.5 * ann.diameter_mm
            near = ball(background, ann.center_xyz_mm, r + 1.5)
            dense = float((near > -300).mean())
            if loc == "juxta-pleural":
                assert 0.02 < dense < 0.6, (ann, dense)  # touches the wall, mostly in the lung
            else:
                assert 0.003 < dense < 0.5, (ann, dense)  # touches a vessel
            assert background.hu_at_mm(ann.center_xyz_mm) < -500
            check_kind_hu(scan.volume, ann)


# ---- DICOM -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "position, iop, labels",
    [
        ("HFS", (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), ("S", "P", "L")),
        ("FFS", (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0), ("I", "P", "R")),
    ],
)
def test_write_scan_round_trip(tmp_path: Path, position: str, iop: tuple[float, ...], labels: tuple[str, ...]) -> None:
    args = dict(
        shape_zyx=(24, 96, 96),
        spacing_zyx=(2.5, 1.6, 1.6),
        n_nodules=2,
        patient_position=position,
        orientation=iop,
        kinds=("solid",),
        locations=("isolated",),
        diameter_range_mm=(9.0, 14.0),
        noise_sd_hu=10.0,
    )
    rec = dicom.write_scan(tmp_path / "scan", 31, **args)
    vol, anns = generator.generate_scan(31, **args)
    loaded = open_study(rec.path)
    assert np.array_equal(loaded.hu_zyx, vol.hu_zyx)
    assert loaded.geometry.isclose(vol.geometry, atol=1e-3)
    assert loaded.geometry.axis_labels() == labels
    assert loaded.patient_position == position and loaded.series_uid == vol.series_uid == rec.series_uid
    assert loaded.slice_thickness_mm == pytest.approx(2.5)
    assert rec.nodules == tuple(anns) and len(anns) >= 1 and rec.source == "synthetic" and rec.fold == 1
    for ann in rec.nodules:  # mm centres land on the nodules of the reloaded series
        assert float(np.median(ball(loaded, ann.center_xyz_mm, 0.3 * 0.5 * ann.diameter_mm + 0.5))) > -100
    csv = write_records_csv([rec], tmp_path / "annotations.csv")
    assert read_records_csv(csv) == [dataclasses.replace(rec, series_uid=None)]  # the CSV has no UID column


# ---- malignancy rule -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "diameter, kind, margin, solid, p",
    [
        (10.0, "calcified", "smooth", None, 0.01),
        (25.0, "calcified", "lobulated", None, 0.01),
        (4.0, "solid", "smooth", None, 0.01),
        (7.0, "solid", "smooth", None, 0.02),
        (10.0, "solid", "smooth", None, 0.10),
        (20.0, "solid", "smooth", None, 0.30),
        (5.0, "part-solid", "smooth", 3.0, 0.01),
        (12.0, "part-solid", "smooth", 4.0, 0.05),
        (12.0, "part-solid", "smooth", 7.0, 0.25),
        (14.0, "part-solid", "smooth", 9.0, 0.50),
        (20.0, "ground-glass", "smooth", None, 0.02),
        (32.0, "ground-glass", "smooth", None, 0.20),
    ],
)
def test_malignancy_table(diameter: float, kind: str, margin: str, solid: float | None, p: float) -> None:
    assert nodules.malignancy_probability(diameter, kind, margin, solid) == pytest.approx(p, abs=1e-9)
    assert nodules.is_malignant(diameter, kind, margin, solid) == (p >= nodules.MALIGNANT_THRESHOLD)


def test_malignancy_margins_and_threshold() -> None:
    mp = nodules.malignancy_probability
    # spiculation multiplies the odds by 10, lobulation by 2; calcified stays benign
    odds = lambda q: q / (1 - q)  # noqa: E731
    assert odds(mp(10, "solid", "spiculated")) == pytest.approx(10 * odds(0.10))
    assert odds(mp(10, "solid", "lobulated")) == pytest.approx(2 * odds(0.10))
    assert mp(10, "calcified", "spiculated") == 0.01
    assert not nodules.is_malignant(4, "solid", "spiculated")  # small: still below 0.15
    assert nodules.is_malignant(7, "solid", "spiculated")
    assert nodules.is_malignant(9, "solid", "lobulated") and not nodules.is_malignant(9, "solid", "smooth")
    assert nodules.is_malignant(16, "solid") and not nodules.is_malignant(14, "solid")
    assert nodules.is_malignant(12, "part-solid", "smooth", 6.0) and not nodules.is_malignant(12, "part-solid", "smooth", 5.0)
    assert nodules.is_malignant(30, "ground-glass") and not nodules.is_malignant(29, "ground-glass")
    assert mp(12, "part-solid") == mp(12, "part-solid", "smooth", 6.0)  # default core: half the diameter
    for d in np.linspace(0, 40, 81):  # risk never falls with size
        for kind in ("solid", "ground-glass"):
            assert mp(d + 0.5, kind) >= mp(d, kind)
    with pytest.raises(ValueError):
        mp(10, "cystic")
    with pytest.raises(ValueError):
        mp(10, "solid", "ragged")


def test_labels_follow_the_rule() -> None:
    scan = generator.generate_scan_full(60, (40, 128, 128), (2.5, 3.0, 3.0), n_nodules=4, diameter_range_mm=(6.0, 25.0))
    assert scan.annotations
    for ann, model in zip(scan.annotations, scan.nodules, strict=True):
        p = nodules.malignancy_probability(ann.diameter_mm, ann.kind, ann.margin, model.solid_diameter_mm)
        assert ann.malignancy_score == pytest.approx(p, abs=1e-4)
        assert ann.malignant == (p >= nodules.MALIGNANT_THRESHOLD)


# ---- insertion into real CT --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lidc_crop() -> Volume:
    if not LIDC_DIR.exists():
        pytest.skip(f"shared test data not found: {LIDC_DIR}")
    full = open_study(LIDC_DIR)
    k0, k1 = 150, 190  # mid-lung, below the scan's own 33 mm nodule (z ~ -104 mm)
    g = full.geometry
    geom = Geometry((k1 - k0, *g.shape_zyx[1:]), g.spacing_zyx, g.index_to_mm((k0, 0, 0)), g.direction)
    return dataclasses.replace(full, hu_zyx=np.ascontiguousarray(full.hu_zyx[k0:k1]), geometry=geom)


@pytest.fixture(scope="module")
def inserted(lidc_crop: Volume) -> tuple[Volume, list[NoduleAnnotation]]:
    return insert_nodules(lidc_crop, 5, 4, diameter_range_mm=(6.0, 15.0))


def test_insert_puts_nodules_in_the_lung(lidc_crop: Volume, inserted: tuple[Volume, list[NoduleAnnotation]]) -> None:
    new, anns = inserted
    assert new.geometry == lidc_crop.geometry and new.hu_zyx.dtype == np.int16
    assert new.series_uid != lidc_crop.series_uid
    assert len(anns) >= 3
    mask = segment_lungs(lidc_crop.hu_zyx, lidc_crop.geometry)
    for ann in anns:
        assert ann.source == "inserted" and ann.malignancy_score is not None
        idx = lidc_crop.geometry.mm_to_index(ann.center_xyz_mm)
        assert mask.contains_index(idx), ann
        assert lidc_crop.hu_at_mm(ann.center_xyz_mm) < -500  # it went into aerated lung
        check_kind_hu(new, ann)


def test_insert_leaves_the_rest_unchanged(lidc_crop: Volume, inserted: tuple[Volume, list[NoduleAnnotation]]) -> None:
    new, anns = inserted
    changed = np.argwhere(new.hu_zyx != lidc_crop.hu_zyx)
    assert len(changed) > 100
    pts = lidc_crop.geometry.index_to_mm(changed)
    centres = np.array([a.center_xyz_mm for a in anns])
    reach = np.array([0.7 * a.diameter_mm + (16.0 if a.margin == "spiculated" else 5.0) for a in anns])
    dist = np.linalg.norm(pts[:, None, :] - centres[None, :, :], axis=2)
    assert np.all((dist <= reach[None, :]).any(axis=1))
    # the real noise around the nodules is kept, and matched inside them
    sd, _ = estimate_noise(lidc_crop.hu_zyx[:, 100:400, 60:450])
    assert 5 < sd < 60


def test_insert_is_deterministic_and_respects_locations(lidc_crop: Volume) -> None:
    a, ann_a = insert_nodules(
        lidc_crop, 9, 2, locations=("juxta-pleural",), kinds=("solid",), diameter_range_mm=(8.0, 12.0)
    )
    b, ann_b = insert_nodules(
        lidc_crop, 9, 2, locations=("juxta-pleural",), kinds=("solid",), diameter_range_mm=(8.0, 12.0)
    )
    assert ann_a == ann_b and np.array_equal(a.hu_zyx, b.hu_zyx)
    assert ann_a
    for ann in ann_a:
        r = 0.5 * ann.diameter_mm
        around = ball(lidc_crop, ann.center_xyz_mm, 1.25 * r)
        assert 0.02 < (around > -300).mean() < 0.6, ann  # touches the chest wall, mostly in the lung
        check_kind_hu(a, ann)


def test_write_inserted_round_trip(tmp_path: Path, lidc_crop: Volume) -> None:
    existing = (NoduleAnnotation((0.0, 0.0, -150.0), 5.0, kind="solid", source="lidc-xml"),)
    rec = write_inserted(tmp_path / "ins", lidc_crop, 1_000_007, 2, existing=existing, kinds=("calcified",))
    loaded = open_study(rec.path)
    assert loaded.geometry.isclose(lidc_crop.geometry, atol=1e-3)
    assert rec.source == "inserted" and rec.fold == 7 and rec.nodules[-1] == existing[0]
    inserted = [a for a in rec.nodules if a.source == "inserted"]
    assert inserted
    for ann in inserted:
        check_kind_hu(loaded, ann)
    # voxels away from the inserted nodules are the real scan's
    k = loaded.shape_zyx[0] // 2
    far = np.ones(loaded.shape_zyx, bool)
    for ann in inserted:
        c = np.rint(loaded.geometry.mm_to_index(ann.center_xyz_mm)).astype(int)
        far[max(0, c[0] - 12) : c[0] + 13, max(0, c[1] - 40) : c[1] + 41, max(0, c[2] - 40) : c[2] + 41] = False
    assert np.array_equal(loaded.hu_zyx[k][far[k]], lidc_crop.hu_zyx[k][far[k]])


# ---- make_data -------------------------------------------------------------------------------------------
def test_seed_ranges_are_disjoint() -> None:
    assert make_data.split_of_seed(0) == "train" and make_data.split_of_seed(9_999) == "train"
    assert make_data.split_of_seed(10_000) == "validation" and make_data.split_of_seed(10_999) == "validation"
    assert make_data.split_of_seed(11_000) is None and make_data.split_of_seed(20_000) == "test"
    assert make_data.split_of_seed(make_data.INSERTED_OFFSET + 20_001) == "test"
    ranges = sorted(make_data.SEED_RANGES.values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))


def test_make_data_cli(tmp_path: Path) -> None:
    parser = make_data.get_args_parser()
    out = tmp_path / "data"
    args = parser.parse_args(
        ["--out", str(out), "--synthetic", "2", "--split", "validation", "--small", "--nodules", "1", "2"]
    )
    assert make_data.main(args) == 0
    records = read_records_csv(out / "annotations.csv")
    assert [r.scan_id for r in records] == ["synth-010000", "synth-010001"]
    for rec in records:
        assert make_data.split_of_seed(int(rec.scan_id.split("-")[1])) == "validation"
        vol = open_study(rec.path)
        assert vol.shape_zyx == make_data.SMALL_SHAPE
        assert 1 <= len(rec.nodules) <= 2
    first = (out / "annotations.csv").read_bytes()
    assert make_data.main(args) == 0  # resumes from the per-scan records, same result
    assert (out / "annotations.csv").read_bytes() == first
    with pytest.raises(SystemExit):
        make_data.main(parser.parse_args(["--out", str(out), "--synthetic", "3", "--seed", "9998"]))
    with pytest.raises(SystemExit):
        make_data.main(parser.parse_args(["--out", str(out), "--inserted", "1"]))
