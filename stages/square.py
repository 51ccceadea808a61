"""Stage square@<variant>-<seed>: the masking check. Square (gradient-free) on the test frames that every gradient
attack of this model left correctly classified, at every eps; the other frames keep a zero delta."""

import argparse
from pathlib import Path

from robustdf.attack.artifacts import ArtifactWriter, generate, stored_image
from robustdf.attack.attacks import build_attack
from robustdf.data.dataset import FrameDataset
from robustdf.data.manifest import read_rows, test_rows
from robustdf.attack.masking import survivors
from robustdf.train.model import load_checkpoint
from robustdf.params import load_group
from robustdf.runtime import StageRun, atomic_dir, main_guard, pick_device, seed_everything, set_cpu_threads
from robustdf.attack.scoring import exact_float32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", help="trained model folder name under --models, e.g. gr-0")
    ap.add_argument("--data", default="data/balanced")
    ap.add_argument("--frames", default="data/frames")
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--attacks", default=None, help="default: data/attacks/<model>")
    ap.add_argument("--out", default=None, help="default: data/square/<model>")
    args = ap.parse_args()
    p = load_group("attack")
    run = StageRun(f"square@{args.model}")
    seed_everything(p.seed)
    set_cpu_threads(p.cpu_threads)
    exact_float32()
    device = pick_device(p.device)
    model, cfg = load_checkpoint(Path(args.models) / args.model)
    model = model.to(device)
    run.read(Path(args.models) / args.model, f"({cfg['arch']}, epoch {cfg['epoch']})")
    ds = FrameDataset(test_rows(read_rows(Path(args.data) / "manifest.csv")), args.frames)
    run.read(Path(args.data) / "manifest.csv", f"({len(ds.rows)} test videos, {len(ds)} frames)")
    attacks_dir = Path(args.attacks or f"data/attacks/{args.model}")
    with run.timed("survivors of the gradient attacks"):
        alive = survivors(model, ds, [attacks_dir / a for a in p.attacks], p.eps, p.batch_size, device)
    run.read(attacks_dir, f"({', '.join(p.attacks)}: {[int(m.sum()) for m in alive]} of {len(ds)} frames survive)")
    dtype = "int8" if p.quantize_8bit else "float16"
    attack = build_attack("square", p, p.seed, stored_image(dtype))
    out = Path(args.out or f"data/square/{args.model}")
    with atomic_dir(out) as tmp, run.timed(f"square x {len(p.eps)} eps on the survivors"):
        writer = ArtifactWriter(tmp, p.eps, tuple(ds.uint8(0).shape), len(ds), dtype,
                                {"model": args.model, "attack": "square", "on": "gradient-attack survivors",
                                 "survivors": [int(m.sum()) for m in alive]})
        generate(model, attack, lambda: ds.batches(p.batch_size), len(ds), p.eps, device, writer,
                 p.quantize_8bit, only=alive)
    run.count(frames=len(ds), survivors=[int(m.sum()) for m in alive], queries=p.square.queries,
              cpu_threads=p.cpu_threads)
    run.wrote(out)
    run.save(out)


if __name__ == "__main__":
    main_guard(main)
