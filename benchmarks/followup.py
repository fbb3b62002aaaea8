"""Follow-up benchmark: registering a prior to the current study and matching their findings.

Makes two 300-slice 512 x 512 studies of one synthetic patient (``training.data.synth``, 4 nodules):
the prior, and the current = the prior resampled through a known rigid transform (3 degrees, 20 mm:
the patient lay differently) with fresh noise. Both are written as DICOM series, then, in the same
run:

* reference: loading both series with ``nodeview.core.io.study.open_study`` (what opening them costs);
* measured:  ``nodeview.core.followup.registration.register`` (lungs, rigid + affine) and
  ``compare_findings`` (Hungarian matching, growth, VDT) for the findings measured at the nodules;
* also:      ``find_local_priors`` finding the prior beside the current study (what ``--prior auto``
  and the GUI's "Compare with prior (found: ...)" cost: the headers of both series).

It prints the median times, their ratio, the registration error at the nodules against the known
transform and the lung-surface distance, and PASS/MISS against the target (<= 10 s on 2 cores).

Run from the repository root::

    .venv/bin/python benchmarks/followup.py [--slices 300] [--repeats 3] [--seed 11]

It always exits 0: the PASS/MISS line is information, not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from nodeview.core.detect.findings import measure_finding  # noqa: E402
from nodeview.core.detect.lung import segment_lungs  # noqa: E402
from nodeview.core.followup.compare import compare_findings  # noqa: E402
from nodeview.core.followup.priors import find_local_priors  # noqa: E402
from nodeview.core.followup.registration import apply, register, rigid_matrix  # noqa: E402
from nodeview.core.io.dicom_write import SeriesSpec, write_series  # noqa: E402
from nodeview.core.io.study import open_study  # noqa: E402

TARGET_S = 10.0


def _resample(hu: np.ndarray, volume, matrix: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    import SimpleITK as sitk

    from nodeview.core.io.sitk import volume_to_sitk

    image = volume_to_sitk(volume)
    image = sitk.Cast(image, sitk.sitkFloat32)
    t = sitk.AffineTransform(3)
    t.SetMatrix([float(v) for v in matrix[:3, :3].reshape(-1)])
    t.SetTranslation([float(v) for v in matrix[:3, 3]])
    out = sitk.Resample(image, image, t, sitk.sitkLinear, -1024.0, sitk.sitkFloat32)
    return np.asarray(sitk.GetArrayFromImage(out))


def make_studies(folder: Path, slices: int, seed: int) -> tuple[np.ndarray, list[tuple[float, float, float]], float]:
    """Write prior/ and current/ under ``folder``; returns (current->prior matrix, prior nodule centres,
    nodule diameters as a list)."""
    from training.data.synth.generator import generate_scan_full

    scan = generate_scan_full(
        seed,
        (slices, 512, 512),
        (1.0, 0.7, 0.7),
        n_nodules=4,
        kinds=["solid"],
        diameter_range_mm=(6.0, 14.0),
        noise_sd_hu=15,
        contrast=False,
        patient_position="HFS",
    )
    prior = scan.volume
    g = prior.geometry
    matrix = rigid_matrix((1.5, -1.0, 3.0), (12.0, -10.0, 12.0), g.center_mm())
    moved = _resample(prior.hu_zyx, prior, matrix)
    moved += np.random.default_rng(seed).normal(0.0, 10.0, moved.shape).astype(np.float32)
    current_hu = np.clip(np.rint(moved), -1024, 3071).astype(np.int16)
    del moved
    common = {
        "spacing_zyx": tuple(float(v) for v in g.spacing_zyx),
        "origin_xyz": tuple(float(v) for v in g.origin_xyz),
        "patient_id": "BENCH-1",
        "patient_name": "BENCH^FOLLOWUP",
    }
    write_series(prior.hu_zyx, folder / "prior", SeriesSpec(study_date="20250302", seed=1, **common))
    write_series(current_hu, folder / "current", SeriesSpec(study_date="20260305", seed=2, **common))
    centres = [a.center_xyz_mm for a in scan.annotations]
    return matrix, centres, [a.diameter_mm for a in scan.annotations]  # type: ignore[return-value]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(
        f"NodeView follow-up benchmark: 2 x {args.slices} x 512 x 512, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    folder = Path(tempfile.mkdtemp(prefix="nv-followup-"))
    try:
        t = time.perf_counter()
        matrix, centres, diameters = make_studies(folder, args.slices, args.seed)
        print(f"made and wrote the studies in {time.perf_counter() - t:.1f} s; {len(centres)} nodules")
        loads, runs = [], []
        prior = current = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            prior = open_study(folder / "prior")
            current = open_study(folder / "current")
            loads.append(time.perf_counter() - t)
        assert prior is not None and current is not None
        inverse = np.linalg.inv(matrix)
        lung_p = segment_lungs(prior.hu_zyx, prior.geometry)
        lung_c = segment_lungs(current.hu_zyx, current.geometry)
        prior_f = [
            measure_finding(prior, lung_p, c, d, 0.9, 0.2, finding_id=n + 1)
            for n, (c, d) in enumerate(zip(centres, diameters, strict=True))
        ]
        current_f = [
            measure_finding(current, lung_c, tuple(apply(inverse, np.asarray([c]))[0]), d, 0.9, 0.2, finding_id=n + 1)
            for n, (c, d) in enumerate(zip(centres, diameters, strict=True))
        ]
        reg = cmp = None
        for _ in range(args.repeats):
            t = time.perf_counter()
            reg = register(current, prior)
            cmp = compare_findings(current_f, prior_f, reg, current.patient.study_date, prior.patient.study_date)
            runs.append(time.perf_counter() - t)
        assert reg is not None and cmp is not None
        searches, found = [], []
        for _ in range(args.repeats):  # the prior found beside the current study (headers of both)
            t = time.perf_counter()
            found = find_local_priors([folder / "current"], current.patient, current.series_uid)
            searches.append(time.perf_counter() - t)
        assert [c.series_uid for c in found] == [prior.series_uid], "the prior was not found beside the current study"
        pts = apply(inverse, np.asarray(centres))
        error = np.linalg.norm(reg.to_prior(pts) - apply(matrix, pts), axis=1)
        matched = sum(1 for c in cmp.changes.values() if c.prior is not None and c.prior.id == c.finding_id)
        load_s, run_s = statistics.median(loads), statistics.median(runs)
        print(f"reference  load both studies (open_study x 2): median {load_s:.2f} s  {[round(v, 2) for v in loads]}")
        print(f"measured   register + match:                  median {run_s:.2f} s  {[round(v, 2) for v in runs]}")
        print(f"ratio      register + match / load both: {run_s / load_s:.2f}")
        print(
            f"also       finding the prior beside the current study (find_local_priors): median "
            f"{statistics.median(searches):.2f} s  {[round(v, 2) for v in searches]}"
        )
        print(
            f"registration error at the {len(pts)} nodules: max {error.max():.2f} mm, mean {error.mean():.2f} mm; "
            f"lung surface {reg.surface_before_mm:.2f} -> {reg.surface_after_mm:.2f} mm; "
            f"{matched}/{len(current_f)} findings matched to their own prior"
        )
        print(
            f"{'PASS' if run_s <= TARGET_S else 'MISS'}: register + match {run_s:.2f} s (target <= {TARGET_S:g} s); "
            f"load average {os.getloadavg()[0]:.1f} at the end"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
