"""Benchmark: peak memory of the real attack and evaluate stages at N, 4N and 16N test frames; artifact size.

(a) Memory. A temp project holds a synthetic FF++-shaped test set (``--fpv`` frames per video at ``--size`` px,
videos alternating real / fake over four methods; the N and 4N manifests are prefixes of the 16N one) and two
EfficientNet-B0 checkpoints (random weights, head drawn with std 0.1 so gradients are not zero, written by
``save_checkpoint``). Per size, ``stages/attack.py baseline-0 fgsm`` and then ``stages/evaluate.py`` run, each in a
fresh process; gr-0's artifact (read by evaluate for transfer) is a copy of baseline-0's. Peak RSS is the kernel's
(``wait4`` ru_maxrss of that process); peak anonymous and file-backed RSS come from polling /proc every 20 ms.
Sizes interleaved (N 4N 16N N 4N 16N ...), medians over rounds. Goal: 16N within 1.2x of N, per stage.
The training loop's validation (``train.loop.evaluate_split``, baseline-0, the test frames as the val split, in
a fresh process of this script with ``--validation-child``) is measured the same way, as stage "validation".
Also, in this process, the growth of file-backed RSS over one pass of ``FrameDataset.batches`` per size: the
frames' memory maps count in RSS while open (the dataset keeps at most ``OPEN_MAPS`` open).
(b) Size. Stored bytes per adversarial image and eps (delta.zlib + offsets.npy) of the stage's int8 PGD and
float16 FGSM artifacts, next to the raw 1 byte per value (``bench/artifact_codec.py`` compares codecs).
Usage: python bench/memory.py [--n 32 --size 224 --fpv 8 --rounds 2 --pgd-steps 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from common import ROOT, report
from robustdf.attack.artifacts import Artifact
from robustdf.data.dataset import FrameDataset
from robustdf.data.manifest import read_rows, test_rows, write_rows
from robustdf.train.model import build_model, load_checkpoint, save_checkpoint
from robustdf.params import read_params
from robustdf.runtime import set_cpu_threads
from robustdf.train.loop import evaluate_split

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
MODELS = ("baseline-0", "gr-0")
MIB = 1024 * 1024


def synthetic_frames(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` smooth random images (N, H, W, 3) uint8: bilinear 8x8 colour fields plus pixel noise."""
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, 8, 8)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    noisy = smooth + torch.from_numpy(rng.normal(0, 8, smooth.shape).astype(np.float32))
    return noisy.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def video_row(i: int, fpv: int, split: str) -> dict[str, Any]:
    """Manifest row of video ``i``: even ``i`` real, odd ``i`` a fake of the next method in turn."""
    method = "original" if i % 2 == 0 else METHODS[(i // 2) % len(METHODS)]
    key = f"{method}/{i:04d}"
    return {"key": key, "method": method, "label": int(method != "original"), "frames_file": f"videos/{key}.npy",
            "n_frames": fpv, "split": split, "copy": 0}


def make_test_set(root: Path, sizes: list[int], fpv: int, size: int) -> dict[int, Path]:
    """Frame arrays of the largest size under ``root/frames``; one balanced manifest per size; returns their folders."""
    rng = np.random.default_rng(0)
    n_videos = max(sizes) // fpv
    rows = [video_row(i, fpv, "test") for i in range(n_videos)]
    for r in rows:
        path = root / "frames" / r["frames_file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, synthetic_frames(rng, fpv, size))
    train = [{**video_row(i, fpv, "test"), "split": "train"} for i in range(2 * len(METHODS))]  # methods are seen
    folders = {}
    for n in sizes:
        folders[n] = root / f"n{n}" / "balanced"
        folders[n].mkdir(parents=True)
        write_rows(folders[n] / "manifest.csv", train + rows[:n // fpv])
    return folders


def make_models(folder: Path) -> None:
    """Two random-weight EfficientNet-B0 checkpoints named like trained ones (baseline-0, gr-0)."""
    for k, name in enumerate(MODELS):
        torch.manual_seed(k)
        model = build_model("efficientnet_b0")
        nn.init.normal_(model.backbone.get_classifier().weight, std=0.1)  # the zero-initialised head gives no gradient
        variant = name.split("-")[0]
        save_checkpoint(model, folder / name, {"arch": "efficientnet_b0", "variant": variant, "seed": 0,
                                               "epoch": 0, "val_auc": 0.9})


def write_params(folder: Path, attack: dict[str, Any], evaluate: dict[str, Any]) -> Path:
    """``folder/params.yaml``: the repository's params with one seed and the given attack / evaluate overrides."""
    params = read_params(ROOT / "params.yaml")
    params["train"]["seeds"] = [0]
    params["attack"].update(attack)
    params["evaluate"].update(evaluate)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def _proc_rss(pid: int) -> dict[str, int]:
    """Current RssAnon and RssFile of ``pid`` in bytes (empty once it has exited)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in lines if line.startswith(("RssAnon", "RssFile")))
    return {k: int(v.split()[0]) * 1024 for k, v in fields.items()}


def run_stage(cmd: list[str], cwd: Path, log: Path) -> dict[str, float]:
    """Run one stage process to completion; its peak RSS (kernel), peak anon / file RSS (polled), wall time."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_WAIT_POLICY": "PASSIVE"}
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, *cmd], cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    peak = {"RssAnon": 0, "RssFile": 0}
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        for k, v in _proc_rss(proc.pid).items():
            peak[k] = max(peak[k], v)
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return {"peak_rss_mib": round(usage.ru_maxrss * 1024 / MIB, 1), "peak_anon_mib": round(peak["RssAnon"] / MIB, 1),
            "peak_file_mib": round(peak["RssFile"] / MIB, 1), "wall_s": round(time.perf_counter() - t0, 1)}


def mapped_frames_mib(frames: Path, data: Path, batch: int) -> float:
    """Growth of this process's file-backed RSS over one pass of the test frames in stage order (memory maps)."""
    ds = FrameDataset(test_rows(read_rows(data / "manifest.csv")), frames)
    before = _proc_rss(os.getpid())["RssFile"]
    for _ in ds.batches(batch):
        pass
    return round((_proc_rss(os.getpid())["RssFile"] - before) / MIB, 1)


def attack_cmd(root: Path, data: Path, model: str, attack: str, out: Path) -> list[str]:
    return [str(ROOT / "stages/attack.py"), model, attack, "--data", str(data), "--frames", str(root / "frames"),
            "--models", str(root / "models"), "--out", str(out)]


def validation_child(data: Path, frames: Path, model_dir: Path, batch: int) -> None:
    """The training loop's per-epoch validation of one model over the manifest's test frames (run in a fresh
    process, whose peak RSS is the measurement)."""
    set_cpu_threads(2)
    model, _ = load_checkpoint(model_dir)
    ds = FrameDataset(test_rows(read_rows(data / "manifest.csv")), frames)
    val = evaluate_split(model, ds, batch, torch.device("cpu"), torch.ones(2))
    print(f"validated {len(ds)} frames: {val}")


def measure_validation(root: Path, data: Path, batch: int) -> dict[str, float]:
    """Peak RSS of :func:`validation_child` (baseline-0) over one test-set size."""
    cmd = [str(Path(__file__).resolve()), "--validation-child", str(data), str(root / "frames"),
           str(root / "models" / MODELS[0]), "--eval-batch", str(batch)]
    return run_stage(cmd, root, data.parent / "validation.log")


def measure_size(root: Path, cfg: Path, data: Path) -> dict[str, dict[str, float]]:
    """Attack (baseline-0, FGSM) and then evaluate one test-set size, each in a fresh process."""
    attacks = data.parent / "attacks"
    out = attacks / "baseline-0" / "fgsm"
    atk = run_stage(attack_cmd(root, data, "baseline-0", "fgsm", out), cfg, data.parent / "attack.log")
    shutil.rmtree(attacks / "gr-0", ignore_errors=True)
    shutil.copytree(out, attacks / "gr-0" / "fgsm")
    ev = run_stage([str(ROOT / "stages/evaluate.py"), "--data", str(data), "--frames", str(root / "frames"),
                    "--models", str(root / "models"), "--attacks", str(attacks),
                    "--train-logs", str(root / "no_train_logs"), "--out", str(data.parent / "evaluate")],
                   cfg, data.parent / "evaluate.log")
    return {"attack": atk, "evaluate": ev}


def medians(runs: list[dict[str, Any]], sizes: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    """Per stage, per size, the median of each measured quantity over rounds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for stage in ("attack", "evaluate", "validation"):
        out[stage] = {}
        for n in sizes:
            mine = [r[stage] for r in runs if r["n_frames"] == n]
            out[stage][str(n)] = {k: round(statistics.median(m[k] for m in mine), 1) for k in mine[0]}
    return out


def bytes_per_image(folder: Path) -> float:
    """Stored bytes (delta.zlib + offsets.npy) per adversarial image (frame x eps)."""
    art = Artifact(folder)
    return sum((folder / f).stat().st_size for f in ("delta.zlib", "offsets.npy")) / (art.shape[0] * art.shape[1])


def measure_storage(root: Path, data: Path, batch: int, pgd_steps: int) -> dict[str, Any]:
    """Bytes per image and eps of the stage's int8 (PGD) and float16 (FGSM) artifacts, against the raw bytes."""
    base = {"batch_size": batch, "device": "cpu", "cpu_threads": 2, "eps": ["1/255", "2/255", "4/255"]}
    pgd = {**read_params(ROOT / "params.yaml")["attack"]["pgd"], "steps": pgd_steps, "losses": ["ce"]}
    cfg8 = write_params(root / "cfg_pgd", {**base, "attacks": ["pgd"], "quantize_8bit": True, "pgd": pgd}, {})
    cfg16 = write_params(root / "cfg_fp16", {**base, "attacks": ["fgsm"], "quantize_8bit": False}, {})
    out8, out16 = root / "storage" / "pgd_int8", root / "storage" / "fgsm_float16"
    out8.parent.mkdir()
    t8 = run_stage(attack_cmd(root, data, "baseline-0", "pgd", out8), cfg8, root / "storage" / "pgd.log")
    t16 = run_stage(attack_cmd(root, data, "baseline-0", "fgsm", out16), cfg16, root / "storage" / "fp16.log")
    raw = 3 * Artifact(out8).shape[-1] ** 2
    return {"raw_bytes_per_image_eps_int8": raw,
            "int8_pgd": {"bytes_per_image_eps": round(bytes_per_image(out8), 1), "run": t8, "pgd_steps": pgd_steps},
            "float16_fgsm": {"bytes_per_image_eps": round(bytes_per_image(out16), 1), "run": t16}}


def print_table(res: dict[str, Any]) -> None:
    """Peak RSS per stage and size, frames mapped per size, bytes per image."""
    sizes, peaks, storage = res["n_frames"], res["peak_rss_median"], res["storage"]
    print(f"\n{'stage':<9}" + "".join(f"{f'{n} frames':>13}" for n in sizes) + f"{'16N/N':>8}   (peak RSS MiB, median)")
    for stage, per in peaks.items():
        vals = [per[str(n)]["peak_rss_mib"] for n in sizes]
        print(f"{stage:<9}" + "".join(f"{v:>13.1f}" for v in vals) + f"{vals[-1] / vals[0]:>8.3f}")
    print("file-backed RSS after one pass over the frames (MiB): "
          + ", ".join(f"{n}: +{v}" for n, v in res["frames_mapped_rss_growth_mib"].items()))
    print(f"bytes per adversarial image and eps (raw int8 {storage['raw_bytes_per_image_eps_int8']}): int8 PGD "
          f"{storage['int8_pgd']['bytes_per_image_eps']:.1f}, float16 FGSM "
          f"{storage['float16_fgsm']['bytes_per_image_eps']:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=32, help="N test frames; also 4N and 16N")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--fpv", type=int, default=8, help="frames per video")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--attack-batch", type=int, default=16, help="at most N, so N already fills whole batches")
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--pgd-steps", type=int, default=5)
    ap.add_argument("--validation-child", nargs=3, metavar=("DATA", "FRAMES", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.validation_child:
        validation_child(*map(Path, args.validation_child), args.eval_batch)
        return
    if args.n % args.fpv or args.attack_batch > args.n or args.eval_batch > args.n:
        raise SystemExit("--n must be a multiple of --fpv and at least each batch size")
    t0 = time.perf_counter()
    sizes = [args.n, 4 * args.n, 16 * args.n]
    with tempfile.TemporaryDirectory(prefix="membench-") as tmp:
        root = Path(tmp)
        data = make_test_set(root, sizes, args.fpv, args.size)
        make_models(root / "models")
        mapped = {str(n): mapped_frames_mib(root / "frames", data[n], args.eval_batch) for n in sizes}
        cfg = write_params(root / "cfg_mem", {"attacks": ["fgsm"], "eps": ["2/255"], "batch_size": args.attack_batch,
                                              "quantize_8bit": True, "device": "cpu", "cpu_threads": 2},
                           {"batch_size": args.eval_batch, "cpu_threads": 2})
        runs = []
        for k in range(args.rounds):
            for n in sizes:
                runs.append({"round": k, "n_frames": n, **measure_size(root, cfg, data[n]),
                             "validation": measure_validation(root, data[n], args.eval_batch)})
                print(f"round {k} n={n}: {runs[-1]}", flush=True)
        storage = measure_storage(root, data[args.n], args.attack_batch, args.pgd_steps)
    peaks = medians(runs, sizes)
    results = {
        "device": "cpu", "cpu_threads": 2, "image_size": args.size, "frames_per_video": args.fpv,
        "n_frames": sizes, "rounds": args.rounds, "attack": {"name": "fgsm", "eps_255": [2], "batch_size":
                                                             args.attack_batch},
        "evaluate_batch_size": args.eval_batch, "peak_rss_median": peaks,
        "frame_mib": round(3 * args.size ** 2 / MIB, 3), "frames_mapped_rss_growth_mib": mapped,
        "ratio_16n_over_n": {s: round(p[str(sizes[-1])]["peak_rss_mib"] / p[str(sizes[0])]["peak_rss_mib"], 3)
                             for s, p in peaks.items()},
        "goal_ratio": 1.2, "storage": storage, "runs": runs, "wall_s": round(time.perf_counter() - t0, 1),
    }
    report("memory", results)
    print_table(results)


if __name__ == "__main__":
    main()
