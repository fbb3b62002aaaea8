"""Multi-process training (training/engine/distributed.py): torchrun with 2 CPU processes (gloo) lowers the
loss and writes a checkpoint a single process resumes; one torchrun process gives the plain run's model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from training.engine import train as T  # noqa: E402

from .test_train import _args  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _argv(args) -> list[str]:
    argv = []
    for key, value in vars(args).items():
        if value is None or value is False:
            continue
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return argv


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_processes_lower_the_loss_and_one_process_resumes(tiny_data, tmp_path):
    csv, root = tiny_data
    run = tmp_path / "ddp"
    args = _args(csv, root, run, threads=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "training.engine.train", *_argv(args)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stderr[-3000:]
    logged = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in logged] == [1, 2, 3]  # rank 0 logs, once per epoch
    history = json.loads((run / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"], [h["train_loss"] for h in history]
    assert all(np.isfinite(h["val_loss"]) for h in history)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["epoch"] == 2 and not any(k.startswith("module.") for k in ckpt["model"])
    # a single process continues the 2-process run
    more = T.main(_args(csv, root, run, epochs=4, resume=run / "checkpoint.pt"))
    assert len(more["history"]) == 4 and more["history"][:3] == history


@pytest.mark.slow
def test_one_torchrun_process_trains_the_plain_runs_model(tiny_data, tmp_path, monkeypatch):
    csv, root = tiny_data
    extra = {"epochs": 1, "steps_per_epoch": 3, "hard_negative_fraction": 0.5, "mine_subset": 64}
    plain = T.main(_args(csv, root, tmp_path / "plain", **extra))
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    ddp = T.main(_args(csv, root, tmp_path / "ddp", **extra))
    assert not torch.distributed.is_initialized()  # the group is closed at the end
    a = torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain["history"][0]["train_loss"] == ddp["history"][0]["train_loss"]


def test_per_rank_slices_cover_the_global_batch():
    from training.engine.distributed import Dist

    idx = np.arange(16) * 3
    parts = [Dist(rank=r, world=4, enabled=True).shard(idx) for r in range(4)]
    assert sorted(np.concatenate(parts).tolist()) == idx.tolist() and all(len(p) == 4 for p in parts)
    assert Dist().shard(idx) is idx
    with pytest.raises(SystemExit, match="multiple"):
        Dist(world=3, enabled=True).check_batch(16)


def _reranker_rank(rank: int, world: int, port: int, folder: str) -> None:
    from training.engine import distributed
    from training.engine import train_reranker as tr

    from .test_reranker_train import args_for, toy_cubes

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist = distributed.setup("cpu", threads=1)
    try:
        tr.train(args_for(Path(folder), 60), toy_cubes(112, 0), Path(folder), dist)
    finally:
        dist.close()


@pytest.mark.slow
def test_reranker_two_processes_and_one_process_equivalence(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    import torch.multiprocessing as mp

    from training.engine import distributed
    from training.engine import train_reranker as tr

    from .test_reranker_train import args_for, toy_cubes

    for name in ("two", "plain", "one"):
        (tmp_path / name).mkdir()
    mp.spawn(_reranker_rank, args=(2, _free_port(), str(tmp_path / "two")), nprocs=2, join=True)
    history = [h["loss"] for h in json.loads((tmp_path / "two" / "history.json").read_text())]
    assert history[-1] < 0.6 * history[0], history
    state = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 60 and not any(k.startswith("module.") for k in state["model"])
    again = tr.train(args_for(tmp_path / "two", 60, resume=True), toy_cubes(112, 0), tmp_path / "two")
    assert all(torch.equal(state["model"][k], v) for k, v in again.state_dict().items())  # 1-process resume
    # N = 1 under a process group: the plain run's weights
    plain = tr.train(args_for(tmp_path / "plain", 40), toy_cubes(112, 0), tmp_path / "plain")
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    dist = distributed.setup("cpu", threads=torch.get_num_threads())
    try:
        one = tr.train(args_for(tmp_path / "one", 40), toy_cubes(112, 0), tmp_path / "one", dist)
    finally:
        dist.close()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), one.state_dict().values(), strict=True))
