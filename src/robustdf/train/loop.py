"""One training loop for both variants: GR is a switch, everything else is the same recipe.

Under torchrun each process is pinned to GPU ``LOCAL_RANK``; ``train.recipe.batch_scope`` fixes what
``batch_size`` and ``lr`` mean for several processes (:meth:`RecipeParams.for_processes`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from robustdf.data.dataset import EpochSampler, FrameDataset
from robustdf.train.gr import GradientRegularizer
from robustdf.evaluate.metrics import frame_metrics
from robustdf.train.model import Detector, build_model, fake_proba, save_checkpoint
from robustdf.params import GRVariant, RecipeParams, TrainParams
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


def make_optimizer(model: nn.Module, r: RecipeParams, lr: float) -> torch.optim.Optimizer:
    if r.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=r.weight_decay, nesterov=True)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=r.weight_decay)


def process_device(choice: str) -> torch.device:
    """This process's device; a GPU (``LOCAL_RANK`` under torchrun) is made current, so that no rank opens
    a context on GPU 0 (NCCL, pinned memory and the loss scaler use the current device)."""
    device = pick_device(choice)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_setup(choice: str, device: torch.device) -> tuple[Callable[[], Any], torch.amp.GradScaler]:
    """(autocast context factory, loss scaler) for ``train.amp``: auto is fp16 on CUDA and off on CPU;
    fp16 gets a dynamic loss scale, bf16 (float32's exponent range) and off a disabled scaler (scale 1)."""
    dtype = AMP_DTYPES[("fp16" if device.type == "cuda" else "off") if choice == "auto" else choice]

    def autocast() -> Any:
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    return autocast, torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def train_loader(ds: FrameDataset, batch_size: int, num_workers: int, seed: int, pin_memory: bool = False
                 ) -> tuple[DataLoader, EpochSampler]:
    """Shuffled, seeded batches of this process's shard (``DistributedSampler`` under torchrun); call the
    sampler's ``set_epoch`` before each epoch: the epoch travels with the indices into every worker."""
    rank, world_size = world()
    inner = (DistributedSampler(ds, world_size, rank, shuffle=True, seed=seed, drop_last=True) if world_size > 1
             else RandomSampler(ds, generator=torch.Generator().manual_seed(seed)))
    sampler = EpochSampler(inner)
    loader = DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers,
                        pin_memory=pin_memory, persistent_workers=num_workers > 0)
    return loader, sampler


def evaluate_split(model: nn.Module, ds: FrameDataset, batch_size: int, device: torch.device,
                   weights: torch.Tensor, autocast: Callable[[], Any] | None = None) -> dict[str, float]:
    """Weighted loss, AUC and accuracy on ``ds``, streamed: memory is bounded by the batch, not the split."""
    y = ds.labels()
    p = fake_proba(model, (u8 for u8, _ in ds.batches(batch_size)), device, autocast)
    logp = np.log(np.clip(np.stack([1 - p, p], 1), 1e-7, 1))
    w = weights.numpy()[y]
    loss = float(-(w * logp[np.arange(len(y)), y]).sum() / w.sum())
    m = frame_metrics(y, p)
    return {"loss": loss, "auc": m["auc"], "acc": m["acc"]}


def train_step(net: nn.Module, model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               loss_fn: nn.Module, gr: GradientRegularizer | None, scaler: torch.amp.GradScaler,
               autocast: Any, grad_clip: float | None) -> tuple[torch.Tensor, float | None]:
    """One optimiser step, plain or GR (the only difference between the variants)."""
    opt.zero_grad(set_to_none=True)
    norm = None
    if gr is not None:
        loss, norm = gr.backward(net, x, y, loss_fn, scaler, autocast)
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
    device = process_device(p.device)
    batch_size, lr = p.recipe.for_processes(world_size)
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
    if len(train_ds) < batch_size * world_size:
        raise DataError(f"train split has {len(train_ds)} frames, fewer than one batch "
                        f"({batch_size} per process x {world_size} processes)")
    weights = class_weights(train_ds.labels())
    loss_fn = nn.CrossEntropyLoss(weight=weights.to(device))
    loader, sampler = train_loader(train_ds, batch_size, p.recipe.num_workers, seed, pin_memory=use_cuda)
    opt = make_optimizer(model, p.recipe, lr)
    steps = len(loader) * p.recipe.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(int(p.recipe.warmup_epochs * len(loader)), steps))
    autocast, scaler = amp_setup(p.amp, device)

    best: dict[str, Any] = {"val_auc": -1.0}
    best_state: dict[str, torch.Tensor] | None = None
    for epoch in range(p.recipe.epochs):
        sampler.set_epoch(epoch)
        net.train()
        losses, norms = [], []
        for x, y, _ in tqdm(loader, desc=f"train@{variant}-{seed} epoch {epoch + 1}/{p.recipe.epochs}", unit="batch",
                            disable=rank != 0, leave=False):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if use_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            loss, norm = train_step(net, model, opt, x, y, loss_fn, gr, scaler, autocast, p.recipe.grad_clip)
            if norm is not None and math.isfinite(norm):  # not after an fp16 overflow (the step is skipped)
                norms.append(norm)
            sched.step()
            losses.append(float(loss))
        if rank == 0:
            val = evaluate_split(model, val_ds, p.recipe.batch_size * 2, device, weights, autocast)
            row = {"train/loss": float(np.mean(losses)), "val/loss": val["loss"], "val/auc": val["auc"],
                   "val/acc": val["acc"], "lr": sched.get_last_lr()[0]}
            if gr is not None:
                row["train/grad_s_norm"] = float(np.mean(norms)) if norms else math.nan  # sum_i ||grad_s_i L||
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
                  "batch_per_process": batch_size, "lr": lr, "amp": p.amp,
                  **({"gr": cfg.model_dump()} if gr is not None else {})}
        save_checkpoint(model, out_dir, config)
    return best
