"""The gradient-masking check with power (AutoAttack-style): the gradient-free Square attack, with a budget that can
find what gradient attacks miss, runs on the frames every gradient attack left correctly classified; frames it
breaks there are adversarial examples the gradients hid.

Only the survivors are attacked, so the cost stays small; the other frames keep a zero delta in the Square
artifact. Square alone is therefore not a robust-accuracy condition: evaluation folds it into the per-frame worst
case and counts what it broke beyond the gradient attacks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustdf.attack.artifacts import Artifact
from robustdf.data.dataset import FrameDataset
from robustdf.attack.scoring import adversarial_images, correct, predict

DECISION = 0.5  # the model's own decision (argmax of two logits), what the attacks try to flip


def survivors(model: torch.nn.Module, ds: FrameDataset, attack_dirs: list[Path], eps_list: list[float],
              batch_size: int, device: torch.device) -> list[np.ndarray]:
    """Per eps, the frames that every stored gradient attack in ``attack_dirs`` left correctly classified."""
    y = ds.labels()
    arts = [Artifact(d) for d in attack_dirs]
    out = []
    for eps in eps_list:
        alive = np.ones(len(y), dtype=bool)
        for art in arts:
            if eps not in art.eps:
                raise ValueError(f"artifact {art.folder} has no eps {eps * 255:g}/255 (has "
                                 f"{[round(e * 255, 3) for e in art.eps]}); rerun the attack stages")
            p = predict(model, adversarial_images(ds, art, art.eps.index(eps), batch_size), device)
            alive &= correct(y, p, DECISION)
        out.append(alive)
    return out


def square_extra(y: np.ndarray, p_gradient_worst: np.ndarray, p_square: np.ndarray,
                 threshold: float) -> dict[str, float]:
    """Frames correct under the worst gradient attack that Square misclassifies (count and share of all frames)."""
    alive = correct(y, p_gradient_worst, threshold)
    broke = alive & ~correct(y, p_square, threshold)
    return {"survivors": int(alive.sum()), "square_broke": int(broke.sum()), "share": float(broke.mean())}
