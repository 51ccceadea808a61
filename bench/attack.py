"""Benchmark: attack cost against the bare model at the same batch size, variants interleaved (a b c d a b c d ...).

(a) bare forward+backward w.r.t. the input, (b) PGD counted as images/s x (steps x restarts x losses), goal
(b)/(a) >= 0.9; (c) bare forward, (d) Square counted as image-queries actually made per second (fooled images
stop querying; the count includes the clean forward), goal (d)/(c) >= 0.9. Medians over rounds, each run timed
between two CUDA synchronisations.
Usage: python bench/attack.py [--size 64 --batch 64 --steps 10 --restarts 1 --queries 100 --rounds 3]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from common import interleaved, report
from robustdf.attack.attacks import PGD, Square
from robustdf.train.model import build_model
from robustdf.runtime import pick_device, set_cpu_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--restarts", type=int, default=1)
    ap.add_argument("--losses", nargs="+", default=["ce", "margin"])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--eps", type=float, default=1 / 255)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.manual_seed(0)
    set_cpu_threads(args.threads)
    device = pick_device("auto")
    model = build_model("efficientnet_b0").to(device).eval()
    nn.init.normal_(model.backbone.get_classifier().weight, std=0.1)  # the zero-initialised head gives no signal
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    with torch.no_grad():
        y = model(x).argmax(1)  # every image starts classified correctly
    pgd = PGD(steps=args.steps, rel_step_size=0.25, restarts=args.restarts, losses=args.losses)
    square = Square(queries=args.queries)
    grads_per_image = args.steps * args.restarts * len(args.losses)

    def bare_fwd_bwd() -> int:  # as many passes as PGD makes, so both see the same load from other processes
        for _ in range(grads_per_image):
            xx = x.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(xx), y), xx)
        return args.batch * grads_per_image

    def attack_pgd() -> int:
        pgd(model, x, y, args.eps)
        return args.batch * grads_per_image

    def bare_fwd() -> int:
        with torch.no_grad():
            for _ in range(args.queries):
                model(x)
        return args.batch * args.queries

    def attack_square() -> int:
        square(model, x, y, args.eps)
        return square.queries_made

    r = interleaved({"bare_fwd_bwd": bare_fwd_bwd, "pgd": attack_pgd, "bare_fwd": bare_fwd, "square": attack_square},
                    args.rounds, device)
    report("attack", {
        "device": str(device), "cpu_threads": args.threads, "image_size": args.size, "batch_size": args.batch,
        "rounds": args.rounds, "eps": round(args.eps * 255, 3),
        "pgd": {"steps": args.steps, "restarts": args.restarts, "losses": args.losses},
        "square_queries": args.queries,
        "square_queries_made_share": round(square.queries_made / (args.batch * (args.queries + 1)), 3),
        "bare_fwd_bwd_img_s": round(r["bare_fwd_bwd"], 2),
        "pgd_img_s_times_steps_restarts_losses": round(r["pgd"], 2),
        "pgd_ratio": round(r["pgd"] / r["bare_fwd_bwd"], 3),
        "bare_fwd_img_s": round(r["bare_fwd"], 2),
        "square_img_queries_s": round(r["square"], 2), "square_ratio": round(r["square"] / r["bare_fwd"], 3),
    })


if __name__ == "__main__":
    main()
