"""One-call device check: (a) the tiny `dvc repro` in a temp copy of the project, (b) the training benchmark,
(c) the attack benchmark, (d) evaluate's throughput (from (a)'s evaluate run log); one JSON plus a markdown
table for the README's "1 GPU" column. Downloads nothing.

Usage: python bench/gpu_check.py [--dry] [--cpu] [--tiny] [--out bench/results/gpu_check]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from conftest import copy_project, init_git, tiny_params, write_params  # noqa: E402  (the tests' TINY params)

FULL = {"train_step.py": ["--size", "224", "--batch", "32", "--steps", "8"],
        "attack.py": ["--size", "224", "--batch", "64", "--rounds", "3"]}
TINY = {"train_step.py": ["--size", "32", "--batch", "4", "--steps", "1"],
        "attack.py": ["--size", "32", "--batch", "4", "--steps", "1", "--queries", "2", "--rounds", "1"]}


def check_flags(benches: dict[str, list[str]]) -> None:
    """Every script exists and its --help names every flag the plan passes."""
    for script, flags in benches.items():
        text = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--help"], capture_output=True,
                              text=True, check=True).stdout
        missing = [f for f in flags if f.startswith("--") and f not in text]
        if missing:
            raise SystemExit(f"bench/{script} lacks the flags {missing}")


def tiny_repro(device: str, repo: Path) -> dict[str, float]:
    """The tests' tiny pipeline, run by real dvc on ``device``; seconds in all and per stage."""
    copy_project(repo)
    params = tiny_params(train={"device": device}, attack={"device": device})
    write_params(repo, params)
    init_git(repo)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONPATH", None)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=repo, env=env, check=True, capture_output=True)
    stages = {json.loads(p.read_text())["stage"]: json.loads(p.read_text())["total_s"]
              for p in (repo / "data").rglob("*.run_log.json")}
    return {"total_s": round(time.perf_counter() - t0, 1), **stages}


def evaluate_rate(repo: Path) -> dict[str, float]:
    """Images/s of evaluate's prediction passes in (a): every predicted condition of every model."""
    log = json.loads((repo / "data" / "evaluate.run_log.json").read_text())
    details = json.loads((repo / "data" / "evaluate" / "details.json").read_text())
    n = details["context"]["n_frames"] * sum(
        sum(not c.startswith("worst_") for c in m["conditions"]) for m in details["models"].values())
    return {"images": n, "predict_s": log["timings_s"]["predict"], "img_s": round(n / log["timings_s"]["predict"], 2)}


def table(res: dict) -> str:
    rows = [("tiny dvc repro (s)", res["tiny_repro"]["total_s"]),
            ("train: baseline step, batch in memory (img/s)", res["train_step"]["a_memory_step_img_s"]),
            ("train: baseline step (img/s)", res["train_step"]["b_baseline_step_loader_img_s"]),
            ("train: GR step (img/s)", res["train_step"]["c_gr_step_loader_img_s"]),
            ("attack: PGD / bare fwd+bwd", res["attack"]["pgd_ratio"]),
            ("attack: Square / bare fwd", res["attack"]["square_ratio"]),
            ("evaluate: prediction (img/s)", res["evaluate"]["img_s"])]
    return "| measure | 1 GPU |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dry", action="store_true", help="print the plan and check every script and flag")
    ap.add_argument("--cpu", action="store_true", help="run on CPU (for the test suite)")
    ap.add_argument("--tiny", action="store_true", help="benchmarks at tiny size")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_check")
    args = ap.parse_args()
    benches = TINY if args.tiny else FULL
    device = "cpu" if args.cpu else "cuda"
    plan = ["(a) tiny dvc repro on " + device, *(f"bench/{s} {' '.join(f)}" for s, f in benches.items()),
            "(d) evaluate img/s from (a)'s evaluate run log"]
    print("\n".join(plan))
    check_flags(benches)
    if args.dry:
        return
    if not args.cpu:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --cpu for the CPU variant")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BENCH_RESULTS": str(args.out), "CUDA_VISIBLE_DEVICES": "" if args.cpu else
           os.environ.get("CUDA_VISIBLE_DEVICES", "0")}
    res: dict = {"device": device, "tiny": args.tiny}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        res["tiny_repro"] = tiny_repro(device, repo)
        res["evaluate"] = evaluate_rate(repo)
    for script, flags in benches.items():
        subprocess.run([sys.executable, str(ROOT / "bench" / script), *flags], env=env, check=True,
                       capture_output=True)
        res[script.removesuffix(".py")] = json.loads((args.out / script.replace(".py", ".json")).read_text())
    (args.out / "gpu_check.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "gpu_check.md").write_text(table(res))
    print(table(res))
    print(f"written to {args.out}/gpu_check.json and gpu_check.md")


if __name__ == "__main__":
    main()
