"""Per-image quantities that would explain a robustness difference, measured on clean test frames.

- ``input_grad_l1``: ||grad_x L||_1, the first-order loss increase an L-infinity attacker of radius
  eps can cause is eps times this;
- ``grad_s_norm``: ||grad_s L||_2 of the frame's own loss w.r.t. its shallow channel statistics s = (mu, sigma);
  GR penalises its mean over the batch (``train/grad_s_norm`` in the training logs);
- ``margin``: logit of the true class minus the other logit (how far a frame is from the boundary);
- ``stat_loss_increase``: L(s + Delta) - L(s) for the worst-case statistics perturbation of radius r
  (Delta = r grad_s L / ||grad_s L||, per frame: the same :func:`robustdf.train.gr.stat_delta` GR trains with).

The model is in eval mode, so each frame's statistics affect only its own loss and the per-frame
gradients of the summed loss are exact.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustdf.train.gr import PerturbationInjection, resolve_layer, stat_delta

QUANTITIES = ("input_grad_l1", "grad_s_norm", "margin", "stat_loss_increase")
NAMES = {"input_grad_l1": "input-gradient L1 norm", "grad_s_norm": "gradient norm w.r.t. shallow statistics",
         "margin": "clean logit margin", "stat_loss_increase": "loss increase under the worst statistics shift"}
# the direction in which each quantity goes with more robustness
MORE_ROBUST_WHEN = {"input_grad_l1": "lower", "grad_s_norm": "lower", "margin": "higher",
                    "stat_loss_increase": "lower"}


def why_quantities(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], layer: str, r: float,
                   device: torch.device) -> dict[str, np.ndarray]:
    """Each quantity per frame, for uint8 image batches in [0, 255] with their labels."""
    model.eval()
    backbone = getattr(model, "backbone", model)
    pim = PerturbationInjection(resolve_layer(backbone, layer))
    out: dict[str, list[np.ndarray]] = {q: [] for q in QUANTITIES}
    try:
        for u8, y in batches:
            x = u8.to(device).float().div_(255).requires_grad_(True)
            y = y.to(device)
            pim.mode = "probe"
            with torch.enable_grad():
                logits = model(x).float()
                loss = F.cross_entropy(logits, y, reduction="none")
                d_mu, d_sigma = pim.probe
                g_x, g_mu, g_sigma = torch.autograd.grad(loss.sum(), (x, d_mu, d_sigma))
            pim.delta, norm = stat_delta(g_mu.float(), g_sigma.float(), r)
            pim.mode = "inject"
            with torch.no_grad():
                perturbed = F.cross_entropy(model(x).float(), y, reduction="none")
            true = logits.gather(1, y[:, None])[:, 0]
            other = logits.gather(1, (1 - y)[:, None])[:, 0]
            out["input_grad_l1"].append(g_x.abs().flatten(1).sum(1).cpu().numpy())
            out["grad_s_norm"].append(norm.cpu().numpy())
            out["margin"].append((true - other).detach().cpu().numpy())
            out["stat_loss_increase"].append((perturbed - loss.detach()).cpu().numpy())
    finally:
        pim.mode, pim.probe, pim.delta = "off", None, None
        pim.remove()
    return {q: np.concatenate(v).astype(np.float64) for q, v in out.items()}
