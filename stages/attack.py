"""Stage attack@<variant>-<seed>-<attack>: adversarial examples of the test frames at every eps, stored as deltas."""

import argparse
from pathlib import Path

from robustdf.artifacts import ArtifactWriter, generate, stored_image
from robustdf.attacks import build_attack
from robustdf.data import FrameDataset
from robustdf.manifest import read_rows, test_rows
from robustdf.model import load_checkpoint
from robustdf.params import ATTACKS, load_group
from robustdf.runtime import StageRun, atomic_dir, main_guard, pick_device, seed_everything, set_cpu_threads
from robustdf.scoring import exact_float32


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
    run = StageRun(f"attack@{args.model}-{args.attack}")
    seed_everything(p.seed)
    set_cpu_threads(p.cpu_threads)
    exact_float32()
    device = pick_device(p.device)
    model, cfg = load_checkpoint(Path(args.models) / args.model)
    run.read(Path(args.models) / args.model, f"({cfg['arch']}, epoch {cfg['epoch']})")
    ds = FrameDataset(test_rows(read_rows(Path(args.data) / "manifest.csv")), args.frames)
    run.read(Path(args.data) / "manifest.csv", f"({len(ds.rows)} test videos, {len(ds)} frames)")
    dtype = "int8" if p.quantize_8bit else "float16"
    attack = build_attack(args.attack, p, p.seed, stored_image(dtype))  # selects on the stored images
    eps_list = p.eps_for(args.attack)
    out = Path(args.out or f"data/attacks/{args.model}/{args.attack}")
    with atomic_dir(out) as tmp, run.timed(f"{args.attack} x {len(eps_list)} eps"):
        writer = ArtifactWriter(tmp, eps_list, tuple(ds.uint8(0).shape), len(ds), dtype,
                                {"model": args.model, "attack": args.attack})
        generate(model.to(device), attack, lambda: ds.batches(p.batch_size), len(ds), eps_list, device, writer,
                 p.quantize_8bit)
    run.count(frames=len(ds), cpu_threads=p.cpu_threads, eps=[round(e * 255, 3) for e in eps_list],
              quantized=p.quantize_8bit)
    run.wrote(out)
    run.save(out)


if __name__ == "__main__":
    main_guard(main)
