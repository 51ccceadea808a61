"""Training-loop checks that need the tiny pipeline's data: torchrun DDP and the recipe switch."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import tool_env, write_params
from robustdf.model import load_checkpoint


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
