"""bench/gpu_check.sh: the plan checks out (--dry) and a tiny CPU run writes every figure."""

import json
import subprocess
import sys

from conftest import ROOT, tool_env

CMD = [str(ROOT / "bench" / "gpu_check.sh")]


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**tool_env(), "PYTHON": sys.executable, "GPU_CHECK_TIMEOUT": "900"}  # CPU: slower than on a GPU
    return subprocess.run([*CMD, *args], env=env, capture_output=True, text=True, timeout=1000, check=True)


def test_dry_run_prints_the_plan():
    out = run("--dry").stdout
    assert "bench/train_step.py --size 224" in out and "bench/attack.py --size 224" in out and "dvc repro" in out


def test_tiny_cpu_run_writes_every_figure(tmp_path):
    run("--cpu", "--tiny", "--out", str(tmp_path))
    res = json.loads((tmp_path / "gpu_check.json").read_text())
    figures = [res["tiny_repro"]["total_s"], res["evaluate"]["img_s"], res["train_step"]["a_memory_step_img_s"],
               res["train_step"]["c_gr_step_loader_img_s"], res["attack"]["pgd_ratio"], res["attack"]["square_ratio"]]
    assert all(f > 0 for f in figures), figures
    assert (tmp_path / "gpu_check.md").read_text().startswith("| measure | 1 GPU |")
