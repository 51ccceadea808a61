"""Convergence check of the attack defaults: does a much stronger attack change robust accuracy?

For trained models of the default run (data/models/<name>), on the test frames, compares the default
PGD / APGD of params.yaml with PGD x5 steps x3 restarts and APGD with 100 steps, per eps.
Usage: python bench/attack_convergence.py --models baseline-0 gr-0 [--eps 1/255 2/255]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from common import report
from robustdf.attacks import APGD, PGD
from robustdf.data import FrameDataset
from robustdf.manifest import read_rows, test_rows
from robustdf.metrics import balanced_accuracy
from robustdf.model import load_checkpoint
from robustdf.params import load_group, parse_eps
from robustdf.runtime import set_cpu_threads


def robust_bacc(model: torch.nn.Module, attack, ds: FrameDataset, eps: float, batch: int) -> float:
    probs = []
    for u8, y in ds.batches(batch):
        x_adv = attack(model, u8.float() / 255, y, eps)
        with torch.no_grad():
            probs.append(torch.softmax(model(x_adv), 1)[:, 1])
    return balanced_accuracy(ds.labels(), torch.cat(probs).numpy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["baseline-0", "gr-0"])
    ap.add_argument("--eps", nargs="+", default=["1/255", "2/255"])
    args = ap.parse_args()
    p = load_group("attack")
    set_cpu_threads(p.cpu_threads)
    ds = FrameDataset(test_rows(read_rows(Path("data/balanced/manifest.csv"))), "data/frames")
    settings = {
        "pgd_default": PGD(p.pgd.steps, p.pgd.rel_step_size, True, p.seed, p.pgd.restarts, tuple(p.pgd.losses)),
        "pgd_5x_steps_3_restarts": PGD(5 * p.pgd.steps, p.pgd.rel_step_size / 2, True, p.seed, 3,
                                       tuple(p.pgd.losses)),
        "apgd_default": APGD(p.apgd.steps, p.apgd.rho, seed=p.seed, losses=tuple(p.apgd.losses)),
        "apgd_100_ce_margin": APGD(100, p.apgd.rho, seed=p.seed, losses=("ce", "margin")),
    }
    rows = []
    for name in args.models:
        model, _ = load_checkpoint(Path("data/models") / name)
        for p_ in model.parameters():
            p_.requires_grad_(False)
        for e in args.eps:
            row = {"model": name, "eps": e}
            for key, attack in settings.items():
                t0 = time.perf_counter()
                row[key] = round(robust_bacc(model, attack, ds, parse_eps(e), p.batch_size), 4)
                row[f"{key}_s"] = round(time.perf_counter() - t0, 1)
            print(row, flush=True)
            rows.append(row)
    report("attack_convergence", {"frames": len(ds), "rows": rows})


if __name__ == "__main__":
    main()
