"""Write slabs of a real CT that stay clear of its own nodules, as backgrounds for nodule insertion.

LIDC-IDRI-0002 is also the real scan the default model is evaluated on. Inserting training
nodules near its reader-marked nodule would leak that nodule into training, so only slabs at
least ``--margin-mm`` away from it (in z) are used:

    python -m training.data.crop_real --src resources/demo/LIDC-IDRI-0002 --out data/real-crops \\
        --avoid-z -120.75 -87.0 --margin-mm 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from nodeview.core.io.dicom_write import SeriesSpec, write_series
from nodeview.core.io.study import open_study


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument(
        "--avoid-z",
        type=float,
        nargs=2,
        metavar=("Z0", "Z1"),
        required=True,
        help="patient z range (mm) of the scan's own nodules",
    )
    p.add_argument("--margin-mm", type=float, default=20.0)
    p.add_argument("--min-slices", type=int, default=24)
    return p


def main(args: argparse.Namespace) -> list[Path]:
    volume = open_study(args.src)
    g = volume.geometry
    if not g.is_axis_aligned:
        raise SystemExit("crop_real expects an axis-aligned scan")
    z = g.index_to_mm(np.stack([np.arange(g.shape_zyx[0]), np.zeros(g.shape_zyx[0]), np.zeros(g.shape_zyx[0])], 1))[
        :, 2
    ]
    lo, hi = sorted(args.avoid_z)
    keep = (z < lo - args.margin_mm) | (z > hi + args.margin_mm)
    out = []
    runs = np.split(np.flatnonzero(keep), np.flatnonzero(np.diff(np.flatnonzero(keep)) > 1) + 1)
    for n, run in enumerate(r for r in runs if len(r) >= args.min_slices):
        k0, k1 = int(run[0]), int(run[-1]) + 1
        folder = Path(args.out) / f"slab{n}_k{k0}-{k1}"
        if not folder.exists():
            spec = SeriesSpec(
                spacing_zyx=tuple(float(v) for v in g.spacing_zyx),
                origin_xyz=tuple(g.index_to_mm((k0, 0, 0))),
                orientation=tuple(float(v) for v in (*g.direction[:, 0], *g.direction[:, 1])),
                patient_position=volume.patient_position or "HFS",
                series_description=f"LIDC-IDRI-0002 slab {k0}-{k1}",
                seed=1000 + n,
                patient_name="",
                patient_id="LIDC-IDRI-0002-slab",
            )
            write_series(np.ascontiguousarray(volume.hu_zyx[k0:k1]), folder, spec)
        out.append(folder)
        print(folder, k1 - k0, "slices")
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())
