"""Stage attack@<variant>-<seed>-<attack>: adversarial examples of the test frames at every eps, stored as deltas.

With ``attack.nproc > 1`` the stage reruns itself under torchrun: each process attacks a contiguous,
batch-aligned share of the frames on its own device and rank 0 merges the shares in frame order.
"""

import argparse
import contextlib
import shutil
from functools import partial
from pathlib import Path

import torch

from robustdf.attack.artifacts import ArtifactWriter, generate, stored_image
from robustdf.attack.attacks import build_attack
from robustdf.data.dataset import FrameDataset
from robustdf.data.manifest import read_rows, test_rows
from robustdf.train.model import load_checkpoint
from robustdf.params import ATTACKS, AttackParams, load_group
from robustdf.runtime import StageRun, atomic_dir, main_guard, pick_device, seed_everything, set_cpu_threads
from robustdf.attack.scoring import exact_float32
from robustdf.attack.sharding import broadcast, frame_batches, gather, merge_artifacts, process_group, relaunch, shard


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", help="trained model folder name under --models, e.g. gr-0")
    ap.add_argument("attack", choices=ATTACKS)
    ap.add_argument("--data", default="data/balanced")
    ap.add_argument("--frames", default="data/frames")
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--out", default=None, help="default: data/attacks/<model>/<attack>")
    args = ap.parse_args()
    p = load_group("attack")
    relaunch(p.nproc)
    device = pick_device(p.device)
    with process_group(device) as (rank, world):
        attack_stage(args, p, device, rank, world)


def attack_stage(args: argparse.Namespace, p: AttackParams, device: torch.device, rank: int, world: int) -> None:
    """Attack this rank's frames; rank 0 writes the artifact (merging every rank's share when sharded)."""
    run = StageRun(f"attack@{args.model}-{args.attack}" + (f"[rank {rank}/{world}]" if world > 1 else ""))
    seed_everything(p.seed)
    set_cpu_threads(p.cpu_threads)
    exact_float32()
    model, cfg = load_checkpoint(Path(args.models) / args.model)
    run.read(Path(args.models) / args.model, f"({cfg['arch']}, epoch {cfg['epoch']})")
    ds = FrameDataset(test_rows(read_rows(Path(args.data) / "manifest.csv")), args.frames)
    frames = shard(len(ds), p.batch_size, rank, world)
    run.read(Path(args.data) / "manifest.csv", f"({len(ds.rows)} test videos, {len(ds)} frames, "
             f"frames {frames.start}:{frames.stop} here)")
    dtype = "int8" if p.quantize_8bit else "float16"
    attack = build_attack(args.attack, p, p.seed, stored_image(dtype))  # selects on the stored images
    eps_list = p.eps_for(args.attack)
    out = Path(args.out or f"data/attacks/{args.model}/{args.attack}")
    new_writer = partial(ArtifactWriter, eps=eps_list, frame_shape=tuple(ds.uint8(0).shape),
                         dtype=dtype,
                         meta={"model": args.model, "attack": args.attack})
    with atomic_dir(out) if rank == 0 else contextlib.nullcontext() as tmp:
        folder = Path(broadcast(str(tmp)))
        part = folder / f".shard-{rank}" if world > 1 else folder
        with run.timed(f"{args.attack} x {len(eps_list)} eps"):
            generate(model.to(device), attack, lambda: frame_batches(ds, frames, p.batch_size), len(frames),
                     eps_list, device, new_writer(part, n_frames=len(frames)), p.quantize_8bit)
        gather(None)  # every share is complete
        if world > 1 and rank == 0:
            parts = [folder / f".shard-{r}" for r in range(world)]
            with run.timed("merge shards"):
                merge_artifacts(parts, new_writer(folder, n_frames=len(ds)), p.batch_size)
            for part in parts:
                shutil.rmtree(part)
    run.count(frames=len(frames), cpu_threads=p.cpu_threads, eps=[round(e * 255, 3) for e in eps_list],
              quantized=p.quantize_8bit, nproc=world)
    if rank == 0:
        run.wrote(out)
        run.save(out)


if __name__ == "__main__":
    main_guard(main)
