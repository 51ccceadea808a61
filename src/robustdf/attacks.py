"""L-infinity evasion attacks on [0, 1] pixels (normalisation lives inside the model).

Each attack is a small class with the uniform call ``attack(model, x, y, eps) -> x_adv``:
untargeted on the true label ``y``, the model in eval mode, results clipped to [0, 1] and to the
eps-ball around ``x``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def _loss_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample cross-entropy and its gradient w.r.t. the input."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(x).float(), y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad.detach()


class FGSM:
    """Fast Gradient Sign Method (Goodfellow et al. 2015): one signed gradient step of size eps."""

    name = "fgsm"

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        if eps == 0:
            return x.clone()
        _, grad = _loss_grad(model, x, y)
        return _project(x + eps * grad.sign(), x, eps)


class PGD:
    """Projected gradient descent (Madry et al. 2018) with optional uniform random start."""

    name = "pgd"

    def __init__(self, steps: int = 10, rel_step_size: float = 0.25, random_start: bool = True, seed: int = 0):
        self.steps, self.rel_step_size, self.random_start, self.seed = steps, rel_step_size, random_start, seed

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        if eps == 0:
            return x.clone()
        x_adv = x.clone()
        if self.random_start:
            g = torch.Generator(device=x.device).manual_seed(self.seed)
            noise = torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype) * 2 - 1
            x_adv = _project(x + eps * noise, x, eps)
        step = self.rel_step_size * eps
        for _ in range(self.steps):
            _, grad = _loss_grad(model, x_adv, y)
            x_adv = _project(x_adv + step * grad.sign(), x, eps)
        return x_adv


def apgd_checkpoints(n_iter: int) -> list[int]:
    """Iterations at which APGD may halve its step (Croce & Hein 2020, Sec. 3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * n_iter, 6)) for q in p if q <= 1})


class APGD:
    """Auto-PGD with cross-entropy (Croce & Hein 2020): momentum, step size adapted per sample.

    Returns, per sample, the iterate with the highest loss (for two classes that is a
    misclassified point whenever any iterate was one).
    """

    name = "apgd"

    def __init__(self, steps: int = 10, rho: float = 0.75, momentum: float = 0.75):
        self.steps, self.rho, self.momentum = steps, rho, momentum

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        if eps == 0:
            return x.clone()
        n = len(x)
        view = (n,) + (1,) * (x.dim() - 1)
        checkpoints = apgd_checkpoints(self.steps)
        eta = torch.full(view, 2 * eps, device=x.device, dtype=x.dtype)
        loss, grad = _loss_grad(model, x, y)
        best_loss, x_best = loss.clone(), x.clone()
        x_prev, x_cur = x.clone(), _project(x + eta * grad.sign(), x, eps)
        successes = torch.zeros(n, device=x.device)
        last_ck, eta_reduced_last = 0, torch.zeros(n, dtype=torch.bool, device=x.device)
        best_at_last_ck, prev_loss = best_loss.clone(), loss
        for k in range(1, self.steps + 1):
            loss, grad = _loss_grad(model, x_cur, y)
            improved = loss > best_loss
            successes += (loss > prev_loss).float()
            prev_loss = loss
            best_loss = torch.where(improved, loss, best_loss)
            x_best[improved] = x_cur[improved]
            if k in checkpoints:
                few = successes < self.rho * (k - last_ck)
                stalled = (~eta_reduced_last) & (best_at_last_ck >= best_loss)
                reduce = few | stalled
                eta[reduce] /= 2
                x_cur[reduce] = x_best[reduce]
                eta_reduced_last, best_at_last_ck = reduce, best_loss.clone()
                successes.zero_()
                last_ck = k
                if reduce.any():
                    _, grad_r = _loss_grad(model, x_cur[reduce], y[reduce])
                    grad[reduce] = grad_r
            if k == self.steps:
                break
            z = _project(x_cur + eta * grad.sign(), x, eps)
            a = self.momentum if k > 1 else 1.0
            x_next = _project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev), x, eps)
            x_prev, x_cur = x_cur, x_next
        return x_best


def build_attack(name: str, params: object, seed: int = 0) -> FGSM | PGD | APGD:
    """Attack by name from the ``attack`` params group; unknown names are a clear error."""
    if name == "fgsm":
        return FGSM()
    if name == "pgd":
        c = params.pgd  # type: ignore[attr-defined]
        return PGD(c.steps, c.rel_step_size, c.random_start, seed)
    if name == "apgd":
        c = params.apgd  # type: ignore[attr-defined]
        return APGD(c.steps, c.rho)
    raise ValueError(f"unknown attack {name!r}; known: fgsm, pgd, apgd")


@torch.no_grad()
def quantize_8bit(x_adv: torch.Tensor, clean_u8: torch.Tensor, eps: float) -> torch.Tensor:
    """Integer level offsets (int8) of the adversarial image rounded to 8 bits, kept inside the eps-ball."""
    levels = int(math.floor(eps * 255 + 1e-6))
    d = torch.round(x_adv * 255).to(torch.int16) - clean_u8.to(torch.int16)
    return d.clamp_(-levels, levels).to(torch.int8)


def run_attack(model: nn.Module, attack: FGSM | PGD | APGD, images_u8: torch.Tensor, labels: torch.Tensor,
               eps_list: list[float], batch_size: int, device: torch.device, quantize: bool) -> torch.Tensor:
    """Attack every image at every eps; returns deltas (E, N, 3, H, W): float32, or int8 levels if ``quantize``."""
    from tqdm import tqdm

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    out = torch.zeros((len(eps_list), *images_u8.shape), dtype=torch.int8 if quantize else torch.float32)
    bar = tqdm(total=len(eps_list) * len(images_u8), desc=f"attack {attack.name}", unit="img")
    for e, eps in enumerate(eps_list):
        for i in range(0, len(images_u8), batch_size):
            u8 = images_u8[i:i + batch_size]
            x = u8.to(device).float().div_(255)
            x_adv = attack(model, x, labels[i:i + batch_size].to(device), eps)
            d = quantize_8bit(x_adv, u8.to(device), eps) if quantize else x_adv - x
            out[e, i:i + len(u8)] = d.cpu()
            bar.update(len(u8))
    bar.close()
    return out
