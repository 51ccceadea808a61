"""Stage train@<variant>-<seed>: train the detector (baseline or GR) with one seed; keep the val-AUC-selected weights.

With ``train.nproc > 1`` the stage relaunches itself under torchrun (DDP: NCCL on GPUs, gloo on CPU).
"""

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import torch.distributed as dist

from robustdf.data.manifest import read_rows
from robustdf.params import MODELS, ParamsError, load_group
from robustdf.runtime import DataError, StageRun, atomic_dir, main_guard
from robustdf.train.loop import process_device, train, world


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("variant", choices=MODELS)
    ap.add_argument("--seed", type=int, required=True, help="one of train.seeds")
    ap.add_argument("--data", default="data/balanced")
    ap.add_argument("--frames", default="data/frames")
    ap.add_argument("--out", default=None, help="default: data/models/<variant>-<seed>")
    ap.add_argument("--live", default=None, help="default: data/train/<variant>-<seed>")
    args = ap.parse_args()
    p = load_group("train")
    if p.nproc > 1 and "WORLD_SIZE" not in os.environ:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={p.nproc}",
               *sys.argv]
        sys.exit(subprocess.call(cmd))
    if args.seed not in p.seeds:
        raise ParamsError(f"--seed {args.seed} is not in train.seeds = {p.seeds}")
    name = f"{args.variant}-{args.seed}"
    out = Path(args.out or f"data/models/{name}")
    live_dir = Path(args.live or f"data/train/{name}")
    rank, world_size = world()
    if world_size > 1:
        dist.init_process_group("nccl" if process_device(p.device).type == "cuda" else "gloo")
    run = StageRun(f"train@{name}")
    rows = read_rows(Path(args.data) / "manifest.csv")
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    if not train_rows or not val_rows:
        raise DataError(f"{args.data}/manifest.csv needs train and val videos, got {len(train_rows)}/{len(val_rows)}")
    run.read(Path(args.data) / "manifest.csv", f"({len(train_rows)} train, {len(val_rows)} val videos)")
    live = None
    if rank == 0:
        from dvclive import Live

        live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
    target = atomic_dir(out) if rank == 0 else contextlib.nullcontext(out)
    with target as tmp, run.timed("train"):
        best = train(p, args.variant, args.seed, train_rows, val_rows, Path(args.frames), tmp, live)
    if live is not None:
        for k, v in best.items():
            live.summary[f"best/{k}"] = v
        live.end()
        run.count(**best, cpu_threads=p.cpu_threads)
        run.wrote(out, "(model.safetensors, config.json)")
        run.save(out)
    if world_size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main_guard(main)
