"""Adversarial artifacts: one folder per (model, attack) holding the perturbation of every test frame at every eps.

A folder holds ``meta.json`` (model, attack, eps list, frame count and shape, storage dtype, codec, perturbed
frames per eps), ``delta.zlib`` and ``offsets.npy``. The deltas, of shape (E, N, 3, H, W), are int8 levels of an
8-bit image (what a published image can carry; the default) or float16. Each (eps, frame) is one zlib stream in
``delta.zlib`` (eps-major, then frames), lossless; ``offsets.npy`` holds the E * N + 1 int64 byte offsets of the
streams, so reading frames i..j of one eps seeks once and inflates only their streams, and a corrupt stream or
an index that does not fit the file is a clear error. zlib runs Huffman-only with fixed settings, so the same
deltas give the same bytes: on PGD int8 deltas that is smaller than level 6 and faster than level 1
(``bench/artifact_codec.py``: 4.7-4.9x at 1/255, 3.4-4.0x at 2/255, 2.5-3.2x at 4/255). Frames are written and
read one batch at a time, so memory stays bounded by the batch size (plus 8 bytes of offset per frame and eps),
not by the test set; no pickling. The clean frames come from the frames store, so :func:`rebuild` recreates
every evaluated image exactly.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from robustdf.runtime import DataError

DTYPES = {"int8": np.int8, "float16": np.float16}
CODEC, DATA, INDEX = "zlib", "delta.zlib", "offsets.npy"
_ZLIB = {"level": 1, "strategy": zlib.Z_HUFFMAN_ONLY}  # fixed: the same deltas give the same bytes


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


def stored_image(dtype: str) -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """``(x_adv, x, eps) -> image`` that writing ``x_adv`` as a ``dtype`` delta and :func:`rebuild` give back.

    ``x`` are clean images on 8-bit levels (uint8 / 255). Attacks select their candidates on this image.
    """
    def to_int8(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
        u8 = torch.round(x * 255).to(torch.uint8)
        return rebuild(u8, quantize_8bit(x_adv, u8, eps), eps)

    def to_float16(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
        u8 = torch.round(x * 255).to(torch.uint8)
        return rebuild(u8, (x_adv - x).half(), eps)

    return {"int8": to_int8, "float16": to_float16}[dtype]


def _deflate(frame: np.ndarray) -> bytes:
    """One frame as a zlib stream."""
    z = zlib.compressobj(**_ZLIB)
    return z.compress(frame.tobytes()) + z.flush()


def _inflate(chunk: bytes | memoryview, nbytes: int) -> bytes:
    """The ``nbytes`` bytes of one zlib stream that must span ``chunk`` exactly; ValueError otherwise."""
    z = zlib.decompressobj()
    try:
        out = z.decompress(chunk, nbytes)
    except zlib.error as err:
        raise ValueError(err) from None
    if len(out) != nbytes or not z.eof or z.unused_data or z.unconsumed_tail:
        raise ValueError(f"chunk does not hold exactly {nbytes} bytes")
    return out


class ArtifactWriter:
    """Appends one zlib chunk per frame (eps-major, then frames) to ``delta.zlib``; ``offsets.npy`` and
    ``meta.json`` at the end."""

    def __init__(self, folder: str | Path, eps: list[float], frame_shape: tuple[int, ...], n_frames: int,
                 dtype: str, meta: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.n_frames = n_frames
        self.dtype = np.dtype(DTYPES[dtype])
        self.meta = {**meta, "eps": [float(e) for e in eps], "n_frames": n_frames, "dtype": dtype, "codec": CODEC,
                     "frame_shape": list(frame_shape)}
        self.offsets = np.zeros(len(eps) * n_frames + 1, dtype=np.int64)
        self.nonzero = [0] * len(eps)
        self.fh: BinaryIO = (self.folder / DATA).open("wb")
        self.written = 0

    def write(self, delta: torch.Tensor) -> None:
        """Append one batch (the next frames of the current eps, in order)."""
        if self.written + len(delta) >= len(self.offsets):
            raise RuntimeError(f"artifact {self.folder}: more than {len(self.offsets) - 1} frames written")
        for frame in delta.cpu().numpy().astype(self.dtype, copy=False):
            chunk = _deflate(frame)
            self.fh.write(chunk)
            self.nonzero[self.written // self.n_frames] += bool(frame.any())
            self.offsets[self.written + 1] = self.offsets[self.written] + len(chunk)
            self.written += 1

    def close(self) -> None:
        self.fh.close()
        if self.written != len(self.offsets) - 1:
            raise RuntimeError(f"artifact {self.folder}: wrote {self.written} of {len(self.offsets) - 1} frames")
        np.save(self.folder / INDEX, self.offsets)
        meta = {**self.meta, "nonzero_frames": self.nonzero}
        (self.folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


class Artifact:
    """Reads slices of a stored artifact without loading it whole."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta_path, self.path, index_path = self.folder / "meta.json", self.folder / DATA, self.folder / INDEX
        if not all(p.is_file() for p in (meta_path, self.path, index_path)):
            raise DataError(f"adversarial artifact {self.folder} is incomplete or missing (did the attack stage run?)")
        try:
            self.meta = json.loads(meta_path.read_text())
            self.offsets = np.load(index_path, allow_pickle=False)
            self.dtype = np.dtype(DTYPES[self.meta["dtype"]])
            self.shape = (len(self.meta["eps"]), self.meta["n_frames"], *self.meta["frame_shape"])
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            raise DataError(f"adversarial artifact {self.folder} is unreadable: {err!r}") from None
        if self.meta.get("codec") != CODEC:
            raise DataError(f"adversarial artifact {self.folder}: codec {self.meta.get('codec')!r}, "
                            f"expected {CODEC!r} (rerun the attack stage)")
        self._check_index(index_path)
        self.frame_bytes = int(np.prod(self.shape[2:])) * self.dtype.itemsize

    def _check_index(self, index_path: Path) -> None:
        """The offsets cover every (eps, frame) chunk, in order, and end at the end of the data file."""
        o = self.offsets
        if o.dtype != np.int64 or o.shape != (self.shape[0] * self.shape[1] + 1,) or o[0] != 0 \
                or (np.diff(o) <= 0).any() or o[-1] != self.path.stat().st_size:
            raise DataError(f"adversarial artifact index {index_path} does not match {self.path} "
                            f"({o.dtype} {o.shape}, {self.shape[0]} eps x {self.shape[1]} frames)")

    @property
    def eps(self) -> list[float]:
        return self.meta["eps"]

    def delta(self, e: int, start: int, stop: int) -> torch.Tensor:
        """Frames ``start:stop`` of eps index ``e``, inflating only their chunks."""
        stop = min(stop, self.shape[1])
        out = np.empty((max(stop - start, 0), *self.shape[2:]), dtype=self.dtype)
        for i, chunk in enumerate(self._chunks(e * self.shape[1] + start, len(out))):
            try:
                out[i] = np.frombuffer(_inflate(chunk, self.frame_bytes), self.dtype).reshape(self.shape[2:])
            except ValueError as err:
                raise DataError(f"adversarial artifact {self.path}: eps index {e}, frame {start + i} is corrupt "
                                f"({err})") from None
        return torch.from_numpy(out)

    def _chunks(self, first: int, count: int) -> list[memoryview]:
        """The stored chunks ``first:first + count`` (flat eps-major index), read with one seek."""
        bounds = self.offsets[first:first + count + 1]
        with self.path.open("rb") as fh:
            fh.seek(int(bounds[0]))
            buf = memoryview(fh.read(int(bounds[-1] - bounds[0])))
        rel = bounds - bounds[0]
        return [buf[a:b] for a, b in pairwise(rel)]

    def is_zero(self, e: int) -> bool:
        """Whether eps index ``e`` perturbs nothing (e.g. 8-bit rounding removed a sub-level perturbation)."""
        return self.meta["nonzero_frames"][e] == 0


def generate(model: nn.Module, attack: Callable[..., torch.Tensor], batches: Callable[[], Iterator[tuple]],
             n_frames: int, eps_list: list[float], device: torch.device, writer: ArtifactWriter,
             quantize: bool, only: list[np.ndarray] | None = None) -> None:
    """Attack every frame at every eps, streaming the deltas into ``writer``.

    ``batches()`` yields (uint8 images, labels) in test-frame order; it is called once per eps. ``only[e]``, a
    boolean mask over the frames, restricts the attack at eps index ``e`` to those frames; the rest keep a
    zero delta.
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    total = sum(int(m.sum()) for m in only) if only is not None else len(eps_list) * n_frames
    bar = tqdm(total=total, desc=f"attack {getattr(attack, 'name', '')}", unit="img")
    for e, eps in enumerate(eps_list):
        start = 0
        for u8, y in batches():
            u8, y = u8.to(device), y.to(device)
            x = u8.float().div_(255)
            x_adv = x.clone()
            sel = torch.ones(len(x), dtype=torch.bool, device=device) if only is None else \
                torch.from_numpy(only[e][start:start + len(x)]).to(device)
            if sel.any():
                x_adv[sel] = attack(model, x[sel], y[sel], eps)
            writer.write(quantize_8bit(x_adv, u8, eps) if quantize else x_adv - x)
            bar.update(int(sel.sum()))
            start += len(x)
    bar.close()
    writer.close()
