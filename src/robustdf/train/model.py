"""The detector: a timm CNN with ImageNet normalisation inside, fed [0, 1] pixels; safe checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from robustdf.runtime import DataError

FAKE = 1  # fake is the positive class everywhere


class Detector(nn.Module):
    """``backbone((x - mean) / std)`` for x in [0, 1]; two logits (real, fake)."""

    def __init__(self, backbone: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - self.mean) / self.std)


def build_model(arch: str, pretrained: str | None = None) -> Detector:
    """Create ``arch`` from timm with 2 classes; optionally load local weights (never downloads)."""
    try:
        backbone = timm.create_model(arch, pretrained=False, num_classes=2)
    except RuntimeError as err:
        raise DataError(f"unknown timm architecture {arch!r}: {err}") from None
    cfg = backbone.pretrained_cfg
    model = Detector(backbone, tuple(cfg.get("mean", timm.data.IMAGENET_DEFAULT_MEAN)),
                     tuple(cfg.get("std", timm.data.IMAGENET_DEFAULT_STD)))
    if pretrained:
        load_pretrained(backbone, pretrained)
    head = backbone.get_classifier()
    if isinstance(head, nn.Linear):  # zero-init head: start at loss ln 2, not at random large logits
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    return model


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights from ``.safetensors`` or a torch file, never unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"weights file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read weights file {path} safely: {err}") from None
    except Exception as err:  # weights_only refuses pickled code with UnpicklingError
        raise DataError(f"refusing weights file {path}: {type(err).__name__}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise DataError(f"weights file {path} does not hold a state dict")
    return state


def load_pretrained(backbone: nn.Module, path: str | Path) -> None:
    """Load ImageNet-style weights; the classifier is re-initialised, any other mismatch is an error."""
    state = read_state_dict(path)
    own = backbone.state_dict()
    head = backbone.default_cfg.get("classifier", "classifier")
    state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state and not k.startswith(head + ".")]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        raise DataError(
            f"pretrained weights {path} do not match the architecture: {len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} wrong-shape keys (e.g. {(missing + unexpected + wrong)[:3]})"
        )
    backbone.load_state_dict(state, strict=False)


def save_checkpoint(model: Detector, folder: str | Path, config: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``config.json`` (arch, selection epoch, ...) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.backbone.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_checkpoint(folder: str | Path) -> tuple[Detector, dict[str, Any]]:
    """Rebuild a detector saved by :func:`save_checkpoint`; a missing or tampered file is a clear error."""
    folder = Path(folder)
    cfg_path, weights = folder / "config.json", folder / "model.safetensors"
    for p in (cfg_path, weights):
        if not p.is_file():
            raise DataError(f"checkpoint file {p} does not exist")
    try:
        config = json.loads(cfg_path.read_text())
        arch = config["arch"]
    except (ValueError, KeyError) as err:
        raise DataError(f"checkpoint config {cfg_path} is unreadable: {err}") from None
    model = build_model(arch)
    state = read_state_dict(weights)
    try:
        model.backbone.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataError(f"checkpoint {weights} does not match architecture {arch}: {str(err)[:300]}") from None
    return model.eval(), config


@torch.no_grad()
def fake_proba(model: nn.Module, batches: Iterable[torch.Tensor], device: torch.device,
               autocast: Callable[[], Any] | None = None) -> np.ndarray:
    """Fake-class probabilities, in eval mode, for batches of (B, 3, H, W) images in [0, 1] or uint8 (converted
    per batch): memory is bounded by one batch. ``autocast``: a context factory; default fp16 AMP on CUDA."""
    model.eval()
    context = autocast or (lambda: torch.autocast(device.type, enabled=device.type == "cuda"))
    out = []
    for x in batches:
        x = x.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        with context():
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1)[:, FAKE].cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def predict_fake_proba(model: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    """:func:`fake_proba` of (N, 3, H, W) images in [0, 1] or uint8, ``batch_size`` at a time."""
    return fake_proba(model, (images[i:i + batch_size] for i in range(0, len(images), batch_size)), device)
