"""Benchmark + projection: what the full FaceForensics++ c23 run costs with the default params.yaml.

Measured on this machine, in one run: (1) extraction seconds per original and per fake on a 1280x720
FF++-shaped tree built from the real clip (32 frames per video, dlib face crops, fakes reuse their
original's boxes); (2) at ``--size`` (224) the training throughput of a baseline and a GR step and the
attack throughputs (forward+backward w.r.t. the input, forward only), interleaved a b c d a b c d with
medians, each run timed between two CUDA synchronisations. The projection multiplies them by the work of
the full run (videos, frames, epochs, seeds, attack steps and eps read from params.yaml) and divides by
the workers: CPU figures scale the 2-core rates linearly (an optimistic bound: no communication cost),
the GPU column uses the rates measured when this script runs on CUDA (AMP, channels_last; extraction over
the box's CPU cores) and is absent otherwise.

Usage: python bench/full_scale.py [--size 224 --batch 16 --rounds 3 --originals 1000 --methods 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common import interleaved, report
from extract_reuse import METHODS, make_tree
from robustdf.data.extraction import extract_all
from robustdf.data.readers.ffpp import discover
from robustdf.train.gr import GradientRegularizer
from robustdf.train.model import build_model
from robustdf.params import ExtractParams, load_group
from robustdf.runtime import pick_device, set_cpu_threads
from robustdf.train.loop import amp_setup, train_step

CPU_WORKERS = (2, 16, 64)


def extraction_costs(frames_per_video: int) -> dict[str, float]:
    """Seconds per original (decode + detect + crop) and per fake (decode + crop with reused boxes), 1 worker."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ffpp"
        make_tree(root)
        videos, _ = discover(root, "c23", METHODS, ["youtube"])
        p = ExtractParams(ffpp_root=str(root), methods=METHODS, frames_per_video=frames_per_video, image_size=224,
                          workers=1, face_crop={"enabled": True, "reuse_original_boxes": True})
        originals = [v for v in videos if v.method == "original"]
        t0 = time.perf_counter()
        extract_all(originals, p, Path(tmp) / "out", 1)
        t_orig = time.perf_counter() - t0
        t0 = time.perf_counter()
        ex = extract_all(videos, p, Path(tmp) / "out", 1)  # the originals are finished: only the fakes run
        t_fakes = time.perf_counter() - t0
        assert all("error" not in r for r in ex.results), ex.results
        return {"s_per_original": round(t_orig / len(originals), 3),
                "s_per_fake": round(t_fakes / (len(videos) - len(originals)), 3)}


def model_rates(size: int, batch: int, rounds: int, device: torch.device) -> dict[str, float]:
    """Images/s of a baseline step, a GR step, a forward+backward w.r.t. the input and a forward pass."""
    use_cuda = device.type == "cuda"
    model = build_model("efficientnet_b0").to(device)
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    nn.init.normal_(model.backbone.get_classifier().weight, std=0.1)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    autocast, scaler = amp_setup("auto", device)
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.randint(0, 2, (batch,), device=device)

    def step(reg: GradientRegularizer | None) -> int:
        model.train()
        train_step(model, model, opt, x, y, loss_fn, reg, scaler, autocast, 5.0)
        return batch

    def gr_step() -> int:
        reg = GradientRegularizer(model, "blocks.1", r=0.05, alpha=0.5)
        try:
            return step(reg)
        finally:
            reg.pim.remove()

    def input_grad() -> int:
        model.eval()
        xx = x.clone().requires_grad_(True)
        with autocast():
            loss = F.cross_entropy(model(xx), y)
        torch.autograd.grad(loss, xx)
        return batch

    @torch.no_grad()
    def forward() -> int:
        model.eval()
        with autocast():
            model(x)
        return batch

    return interleaved({"baseline_step": lambda: step(None), "gr_step": gr_step, "input_grad": input_grad,
                        "forward": forward}, rounds, device)


def workload(originals: int, methods: int, frames: int, train_share: float, test_share: float) -> dict[str, int]:
    """Counts of the full run from params.yaml: videos, training images, attack gradients and forwards."""
    tr, at = load_group("train"), load_group("attack")
    n_eps, models = len(at.eps), 2 * len(tr.seeds)
    test_frames = round(originals * (1 + methods) * test_share) * frames
    grads = {"fgsm": 1, "pgd": at.pgd.steps * at.pgd.restarts * len(at.pgd.losses),
             "apgd": at.apgd.steps * at.apgd.restarts * len(at.apgd.losses), "square": 0}
    fwds = {"fgsm": 0, "pgd": 0, "apgd": 0, "square": at.square.queries * at.square.restarts}
    per_model_grads = sum(grads[a] for a in at.attacks) * n_eps + grads["pgd"]  # + PGD at sanity_eps
    per_model_fwds = sum(fwds[a] for a in at.attacks) * n_eps
    eval_fwds = 1 + 2 * len(at.attacks) * n_eps  # clean, white-box, transfer
    return {
        "originals": originals, "fakes": originals * methods, "frames_per_video": frames,
        "train_images_per_model": round(originals * (1 + methods) * train_share) * frames * tr.recipe.epochs,
        "baseline_models": len(tr.seeds), "gr_models": len(tr.seeds), "test_frames": test_frames,
        "attack_grads": models * test_frames * per_model_grads, "attack_fwds": models * test_frames * per_model_fwds,
        "evaluate_fwds": models * test_frames * eval_fwds, "evaluate_grads": models * test_frames * 2,
    }


def hours(w: dict[str, float], ext: dict[str, float], rates: dict[str, float], scale: float,
          extract_workers: int) -> dict[str, float]:
    """Wall-clock hours per stage: model rates multiplied by ``scale``, extraction over ``extract_workers``."""
    extract = (w["originals"] * ext["s_per_original"] + w["fakes"] * ext["s_per_fake"]) / extract_workers
    train = w["train_images_per_model"] * (w["baseline_models"] / rates["baseline_step"]
                                           + w["gr_models"] / rates["gr_step"]) / scale
    attack = (w["attack_grads"] / rates["input_grad"] + w["attack_fwds"] / rates["forward"]) / scale
    evaluate = (w["evaluate_fwds"] / rates["forward"] + w["evaluate_grads"] / rates["input_grad"]) / scale
    out = {"extract_frames": extract, "train": train, "attack": attack, "evaluate": evaluate}
    out["total"] = sum(out.values())
    return {k: round(v / 3600, 2) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--originals", type=int, default=1000)
    ap.add_argument("--methods", type=int, default=4)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--train-share", type=float, default=0.72)  # FF++ official split: 720/140/140 pairs
    ap.add_argument("--test-share", type=float, default=0.14)
    args = ap.parse_args()
    torch.manual_seed(0)
    set_cpu_threads(args.threads)
    device = pick_device("auto")
    ext = extraction_costs(args.frames)
    rates = {k: round(v, 2) for k, v in model_rates(args.size, args.batch, args.rounds, device).items()}
    w = workload(args.originals, args.methods, args.frames, args.train_share, args.test_share)
    projection = {}
    if device.type == "cuda":
        cores = os.cpu_count() or 1
        projection[f"1 GPU (measured), extraction on {cores} cores"] = hours(w, ext, rates, 1.0, cores)
    else:
        projection.update({f"{n} CPU workers": hours(w, ext, rates, n / args.threads, n) for n in CPU_WORKERS})
    report("full_scale", {"device": str(device), "cpu_threads": args.threads, "image_size": args.size,
                          "batch_size": args.batch, "rounds": args.rounds, "extraction_720p_1_worker": ext,
                          "img_per_s": rates, "workload": w, "hours": projection})


if __name__ == "__main__":
    main()
