"""Data sources (c) LUNA16 (+ LIDC XML ratings) and (d) DICOM folders + nodule CSV.

Fixtures are written here in the real formats: LUNA16 .mhd/.raw trees with annotations.csv and
candidates.csv, LIDC-IDRI XML (namespace http://www.nih.gov), DICOM series via write_series.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from nodeview.core.errors import GeometryError, InputError, NoImagesError, UnsupportedDataError
from nodeview.core.geometry import Geometry
from nodeview.core.io.sitk import read_image_file
from tests.conftest import SHARED_DATA, need
from training.data.annotations import NoduleAnnotation, read_records_csv, write_records_csv
from training.data.csv_source import load_csv_source
from training.data.lidc_xml import (
    cluster_readers,
    consensus,
    find_lidc_xml,
    malignancy_label,
    parse_lidc_xml,
)
from training.data.luna16 import (
    ANNOTATION_COLUMNS,
    Luna16Warning,
    folds,
    load_luna16,
    read_annotations,
    read_candidates,
)

REAL_ANNOTATIONS = SHARED_DATA / "luna16" / "annotations.csv"
LIDC_DIR = SHARED_DATA / "real-ct" / "LIDC-IDRI-0002"
READERS_CSV = SHARED_DATA / "real-ct" / "LIDC-IDRI-0002-readers.csv"

UID_PREFIX = "1.3.6.1.4.1.14519.5.2.1.6279.6001."
SHAPE = (20, 32, 32)
SPACING_XYZ = (0.8, 0.7, 2.0)


# ---- LUNA16 -------------------------------------------------------------------------------------
def _write_mhd(path: Path, origin_xyz: tuple[float, float, float], sphere_kji: tuple[int, int, int]) -> None:
    import SimpleITK as sitk

    hu = np.full(SHAPE, -1000, dtype=np.int16)
    k, j, i = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    kc, jc, ic = sphere_kji
    r2 = ((k - kc) * SPACING_XYZ[2]) ** 2 + ((j - jc) * SPACING_XYZ[1]) ** 2 + ((i - ic) * SPACING_XYZ[0]) ** 2
    hu[r2 <= 3.0**2] = 40
    hu[kc, jc, ic] = 400  # the brightest voxel marks the centre
    image = sitk.GetImageFromArray(hu)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(origin_xyz)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))  # .mhd + .raw


def _world(origin_xyz: tuple[float, float, float], kji: tuple[int, int, int]) -> tuple[float, float, float]:
    k, j, i = kji
    return tuple(o + s * n for o, s, n in zip(origin_xyz, SPACING_XYZ, (i, j, k), strict=True))  # type: ignore[return-value]


def _header() -> list[str]:
    """The real annotations.csv header when the shared file is there (same layout), else the spec."""
    if REAL_ANNOTATIONS.exists():
        with open(REAL_ANNOTATIONS, newline="") as fh:
            return next(csv.reader(fh))
    return list(ANNOTATION_COLUMNS)


@pytest.fixture(scope="module")
def luna_root(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("luna16")
    scans = {
        # uid: (subset, origin, sphere voxel)
        UID_PREFIX + "100000000000000000000000000001": (0, (-150.25, -160.5, -310.75), (10, 12, 20)),
        UID_PREFIX + "100000000000000000000000000002": (0, (20.0, -5.5, 100.25), (5, 20, 8)),
        UID_PREFIX + "100000000000000000000000000003": (1, (-3.3, 44.4, -55.5), (15, 7, 25)),
    }
    for uid, (subset, origin, kji) in scans.items():
        _write_mhd(root / f"subset{subset}" / f"{uid}.mhd", origin, kji)
    missing_uid = UID_PREFIX + "199999999999999999999999999999"
    uids = list(scans)
    rows = []
    for uid in [*uids[:2], uids[0]]:
        _, origin, kji = scans[uid]
        rows.append([uid, *_world(origin, kji), 6.0])
    rows[2] = [uids[0], *_world(scans[uids[0]][1], (3, 3, 3)), 4.5]  # a second nodule in scan 1
    rows.append([missing_uid, 1.0, 2.0, 3.0, 7.5])
    rows.append([missing_uid, 4.0, 5.0, 6.0, 8.5])
    with open(root / "annotations.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(_header())
        w.writerows(rows)
    with open(root / "candidates.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seriesuid", "coordX", "coordY", "coordZ", "class"])
        w.writerow([uids[0], *_world(scans[uids[0]][1], scans[uids[0]][2]), 1])
        w.writerow([uids[0], -100.0, -100.0, -300.0, 0])
        w.writerow([uids[2], 0.0, 50.0, -40.0, 0])
    return {"root": root, "scans": scans, "uids": uids, "missing": missing_uid}


def test_luna16_records_folds_and_world_to_voxel(luna_root: dict[str, object]) -> None:
    root, scans, uids = luna_root["root"], luna_root["scans"], luna_root["uids"]
    with pytest.warns(Luna16Warning, match=r"2 annotation\(s\) of 1 series have no \.mhd"):
        records = load_luna16(root)  # type: ignore[arg-type]
    assert [r.series_uid for r in records] == uids
    assert [r.fold for r in records] == [0, 0, 1]
    assert [len(r.nodules) for r in records] == [2, 1, 0]
    assert all(n.malignant is None and n.source == "luna16" for r in records for n in r.nodules)

    train, test = folds(records, 1)
    assert [r.series_uid for r in test] == [uids[2]] and len(train) == 2
    with pytest.raises(ValueError, match="fold 7"):
        folds(records, 7)

    for rec in records[:2]:
        vol = read_image_file(rec.path)
        _, origin, kji = scans[rec.series_uid]  # type: ignore[index]
        np.testing.assert_allclose(vol.geometry.origin_xyz, origin)
        np.testing.assert_allclose(vol.geometry.spacing_zyx, SPACING_XYZ[::-1])
        nod = rec.nodules[0]
        voxel = vol.geometry.mm_to_voxel(nod.center_xyz_mm)
        assert voxel == kji
        assert vol.hu_zyx[voxel] == 400 == vol.hu_zyx.max()

    # the records round-trip through the shared CSV format
    back = read_records_csv(write_records_csv(records, Path(root) / "out" / "records.csv"))  # type: ignore[arg-type]
    assert [len(r.nodules) for r in back] == [2, 1, 0]


def test_luna16_candidates_and_malignancy_merge(luna_root: dict[str, object]) -> None:
    root, scans, uids = luna_root["root"], luna_root["scans"], luna_root["uids"]
    cands = read_candidates(Path(root) / "candidates.csv")  # type: ignore[arg-type]
    assert sorted(cands) == sorted([uids[0], uids[2]])
    assert [label for _, label in cands[uids[0]]] == [1, 0]
    centre = np.asarray(_world(scans[uids[0]][1], scans[uids[0]][2]))  # type: ignore[index]
    lidc = {
        uids[0]: [
            NoduleAnnotation(tuple(centre + np.array([2.0, -1.0, 1.0])), 7.0, True, 4.5, "ground-glass", "smooth"),
            NoduleAnnotation((0.0, 0.0, 0.0), 20.0, False, 1.0, "solid", "smooth"),
        ]
    }
    with pytest.warns(Luna16Warning):
        records = load_luna16(root, candidates_csv=Path(root) / "candidates.csv", malignancy=lidc)  # type: ignore[arg-type]
    first, second = records[0].nodules
    assert first.malignant is True and first.malignancy_score == 4.5 and first.kind == "ground-glass"
    assert first.source == "luna16+lidc" and first.diameter_mm == 6.0  # LUNA16 size kept
    assert second.malignant is None  # no LIDC nodule within max(radius, 5 mm)


def test_luna16_errors(tmp_path: Path, luna_root: dict[str, object]) -> None:
    with pytest.raises(NoImagesError, match="does not exist"):
        load_luna16(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoImagesError, match=r"subset0\.\.subset9"):
        load_luna16(tmp_path / "empty")
    bad = tmp_path / "bad.csv"
    bad.write_text("seriesuid,coordX,coordY,diameter_mm\n1.2.3,1,2,3\n")
    with pytest.raises(UnsupportedDataError, match=r"lacks column.*coordZ") as info:
        load_luna16(luna_root["root"], annotations_csv=bad)  # type: ignore[arg-type]
    assert isinstance(info.value, InputError) and "\n" not in str(info.value)
    bad.write_text("seriesuid,coordX,coordY,coordZ,class\n1.2.3,1,2,3,maybe\n")
    with pytest.raises(UnsupportedDataError, match="class must be 0 or 1"):
        read_candidates(bad)


def test_real_luna16_annotations_csv(luna_root: dict[str, object]) -> None:
    path = need(REAL_ANNOTATIONS)
    table = read_annotations(path)
    nodules = [n for ns in table.values() for n in ns]
    assert len(nodules) == 1182 and len(table) == 599
    assert all(3.0 < n.diameter_mm < 33.0 for n in nodules)
    assert all(uid.startswith(UID_PREFIX) for uid in table)
    # none of those series is in the fixture tree: all skipped and counted
    with pytest.warns(Luna16Warning, match=r"1182 annotation\(s\) of 599 series"):
        records = load_luna16(luna_root["root"], annotations_csv=path)  # type: ignore[arg-type]
    assert len(records) == 3 and not any(r.nodules for r in records)


# ---- LIDC XML -----------------------------------------------------------------------------------
def _circle(cx: float, cy: float, r: float, n: int = 64) -> list[tuple[int, int]]:
    pts = []
    for t in np.linspace(0, 2 * math.pi, n, endpoint=False):
        p = (round(cx + r * math.cos(t)), round(cy + r * math.sin(t)))
        if not pts or p != pts[-1]:
            pts.append(p)
    return pts


def _roi(z: float, pts: list[tuple[int, int]], inclusion: bool = True) -> str:
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in pts)
    return (
        f"<roi><imageZposition>{z}</imageZposition><imageSOP_UID>1.2.{z}</imageSOP_UID>"
        f"<inclusion>{'TRUE' if inclusion else 'FALSE'}</inclusion>{edges}</roi>"
    )


def _nodule(nid: str, rois: str, **ratings: int) -> str:
    chars = "".join(f"<{k}>{v}</{k}>" for k, v in ratings.items())
    return f"<unblindedReadNodule><noduleID>{nid}</noduleID><characteristics>{chars}</characteristics>{rois}</unblindedReadNodule>"


def _session(reader: str, body: str) -> str:
    return (
        f"<readingSession><annotationVersion>3.12</annotationVersion>"
        f"<servicingRadiologistID>{reader}</servicingRadiologistID>{body}</readingSession>"
    )


def test_lidc_xml_synthetic(tmp_path: Path) -> None:
    geom = Geometry((10, 64, 64), (2.0, 0.5, 0.5), (-16.0, 10.0, -50.0))
    zs = [-50.0 + 2.0 * k for k in range(3, 8)]  # slices 3..7
    disc = "".join(_roi(z, _circle(30, 20, 10)) for z in zs)
    holed = disc + _roi(zs[2], _circle(30, 20, 3), inclusion=False)
    ratings = {"calcification": 6, "spiculation": 1, "lobulation": 1}
    small = "<unblindedReadNodule><noduleID>s1</noduleID>" + _roi(zs[0], [(5, 5)]) + "</unblindedReadNodule>"
    non = (
        f"<nonNodule><nonNoduleID>n1</nonNoduleID><imageZposition>{zs[1]}</imageZposition>"
        "<locus><xCoord>50</xCoord><yCoord>50</yCoord></locus></nonNodule>"
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><LidcReadMessage xmlns="http://www.nih.gov">'
        "<ResponseHeader><SeriesInstanceUid>1.2.3</SeriesInstanceUid></ResponseHeader>"
        + _session("r1", _nodule("a", disc, texture=5, malignancy=5, **ratings) + small + non)
        + _session("r2", _nodule("b", holed, texture=4, malignancy=3, **ratings))
        + _session("r3", _nodule("c", disc, texture=5, malignancy=4, **ratings))
        + _session("r4", _nodule("far", _roi(zs[0], _circle(10, 50, 4)), texture=1, malignancy=1, **ratings))
        + "</LidcReadMessage>"
    )
    path = tmp_path / "001.xml"
    path.write_text(xml)

    marks = parse_lidc_xml(path, geom)
    assert [m.nodule_id for m in marks] == ["a", "b", "c", "far"]
    a = marks[0]
    expect = geom.index_to_mm((5, 20, 30))
    np.testing.assert_allclose(a.center_xyz_mm, expect, atol=0.05)
    area_px = a.volume_mm3 / (0.25 * 2.0 * 5)
    assert abs(area_px - math.pi * 10.5**2) < 0.05 * math.pi * 10.5**2  # filled disc incl. outline
    assert a.n_slices == 5 and a.ratings["malignancy"] == 5
    assert marks[1].volume_mm3 < a.volume_mm3  # the exclusion outline is cut out
    assert 2 * 5 < a.max_extent_mm < 2 * 5.5

    everything = parse_lidc_xml(path, geom, include_small=True)
    assert {m.category for m in everything} == {"nodule", "small", "non-nodule"}
    assert cluster_readers(everything)[0].n_readers == 3  # small/non-nodule marks never cluster

    # a callable works like the geometry; spacing then comes from the file's z positions
    def to_mm(cols: np.ndarray, rows: np.ndarray, z: float) -> np.ndarray:
        return geom.index_to_mm(np.stack([np.full_like(cols, (z + 50.0) / 2.0), rows, cols], axis=-1))

    via_callable = parse_lidc_xml(path, to_mm)
    assert via_callable[0].center_xyz_mm == a.center_xyz_mm
    assert abs(via_callable[0].volume_mm3 - a.volume_mm3) < 1e-6

    clusters = cluster_readers(marks)
    assert [c.n_readers for c in clusters] == [3, 1]
    nods = consensus(marks)
    assert nods[0].malignancy_score == 4.0 and nods[0].malignant is True
    assert nods[0].kind == "solid" and nods[0].margin == "smooth" and nods[0].source == "lidc-xml"
    assert nods[1].malignant is False and nods[1].kind == "ground-glass"
    assert len(consensus(marks, min_readers=2)) == 1

    wrong = Geometry((10, 64, 64), (2.0, 0.5, 0.5), (-16.0, 10.0, 150.0))
    with pytest.raises(GeometryError, match="wrong series"):
        parse_lidc_xml(path, wrong)


def test_malignancy_label_rule() -> None:
    assert malignancy_label(4.0) is True and malignancy_label(5) is True
    assert malignancy_label(2.0) is False and malignancy_label(1) is False
    assert malignancy_label(3.0) is None and malignancy_label(3.5) is None and malignancy_label(None) is None
    assert malignancy_label(3.0, indeterminate=False) is False
    assert malignancy_label(3.5, malignant_at=3.5) is True


def test_lidc_xml_real_ct(lidc_volume) -> None:  # type: ignore[no-untyped-def]
    need(LIDC_DIR)
    (xml,) = find_lidc_xml(LIDC_DIR)
    assert xml.name == "071.xml"
    marks = parse_lidc_xml(xml, lidc_volume)
    with open(need(READERS_CSV), newline="") as fh:
        readers = list(csv.DictReader(fh))
    assert len(marks) == len(readers) == 2
    by_id = {m.nodule_id: m for m in marks}
    for row in readers:
        m = by_id[row["nodule_id_in_xml"]]
        assert m.ratings["malignancy"] == int(row["malignancy"])
        assert m.ratings["texture"] == int(row["texture"])
        ref = [float(row[k]) for k in ("centroid_x_mm", "centroid_y_mm", "centroid_z_mm")]
        # the readers CSV averages outline points; we average filled voxels: within 2.5 mm
        assert np.linalg.norm(np.subtract(m.center_xyz_mm, ref)) < 2.5
        # its "approx diameter" is the x extent of the outlines (33.4 mm): in-plane extent is
        # close to it, the equivalent-sphere diameter of this irregular ground glass is smaller
        assert 28.0 < m.max_extent_mm < float(row["approx_diameter_mm"]) + 1.0
        assert 20.0 < m.diameter_mm < m.max_extent_mm
        assert m.n_slices >= int(row["n_contour_slices"]) - 3

    (nod,) = consensus(marks, min_readers=2)
    assert np.linalg.norm(np.subtract(nod.center_xyz_mm, (60.0, 72.0, -103.0))) < 3.0
    assert nod.malignancy_score == 4.5 and nod.malignant is True
    assert nod.kind == "ground-glass" and nod.margin == "smooth"
    (big,) = consensus(marks, diameter="max_extent")
    assert 30.0 < big.diameter_mm < 34.0
    assert lidc_volume.geometry.contains_mm(nod.center_xyz_mm)
    # point marks (< 3 mm) and non-nodules are returned only on request
    assert len(parse_lidc_xml(xml, lidc_volume, include_small=True)) > 10


# ---- DICOM folders + CSV ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dicom_studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from nodeview.core.io.dicom_write import SeriesSpec, write_series

    base = tmp_path_factory.mktemp("csvsrc")
    out: dict[str, object] = {"base": base}
    for n, (origin, kji) in enumerate([((-20.0, -30.0, -100.0), (4, 5, 9)), ((10.5, 2.25, 40.0), (6, 10, 3))]):
        hu = np.full((8, 16, 16), -900, dtype=np.int16)
        hu[kji] = 300
        spec = SeriesSpec(spacing_zyx=(2.5, 0.9, 0.9), origin_xyz=origin, seed=100 + n)
        write_series(hu, base / "studies" / f"patient{n}" / "ct", spec)
        geom = Geometry((8, 16, 16), (2.5, 0.9, 0.9), origin)
        out[f"s{n}"] = (f"studies/patient{n}/ct", tuple(geom.index_to_mm(kji)), kji)
    return out


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_source_relative_paths_and_uids(dicom_studies: dict[str, object]) -> None:
    from nodeview.core.io.study import open_study

    base: Path = dicom_studies["base"]  # type: ignore[assignment]
    (rel0, xyz0, kji0), (rel1, xyz1, kji1) = dicom_studies["s0"], dicom_studies["s1"]  # type: ignore[misc]
    header = ["study", "x_mm", "y_mm", "z_mm", "diameter_mm", "malignant", "kind"]
    path = _write_csv(
        base / "nodules.csv",
        header,
        [[rel0, *xyz0, 6.0, "1", "solid"], [rel0, 0.0, 0.0, -95.0, 4.0, "", ""], [rel1, "", "", "", "", "", ""]],
    )
    records = load_csv_source(path)
    assert [r.scan_id for r in records] == [rel0, rel1]
    assert [len(r.nodules) for r in records] == [2, 0]
    first = records[0].nodules[0]
    assert first.malignant is True and first.kind == "solid" and records[0].nodules[1].malignant is None
    vol = open_study(records[0].path)
    assert vol.geometry.mm_to_voxel(first.center_xyz_mm) == kji0
    assert vol.hu_zyx[kji0] == 300

    # by SeriesInstanceUID under a root
    uid1 = open_study(base / rel1).series_uid
    by_uid = _write_csv(base / "by_uid.csv", header[:5], [[uid1, *xyz1, 5.0]])
    (rec,) = load_csv_source(by_uid, root=base / "studies")
    assert rec.series_uid == uid1 and Path(rec.path) == (base / rel1).resolve()
    assert open_study(rec.path).geometry.mm_to_voxel(rec.nodules[0].center_xyz_mm) == kji1


def test_csv_source_errors(dicom_studies: dict[str, object]) -> None:
    base: Path = dicom_studies["base"]  # type: ignore[assignment]
    rel0 = dicom_studies["s0"][0]  # type: ignore[index]
    bad = _write_csv(base / "bad.csv", ["study", "x_mm", "y_mm", "diameter_mm"], [[rel0, 1, 2, 3]])
    with pytest.raises(UnsupportedDataError, match=r"lacks column.*z_mm"):
        load_csv_source(bad)
    unknown = _write_csv(
        base / "unknown.csv", ["study", "x_mm", "y_mm", "z_mm", "diameter_mm"], [["nowhere", 1, 2, 3, 4]]
    )
    with pytest.raises(NoImagesError, match="line 2: study 'nowhere'") as info:
        load_csv_source(unknown, root=base / "studies")
    assert "\n" not in str(info.value)
    kind = _write_csv(
        base / "kind.csv", ["study", "x_mm", "y_mm", "z_mm", "diameter_mm", "kind"], [[rel0, 1, 2, 3, 4, "fluffy"]]
    )
    with pytest.raises(UnsupportedDataError, match="kind 'fluffy'"):
        load_csv_source(kind)
