"""Training-loop checks: torchrun DDP and the recipe switch on the tiny pipeline's data; AMP and streamed
validation on a few synthetic frames with timm's smallest EfficientNet."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_params, tool_env, write_params
from robustdf.data.dataset import FrameDataset
from robustdf.train.model import load_checkpoint
from robustdf.params import validate_group
from robustdf.train.loop import amp_setup, evaluate_split, train


def test_two_process_gloo_run_produces_the_same_kind_of_outputs(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["train"]["nproc"] = 2
    write_params(pipeline_copy, params)
    env = {**tool_env(), "PYTHONPATH": "src", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "stages/train.py", "gr", "--seed", "0", "--out", "ddp/model", "--live",
                          "ddp/live"],
                         cwd=pipeline_copy, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    single = pipeline_copy / "data/models/gr-0"
    ddp = pipeline_copy / "ddp/model"
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())
    config = json.loads((ddp / "config.json").read_text())
    assert config["world_size"] == 2 and config["regularizer"] == "gr"
    model, _ = load_checkpoint(ddp)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    assert (pipeline_copy / "ddp/live/metrics.json").is_file()


def test_baseline_and_gr_share_the_recipe(pipeline_repo: Path):
    base = json.loads((pipeline_repo / "data/models/baseline-0/config.json").read_text())
    gr = json.loads((pipeline_repo / "data/models/gr-0/config.json").read_text())
    assert base["regularizer"] == "none" and gr["regularizer"] == "gr"
    for key in ("arch", "epochs", "selected_on", "device", "seed"):
        assert base[key] == gr[key]
    lock = yaml.safe_load((pipeline_repo / "dvc.lock").read_text())["stages"]
    assert lock["train@baseline-0"]["params"]["params.yaml"]["train.recipe"] == \
        lock["train@gr-0"]["params"]["params.yaml"]["train.recipe"]
    assert "train.gr" in lock["train@gr-0"]["params"]["params.yaml"]
    assert "train.gr" not in lock["train@baseline-0"]["params"]["params.yaml"]


def _frames(root: Path, n_videos: int, seed: int) -> list[dict]:
    """Videos of 4 noisy 32x32 frames; fakes (odd rows) have a bright centre."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_videos):
        frames = rng.integers(0, 120, (4, 32, 32, 3), dtype=np.uint8)
        if i % 2:
            frames[:, 10:22, 10:22] += 120
        name = f"{seed}-{i}.npy"
        np.save(root / name, frames)
        rows.append({"frames_file": name, "n_frames": 4, "label": i % 2})
    return rows


def test_amp_choices_resolve_per_device():
    cpu = torch.device("cpu")
    for choice, dtype, scaled in (("auto", None, False), ("off", None, False), ("bf16", torch.bfloat16, False),
                                  ("fp16", torch.float16, True)):
        autocast, scaler = amp_setup(choice, cpu)
        with autocast():
            out = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
        assert out.dtype == (dtype or torch.float32), choice
        assert scaler.is_enabled() == scaled and (scaler.get_scale() > 1) == scaled, choice


def test_one_gr_epoch_under_cpu_bf16_autocast_learns(tmp_path):
    raw = tiny_params()["train"]
    raw.update(arch="test_efficientnet", device="cpu", cpu_threads=1, amp="bf16")
    raw["recipe"].update(epochs=1, batch_size=8, lr=0.01, warmup_epochs=0, augment={"hflip": True})
    p = validate_group("train", raw)
    train_rows, val_rows = _frames(tmp_path, 16, 0), _frames(tmp_path, 8, 1)
    best = train(p, "gr", 0, train_rows, val_rows, tmp_path, tmp_path / "model", None)
    assert best["val_auc"] > 0.9, best
    assert math.isfinite(best["val_loss"]) and best["val_loss"] < math.log(2), best
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["amp"] == "bf16" and config["batch_per_process"] == 8 and config["regularizer"] == "gr"


def test_validation_is_streamed_and_independent_of_the_batch(tmp_path, trained_small_model):
    model, x, y = trained_small_model
    rows = []
    for i, (img, label) in enumerate(zip(x, y, strict=True)):  # the fixture's images as one-frame uint8 "videos"
        np.save(tmp_path / f"{i}.npy", (img[None] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
        rows.append({"frames_file": f"{i}.npy", "n_frames": 1, "label": int(label)})
    ds = FrameDataset(rows, tmp_path)
    weights = torch.tensor([1.0, 1.0])
    small = evaluate_split(model, ds, 5, torch.device("cpu"), weights)
    whole = evaluate_split(model, ds, len(ds), torch.device("cpu"), weights)
    assert small["auc"] > 0.9
    for k in small:
        assert small[k] == pytest.approx(whole[k], rel=1e-5), k
