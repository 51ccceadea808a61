"""Adversarial artifacts: streamed, losslessly compressed int8/float16 deltas that rebuild the evaluated images
exactly, in memory bounded by the batch."""

import json
import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from robustdf.attack.artifacts import Artifact, ArtifactWriter, generate, quantize_8bit, rebuild
from robustdf.attack.attacks import FGSM
from robustdf.runtime import DataError


def _batches(u8: torch.Tensor, y: torch.Tensor, bs: int):
    return lambda: ((u8[i:i + bs], y[i:i + bs]) for i in range(0, len(u8), bs))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()


@pytest.mark.parametrize("quantize", [True, False])
def test_artifacts_rebuild_exactly_the_evaluated_images(tmp_path, quantize):
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 2, (50,), generator=g)
    eps_list = [2 / 255, 4 / 255]
    model = _model()
    writer = ArtifactWriter(tmp_path / "a", eps_list, (3, 8, 8), 50, "int8" if quantize else "float16",
                            {"model": "m", "attack": "fgsm"})
    generate(model, FGSM(), _batches(u8, y, 16), 50, eps_list, torch.device("cpu"), writer, quantize)
    art = Artifact(tmp_path / "a")
    assert art.eps == eps_list and art.dtype == (np.int8 if quantize else np.float16)
    assert (tmp_path / "a/delta.zlib").stat().st_size < 50 * 2 * 3 * 64 * (1 if quantize else 2)  # < bytes/value
    meta = json.loads((tmp_path / "a/meta.json").read_text())
    assert (meta["attack"], meta["dtype"], meta["codec"]) == ("fgsm", "int8" if quantize else "float16", "zlib")
    for e, eps in enumerate(eps_list):
        x = u8.float() / 255
        expected = FGSM()(model, x, y, eps)
        delta = torch.cat([art.delta(e, i, i + 7) for i in range(0, 50, 7)])  # any batching gives the same
        adv = rebuild(u8, delta, eps)
        assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        if quantize:
            assert torch.equal(adv * 255, (adv * 255).round())  # real 8-bit images
            assert torch.equal(delta, quantize_8bit(expected, u8, eps))
        else:
            assert torch.allclose(adv, expected, atol=eps * 2**-10 + 1e-7)


def test_quantize_removes_sub_level_perturbations():
    clean = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    x = clean.float() / 255
    adv = (x + 0.4 / 255 * torch.sign(torch.randn_like(x))).clamp(0, 1)
    assert not quantize_8bit(adv, clean, 0.5 / 255).any()
    assert quantize_8bit((x + 2 / 255).clamp(0, 1), clean, 2 / 255).abs().max() == 2


def test_incomplete_or_tampered_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="incomplete or missing"):
        Artifact(tmp_path / "none")
    w = ArtifactWriter(tmp_path / "b", [1 / 255], (3, 2, 2), 3, "int8", {})
    w.write(torch.zeros(2, 3, 2, 2, dtype=torch.int8))
    with pytest.raises(RuntimeError, match="more than 3 frames"):
        w.write(torch.zeros(2, 3, 2, 2, dtype=torch.int8))
    with pytest.raises(RuntimeError, match="wrote 2 of 3"):
        w.close()
    assert not (tmp_path / "b/meta.json").exists()  # never looks complete


def _pgd_like(n: int, eps_levels: list[int], dtype: str = "int8") -> np.ndarray:
    """Deltas like a PGD run's: mostly at +-eps, some zeros and values in between; shape (E, n, 3, 32, 32)."""
    rng = np.random.default_rng(0)
    out = [rng.choice([-lv, lv, 0, lv // 2], p=[0.4, 0.4, 0.1, 0.1], size=(n, 3, 32, 32)) for lv in eps_levels]
    return np.stack(out).astype(np.int8) if dtype == "int8" else (np.stack(out) / 255).astype(np.float16)


def _write(folder, deltas: np.ndarray, batch: int) -> Artifact:
    """Stores ``deltas`` (E, N, ...) batch by batch and opens the artifact."""
    dtype = "int8" if deltas.dtype == np.int8 else "float16"
    w = ArtifactWriter(folder, [i / 255 for i in range(len(deltas))], deltas.shape[2:], deltas.shape[1], dtype, {})
    for d in deltas:
        for i in range(0, len(d), batch):
            w.write(torch.from_numpy(d[i:i + batch]))
    w.close()
    return Artifact(folder)


@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_round_trip_is_exact_for_any_read_batching(tmp_path, dtype):
    deltas = _pgd_like(23, [1, 2, 4], dtype)
    art = _write(tmp_path / "a", deltas, 5)
    for e in range(3):
        assert np.array_equal(torch.cat([art.delta(e, i, i + 4) for i in range(0, 23, 4)]).numpy(), deltas[e])
        for start, stop in [(0, 1), (7, 12), (22, 30), (3, 3)]:  # single frames, the middle, past the end, empty
            assert np.array_equal(art.delta(e, start, stop).numpy(), deltas[e, start:stop])


def test_same_deltas_give_the_same_bytes(tmp_path):
    deltas = _pgd_like(10, [2, 4])
    _write(tmp_path / "a", deltas, 3)
    _write(tmp_path / "b", deltas, 4)  # the batching does not matter either
    for f in ("delta.zlib", "offsets.npy", "meta.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_typical_deltas_compress_well_below_a_byte_per_value(tmp_path):
    deltas = _pgd_like(20, [1, 2, 4])
    _write(tmp_path / "a", deltas, 8)
    stored = (tmp_path / "a/delta.zlib").stat().st_size + (tmp_path / "a/offsets.npy").stat().st_size
    assert stored < deltas.nbytes / 3, stored / deltas.nbytes


def test_is_zero_reads_the_counts_kept_in_meta(tmp_path):
    deltas = _pgd_like(6, [0, 2])
    deltas[1, :5] = 0
    art = _write(tmp_path / "a", deltas, 4)
    assert art.is_zero(0) and not art.is_zero(1)
    assert json.loads((tmp_path / "a/meta.json").read_text())["nonzero_frames"] == [0, 1]


def test_corrupt_chunk_or_mismatched_index_is_a_clear_error(tmp_path):
    art = _write(tmp_path / "a", _pgd_like(6, [2, 4]), 4)
    data = bytearray((tmp_path / "a/delta.zlib").read_bytes())
    data[int(art.offsets[8]) + 20] ^= 0xFF  # inside the chunk of eps 1, frame 2
    (tmp_path / "a/delta.zlib").write_bytes(bytes(data))
    art = Artifact(tmp_path / "a")
    assert torch.equal(art.delta(1, 0, 2), torch.from_numpy(_pgd_like(6, [2, 4])[1, :2]))  # the others still read
    with pytest.raises(DataError, match=r"delta\.zlib: eps index 1, frame 2 is corrupt"):
        art.delta(1, 0, 6)
    (tmp_path / "a/delta.zlib").write_bytes(bytes(data[:-1]))
    with pytest.raises(DataError, match=r"offsets\.npy does not match .*delta\.zlib"):
        Artifact(tmp_path / "a")
    np.save(tmp_path / "a/offsets.npy", art.offsets[:-1])
    with pytest.raises(DataError, match=r"offsets\.npy does not match"):
        Artifact(tmp_path / "a")


def _peak_bytes(tmp_path, n: int) -> tuple[int, int]:
    """Peak traced memory of writing, then of reading back, an artifact of ``n`` frames."""
    u8 = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 2, (n,))
    tracemalloc.start()
    writer = ArtifactWriter(tmp_path / f"n{n}", [1 / 255, 2 / 255], (3, 32, 32), n, "int8", {})
    generate(_model(), FGSM(), _batches(u8, y, 32), n, [1 / 255, 2 / 255], torch.device("cpu"), writer, True)
    write_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    art = Artifact(tmp_path / f"n{n}")
    for e in range(2):
        for i in range(0, n, 32):
            rebuild(u8[i:i + 32], art.delta(e, i, i + 32), art.eps[e])
    read_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return write_peak, read_peak


def test_memory_is_bounded_by_the_batch_not_the_test_set(tmp_path):
    w1, r1 = _peak_bytes(tmp_path, 128)
    w4, r4 = _peak_bytes(tmp_path, 512)
    assert w4 < 1.3 * w1 and r4 < 1.3 * r1, (w1, w4, r1, r4)
