"""Lung-window pictures of transplants (before | after; axial above, coronal below) to look at seams.

python -m training.data.transplant_pictures --out training/results/transplant-pictures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _win(a: np.ndarray) -> np.ndarray:
    return (np.clip((a.astype(np.float32) + 1350.0) / 1500.0, 0, 1) * 255).astype(np.uint8)


def main(args: argparse.Namespace) -> list[Path]:
    from PIL import Image

    from training.data.transplant import load_nodule, make_site, read_nodule_table, real_backgrounds, transplant_many

    rows = read_nodule_table(args.nodules)
    nods = [load_nodule(args.nodules, r) for r in rows[: args.scan]]
    pick = (
        [n for n in nods if n.texture <= 3][:2]
        + [n for n in nods if n.juxta_pleural and n.diameter_mm > 8][:2]
        + [n for n in nods if n.diameter_mm > 12 and not n.juxta_pleural][:1]
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, vol in real_backgrounds(args.real_ct).items():
        if name not in args.backgrounds:
            continue
        new, anns, names = transplant_many(vol, pick, 5, site=make_site(vol))
        g = vol.geometry
        for a, nm in zip(anns, names, strict=True):
            k, j, i = np.rint(g.mm_to_index(a.center_xyz_mm)).astype(int)
            h = 48
            ax = np.concatenate([_win(v.hu_zyx[k, j - h : j + h, i - h : i + h]) for v in (vol, new)], 1)
            zs = int(np.ceil(h * g.spacing_zyx[1] / g.spacing_zyx[0]))
            co = np.concatenate([_win(v.hu_zyx[max(k - zs, 0) : k + zs, j, i - h : i + h]) for v in (vol, new)], 1)
            height = int(co.shape[0] * g.spacing_zyx[0] / g.spacing_zyx[1])
            co = np.asarray(Image.fromarray(co).resize((co.shape[1], height), Image.BILINEAR))
            im = np.concatenate([ax, co], 0)
            path = out / f"{name.split('-')[0]}_{nm}_{a.location}_{a.kind}.png"
            Image.fromarray(im).resize((im.shape[1] * 2, im.shape[0] * 2), Image.NEAREST).save(path)
            written.append(path)
    print("\n".join(map(str, written)))
    return written


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.data.transplant_pictures", description=__doc__.splitlines()[0])
    p.add_argument("--nodules", default="../shared/data/lidc-nodules")
    p.add_argument("--real-ct", default="../shared/data/real-ct")
    p.add_argument("--backgrounds", nargs="+", default=["lidc0002-k0-155", "a0001L-k0-37"])
    p.add_argument("--scan", type=int, default=120, help="look among the first N nodules of the table")
    p.add_argument("--out", default="runs/transplant-pictures")
    return p


if __name__ == "__main__":
    main(get_args_parser().parse_args())
