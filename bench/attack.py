"""Benchmark: PGD with k steps (images/s x k) against bare forward+backward w.r.t. the input
at the same batch size (goal >= 0.9). Usage: python bench/attack.py [--size 64 --batch 64 --steps 10]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import rate, report
from robustdf.attacks import PGD
from robustdf.model import build_model
from robustdf.runtime import pick_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    torch.manual_seed(0)
    device = pick_device("auto")
    model = build_model("efficientnet_b0").to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, 2, (args.batch,), device=device)

    def bare() -> int:
        xx = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xx), y), xx)
        return args.batch

    pgd = PGD(steps=args.steps, rel_step_size=0.25, random_start=True)

    def attack() -> int:
        pgd(model, x, y, 4 / 255)
        return args.batch * args.steps

    a = rate(bare, repeat=6)
    b = rate(attack, warmup=1, repeat=2)
    report("attack", {"device": str(device), "image_size": args.size, "batch_size": args.batch,
                      "pgd_steps": args.steps, "bare_fwd_bwd_img_s": round(a, 2),
                      "pgd_img_s_times_steps": round(b, 2), "ratio": round(b / a, 3)})


if __name__ == "__main__":
    main()
