"""Frame datasets over the per-video uint8 arrays, with seeded, worker-independent augmentation.

The epoch travels with each index (:class:`EpochSampler` yields ``(epoch, index)``), so a frame's augmentation
is a function of (seed, epoch, index) alone, in the main process or in any loader worker, persistent or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from robustdf.params import AugmentParams
from robustdf.runtime import DataError

OPEN_MAPS = 16  # frame files kept memory-mapped at once: pages of a closed map leave the process's RSS


class FrameDataset(Dataset):
    """One item per stored frame of the given manifest rows: ([0, 1] float CHW, label, row index)."""

    def __init__(self, rows: list[dict[str, Any]], frames_root: str | Path,
                 augment: AugmentParams | None = None, seed: int = 0) -> None:
        self.rows, self.root = rows, Path(frames_root)
        self.items = [(i, k) for i, r in enumerate(rows) for k in range(r["n_frames"])]
        self.augment, self.seed = augment, seed
        self._arrays: dict[int, np.ndarray] = {}  # the most recently used last

    def __len__(self) -> int:
        return len(self.items)

    def array(self, i: int) -> np.ndarray:
        """The frames of row ``i``, memory-mapped; at most ``OPEN_MAPS`` maps stay open (least recently used
        closed first), so memory does not grow with the number of frames read."""
        arr = self._arrays.pop(i, None)
        if arr is None:
            path = self.root / self.rows[i]["frames_file"]
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:
                raise DataError(f"cannot read frames file {path}: {err}") from None
        self._arrays[i] = arr
        if len(self._arrays) > OPEN_MAPS:
            del self._arrays[next(iter(self._arrays))]
        return arr

    def uint8(self, index: int) -> torch.Tensor:
        i, k = self.items[index]
        return torch.from_numpy(np.array(self.array(i)[k])).permute(2, 0, 1)  # copy out of the read-only map

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        """Item ``index`` or ``(epoch, index)`` (the epoch seeds the augmentation; a bare index is epoch 0)."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        img = self.uint8(index)
        if self.augment is not None:
            g = torch.Generator().manual_seed(hash((self.seed, epoch, index)) & 0x7FFFFFFF)
            img = augment(img, self.augment, g)
        else:
            img = img.float() / 255.0
        i, _ = self.items[index]
        return img, self.rows[i]["label"], i

    def labels(self) -> np.ndarray:
        return np.array([self.rows[i]["label"] for i, _ in self.items], dtype=np.int64)

    def video_index(self) -> np.ndarray:
        return np.array([i for i, _ in self.items], dtype=np.int64)

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(uint8 images, labels) of consecutive frames, in item order: memory bounded by the batch."""
        labels = torch.from_numpy(self.labels())
        for i in range(0, len(self), batch_size):
            j = min(i + batch_size, len(self))
            yield torch.stack([self.uint8(k) for k in range(i, j)]), labels[i:j]


class EpochSampler(Sampler[tuple[int, int]]):
    """``(epoch, index)`` for each index of ``inner``: the epoch reaches the dataset with every item."""

    def __init__(self, inner: Sampler[int]) -> None:
        self.inner, self.epoch = inner, 0

    def set_epoch(self, epoch: int) -> None:
        """Also reshuffles an inner ``DistributedSampler``."""
        self.epoch = epoch
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, i) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)


def augment(img: torch.Tensor, p: AugmentParams, g: torch.Generator) -> torch.Tensor:
    """JPEG re-compression, horizontal flip, brightness and contrast jitter; uint8 in, [0, 1] float out."""
    u = torch.rand(5, generator=g)
    if p.jpeg_prob > 0 and u[0] < p.jpeg_prob:
        from torchvision.io import decode_jpeg, encode_jpeg

        lo, hi = p.jpeg_quality
        quality = int(lo + (hi - lo) * float(u[1]))
        img = decode_jpeg(encode_jpeg(img.contiguous(), quality=quality))
    x = img.float() / 255.0
    if p.hflip and u[2] < 0.5:
        x = x.flip(-1)
    if p.brightness > 0:
        x = x * (1 + p.brightness * (2 * float(u[3]) - 1))
    if p.contrast > 0:
        m = x.mean()
        x = (x - m) * (1 + p.contrast * (2 * float(u[4]) - 1)) + m
    return x.clamp_(0, 1)
