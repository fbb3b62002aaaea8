"""How much of Lung-PET-CT-Dx-A0001's tumour the finding on it measures, per kernel.

The radiologists boxed the tumour on each image it lies on (VOC XML named by the image's
SOPInstanceUID). For each kernel this runs the detector as the app does (``min_score`` 0, the
findings at the operating threshold), takes the findings whose centre lies in the union of those
boxes (5 mm margin, as :mod:`training.engine.evaluate_real` counts them) and reports, for the best
of them:

* its diameter, type, category and Lung-RADS hint;
* ``boxed_tissue_covered``: the share of the boxed tissue (voxels > -300 HU inside the slice boxes:
  the tumour, and whatever chest wall, spine or aorta the boxes take in) that the finding's voxels
  cover;
* ``voxels_in_boxes``: the share of the finding's voxels inside the slice boxes (the rest: spiculae
  around the boxes, the hilum, the aorta).

Usage::

    python -m training.evaluation.mass_extent --real-ct ../shared/data/real-ct \\
        --out training/results/a0001-mass-extent.json
"""

from __future__ import annotations

import argparse
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from nodeview.core.detect.detector import Detector
from nodeview.core.detect.models import default_model_path
from nodeview.core.io.study import open_study
from nodeview.core.volume import Volume

#: Boxed voxels denser than this are tissue (the aerated lung inside a box is not the tumour).
TISSUE_HU = -300
#: A finding is on the tumour when its centre lies within this margin (mm) of the boxes' union.
MARGIN_MM = 5.0


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real-ct", required=True, help="the folder holding Lung-PET-CT-Dx-A0001")
    p.add_argument("--model", help="nodule model (default: the bundled one)")
    p.add_argument("--reranker", help="re-ranker (default: the one bundled beside the model)")
    p.add_argument("--out", help="write the results as JSON")
    return p


def slice_boxes(series: Path, volume: Volume, annotations: Path) -> dict[int, tuple[int, int, int, int]]:
    """{slice index: (xmin, ymin, xmax, ymax) pixels}: each annotated image's box on its slice."""
    import pydicom

    xmls = {p.stem: p for p in annotations.glob("*.xml")}
    boxes: dict[int, tuple[int, int, int, int]] = {}
    for f in sorted(p for p in series.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:  # not DICOM (a README, a checksum file)
            continue
        xml = xmls.get(str(getattr(ds, "SOPInstanceUID", "")))
        if xml is None:
            continue
        k = int(round(float(volume.geometry.mm_to_index([float(v) for v in ds.ImagePositionPatient])[0])))
        for b in ET.parse(xml).iter("bndbox"):
            x0, y0, x1, y1 = (int(float(b.findtext(t) or 0)) for t in ("xmin", "ymin", "xmax", "ymax"))
            boxes[k] = (x0, y0, x1, y1)
    return boxes


def measure_kernel(det: Detector, series: Path, annotations: Path) -> dict[str, Any]:
    volume = open_study([series])
    boxes = slice_boxes(series, volume, annotations)
    if not boxes:
        raise SystemExit(f"no radiologists' box matches an image of {series}")
    boxed = np.zeros(volume.shape_zyx, dtype=bool)
    corners = []
    for k, (x0, y0, x1, y1) in boxes.items():
        boxed[k, y0 : y1 + 1, x0 : x1 + 1] = True
        corners += [volume.geometry.index_to_mm((k, j, i)) for j in (y0, y1) for i in (x0, x1)]
    lo = np.min(corners, axis=0) - MARGIN_MM
    hi = np.max(corners, axis=0) + MARGIN_MM
    result = det.detect(volume, min_score=0.0)
    kept = [f for f in result.findings if f.score >= det.info.threshold]
    on = [f for f in kept if np.all(np.asarray(f.center_xyz_mm) >= lo) and np.all(np.asarray(f.center_xyz_mm) <= hi)]
    out: dict[str, Any] = {"findings_on_tumour": len(on), "false_positives": len(kept) - len(on)}
    if not on:
        return out
    f = max(on, key=lambda x: x.score)
    tissue = boxed & (volume.hu_zyx > TISSUE_HU)
    got = np.zeros(volume.shape_zyx, dtype=bool)
    if f.voxels is not None and len(f.voxels):
        got.reshape(-1)[f.voxels] = True
    n = int(got.sum())
    out.update(
        diameter_mm=round(f.diameter_mm, 1),
        long_axis_mm=round(f.long_axis_mm, 1),
        type=f.type,
        category=f.category,
        lung_rads=f.lung_rads,
        voxels=n,
        boxed_tissue_covered=round(float((got & tissue).sum()) / max(int(tissue.sum()), 1), 3),
        voxels_in_boxes=round(float((got & boxed).sum()) / max(n, 1), 3),
        boxed_slices=len(boxes),
    )
    return out


def main(args: argparse.Namespace) -> dict[str, Any]:
    det = Detector(Path(args.model) if args.model else default_model_path(), reranker=args.reranker or "auto")
    root = Path(args.real_ct) / "Lung-PET-CT-Dx-A0001"
    results = {
        kernel: measure_kernel(det, root / f"chest-5mm-kernel-{kernel}", root / "annotations") for kernel in ("L", "B")
    }
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
