"""The real LIDC-IDRI-0002 chest CT: geometry against SimpleITK, and the readers' nodule."""

import csv
import re

import numpy as np
import SimpleITK as sitk

from nodeview.core.io.dicom import discover
from nodeview.core.io.sitk import geometry_from_sitk

from .conftest import SHARED_DATA


def _reader_rows() -> list[dict[str, str]]:
    with open(SHARED_DATA / "real-ct" / "LIDC-IDRI-0002-readers.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_discovery_skips_the_xml_and_finds_one_series(lidc_dir):
    d = discover(lidc_dir)
    assert d.n_files == 262
    assert [s.reason for s in d.skipped] == ["not a DICOM file"]  # 071.xml
    (series,) = d.series
    assert series.n_images == 261 and series.modality == "CT" and series.patient_position == "FFS"


def test_geometry_and_hu_equal_simpleitk(lidc_dir, lidc_volume):
    series_dir = next(p for p in lidc_dir.rglob("*.dcm")).parent
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series_dir)))
    reader.SetOutputPixelType(sitk.sitkInt16)
    image = reader.Execute()
    assert geometry_from_sitk(image).isclose(lidc_volume.geometry, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), lidc_volume.hu_zyx)
    assert lidc_volume.geometry.shape_zyx == (261, 512, 512)
    np.testing.assert_allclose(lidc_volume.spacing_zyx, (1.25, 0.681641, 0.681641), atol=1e-6)


def test_reader_nodule_maps_to_nodule_density(lidc_volume):
    """The readers' nodule centre lands on the nodule, not on aerated lung.

    This nodule is ground glass (texture 1-2 in both readings), so its density is between
    aerated lung (about -850 HU) and soft tissue; the check is that the neighbourhood is clearly
    denser than normal lung and that the XML contours agree with the CSV centre.
    """
    rows = _reader_rows()
    assert len(rows) == 2
    g = lidc_volume.geometry
    lung = lidc_volume.hu_zyx[100:200, 150:350, 100:200]
    aerated = float(np.median(lung[(lung > -1000) & (lung < -700)]))
    for row in rows:
        centre = np.array([float(row["centroid_x_mm"]), float(row["centroid_y_mm"]), float(row["centroid_z_mm"])])
        k, j, i = g.mm_to_voxel(centre)
        r = 3  # ~2 mm in-plane, +-1 slice
        local = lidc_volume.hu_zyx[k - 1 : k + 2, j - r : j + r + 1, i - r : i + r + 1]
        assert np.median(local) > aerated + 100, (np.median(local), aerated)
        assert np.median(local) < 100  # not bone, not contrast


def test_xml_contours_agree_with_csv_centre(lidc_dir, lidc_volume):
    xml = next(lidc_dir.rglob("071.xml")).read_text()
    rows = {r["nodule_id_in_xml"]: r for r in _reader_rows()}
    g = lidc_volume.geometry
    for nid, row in rows.items():
        start = xml.index(f"<noduleID>{nid}</noduleID>")
        block = xml[start : xml.index("</unblindedReadNodule>", start)]
        zs = [float(z) for z in re.findall(r"<imageZposition>([-\d.]+)</imageZposition>", block)]
        xs = [int(v) for v in re.findall(r"<xCoord>(\d+)</xCoord>", block)]
        ys = [int(v) for v in re.findall(r"<yCoord>(\d+)</yCoord>", block)]
        k = g.mm_to_index((0, 0, (min(zs) + max(zs)) / 2))[0]
        centre = g.index_to_mm((k, (min(ys) + max(ys)) / 2, (min(xs) + max(xs)) / 2))
        csv_centre = [float(row[f"centroid_{a}_mm"]) for a in "xyz"]
        assert np.linalg.norm(centre - csv_centre) < 5.0
