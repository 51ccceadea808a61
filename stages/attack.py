"""Stage attack@<model>-<attack>: adversarial examples of the test frames at every eps, stored as deltas."""

import argparse
from pathlib import Path

import torch

from robustdf.artifacts import save_artifact
from robustdf.attacks import build_attack, run_attack
from robustdf.data import FrameDataset
from robustdf.manifest import read_rows, test_rows
from robustdf.model import load_checkpoint
from robustdf.params import ATTACKS, MODELS, load_group
from robustdf.runtime import StageRun, atomic_file, main_guard, pick_device, seed_everything, set_cpu_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("attack", choices=ATTACKS)
    ap.add_argument("--data", default="data/balanced")
    ap.add_argument("--frames", default="data/frames")
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--out", default=None, help="default: data/attacks/<model>_<attack>.safetensors")
    args = ap.parse_args()
    p = load_group("attack")
    run = StageRun(f"attack@{args.model}-{args.attack}")
    seed_everything(p.seed)
    set_cpu_threads(p.cpu_threads)
    device = pick_device(p.device)
    model, cfg = load_checkpoint(Path(args.models) / args.model)
    run.read(Path(args.models) / args.model, f"({cfg['arch']}, epoch {cfg['epoch']})")
    ds = FrameDataset(test_rows(read_rows(Path(args.data) / "manifest.csv")), args.frames)
    images, labels = ds.all_images(), torch.from_numpy(ds.labels())
    run.read(Path(args.data) / "manifest.csv", f"({len(ds.rows)} test videos, {len(ds)} frames)")
    attack = build_attack(args.attack, p, p.seed)
    with run.timed(f"{args.attack} x {len(p.eps)} eps"):
        delta = run_attack(model.to(device), attack, images, labels, p.eps, p.batch_size, device, p.quantize_8bit)
    out = Path(args.out or f"data/attacks/{args.model}_{args.attack}.safetensors")
    with atomic_file(out) as tmp:
        save_artifact(tmp, p.eps, torch.arange(len(ds)), delta, args.model, args.attack)
    run.count(frames=len(ds), cpu_threads=p.cpu_threads, eps=[round(e * 255, 3) for e in p.eps],
              quantized=p.quantize_8bit)
    run.wrote(out)
    run.save(out)


if __name__ == "__main__":
    main_guard(main)
