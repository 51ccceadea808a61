"""Adversarial artifacts: one folder per (model, attack) holding the perturbation of every test frame at every eps.

A folder holds ``meta.json`` (model, attack, eps list, frame count, storage dtype) and ``delta.npy``
of shape (E, N, 3, H, W): int8 levels of an 8-bit image (1 byte per value, what a published image
can carry; the default) or float16 (2 bytes). Both are written and read one batch at a time with
plain file I/O, so memory stays bounded by the batch size, not by the test set. ``.npy`` is read
with its header parsed by NumPy and no pickling. The clean frames come from the frames store, so
:func:`rebuild` recreates every evaluated image exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from robustdf.runtime import DataError

DTYPES = {"int8": np.int8, "float16": np.float16}


@torch.no_grad()
def quantize_8bit(x_adv: torch.Tensor, clean_u8: torch.Tensor, eps: float) -> torch.Tensor:
    """Integer level offsets (int8) of the adversarial image rounded to 8 bits, kept inside the eps-ball."""
    levels = int(math.floor(eps * 255 + 1e-6))
    d = torch.round(x_adv * 255).to(torch.int16) - clean_u8.to(torch.int16)
    return d.clamp_(-levels, levels).to(torch.int8)


def rebuild(clean_u8: torch.Tensor, delta: torch.Tensor, eps: float) -> torch.Tensor:
    """The adversarial images in [0, 1] from clean uint8 frames and one eps slice of ``delta``."""
    if delta.dtype == torch.int8:
        return (clean_u8.to(torch.int16) + delta.to(torch.int16)).clamp_(0, 255).float().div_(255)
    d = delta.float().clamp_(-eps, eps)
    return (clean_u8.float().div_(255) + d).clamp_(0, 1)


class ArtifactWriter:
    """Writes ``delta.npy`` sequentially (eps-major, then frames) and ``meta.json`` at the end."""

    def __init__(self, folder: str | Path, eps: list[float], frame_shape: tuple[int, ...], n_frames: int,
                 dtype: str, meta: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shape = (len(eps), n_frames, *frame_shape)
        self.dtype = np.dtype(DTYPES[dtype])
        self.meta = {**meta, "eps": [float(e) for e in eps], "n_frames": n_frames, "dtype": dtype}
        self.fh: BinaryIO = (self.folder / "delta.npy").open("wb")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        np.lib.format.write_array_header_1_0(self.fh, header)
        self.written = 0

    def write(self, delta: torch.Tensor) -> None:
        """Append one batch (the next frames of the current eps, in order)."""
        self.fh.write(delta.cpu().numpy().astype(self.dtype, copy=False).tobytes())
        self.written += len(delta)

    def close(self) -> None:
        self.fh.close()
        if self.written != self.shape[0] * self.shape[1]:
            expected = self.shape[0] * self.shape[1]
            raise RuntimeError(f"artifact {self.folder}: wrote {self.written} of {expected} frames")
        (self.folder / "meta.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")


class Artifact:
    """Reads slices of a stored artifact without loading it whole."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta_path, data_path = self.folder / "meta.json", self.folder / "delta.npy"
        if not meta_path.is_file() or not data_path.is_file():
            raise DataError(f"adversarial artifact {self.folder} is incomplete or missing (did the attack stage run?)")
        try:
            self.meta = json.loads(meta_path.read_text())
            with data_path.open("rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) \
                    else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(fh)
                self.offset = fh.tell()
        except (OSError, ValueError, json.JSONDecodeError) as err:
            raise DataError(f"adversarial artifact {self.folder} is unreadable: {err}") from None
        if fortran or dtype not in (np.dtype(d) for d in DTYPES.values()) or shape[:2] != (
                len(self.meta["eps"]), self.meta["n_frames"]):
            raise DataError(f"adversarial artifact {self.folder}: unexpected array {dtype} {shape}")
        self.shape, self.dtype, self.path = shape, dtype, data_path
        self.frame_bytes = int(np.prod(shape[2:])) * dtype.itemsize

    @property
    def eps(self) -> list[float]:
        return self.meta["eps"]

    def delta(self, e: int, start: int, stop: int) -> torch.Tensor:
        """Frames ``start:stop`` of eps index ``e``."""
        stop = min(stop, self.shape[1])
        with self.path.open("rb") as fh:
            fh.seek(self.offset + (e * self.shape[1] + start) * self.frame_bytes)
            buf = fh.read((stop - start) * self.frame_bytes)
        return torch.from_numpy(np.frombuffer(buf, dtype=self.dtype).reshape(stop - start, *self.shape[2:]).copy())

    def is_zero(self, e: int, batch: int = 4096) -> bool:
        """Whether eps index ``e`` perturbs nothing (e.g. 8-bit rounding removed a sub-level perturbation)."""
        return all(not self.delta(e, i, i + batch).any() for i in range(0, self.shape[1], batch))


def generate(model: nn.Module, attack: Callable[..., torch.Tensor], batches: Callable[[], Iterator[tuple]],
             n_frames: int, eps_list: list[float], device: torch.device, writer: ArtifactWriter,
             quantize: bool) -> None:
    """Attack every frame at every eps, streaming the deltas into ``writer``.

    ``batches()`` yields (uint8 images, labels) in test-frame order; it is called once per eps.
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    bar = tqdm(total=len(eps_list) * n_frames, desc=f"attack {getattr(attack, 'name', '')}", unit="img")
    for eps in eps_list:
        for u8, y in batches():
            x = u8.to(device).float().div_(255)
            x_adv = attack(model, x, y.to(device), eps)
            writer.write(quantize_8bit(x_adv, u8.to(device), eps) if quantize else x_adv - x)
            bar.update(len(u8))
    bar.close()
    writer.close()
