"""Helpers shared by the benchmarks: timing and result files."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def rate(fn: Callable[[], int], warmup: int = 2, repeat: int = 8) -> float:
    """Items per second of ``fn`` (which returns how many items it processed)."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    n = sum(fn() for _ in range(repeat))
    return n / (time.perf_counter() - t0)


def report(name: str, results: dict) -> None:
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")


def interleaved(variants: dict[str, Callable[[], int]], rounds: int) -> dict[str, float]:
    """Median items/s of each variant (``fn`` returns the items it processed), run a b c a b c ... after a warmup."""
    for fn in variants.values():
        fn()
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for k, fn in variants.items():
            t0 = time.perf_counter()
            n = fn()
            rates[k].append(n / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in rates.items()}
