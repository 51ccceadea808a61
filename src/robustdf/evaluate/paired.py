"""GR-minus-baseline differences paired by seed, with an interval calibrated over training seeds and test identities.

Per seed ``s`` the difference ``d_s = stat(b_s) - stat(a_s)`` is measured on the whole test set; the estimate is
their mean over the ``S`` seeds. Its variance has two parts, added:

- training: the spread of ``d_s`` over seeds, ``s_d^2 / S`` (``S - 1`` degrees of freedom);
- test sampling: the variance of the mean difference over a bootstrap that redraws whole identity clusters (an
  original, its fakes and their sources; the same clusters for every seed, as all models share one test set),
  ``K - 1`` degrees of freedom for ``K`` clusters.

The interval is ``mean ± t_df * SE`` with ``SE^2`` the sum and ``df`` by Welch-Satterthwaite. The seed spread
already holds part of the test noise (each model's own frame errors), so the sum errs on the wide side; a null
simulation in ``tests/test_paired.py`` shows the false-finding rate at most nominal for 3, 5 and 10 seeds, where a
percentile bootstrap over seeds reached 0.30 with 3. The smallest difference the run could detect with
probability ``power`` is ``(t_{1 - alpha/2} + t_power) * SE``. With one seed there is no training variance to
estimate, so there is no interval and no finding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats as sps

from robustdf.evaluate.metrics import cluster_resamples

Stat = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (labels (n,), values (S, n)) -> one value per row (S,)


def satterthwaite_df(parts: Sequence[tuple[float, int]]) -> float:
    """Degrees of freedom of a sum of variance estimates ``(variance, df)`` (Welch-Satterthwaite)."""
    total = sum(v for v, _ in parts)
    denom = sum(v * v / d for v, d in parts if d > 0 and v > 0)
    return total * total / denom if denom > 0 else math.inf


def interval_from(diff: float, parts: Sequence[tuple[float, int]], ci: float, power: float) -> dict[str, float]:
    """t-interval and detectable size of ``diff`` whose variance is the sum of ``parts`` ``(variance, df)``."""
    se = math.sqrt(sum(v for v, _ in parts))
    df = satterthwaite_df(parts)
    t = float(sps.t.ppf((1 + ci) / 2, df))
    return {"diff": diff, "lo": diff - t * se, "hi": diff + t * se, "se": se, "df": df,
            "mde": (t + float(sps.t.ppf(power, df))) * se}


def interval(diff: float, seed_var: float, n_seeds: int, test_var: float, n_clusters: int, ci: float,
             power: float) -> dict[str, float]:
    """t-interval and detectable size of a seed mean with seed variance ``seed_var`` (per seed) and test variance."""
    return interval_from(diff, [(seed_var / n_seeds, n_seeds - 1), (test_var, n_clusters - 1)], ci, power)


def _empty(per_seed: Sequence[float], n_seeds: int, n_clusters: int) -> dict[str, object]:
    return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "se": math.nan, "df": math.nan, "mde": math.nan,
            "seed_sd": math.nan, "test_se": math.nan, "per_seed": [float(d) for d in per_seed], "n_seeds": n_seeds,
            "n_clusters": n_clusters, "finding": False}


def paired_seed_difference(y: np.ndarray, cluster: np.ndarray, a: Sequence[np.ndarray], b: Sequence[np.ndarray],
                           stat: Stat, n_boot: int, ci: float, seed: int, power: float = 0.8) -> dict[str, object]:
    """Mean over seeds of ``stat(y, b[s]) - stat(y, a[s])`` with its calibrated interval and detectable size.

    ``a[s]`` and ``b[s]`` are per-frame values (scores or per-frame quantities) of the two models trained with
    seed ``s``, on the same frames as ``y``; ``cluster`` is each frame's identity cluster. ``stat`` takes the
    labels and a (seeds, frames) array and returns one value per seed.
    """
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same positive number of seeds per model, got {len(a)} and {len(b)}")
    a_all, b_all = np.stack(a), np.stack(b)
    per_seed = (stat(y, b_all) - stat(y, a_all)).astype(np.float64)
    ok = ~np.isnan(per_seed)
    n_seeds, n_clusters = int(ok.sum()), len(np.unique(cluster))
    out = _empty(per_seed, n_seeds, n_clusters)
    if n_seeds == 0:
        return out
    diff = float(per_seed[ok].mean())
    out["diff"] = diff
    if n_seeds < 2 or n_clusters < 2:
        return out  # no training (or test) variance can be estimated: no interval
    a_ok, b_ok = a_all[ok], b_all[ok]
    reps = []
    for pick in cluster_resamples(cluster, n_boot, seed):
        d = stat(y[pick], b_ok[:, pick]) - stat(y[pick], a_ok[:, pick])
        if not np.isnan(d).any():
            reps.append(float(d.mean()))
    test_var = float(np.var(reps, ddof=1)) if len(reps) > 1 else math.nan
    seed_var = float(np.var(per_seed[ok], ddof=1))
    if math.isnan(test_var):
        return out
    out.update(interval(diff, seed_var, n_seeds, test_var, n_clusters, ci, power))
    out.update(seed_sd=math.sqrt(seed_var), test_se=math.sqrt(test_var),
               finding=bool(out["lo"] > 0 or out["hi"] < 0))  # type: ignore[operator]
    return out


def mean_over_sets(results: Sequence[dict[str, object]], ci: float, power: float) -> dict[str, object]:
    """The mean over independently sampled test sets of paired differences (the same seeds in each), e.g. the
    cross-dataset AUC difference: per seed the mean over sets, the seed spread of those means plus each set's
    test variance divided by the number of sets squared, df by Welch-Satterthwaite."""
    per = np.array([r["per_seed"] for r in results], dtype=np.float64)  # (sets, seeds)
    ok = ~np.isnan(per).any(0)
    seeds = per[:, ok].mean(0)
    k = len(results)
    out = _empty(seeds, len(seeds), sum(int(r["n_clusters"]) for r in results))  # type: ignore[call-overload]
    if not len(seeds):
        return out
    out["diff"] = float(seeds.mean())
    test_se = [float(r["test_se"]) for r in results]  # type: ignore[arg-type]
    if len(seeds) < 2 or any(math.isnan(t) for t in test_se):
        return out
    seed_var = float(np.var(seeds, ddof=1))
    parts = [(seed_var / len(seeds), len(seeds) - 1)] + [(t * t / k / k, int(r["n_clusters"]) - 1)  # type: ignore
                                                         for t, r in zip(test_se, results, strict=True)]
    out.update(interval_from(float(seeds.mean()), parts, ci, power))
    out.update(seed_sd=math.sqrt(seed_var), test_se=math.sqrt(sum(t * t for t in test_se)) / k,
               finding=bool(out["lo"] > 0 or out["hi"] < 0))  # type: ignore[operator]
    return out
