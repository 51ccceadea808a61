"""Sharded attack and evaluate stages (real torchrun, two gloo processes on CPU) write the one-process bytes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from conftest import sh, write_params
from robustdf.attack.sharding import shard


@pytest.mark.parametrize("n,align,world", [(10, 4, 2), (64, 8, 3), (5, 8, 2), (0, 4, 2), (100, 1, 7)])
def test_shards_are_contiguous_batch_aligned_and_even(n, align, world):
    shards = [shard(n, align, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))
    assert all(s.start % align == 0 for s in shards if s)
    blocks = [-(-len(s) // align) for s in shards]
    assert max(blocks) - min(blocks) <= 1


def run_stage(repo: Path, params: dict, *args: str) -> None:
    write_params(repo, params)
    sh([sys.executable, *args], repo, env={"PYTHONPATH": "src"}, timeout=600)


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_processes_write_the_one_process_artifact(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["attack"]["batch_size"] = 4  # the tiny test set spans three batches: both ranks attack frames
    params["attack"]["cpu_threads"] = 1  # two processes on two cores, in both runs (bytes match per thread count)
    cmd = ["stages/attack.py", "baseline-0", "pgd"]  # random starts: the shards must draw the same noise
    run_stage(pipeline_copy, params, *cmd, "--out", "one")
    params["attack"]["nproc"] = 2
    run_stage(pipeline_copy, params, *cmd, "--out", "two")
    one, two = files(pipeline_copy / "one"), files(pipeline_copy / "two")
    assert yaml.safe_load(one["meta.json"])["n_frames"] > 4
    assert one == two


def test_two_processes_evaluate_like_one(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["evaluate"]["nproc"] = 2
    run_stage(pipeline_copy, params, "stages/evaluate.py", "--out", "eval2")
    one, two = pipeline_copy / "data" / "evaluate", pipeline_copy / "eval2"
    for name in ["details.json", "metrics.json", "verdict.json", "report.md"]:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert len(yaml.safe_load((two / "details.json").read_text())["models"]) == 2
