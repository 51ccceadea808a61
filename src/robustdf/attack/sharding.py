"""Running a stage as ``nproc`` torchrun processes, each on its own device, that split the work.

The processes only exchange small Python objects and file paths (gloo, on CPU and GPU alike); the results
are written by rank 0 in the order of a one-process run, so the output bytes do not depend on ``nproc``.
Frame ranges are contiguous and aligned to the batch size: every batch holds the same frames as in the
one-process run, so per-batch random draws (attack starts) and batch-shaped float sums are unchanged.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from robustdf.attack.artifacts import Artifact, ArtifactWriter
from robustdf.data.dataset import FrameDataset

TIMEOUT = timedelta(hours=12)  # a rank waits for the slowest shard; torchrun ends all ranks if one fails


def relaunch(nproc: int) -> None:
    """With ``nproc > 1``, rerun this command under torchrun and exit with its status (the ranks it starts
    see ``WORLD_SIZE`` and go on)."""
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               *sys.argv]
        sys.exit(subprocess.call(cmd))


def rank_world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) when run plainly."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[tuple[int, int]]:
    """Join the torchrun group (gloo) on ``device``; yields (rank, world size), (0, 1) when run plainly."""
    rank, world = rank_world()
    if world == 1:
        yield rank, world
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("gloo", timeout=TIMEOUT)
    try:
        yield rank, world
    finally:
        dist.destroy_process_group()


def shard(n: int, align: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous share of ``range(n)``: whole blocks of ``align`` items, as even as possible."""
    blocks = -(-n // align)
    per, extra = divmod(blocks, world)
    first = rank * per + min(rank, extra)
    return range(min(first * align, n), min((first + per + (rank < extra)) * align, n))


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself when run plainly)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order on rank 0 (empty on the others); waits for all ranks."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size() if dist.get_rank() == 0 else []
    dist.gather_object(obj, out if dist.get_rank() == 0 else None, dst=0)
    return out


def frame_batches(ds: FrameDataset, frames: range, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels) of ``frames`` in order, ``batch_size`` at a time."""
    labels = torch.from_numpy(ds.labels())
    for i in range(frames.start, frames.stop, batch_size):
        j = min(i + batch_size, frames.stop)
        yield torch.stack([ds.uint8(k) for k in range(i, j)]), labels[i:j]


def merge_artifacts(parts: list[Path], writer: ArtifactWriter, batch_size: int) -> None:
    """Append shard artifacts (consecutive frame ranges, same eps) to ``writer`` in order, eps by eps, one
    batch in memory at a time; the result has the bytes of a one-process run."""
    arts = [Artifact(p) for p in parts]
    for e in range(len(writer.meta["eps"])):
        for art in arts:
            for start in range(0, art.shape[1], batch_size):
                writer.write(art.delta(e, start, start + batch_size))
    writer.close()
