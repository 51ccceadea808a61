"""Benchmark: bytes per adversarial image and write / read throughput of the zlib artifacts versus the previous
raw layout (one ``.npy``, 1 byte per int8 value), on int8 PGD deltas.

Sources: PGD (the default ``attack.pgd``, ``--pgd-steps`` steps) int8 deltas of an EfficientNet-B0 (random weights,
head drawn with std 0.1 so gradients are not zero, as in ``bench/memory.py``) on ``--n`` synthetic ``--size`` px
frames (bilinear 8x8 colour fields plus pixel noise); plus the int8 artifact folders given with ``--artifacts``
(e.g. a default run's ``data/attacks/baseline-0/pgd``), in either format. Per source and eps: stored bytes per
image (zlib: ``delta.zlib`` + ``offsets.npy``; raw: ``.npy`` header + 1 byte per value). Throughput, in MB/s of
int8 values: the whole array written through :class:`ArtifactWriter` and read back through :class:`Artifact` in
batches of ``--batch``, against the raw layout written and read the way the previous code did (one ``write`` per
batch; one open, seek and read per batch) on the same disk, and :func:`rebuild` of the same batches (what
evaluate does next with them); variants interleaved over ``--rounds``, medians.
Usage: python bench/artifact_codec.py [--n 32 --size 224 --pgd-steps 5 --artifacts data/attacks/baseline-0/pgd]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common import ROOT, interleaved, report
from robustdf.attack.artifacts import DATA, INDEX, Artifact, ArtifactWriter, quantize_8bit, rebuild
from robustdf.attack.attacks import build_attack
from robustdf.train.model import build_model
from robustdf.params import load_group

EPS_255 = (1, 2, 4, 32)
MB = 1e6


def synthetic_frames(n: int, size: int) -> torch.Tensor:
    """``n`` smooth random images (N, 3, H, W) uint8: bilinear 8x8 colour fields plus pixel noise."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand((n, 3, 8, 8), generator=g) * 255
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (smooth + 8 * torch.randn(smooth.shape, generator=g)).clamp(0, 255).round().to(torch.uint8)


def pgd_deltas(n: int, size: int, steps: int, batch: int) -> np.ndarray:
    """int8 PGD deltas (E, n, 3, size, size) at every eps of ``EPS_255``."""
    torch.manual_seed(0)
    model = build_model("efficientnet_b0").eval()
    torch.nn.init.normal_(model.backbone.get_classifier().weight, std=0.1)
    p = load_group("attack", ROOT / "params.yaml")
    attack = build_attack("pgd", p.model_copy(update={"pgd": p.pgd.model_copy(update={"steps": steps})}))
    u8, y = synthetic_frames(n, size), torch.arange(n) % 2
    out = []
    for eps in (e / 255 for e in EPS_255):
        out.append(torch.cat([quantize_8bit(attack(model, u8[i:i + batch].float() / 255, y[i:i + batch], eps),
                                            u8[i:i + batch], eps) for i in range(0, n, batch)]))
    return torch.stack(out).numpy()


def load_deltas(folder: Path) -> tuple[np.ndarray, list[float]]:
    """The whole int8 delta array (E, N, 3, H, W) of an artifact folder (previous raw format or zlib) and its eps."""
    eps = json.loads((folder / "meta.json").read_text())["eps"]
    if (folder / "delta.npy").is_file():
        return np.load(folder / "delta.npy", allow_pickle=False), eps
    art = Artifact(folder)
    return np.stack([art.delta(e, 0, art.shape[1]).numpy() for e in range(len(eps))]), eps


def write_raw(path: Path, d: np.ndarray, batch: int) -> int:
    """The previous writer: an ``.npy`` header, then one ``write`` per batch."""
    with path.open("wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|i1", "fortran_order": False, "shape": d.shape})
        for e in d:
            for i in range(0, e.shape[0], batch):
                fh.write(e[i:i + batch].tobytes())
    return d.size


def read_raw(path: Path, d: np.ndarray, batch: int) -> int:
    """The previous reader: per batch, open, seek, read and copy into a tensor."""
    frame = int(np.prod(d.shape[2:]))
    offset = path.stat().st_size - d.size
    for e in range(d.shape[0]):
        for i in range(0, d.shape[1], batch):
            with path.open("rb") as fh:
                fh.seek(offset + (e * d.shape[1] + i) * frame)
                buf = fh.read(min(batch, d.shape[1] - i) * frame)
            torch.from_numpy(np.frombuffer(buf, dtype=np.int8).reshape(-1, *d.shape[2:]).copy())
    return d.size


def write_zlib(folder: Path, d: np.ndarray, eps: list[float], batch: int) -> int:
    """:class:`ArtifactWriter`, batch by batch."""
    w = ArtifactWriter(folder, eps, d.shape[2:], d.shape[1], "int8", {})
    for e in d:
        for i in range(0, e.shape[0], batch):
            w.write(torch.from_numpy(e[i:i + batch]))
    w.close()
    return d.size


def read_zlib(folder: Path, d: np.ndarray, batch: int) -> int:
    """:meth:`Artifact.delta`, batch by batch."""
    art = Artifact(folder)
    for e in range(d.shape[0]):
        for i in range(0, d.shape[1], batch):
            art.delta(e, i, i + batch)
    return d.size


def rebuild_all(d: np.ndarray, clean: torch.Tensor, batch: int) -> int:
    """What evaluate does next with each batch read: the adversarial images from clean frames and deltas."""
    for e in d:
        for i in range(0, len(e), batch):
            rebuild(clean[:len(e[i:i + batch])], torch.from_numpy(e[i:i + batch]), 1.0)
    return d.size


def measure(d: np.ndarray, eps: list[float], tmp: Path, batch: int, rounds: int) -> dict[str, Any]:
    """Bytes per image per eps, raw and zlib, and the five throughputs in MB/s of int8 values."""
    raw, folder = tmp / "delta.npy", tmp / "zlib"
    clean = torch.full((batch, *d.shape[2:]), 128, dtype=torch.uint8)
    shutil.rmtree(folder, ignore_errors=True)
    rates = interleaved({"write_raw": lambda: write_raw(raw, d, batch),
                         "write_zlib": lambda: write_zlib(folder, d, eps, batch),
                         "read_raw": lambda: read_raw(raw, d, batch),
                         "read_zlib": lambda: read_zlib(folder, d, batch),
                         "rebuild": lambda: rebuild_all(d, clean, batch)}, rounds)
    art = Artifact(folder)
    assert all(np.array_equal(art.delta(e, 0, d.shape[1]).numpy(), d[e]) for e in range(len(d)))  # lossless
    raw_per_image = raw.stat().st_size / d.shape[0] / d.shape[1]
    zlib_per_image = (np.diff(art.offsets).reshape(d.shape[:2]).mean(1) + 8).tolist()  # + its offset
    total = (folder / DATA).stat().st_size + (folder / INDEX).stat().st_size
    return {"frames": d.shape[1], "frame_shape": list(d.shape[2:]),
            "per_eps": [{"eps_255": round(e * 255, 3), "raw_bytes_per_image": round(raw_per_image, 1),
                         "zlib_bytes_per_image": round(z, 1), "ratio": round(raw_per_image / z, 2)}
                        for e, z in zip(eps, zlib_per_image, strict=True)],
            "ratio_all_eps": round(raw.stat().st_size / total, 2),
            "mb_s": {k: round(v / MB, 1) for k, v in rates.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--pgd-steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--artifacts", nargs="*", default=[], help="int8 artifact folders to measure too")
    args = ap.parse_args()
    torch.set_num_threads(2)
    res: dict[str, Any] = {"batch": args.batch, "rounds": args.rounds, "sources": {}}
    with tempfile.TemporaryDirectory() as tmp:
        d = pgd_deltas(args.n, args.size, args.pgd_steps, args.batch)
        res["sources"][f"pgd_synthetic_{args.size}px_{args.pgd_steps}steps"] = measure(
            d, [e / 255 for e in EPS_255], Path(tmp), args.batch, args.rounds)
        for folder in map(Path, args.artifacts):
            d, eps = load_deltas(folder)
            res["sources"][f"{folder.parent.name}/{folder.name}"] = measure(d, eps, Path(tmp), args.batch, args.rounds)
    report("artifact_codec", res)


if __name__ == "__main__":
    main()
