"""The malignancy head alone, refitted on the LIDC readers' ratings with the rest of the network frozen.

The shipped ResNet-50's backbone, nodule head and diameter head stay bit for bit what they are, so
every detection, the re-ranker's calibration and the operating threshold stay valid; only the
linear malignancy head (2048 features -> 1 logit) is replaced. Its label is the readers' max-voting
malignancy rating of each real LIDC nodule (``training.data.real_split.malignant_label``: >= 4
malignant, <= 2 benign, 3 left out): **the readers' suspicion on CT, not pathology**.

Data: the packed patches of the real-transplant scans (``training.data.pack_patches``): every
patch of a transplanted nodule with a known label, the nodule at its centre and its rotated copies
and the proposals that hit it off centre, i.e. the views the app scores. Each training patch is
also seen through ``--copies`` augmentations (``objectives.augment``: flips, zoom, HU gain and
noise). The features are the frozen backbone's (eval mode, no dropout).

Fit: L2-regularised logistic regression (full batch, L-BFGS) on standardised features, folded back
into one weight vector and bias for the graph. Each real nodule weighs the same however often it
was transplanted and however many patches it has. The L2 strength is chosen by cross-validation
over the **training patients** (``--folds`` groups by patient, per-placement AUC of the mean
logit). The validation patients' pack gives the proxy AUC reported beside the old head's, with a
paired bootstrap over patients; the end-to-end figure is ``evaluate_real``'s on the written file.

Writes into ``--out``: ``head.npz`` (weight, bias: float32), ``results.json`` and, with
``--onnx-out``, a copy of ``--onnx`` whose malignancy head initialisers hold the new weights
(float16, as the file stores all weights) and whose metadata say what the score now means
(``version``, ``weights_sha256``, ``outputs``, ``malignancy_label``, ``malignancy_head``).
The copy is checked: nodule probabilities and diameters identical to the original's on real
patches, malignancy equal to ``sigmoid(features . w + b)``.

    python -m training.engine.train_malignancy --onnx resources/models/nodeview-nodule.onnx \\
        --train runs/pack/train0 --train runs/pack/train1 --train-data data/real-train \\
        --val runs/pack/val --val-data data/real-val --out runs/malignancy21 \\
        --onnx-out runs/malignancy21/nodeview-nodule.onnx
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from training.data.packed import dequantise, read_pack
from training.engine.objectives import UNKNOWN, augment

LAMBDAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
VERSION_SUFFIX = ".1"
MALIGNANCY_OUTPUT = (
    "probability that LIDC-IDRI readers would rate the nodule's malignancy >= 4 rather than <= 2 "
    "(their consensus of suspicion on CT, not pathology; see the model card)"
)
MALIGNANCY_LABEL = (
    "LIDC-IDRI readers' max-voting malignancy rating (1-5): >= 4 malignant, <= 2 benign, 3 left out. "
    "Suspicion on CT, not pathology"
)


# ----------------------------------------------------------------------------------------------- data


def placements(data_dir: str | Path) -> dict[str, list[dict[str, str]]]:
    """scan id -> its transplanted nodules in annotation order (``transplants.csv``: patient_id, file)."""
    out: dict[str, list[dict[str, str]]] = {}
    with open(Path(data_dir) / "transplants.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["scan_id"], []).append(row)
    return out


def labelled_rows(folders: list[str], data_dir: str | Path) -> dict[str, Any]:
    """The packed rows of nodules with a known label: patches (uint8), label, placement key, patient, nodule file."""
    arrays, scan_ids = read_pack([Path(f) for f in folders])
    keep = np.flatnonzero((arrays["nodule"] > 0) & (arrays["malignant"] != UNKNOWN) & (arrays["nodule_id"] >= 0))
    table = placements(data_dir)
    patient, nodule_file, placement = [], [], []
    for i in keep:
        scan = scan_ids[int(arrays["scan"][i])]
        k = int(arrays["nodule_id"][i])
        rows = table.get(scan)
        if rows is None or k >= len(rows):
            raise ValueError(f"{scan} nodule {k} is not in {data_dir}/transplants.csv: pack and data disagree")
        patient.append(rows[k]["patient_id"])
        nodule_file.append(rows[k]["file"])
        placement.append(f"{scan}#{k}")
    return {
        "patches": arrays["patches"][keep],
        "label": arrays["malignant"][keep].astype(np.float32),
        "placement": np.asarray(placement),
        "patient": np.asarray(patient),
        "nodule": np.asarray(nodule_file),
    }


def check_split(patients: NDArray[Any], split: str, split_csv: str | None) -> None:
    """Every patient of the rows belongs to ``split`` in the committed split file."""
    from training.data.real_split import DEFAULT_SPLIT_CSV, read_split

    assignment = read_split(split_csv or DEFAULT_SPLIT_CSV)
    wrong = sorted({p for p in patients.tolist() if assignment.get(p) != split})
    if wrong:
        raise ValueError(f"{len(wrong)} patient(s) of the {split} rows are not {split} patients: {wrong[:3]}")


# ------------------------------------------------------------------------------------------- features


def load_network(onnx_path: str | Path) -> torch.nn.Module:
    from training.models.nodule_net import NoduleNet
    from training.models.onnx_weights import state_dict_from_onnx

    model = NoduleNet()
    model.load_state_dict(state_dict_from_onnx(onnx_path))
    return model.eval()


@torch.no_grad()
def features(
    model: torch.nn.Module, patches: NDArray[np.uint8], copies: int, seed: int, batch: int = 256
) -> NDArray[np.float32]:
    """(copies + 1, N, 2048) backbone features: the patches as packed, then ``copies`` augmentations."""
    gen = torch.Generator().manual_seed(seed)
    out = np.empty((copies + 1, len(patches), model.nodule_head.in_features), np.float32)
    for s in range(0, len(patches), batch):
        x = torch.from_numpy(dequantise(patches[s : s + batch]))
        for c in range(copies + 1):
            xc = x if c == 0 else augment(x, torch.ones(len(x)), gen)[0]
            out[c, s : s + len(x)] = model.backbone(xc).numpy()
    return out


# ------------------------------------------------------------------------------------------------ fit


def group_weights(groups: NDArray[Any]) -> NDArray[np.float64]:
    """Each group (real nodule) weighs 1 in total, spread over its rows; normalised to mean 1."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return w * len(w) / w.sum()


def fit_logistic(
    x: NDArray[np.float32], y: NDArray[np.float32], weight: NDArray[np.float64], lam: float, iters: int = 200
) -> tuple[NDArray[np.float64], float]:
    """Weighted L2 logistic regression; returns (w, b) on the raw features (standardisation folded in)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-6
    xs = torch.from_numpy(((x - mean) / std).astype(np.float32))
    yt = torch.from_numpy(y.astype(np.float32))
    wt = torch.from_numpy(weight.astype(np.float32))
    w = torch.zeros(x.shape[1], requires_grad=True)
    p = float(np.clip(np.average(y, weights=weight), 1e-3, 1 - 1e-3))
    b = torch.tensor(float(np.log(p / (1 - p))), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = xs @ w + b
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(z, yt, reduction="none") * wt).mean()
        loss = loss + 0.5 * lam * (w * w).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    w_raw = w.detach().double().numpy() / std
    b_raw = float(b.detach()) - float((w.detach().double().numpy() * mean / std).sum())
    return w_raw, b_raw


def auc(pos: NDArray[Any], neg: NDArray[Any]) -> float:
    """Mann-Whitney AUC, ties counting half."""
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    values = np.concatenate([pos, neg])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for v in np.unique(values):  # average ranks of ties
        tie = values == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def per_placement(logit: NDArray[Any], label: NDArray[Any], placement: NDArray[Any]) -> tuple[NDArray[Any], ...]:
    """Mean logit and label per placement (one transplanted nodule in one scan), and its index per row."""
    keys, inverse = np.unique(placement, return_inverse=True)
    sums = np.bincount(inverse, weights=logit, minlength=len(keys))
    counts = np.bincount(inverse, minlength=len(keys))
    labels = np.zeros(len(keys))
    labels[inverse] = label
    return sums / counts, labels, keys


def placement_auc(logit: NDArray[Any], label: NDArray[Any], placement: NDArray[Any]) -> float:
    score, lab, _ = per_placement(logit, label, placement)
    return auc(score[lab > 0.5], score[lab <= 0.5])


def patient_folds(patients: NDArray[Any], folds: int, seed: int) -> NDArray[np.int64]:
    """A fold index per row such that all rows of one patient share a fold."""
    uniq = np.unique(patients)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(uniq).tolist(), (np.arange(len(uniq)) % folds).tolist(), strict=True))
    return np.array([fold_of[p] for p in patients.tolist()], dtype=np.int64)


def choose_lambda(
    feats: NDArray[np.float32], data: dict[str, Any], folds: int, seed: int, lambdas: tuple[float, ...] = LAMBDAS
) -> dict[str, Any]:
    """Grouped (by patient) k-fold CV over the training rows: mean per-placement AUC for each L2 strength."""
    fold = patient_folds(data["patient"], folds, seed)
    copies = feats.shape[0]
    table: dict[str, list[float]] = {}
    for lam in lambdas:
        scores = []
        for k in range(folds):
            tr, te = fold != k, fold == k
            x = feats[:, tr].reshape(-1, feats.shape[2])
            y = np.tile(data["label"][tr], copies)
            wgt = np.tile(group_weights(data["nodule"][tr]), copies)
            w, b = fit_logistic(x, y, wgt, lam)
            logit = feats[0, te] @ w + b
            scores.append(placement_auc(logit, data["label"][te], data["placement"][te]))
        table[f"{lam:g}"] = scores
    means = {k: float(np.mean(v)) for k, v in table.items()}
    best = max(means, key=lambda k: means[k])
    return {"folds": folds, "auc_by_lambda": means, "auc_by_fold": table, "lambda": float(best)}


def paired_bootstrap(
    new: NDArray[Any], old: NDArray[Any], label: NDArray[Any], groups: NDArray[Any], n: int, seed: int
) -> dict[str, float]:
    """AUCs of two scorings of the same placements and their difference, resampling patients (95 % percentile)."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in uniq]
    diffs, a_new, a_old = [], [], []
    for _ in range(n):
        idx = np.concatenate([members[i] for i in rng.integers(0, len(uniq), len(uniq))])
        pos, neg = label[idx] > 0.5, label[idx] <= 0.5
        if not pos.any() or not neg.any():
            continue
        an, ao = auc(new[idx][pos], new[idx][neg]), auc(old[idx][pos], old[idx][neg])
        a_new.append(an)
        a_old.append(ao)
        diffs.append(an - ao)
    pos, neg = label > 0.5, label <= 0.5
    point_new, point_old = auc(new[pos], new[neg]), auc(old[pos], old[neg])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {
        "auc_new": point_new,
        "auc_new_ci": [float(x) for x in np.percentile(a_new, [2.5, 97.5])],
        "auc_old": point_old,
        "auc_old_ci": [float(x) for x in np.percentile(a_old, [2.5, 97.5])],
        "difference": point_new - point_old,
        "difference_ci": [float(lo), float(hi)],
        "bootstrap": len(diffs),
    }


# --------------------------------------------------------------------------------------------- export


def write_onnx(src: str | Path, out: str | Path, w: NDArray[Any], b: float, summary: dict[str, Any]) -> dict[str, str]:
    """A copy of ``src`` with the malignancy head's initialisers replaced and its metadata updated."""
    import onnx
    from onnx import numpy_helper

    from training.export.onnx import weights_sha256
    from training.models.nodule_net import NoduleNet
    from training.models.onnx_weights import state_dict_from_onnx

    proto = onnx.load(str(src))
    new_arrays = {
        "model.malignancy_head.weight": np.asarray(w, np.float32).reshape(1, -1),
        "model.malignancy_head.bias": np.asarray([b], np.float32),
    }
    replaced = set()
    for init in proto.graph.initializer:
        for base, arr in new_arrays.items():
            if init.name in (base, base + "_fp16"):
                dtype = np.float16 if init.name.endswith("_fp16") else np.float32
                if tuple(init.dims) != arr.shape:
                    raise ValueError(f"{init.name}: shape {tuple(init.dims)} != {arr.shape}")
                init.CopyFrom(numpy_helper.from_array(arr.astype(dtype), init.name))
                replaced.add(base)
    if replaced != set(new_arrays):
        raise ValueError(f"{src} has no malignancy head initialisers {sorted(set(new_arrays) - replaced)}")
    old = {p.key: p.value for p in proto.metadata_props}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))  # weights first: the sha256 is of the state dict the graph now holds
    model = NoduleNet()
    model.load_state_dict(state_dict_from_onnx(tmp))
    outputs = json.loads(old["outputs"])
    outputs["malignancy_prob"] = MALIGNANCY_OUTPUT
    version = old.get("version", "0")
    new = {
        "version": version if version.endswith(VERSION_SUFFIX) else version + VERSION_SUFFIX,
        "weights_sha256": weights_sha256(model),
        "outputs": json.dumps(outputs),
        "malignancy_label": MALIGNANCY_LABEL,
        "malignancy_head": json.dumps(summary),
    }
    kept = [(k, v) for k, v in old.items() if k not in new]
    del proto.metadata_props[:]
    for k, v in [*kept, *new.items()]:
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    return new


def rebind_reranker(src: str | Path, out: str | Path, model: str | Path) -> dict[str, str]:
    """A copy of the re-ranker ``src`` bound to ``model`` (its ``weights_sha256``), everything else as it was.

    Only for a model whose detection outputs are those of the one ``src`` was calibrated for (the
    refitted head leaves them bit for bit unchanged): the operating threshold is kept as written."""
    import onnx

    from training.export.onnx import read_metadata

    sha = read_metadata(model)["weights_sha256"]
    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    note = (
        f"; re-bound to nodule model {sha[:12]} (malignancy head refitted on the readers' ratings by "
        "training/engine/train_malignancy.py; detection outputs unchanged, threshold kept)"
    )
    new = {"nodule_model_sha256": sha, "calibration": meta.get("calibration", "") + note}
    for p in proto.metadata_props:
        if p.key in new:
            p.value = new[p.key]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    return new


def check_onnx(
    src: str | Path,
    out: str | Path,
    patches: NDArray[np.float32],
    w: NDArray[Any],
    b: float,
    feats: NDArray[np.float32],
) -> dict[str, float]:
    """Largest differences: nodule and diameter outputs against ``src``, malignancy against the fitted head."""
    import onnxruntime as ort

    def run(path: str | Path) -> list[NDArray[Any]]:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {"patches": patches})  # type: ignore[no-any-return]

    (n0, _, d0), (n1, m1, d1) = run(src), run(out)
    expect = 1.0 / (1.0 + np.exp(-(feats @ np.asarray(w, np.float16).astype(np.float64) + np.float16(b))))
    return {
        "nodule_prob_max_abs": float(np.max(np.abs(n0 - n1))),
        "diameter_mm_max_abs": float(np.max(np.abs(d0 - d1))),
        "malignancy_prob_max_abs_vs_fit": float(np.max(np.abs(m1 - expect))),
    }


# ----------------------------------------------------------------------------------------------- main


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.engine.train_malignancy", description=__doc__.splitlines()[0])
    p.add_argument("--onnx", default="resources/models/nodeview-nodule.onnx", help="the network whose head is refitted")
    p.add_argument("--train", action="append", required=True, help="packed training folder (repeatable)")
    p.add_argument("--train-data", required=True, help="the training scans' folder (its transplants.csv)")
    p.add_argument("--val", action="append", required=True, help="packed validation folder (repeatable)")
    p.add_argument("--val-data", required=True, help="the validation scans' folder (its transplants.csv)")
    p.add_argument("--split", help="split CSV (default: training/splits/lidc-nodules-split.csv)")
    p.add_argument("--copies", type=int, default=2, help="augmented copies of each training patch")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--lambda", dest="lam", type=float, help="L2 strength (default: chosen by grouped CV)")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--onnx-out", help="write the network with the new head here")
    p.add_argument(
        "--rebind",
        nargs=2,
        metavar=("RERANKER", "OUT"),
        help="also write a copy of RERANKER bound to --onnx-out (detections unchanged: threshold kept)",
    )
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = get_args_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train = labelled_rows(args.train, args.train_data)
    val = labelled_rows(args.val, args.val_data)
    check_split(train["patient"], "train", args.split)
    check_split(val["patient"], "val", args.split)
    model = load_network(args.onnx)
    f_train = features(model, train["patches"], args.copies, args.seed)
    f_val = features(model, val["patches"], 0, args.seed)[0]
    t_feat = time.time() - t0
    head = model.malignancy_head
    w_old = head.weight.detach().double().numpy().ravel()
    b_old = float(head.bias.detach())
    cv = (
        {"lambda": args.lam, "folds": 0}
        if args.lam is not None
        else choose_lambda(f_train, train, args.folds, args.seed)
    )
    copies = f_train.shape[0]
    w, b = fit_logistic(
        f_train.reshape(-1, f_train.shape[2]),
        np.tile(train["label"], copies),
        np.tile(group_weights(train["nodule"]), copies),
        cv["lambda"],
    )
    w16 = np.asarray(w, np.float16).astype(np.float64)  # as the file stores it
    b16 = float(np.float16(b))
    new_logit = f_val @ w16 + b16
    old_logit = f_val @ w_old + b_old
    new_p, lab, keys = per_placement(new_logit, val["label"], val["placement"])
    old_p, _, _ = per_placement(old_logit, val["label"], val["placement"])
    patient_of = dict(zip(val["placement"].tolist(), val["patient"].tolist(), strict=True))
    groups = np.asarray([patient_of[k] for k in keys.tolist()])
    comparison = paired_bootstrap(new_p, old_p, lab, groups, args.bootstrap, args.seed)
    train_logit = f_train[0] @ w16 + b16
    summary = {
        "trained": "linear malignancy head refitted on frozen features (training.engine.train_malignancy)",
        "label": MALIGNANCY_LABEL,
        "train_patients": int(len(np.unique(train["patient"]))),
        "train_nodules": int(len(np.unique(train["nodule"]))),
        "train_placements": int(len(np.unique(train["placement"]))),
        "train_patches": int(len(train["label"])),
        "train_copies": args.copies,
        "train_malignant_nodules": int(len(np.unique(train["nodule"][train["label"] > 0.5]))),
        "lambda": cv["lambda"],
        "cv_auc": cv.get("auc_by_lambda", {}).get(f"{cv['lambda']:g}"),
        "val_patients": int(len(np.unique(val["patient"]))),
        "val_placements": int(len(keys)),
        "val_proxy_auc": comparison["auc_new"],
        "val_proxy_auc_previous_head": comparison["auc_old"],
    }
    results: dict[str, Any] = {
        "args": vars(args),
        "summary": summary,
        "cv": cv,
        "train_placement_auc": placement_auc(train_logit, train["label"], train["placement"]),
        "val_per_placement": comparison,
        "val_malignant_placements": int(lab.sum()),
        "seconds": {"features": round(t_feat, 1), "total": round(time.time() - t0, 1)},
    }
    np.savez(out / "head.npz", weight=np.asarray(w, np.float32), bias=np.float32(b))
    if args.onnx_out:
        results["metadata"] = write_onnx(args.onnx, args.onnx_out, w, b, summary)
        sample = dequantise(val["patches"][:64])
        results["onnx_check"] = check_onnx(args.onnx, args.onnx_out, sample, w, b, f_val[:64].astype(np.float64))
        if results["onnx_check"]["nodule_prob_max_abs"] != 0.0 or results["onnx_check"]["diameter_mm_max_abs"] != 0.0:
            raise SystemExit(f"the detection outputs changed: {results['onnx_check']}")
        if results["onnx_check"]["malignancy_prob_max_abs_vs_fit"] > 2e-3:
            raise SystemExit(f"the written head does not compute the fitted one: {results['onnx_check']}")
        if args.rebind:
            results["rebind"] = rebind_reranker(args.rebind[0], args.rebind[1], args.onnx_out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: results[k] for k in ("summary", "val_per_placement", "seconds")}, indent=2))
    return results


if __name__ == "__main__":
    main()
