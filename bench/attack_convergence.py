"""Convergence check of the attack defaults: does a much stronger attack change robust accuracy?

For trained models of the default run (data/models/<name>), on the test frames, per eps: robust balanced accuracy
of the default ensemble as evaluate scores it (the stored FGSM/PGD/APGD artifacts and Square on their survivors),
then of the default ensemble plus each stronger attack on the frames it left correct: PGD with 5x the steps at
half the step size and 3 restarts, APGD with 100 steps and CE + margin losses, and Square with 5,000 queries.
Every attack selects on the stored 8-bit image, in float32, as the pipeline does. If the stronger attacks lower
the figure by more than a point or two, the defaults have not converged.
Usage: python bench/attack_convergence.py [--models baseline-0 gr-0 ...] [--eps 1/255 2/255 4/255]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from common import report
from robustdf.attack.artifacts import Artifact, stored_image
from robustdf.attack.attacks import APGD, PGD, Square
from robustdf.data.dataset import FrameDataset
from robustdf.evaluate.results import worst_case
from robustdf.data.manifest import read_rows, test_rows
from robustdf.evaluate.metrics import balanced_accuracy
from robustdf.train.model import load_checkpoint
from robustdf.params import load_group, parse_eps
from robustdf.runtime import set_cpu_threads
from robustdf.attack.scoring import adversarial_images, correct, exact_float32, predict


def frozen_model(name: str) -> torch.nn.Module:
    """The trained model data/models/<name> in eval mode, its weights frozen (only input gradients are taken)."""
    model, _ = load_checkpoint(Path("data/models") / name)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def stored_scores(model: torch.nn.Module, ds: FrameDataset, folders: list[Path], eps: float, batch: int) -> np.ndarray:
    """Per-frame worst case over the stored artifacts in ``folders`` at ``eps``."""
    dev = torch.device("cpu")
    arts = [Artifact(f) for f in folders]
    return worst_case(ds.labels(), [predict(model, adversarial_images(ds, a, a.eps.index(eps), batch), dev)
                                    for a in arts])


def attack_survivors(model: torch.nn.Module, attack, ds: FrameDataset, alive: np.ndarray, eps: float,
                     batch: int) -> np.ndarray:
    """Fake-probabilities of ``attack``'s stored images on the frames in ``alive`` (NaN elsewhere)."""
    p = np.full(len(alive), np.nan)
    start = 0
    for u8, y in ds.batches(batch):
        sel = alive[start:start + len(u8)]
        if sel.any():
            x = u8[torch.from_numpy(sel)].float() / 255
            x_adv = attack(model, x, y[torch.from_numpy(sel)], eps)
            p[start + np.flatnonzero(sel)] = predict(model, [x_adv], torch.device("cpu"))
        start += len(u8)
    return p


def model_eps_args(ap: argparse.ArgumentParser) -> None:
    """--models (default: every model of the default run) and --eps."""
    ap.add_argument("--models", nargs="+", default=[f"{v}-{s}" for s in load_group("train").seeds
                                                    for v in ("baseline", "gr")])
    ap.add_argument("--eps", nargs="+", default=["1/255", "2/255", "4/255"])


def setup() -> tuple[object, FrameDataset, Callable]:
    """The attack params, the test frames and the storage map, with the pipeline's threads and float32."""
    p = load_group("attack")
    set_cpu_threads(p.cpu_threads)
    exact_float32()
    ds = FrameDataset(test_rows(read_rows(Path("data/balanced/manifest.csv"))), "data/frames")
    return p, ds, stored_image("int8" if p.quantize_8bit else "float16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    model_eps_args(ap)
    ap.add_argument("--square-queries", type=int, default=5000)
    ap.add_argument("--stronger", nargs="+", default=["pgd", "apgd", "square"],
                    help="which stronger attacks to add, in this order (a subset saves time)")
    args = ap.parse_args()
    p, ds, store = setup()
    y = ds.labels()
    stronger = {
        "pgd": PGD(5 * p.pgd.steps, p.pgd.rel_step_size / 2, True, p.seed, 3,
                                       tuple(p.pgd.losses), store),
        "apgd": APGD(100, p.apgd.rho, seed=p.seed, losses=("ce", "margin"), store=store),
        "square": Square(args.square_queries, p.square.p_init, 1, p.seed, store),
    }
    labels = {"pgd": "pgd_5x_steps_3_restarts", "apgd": "apgd_100_ce_margin", "square": f"square_{args.square_queries}"}
    rows = []
    for name in args.models:
        model = frozen_model(name)
        for e in args.eps:
            eps = parse_eps(e)
            t0 = time.perf_counter()
            folders = [Path("data/attacks") / name / a for a in p.attacks] + [Path("data/square") / name]
            worst = stored_scores(model, ds, folders, eps, p.batch_size)
            row = {"model": name, "eps": e, "default": round(balanced_accuracy(y, worst), 4)}
            for name_ in args.stronger:  # each on the frames everything before it left correct
                attack, key = stronger[name_], labels[name_]
                alive = correct(y, worst, 0.5)
                p_adv = attack_survivors(model, attack, ds, alive, eps, p.batch_size)
                worst = np.where(alive, worst_case(y, [worst, np.nan_to_num(p_adv, nan=0.5)]), worst)
                row[f"+{key}"] = round(balanced_accuracy(y, worst), 4)
                row[f"+{key}_broke"] = int((alive & ~correct(y, worst, 0.5)).sum())
            row["s"] = round(time.perf_counter() - t0, 1)
            print(row, flush=True)
            rows.append(row)
    report("attack_convergence", {"frames": len(ds), "rows": rows})


if __name__ == "__main__":
    main()
