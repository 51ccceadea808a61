"""Robust accuracy when the attacks select on the continuous iterate vs on the stored 8-bit image.

For trained models of the default run (data/models/<name>), on the test frames, per eps: robust balanced accuracy
under the per-frame worst case of the gradient attacks (FGSM, PGD, APGD at the default params), (a) as the pipeline
scores it, from the stored artifacts whose iterates were selected on the 8-bit image (data/attacks), and (b) with
PGD and APGD selecting their best iterate on the continuous pixels, that iterate then rounded to 8 bits for storage
(the earlier code). Both are scored on the stored image in float32, so the difference is the selection alone.
Usage: python bench/scoring_as_published.py [--models baseline-0 gr-0 ...] [--eps 1/255 2/255 4/255]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from attack_convergence import attack_survivors, frozen_model, model_eps_args, setup, stored_scores
from common import report
from robustdf.attack.attacks import as_computed, build_attack
from robustdf.evaluate.results import worst_case
from robustdf.evaluate.metrics import balanced_accuracy
from robustdf.params import parse_eps


class StoredAfter:
    """An attack that selects on the continuous iterate and returns the image its storage would hold."""

    def __init__(self, attack, store) -> None:
        self.attack, self.store = attack, store

    def __call__(self, model, x, y, eps):
        return self.store(self.attack(model, x, y, eps), x, eps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    model_eps_args(ap)
    args = ap.parse_args()
    p, ds, store = setup()
    y = ds.labels()
    continuous = {a: StoredAfter(build_attack(a, p, p.seed, as_computed), store) for a in ("pgd", "apgd")}
    everywhere = np.ones(len(ds), dtype=bool)
    rows = []
    for name in args.models:
        model = frozen_model(name)
        for e in args.eps:
            eps = parse_eps(e)
            t0 = time.perf_counter()
            stored = {a: stored_scores(model, ds, [Path("data/attacks") / name / a], eps, p.batch_size)
                      for a in p.attacks}
            published = worst_case(y, list(stored.values()))
            earlier = worst_case(y, [stored["fgsm"]] + [attack_survivors(model, a, ds, everywhere, eps, p.batch_size)
                                              for a in continuous.values()])
            row = {"model": name, "eps": e, "selected_on_stored": round(balanced_accuracy(y, published), 4),
                   "selected_on_continuous": round(balanced_accuracy(y, earlier), 4),
                   "s": round(time.perf_counter() - t0, 1)}
            print(row, flush=True)
            rows.append(row)
    report("scoring_as_published", {"frames": len(ds), "rows": rows})


if __name__ == "__main__":
    main()
