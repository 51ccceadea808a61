"""One training loop for both variants: GR is a switch, everything else is the same recipe."""

from __future__ import annotations

import contextlib
import copy
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from robustdf.data import FrameDataset
from robustdf.gr import GradientRegularizer
from robustdf.metrics import frame_metrics
from robustdf.model import Detector, build_model, predict_fake_proba, save_checkpoint
from robustdf.params import GRVariant, TrainParams
from robustdf.runtime import DataError, log, pick_device, seed_everything, set_cpu_threads


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) when run plainly."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse-frequency class weights (exactly 1, 1 on a balanced set)."""
    n = np.bincount(labels, minlength=2).astype(np.float64)
    if (n == 0).any():
        raise DataError(f"the training split needs real and fake frames, got counts real={n[0]:.0f} fake={n[1]:.0f}")
    return torch.tensor(n.sum() / (2 * n), dtype=torch.float32)


def warmup_cosine(warmup_steps: int, total_steps: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def make_optimizer(model: nn.Module, p: TrainParams) -> torch.optim.Optimizer:
    r = p.recipe
    if r.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=r.lr, momentum=0.9, weight_decay=r.weight_decay, nesterov=True)
    return torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)


def evaluate_split(model: nn.Module, ds: FrameDataset, batch_size: int, device: torch.device,
                   weights: torch.Tensor) -> dict[str, float]:
    y = ds.labels()
    p = predict_fake_proba(model, ds.all_images(), batch_size, device)
    logp = np.log(np.clip(np.stack([1 - p, p], 1), 1e-7, 1))
    w = weights.numpy()[y]
    loss = float(-(w * logp[np.arange(len(y)), y]).sum() / w.sum())
    m = frame_metrics(y, p)
    return {"loss": loss, "auc": m["auc"], "acc": m["acc"]}


def amp_context(use_cuda: bool) -> Any:
    """A factory of autocast contexts: float16 AMP on CUDA, nothing on CPU."""
    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.float16) if use_cuda else contextlib.nullcontext()

    return autocast


def train_step(net: nn.Module, model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               loss_fn: nn.Module, gr: GradientRegularizer | None, scaler: torch.amp.GradScaler,
               autocast: Any, grad_clip: float | None) -> tuple[torch.Tensor, float | None]:
    """One optimiser step, plain or GR (the only difference between the variants)."""
    opt.zero_grad(set_to_none=True)
    norm = None
    if gr is not None:
        loss, norm = gr.backward(net, x, y, loss_fn, scaler.scale, autocast)
    else:
        with autocast():
            loss = loss_fn(net(x), y)
        scaler.scale(loss).backward()
    if grad_clip:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(opt)
    scaler.update()
    return loss.detach(), norm


def train(p: TrainParams, variant: str, seed: int, train_rows: list[dict[str, Any]], val_rows: list[dict[str, Any]],
          frames_root: Path, out_dir: Path, live: Any | None) -> dict[str, Any]:
    """Train one variant with one seed; saves the val-AUC-selected checkpoint into ``out_dir``; returns a summary."""
    rank, world_size = world()
    seed_everything(seed)
    set_cpu_threads(p.cpu_threads)
    device = pick_device(p.device)
    cfg = getattr(p, variant)
    model: Detector = build_model(p.arch, p.pretrained).to(device)
    use_cuda = device.type == "cuda"
    if use_cuda:
        model = model.to(memory_format=torch.channels_last)
    net: nn.Module = model
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None)
    gr = GradientRegularizer(model, cfg.shallow_layer, cfg.r, cfg.alpha) if isinstance(cfg, GRVariant) else None

    train_ds = FrameDataset(train_rows, frames_root, p.recipe.augment, seed)
    val_ds = FrameDataset(val_rows, frames_root)
    if len(train_ds) < p.recipe.batch_size * world_size:
        raise DataError(f"train split has {len(train_ds)} frames, fewer than one batch "
                        f"(train.recipe.batch_size={p.recipe.batch_size} x {world_size} processes)")
    weights = class_weights(train_ds.labels())
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device))
    g = torch.Generator().manual_seed(seed)
    sampler = (DistributedSampler(train_ds, world_size, rank, shuffle=True, seed=seed, drop_last=True)
               if world_size > 1 else RandomSampler(train_ds, generator=g))
    loader = DataLoader(train_ds, batch_size=p.recipe.batch_size, sampler=sampler, drop_last=True,
                        num_workers=p.recipe.num_workers, pin_memory=use_cuda,
                        persistent_workers=p.recipe.num_workers > 0)
    opt = make_optimizer(model, p)
    steps = len(loader) * p.recipe.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(int(p.recipe.warmup_epochs * len(loader)), steps))
    scaler = torch.amp.GradScaler("cuda", enabled=use_cuda)

    autocast = amp_context(use_cuda)

    best: dict[str, Any] = {"val_auc": -1.0}
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(p.recipe.epochs):
        train_ds.set_epoch(epoch)
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        net.train()
        losses, norms = [], []
        for x, y, _ in tqdm(loader, desc=f"train@{variant}-{seed} epoch {epoch + 1}/{p.recipe.epochs}", unit="batch",
                            disable=rank != 0, leave=False):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if use_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, norm = train_step(net, model, opt, x, y, loss_fn, gr, scaler, autocast, p.recipe.grad_clip)
            if norm is not None:
                norms.append(norm)
            sched.step()
            losses.append(float(loss))
        if rank == 0:
            val = evaluate_split(model, val_ds, p.recipe.batch_size * 2, device, weights)
            row = {"train/loss": float(np.mean(losses)), "val/loss": val["loss"], "val/auc": val["auc"],
                   "val/acc": val["acc"], "lr": sched.get_last_lr()[0]}
            if gr is not None:
                row["train/grad_s_norm"] = float(np.mean(norms))
            log.info("[train@%s-%d] epoch %d %s", variant, seed, epoch + 1,
                     " ".join(f"{k}={v:.4f}" for k, v in row.items()))
            if live is not None:
                for k, v in row.items():
                    live.log_metric(k, v)
                live.next_step()
            if val["auc"] > best["val_auc"] or best_state is None:
                best = {"epoch": epoch + 1, "val_auc": val["auc"], "val_acc": val["acc"], "val_loss": val["loss"]}
                best_state = copy.deepcopy(model.state_dict())
        if world_size > 1:
            dist.barrier()
    if gr is not None:
        gr.pim.remove()
    if rank == 0:
        assert best_state is not None
        model.load_state_dict(best_state)
        config = {"arch": p.arch, "variant": variant, "seed": seed, "regularizer": cfg.regularizer,
                  "selected_on": "val_auc",
                  **best, "epochs": p.recipe.epochs, "world_size": world_size, "device": device.type,
                  **({"gr": cfg.model_dump()} if gr is not None else {})}
        save_checkpoint(model, out_dir, config)
    return best
