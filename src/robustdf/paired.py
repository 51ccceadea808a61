"""GR-minus-baseline differences paired by seed, with intervals that cover training seeds and test videos.

One bootstrap replicate draws the seeds with replacement (training variance) and the test videos
with replacement (test sampling, the same videos for every seed, as all models share one test
set), then averages the per-seed differences. A difference is a finding only when the interval
excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from robustdf.metrics import percentile_band, video_resamples

Stat = Callable[[np.ndarray, np.ndarray], float]


def paired_seed_difference(y: np.ndarray, video: np.ndarray, a: Sequence[np.ndarray], b: Sequence[np.ndarray],
                           stat: Stat, n_boot: int, ci: float, seed: int) -> dict[str, object]:
    """Mean over seeds of ``stat(y, b[s]) - stat(y, a[s])`` with a hierarchical bootstrap interval.

    ``a[s]`` and ``b[s]`` are per-frame values (scores or per-frame quantities) of the two models
    trained with seed ``s``, on the same frames as ``y`` and ``video``.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same positive number of seeds per model, got {len(a)} and {len(b)}")
    per_seed = [stat(y, bs) - stat(y, as_) for as_, bs in zip(a, b, strict=True)]
    rng = np.random.default_rng([seed, 1])  # a stream of its own, independent of the video resamples
    reps = []
    for pick in video_resamples(video, n_boot, seed):
        seeds = rng.integers(0, len(a), len(a))
        cache: dict[int, float] = {}
        for s in set(seeds.tolist()):
            cache[s] = stat(y[pick], b[s][pick]) - stat(y[pick], a[s][pick])
        values = [cache[s] for s in seeds.tolist() if not math.isnan(cache[s])]
        if values:
            reps.append(float(np.mean(values)))
    lo, hi = percentile_band(reps, ci)
    return {
        "diff": float(np.nanmean(per_seed)) if not all(math.isnan(d) for d in per_seed) else math.nan,
        "lo": lo, "hi": hi,
        "per_seed": [float(d) for d in per_seed],
        "finding": bool(lo > 0 or hi < 0),
    }
