"""Per-split class balancing that never moves a video across splits."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np


def undersample(rows: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Keep every real and as many fakes, drawn as evenly as possible across methods."""
    reals = [r for r in rows if r["label"] == 0]
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["label"] == 1:
            by_method[r["method"]].append(r)
    pools = {m: [v[i] for i in rng.permutation(len(v))] for m, v in sorted(by_method.items())}
    want = min(len(reals), sum(len(v) for v in pools.values()))
    taken: dict[str, int] = {m: 0 for m in pools}
    while sum(taken.values()) < want:  # round-robin over methods that still have videos
        for m in [m for m in pools if taken[m] < len(pools[m])]:
            if sum(taken.values()) < want:
                taken[m] += 1
    fakes = [r for m in pools for r in pools[m][: taken[m]]]
    return sorted(reals + fakes, key=lambda r: r["key"])


def oversample(rows: list[dict[str, Any]], rng: np.random.Generator) -> list[dict[str, Any]]:
    """Repeat reals (drawn at random, marked by ``copy`` >= 1) until they match the fakes."""
    reals = [r for r in rows if r["label"] == 0]
    n_extra = sum(r["label"] == 1 for r in rows) - len(reals)
    if n_extra <= 0 or not reals:
        return list(rows)
    extra, seen = [], defaultdict(int)
    for i in rng.choice(len(reals), size=n_extra, replace=True):
        seen[i] += 1
        extra.append({**reals[i], "copy": seen[i]})
    return sorted(list(rows) + extra, key=lambda r: (r["key"], r["copy"]))


def balance(rows: list[dict[str, Any]], strategy: str, splits: list[str], seed: int) -> list[dict[str, Any]]:
    """Balance real vs fake inside each split in ``splits``; other splits pass unchanged."""
    rows = [{**r, "copy": 0} for r in rows]
    out = []
    for i, split in enumerate(("train", "val", "test")):
        part = [r for r in rows if r["split"] == split]
        if split in splits and strategy != "none":
            rng = np.random.default_rng([seed, i])
            part = undersample(part, rng) if strategy == "undersample" else oversample(part, rng)
        out += part
    return out
