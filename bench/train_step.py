"""Benchmark: (a) a baseline step on a batch already in memory (forward, backward, optimiser step), (b) the same
step through the real data loader, (c) the GR step through the loader.

Same batch and image size in one run, the variants interleaved (a b c a b c ...), each step timed between two
device synchronisations, medians; ratios (b)/(a) (the loader must not starve the model, goal >= 0.9: the two
differ only by the loader) and (c)/(b) in time per step (goal <= 2.1).
Usage: python bench/train_step.py [--size 64 --batch 32 --steps 8 --amp auto]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from common import interleaved, report
from robustdf.data.dataset import FrameDataset
from robustdf.train.gr import GradientRegularizer
from robustdf.train.model import build_model
from robustdf.params import AugmentParams
from robustdf.runtime import pick_device
from robustdf.train.loop import amp_setup, train_loader, train_step


def frames_store(root: Path, n_videos: int, frames: int, size: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_videos):
        np.save(root / f"{i}.npy", rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8))
        rows.append({"frames_file": f"{i}.npy", "n_frames": frames, "label": i % 2})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--amp", choices=["auto", "off", "bf16", "fp16"], default="auto", help="as train.amp")
    args = ap.parse_args()
    torch.manual_seed(0)
    device = pick_device("auto")
    use_cuda = device.type == "cuda"
    model = build_model("efficientnet_b0").to(device)
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    autocast, scaler = amp_setup(args.amp, device)
    x_mem = torch.rand(args.batch, 3, args.size, args.size, device=device)
    y_mem = torch.randint(0, 2, (args.batch,), device=device)

    with tempfile.TemporaryDirectory() as tmp:
        rows = frames_store(Path(tmp), 64, 8, args.size)
        ds = FrameDataset(rows, tmp, AugmentParams(jpeg_prob=0.0), seed=0)
        loader, _ = train_loader(ds, args.batch, args.workers, seed=0, pin_memory=use_cuda)
        batches = iter(())

        def batch() -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal batches
            try:
                x, y, _ = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y, _ = next(batches)
            return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

        def step(gr: GradientRegularizer | None, data: Any) -> int:
            x, y = data()
            train_step(model, model, opt, x, y, loss_fn, gr, scaler, autocast, 5.0)
            return args.batch

        model.train()
        gr = GradientRegularizer(model, "blocks.1", r=0.05, alpha=0.5)  # its hook is off outside GR steps
        rates = interleaved({"a": lambda: step(None, lambda: (x_mem, y_mem)), "b": lambda: step(None, batch),
                             "c": lambda: step(gr, batch)}, args.steps, device)
        a, b, c = rates["a"], rates["b"], rates["c"]
        gr.pim.remove()
    report("train_step", {
        "device": str(device), "image_size": args.size, "batch_size": args.batch, "amp": args.amp,
        "rounds": args.steps, "a_memory_step_img_s": round(a, 2), "b_baseline_step_loader_img_s": round(b, 2),
        "c_gr_step_loader_img_s": round(c, 2), "b_over_a": round(b / a, 3),
        "gr_time_over_baseline_time": round(b / c, 3),
    })


if __name__ == "__main__":
    main()
