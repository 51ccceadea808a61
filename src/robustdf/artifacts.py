"""Adversarial artifacts: per (model, attack) one safetensors file holding every eps.

Stored: ``eps`` (E,), ``frame_index`` (N,) into the test frame list, and ``delta`` (E, N, 3, H, W)
as float16 (2 bytes per value) or, for 8-bit images, int8 level offsets (1 byte). The clean
frames come from the frames store, so :func:`rebuild` recreates every evaluated image exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from robustdf.runtime import DataError


def save_artifact(path: str | Path, eps: list[float], frame_index: torch.Tensor, delta: torch.Tensor,
                  model: str, attack: str) -> None:
    quantized = delta.dtype == torch.int8
    if not quantized:
        delta = delta.to(torch.float16)
    tensors = {"eps": torch.tensor(eps, dtype=torch.float64), "frame_index": frame_index.to(torch.int64),
               "delta": delta.contiguous()}
    # one metadata key: safetensors writes metadata from a hash map, so several keys would come out in
    # a different order in every process and change the file's hash
    info = json.dumps({"model": model, "attack": attack, "quantized": quantized}, sort_keys=True)
    save_file(tensors, str(path), metadata={"robustdf": info})


def load_artifact(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"adversarial artifact {path} not found (did the attack stage run?)")
    try:
        t = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise DataError(f"adversarial artifact {path} is unreadable: {err}") from None
    if set(t) != {"eps", "frame_index", "delta"}:
        raise DataError(f"adversarial artifact {path} has unexpected tensors {sorted(t)}")
    return t


def rebuild(clean_u8: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """The adversarial images in [0, 1] from clean uint8 frames and one eps slice of ``delta``."""
    if delta.dtype == torch.int8:
        return (clean_u8.to(torch.int16) + delta.to(torch.int16)).clamp_(0, 255).float().div_(255)
    d = delta.float().clamp_(-eps, eps)
    return (clean_u8.float().div_(255) + d).clamp_(0, 1)
