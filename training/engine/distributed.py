"""Multi-process training with ``torchrun`` (DistributedDataParallel), shared by the trainers.

    torchrun --nproc_per_node 2 -m training.engine.train --data ... --out runs/ddp            # one machine
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29400 --rdzv-id run1 -m training.engine.train ...               # on each machine

Without torchrun (no ``WORLD_SIZE`` in the environment) nothing changes: :func:`setup` returns a
single-process context and the trainers run as before.

How the trainers use it (``training/README.md``, "Several processes"):

* **Backend**: ``nccl`` when the trainer runs on CUDA (each process takes ``cuda:LOCAL_RANK``),
  ``gloo`` on the CPU. On the CPU each process gets ``cores // local processes`` torch threads
  unless ``--threads`` says otherwise.
* **Sampling**: every rank draws the *global* batch with the same seeded generator (the same
  balanced positive / hard-negative / easy-negative composition as one process draws) and keeps
  its slice ``idx[rank::world]`` (:meth:`Dist.shard`): together the ranks see exactly the batch
  one process would, and for ``N = 1`` the draws, and so the model, are those of the plain run.
  Augmentation draws come from a per-rank generator (rank 0's is the plain run's).
* **Rank 0** writes: caches are mined on rank 0 first (:meth:`Dist.main_first`), and only rank 0
  writes checkpoints, history, plots and log lines. Every rank loads ``--resume``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device | None = None  #: set when the process group chose it (cuda:LOCAL_RANK)
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it writes caches), the others then (they read them)."""
        if self.enabled and not self.is_main:
            self.barrier()
        yield
        if self.enabled and self.is_main:
            self.barrier()

    def wrap(self, model: nn.Module) -> nn.Module:
        """``DistributedDataParallel(model)`` (parameters that require grad now), else ``model``."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, idx: np.ndarray) -> np.ndarray:
        """This rank's slice of a global batch drawn identically on every rank."""
        return idx[self.rank :: self.world] if self.enabled else idx

    def check_batch(self, batch_size: int) -> None:
        if self.enabled and batch_size % self.world:
            raise SystemExit(f"--batch-size {batch_size} must be a multiple of the {self.world} processes")

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over the ranks (epoch statistics for the log)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        torch.distributed.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def broadcast_array(self, array: np.ndarray) -> np.ndarray:
        """Rank 0's integer array on every rank (e.g. the mined hard negatives)."""
        if not self.enabled:
            return array
        n = torch.tensor([len(array)], dtype=torch.int64, device=self._comm_device())
        torch.distributed.broadcast(n, 0)
        buf = torch.zeros(int(n.item()), dtype=torch.int64, device=self._comm_device())
        if self.is_main:
            buf.copy_(torch.from_numpy(np.asarray(array, dtype=np.int64)))
        torch.distributed.broadcast(buf, 0)
        return buf.cpu().numpy().astype(np.asarray(array).dtype, copy=False)

    def _comm_device(self) -> torch.device:
        return self.device if self.device is not None and self.device.type == "cuda" else torch.device("cpu")

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def launched() -> bool:
    """True when torchrun (or another launcher) set up this process as one of a group."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def setup(device: str = "auto", threads: int = 0) -> Dist:
    """Join the process group torchrun describes (env ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``/``MASTER_PORT``); a plain :class:`Dist` when not launched so."""
    if not launched():
        return Dist()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
        local = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // max(1, local)))
    torch.distributed.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank, world, local_rank, chosen, True)


def unwrap(model: nn.Module) -> Any:
    """The module inside a DistributedDataParallel wrapper (the one to save and evaluate)."""
    return getattr(model, "module", model)


__all__ = ["Dist", "launched", "setup", "unwrap"]
