"""Gradient regularization (Guan et al., IEEE TIFS 2024) with the Perturbation Injection Module.

The objective is ``L + lambda * ||grad_s L||_2`` where ``s = (mu, sigma)`` are per-sample,
per-channel spatial statistics of a shallow feature map ``f``. Following the first-order
Taylor scheme of Zhao et al. (ICML 2022), one step uses

    g = (1 - alpha) * grad_theta L(x) + alpha * grad_theta L(x; s + Delta),
    Delta_i = r * grad_{s_i} L / ||grad_{s_i} L||_2,   alpha = lambda / r.

``Delta`` is normalised per sample (:func:`stat_delta`): every frame's statistics move by exactly ``r``,
whatever the batch size or the DDP shard (L is a batch mean, so one norm over the whole batch would move
each frame by about r / sqrt(B)). The penalised quantity is then ``sum_i ||grad_{s_i} L||``, the
(class-weighted) mean over frames of each frame's own ``||grad_s l||``: what ``explain.py`` reports per
frame as ``grad_s_norm``, and what :meth:`GradientRegularizer.backward` returns.

The PIM rewrites the shallow output as ``f' = (f - mu) / sigma * (sigma + D_sigma) + mu + D_mu``,
computed as the algebraically equal ``f + D_mu + D_sigma * (f - mu) / sigma``. In the first
pass ``D`` are explicit zero tensors that require grad, so autograd gives the true sensitivity
``grad_s L`` (not the gradient of a normalise/rescale identity); ``mu`` and ``sigma`` stay in the
graph, so the second pass reaches shallow and deep parameters. ``Delta`` is a constant there.

Under DistributedDataParallel each process computes ``Delta`` from its own batch shard; the
first backward runs under ``no_sync`` and the second one all-reduces the combined gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

STAT_EPS = 1e-5


def resolve_layer(backbone: nn.Module, layer: str) -> nn.Module:
    """A module by timm name (``blocks.1``) or by index into ``backbone.feature_info`` (``"1"``)."""
    if layer.isdigit() and hasattr(backbone, "feature_info"):
        infos = list(backbone.feature_info)
        if int(layer) >= len(infos):
            raise ValueError(f"train.gr.shallow_layer={layer!r}: the model has {len(infos)} feature levels")
        layer = infos[int(layer)]["module"]
    try:
        return backbone.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in backbone.named_children()]
        raise ValueError(f"train.gr.shallow_layer={layer!r} is not a module of the model; top level: {names}") from None


@contextlib.contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm uses batch statistics but does not update running stats inside the block."""
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in bns:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in bns:
            m.track_running_stats = True


class PerturbationInjection:
    """Forward hook on the shallow layer: off, probing with zero perturbations, or injecting Delta."""

    def __init__(self, layer: nn.Module) -> None:
        self.mode = "off"
        self.probe: tuple[torch.Tensor, torch.Tensor] | None = None
        self.delta: tuple[torch.Tensor, torch.Tensor] | None = None
        self.handle = layer.register_forward_hook(self._hook)

    @staticmethod
    def stats(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = f.mean(dim=(2, 3), keepdim=True)
        sigma = (f.var(dim=(2, 3), keepdim=True, unbiased=False) + STAT_EPS).sqrt()
        return mu, sigma

    def _hook(self, module: nn.Module, inputs: Any, f: torch.Tensor) -> torch.Tensor | None:
        if self.mode == "off":
            return None
        mu, sigma = self.stats(f)
        if self.mode == "probe":
            d_mu = torch.zeros_like(mu, requires_grad=True)
            d_sigma = torch.zeros_like(sigma, requires_grad=True)
            self.probe = (d_mu, d_sigma)
        else:
            assert self.delta is not None
            d_mu, d_sigma = self.delta
        return f + d_mu.to(f.dtype) + d_sigma.to(f.dtype) * (f - mu) / sigma

    def remove(self) -> None:
        self.handle.remove()


def stat_delta(g_mu: torch.Tensor, g_sigma: torch.Tensor, r: float
               ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """GR's statistics perturbation ``Delta_i = r * g_i / ||g_i||_2`` per sample ``i``, for the gradients
    ``g = (grad_mu, grad_sigma)`` of shape (B, C, 1, 1); also the per-sample norms ``||g_i||_2`` (shape (B,)).
    A frame with a zero gradient is not moved."""
    norm = torch.sqrt(g_mu.flatten(1).square().sum(1) + g_sigma.flatten(1).square().sum(1))
    k = (r / norm.clamp_min(1e-30)).view(-1, *([1] * (g_mu.dim() - 1)))
    return (g_mu * k, g_sigma * k), norm


class GradientRegularizer:
    """Computes the GR update into ``.grad`` with two forward/backward passes."""

    def __init__(self, model: nn.Module, layer: str, r: float, alpha: float) -> None:
        backbone = getattr(model, "backbone", model)
        self.pim = PerturbationInjection(resolve_layer(backbone, layer))
        self.r, self.alpha = r, alpha

    def backward(
        self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        scaler: torch.amp.GradScaler | None = None,
        autocast: Callable[[], Any] = contextlib.nullcontext,
    ) -> tuple[torch.Tensor, float]:
        """Accumulate the GR gradient (times the scaler's loss scale, as a plain scaled backward would);
        returns (clean loss, ``sum_i ||grad_{s_i} L||_2``, unscaled; inf or nan when fp16 overflowed).

        ``net`` is the model or its DDP wrapper.
        """
        no_sync = net.no_sync if hasattr(net, "no_sync") else contextlib.nullcontext
        scaled = scaler.scale if scaler is not None else lambda t: t
        loss_scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
        params = [p for p in net.parameters() if p.requires_grad]
        self.pim.mode = "probe"
        try:
            with no_sync():
                with autocast():
                    loss = loss_fn(net(x), y)
                scaled(loss).backward()
            # the first pass's parameter gradient gets its weight (1 - alpha); Delta comes from the unscaled
            # gradient, so every alpha in [0, 1] works
            for p in params:
                if p.grad is not None:
                    p.grad.mul_(1.0 - self.alpha)
            d_mu, d_sigma = self.pim.probe
            self.pim.delta, norm = stat_delta(d_mu.grad.float() / loss_scale, d_sigma.grad.float() / loss_scale,
                                              self.r)
            self.pim.mode = "inject"
            with frozen_bn_stats(net):
                with autocast():
                    loss2 = loss_fn(net(x), y)
                scaled(loss2 * self.alpha).backward()
        finally:
            self.pim.mode, self.pim.probe, self.pim.delta = "off", None, None
        return loss.detach(), float(norm.sum())
