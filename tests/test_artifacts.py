"""Adversarial artifacts: streamed int8/float16 deltas that rebuild the evaluated images exactly, in memory
bounded by the batch."""

import json
import tracemalloc

import numpy as np
import pytest
import torch
from torch import nn

from robustdf.artifacts import Artifact, ArtifactWriter, generate, quantize_8bit, rebuild
from robustdf.attacks import FGSM
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
    assert (tmp_path / "a/delta.npy").stat().st_size < 50 * 2 * 3 * 64 * (1 if quantize else 2) + 200  # bytes/value
    assert json.loads((tmp_path / "a/meta.json").read_text())["attack"] == "fgsm"
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
    with pytest.raises(RuntimeError, match="wrote 2 of 3"):
        w.close()
    assert not (tmp_path / "b/meta.json").exists()  # never looks complete


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
