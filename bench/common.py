"""Helpers shared by the benchmarks: timing (synchronised with the device) and result files."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def synchronize(device: Any = None) -> None:
    """Wait until ``device`` (a torch.device; CUDA only) has run everything queued: a timer read after it
    measures the work, not just its launch."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], Any], device: Any = None) -> tuple[Any, float]:
    """``fn()``'s result and its wall-clock seconds, the device's queue drained before and after."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return out, time.perf_counter() - t0


def rate(fn: Callable[[], int], warmup: int = 2, repeat: int = 8, device: Any = None) -> float:
    """Items per second of ``fn`` (which returns how many items it processed), synchronised on ``device``."""
    for _ in range(warmup):
        fn()
    n, dt = seconds(lambda: sum(fn() for _ in range(repeat)), device)
    return n / dt


def interleaved(variants: dict[str, Callable[[], int]], rounds: int, device: Any = None) -> dict[str, float]:
    """Median items/s of each variant (``fn`` returns the items it processed), run a b c a b c ... after a
    warmup; every run is timed between two synchronisations of ``device``."""
    for fn in variants.values():
        fn()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            n, dt = seconds(fn, device)
            rates[k].append(n / dt)
    return {k: statistics.median(v) for k, v in rates.items()}


def report(name: str, results: dict) -> None:
    """Print ``results`` and write them to ``$BENCH_RESULTS/<name>.json`` (default bench/results/)."""
    out = Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results")) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")
