"""Scores of clean and stored adversarial images, in float32 as published: attacks, the Square survivors stage and
evaluation all judge an image through these functions, so what an attack selected is what evaluation scores."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from robustdf.attack.artifacts import Artifact, rebuild
from robustdf.data.dataset import FrameDataset
from robustdf.train.model import FAKE


def exact_float32() -> None:
    """No TF32 on CUDA (cuDNN convolutions and matmuls run in full float32, as on CPU)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


@torch.no_grad()
def predict(model: torch.nn.Module, images: Iterator[torch.Tensor], device: torch.device) -> np.ndarray:
    """Fake-class probabilities for batches of [0, 1] images, in float32 (no autocast)."""
    model.eval()
    out = [torch.softmax(model(x.to(device)).float(), 1)[:, FAKE].cpu().numpy() for x in images]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def clean_images(ds: FrameDataset, batch_size: int) -> Iterator[torch.Tensor]:
    for u8, _ in ds.batches(batch_size):
        yield u8.float().div_(255)


def adversarial_images(ds: FrameDataset, art: Artifact, e: int, batch_size: int) -> Iterator[torch.Tensor]:
    """The stored images of eps index ``e``, rebuilt from the clean frames, in frame order."""
    start = 0
    for u8, _ in ds.batches(batch_size):
        yield rebuild(u8, art.delta(e, start, start + len(u8)), art.eps[e])
        start += len(u8)


def correct(y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    """Per frame, whether the fake-probability ``p`` classifies it correctly."""
    return (p >= threshold).astype(int) == y
