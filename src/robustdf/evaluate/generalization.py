"""Generalization, the claim GR was made for: in-domain, held-out manipulation methods and unseen test-only sets
side by side, per variant across seeds, and GR minus baseline paired by seed with the calibrated interval
(:mod:`robustdf.evaluate.paired`) on every row; the cross-dataset mean (``xauc``) over the unseen sets.

A row is a set of frames with one score per model and condition: in-domain (the FF++ test split's reals and the
fakes of the methods training saw), its reals with the fakes of one held-out method, or a test-only set. The
robust column is the per-frame worst case at the smallest eps: over every attack and Square on the FF++ test
split, over the gradient attacks on the test-only sets (Square, the masking check, runs on FF++ only).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from robustdf.evaluate import metrics as M
from robustdf.evaluate.results import VARIANTS, ModelResult, TestSet, load_test_set, metric_stat, score, why_differences
from robustdf.data.manifest import read_rows
from robustdf.evaluate.paired import mean_over_sets, paired_seed_difference
from robustdf.evaluate.sanity import eps_key

ROW_METRICS = {"auc": ("clean", "auc"), "bacc": ("clean", "bacc"), "rob": ("robust", "bacc")}


def load_sets(root: Path, names: list[str]) -> dict[str, TestSet]:
    """Every test-only set's frames (``<root>/<name>/manifest.csv``, all in split test; no held-out methods)."""
    out = {}
    for name in names:
        manifest = root / name / "manifest.csv"
        out[name] = dataclasses.replace(load_test_set(read_rows(manifest), root / name, manifest), heldout=[])
    return out


def _subset(ts: TestSet, mask: np.ndarray) -> TestSet:
    return dataclasses.replace(ts, y=ts.y[mask], video=ts.video[mask], method=ts.method[mask],
                               cluster=ts.cluster[mask], heldout=[])


def _row(kind: str, ts: TestSet, scores: dict[str, dict[str, np.ndarray]], robust: str, pairs: list[tuple[str, str]],
         variants: dict[str, list[str]], ev: Any) -> dict[str, Any]:
    """One table row: per model clean/robust metrics (with identity-cluster intervals), per variant the
    across-seed means, GR minus baseline paired by seed for AUC, bacc and robust bacc."""
    conds = {"clean": "clean", "robust": robust}
    models = {}
    for name, s in scores.items():
        models[name] = {}
        for short, cond in conds.items():
            m = score(ts, s[cond], None if short == "clean" else s["clean"], ev.threshold)
            m.update(M.bootstrap_ci(ts.y, s[cond], ts.cluster, ev.n_bootstrap, ev.ci, ev.seed, ev.threshold))
            models[name][short] = m
    means = {v: {k: float(np.mean([models[n][c][m] for n in names])) if names else math.nan
                 for k, (c, m) in ROW_METRICS.items()} for v, names in variants.items()}
    paired = {}
    if pairs:
        for k, (c, m) in ROW_METRICS.items():
            paired[k] = paired_seed_difference(ts.y, ts.cluster, [scores[a][conds[c]] for a, _ in pairs],
                                               [scores[b][conds[c]] for _, b in pairs], metric_stat(m, ev.threshold),
                                               ev.n_bootstrap, ev.ci, ev.seed, ev.power)
    return {"kind": kind, "robust_condition": robust, "n_frames": int(len(ts.y)),
            "n_clusters": int(len(np.unique(ts.cluster))), "n_fake_frames": int(ts.y.sum()),
            "models": models, "variants": means, "paired": paired}


def generalization(results: list[ModelResult], ts: TestSet, sets: dict[str, TestSet], valid_seeds: list[int],
                   eps_list: list[float], ev: Any) -> dict[str, Any]:
    """The generalization table: rows ``in-domain``, ``heldout:<method>`` (each held-out method) and one per
    test-only set, then ``xauc``: the paired AUC difference averaged over the test-only sets."""
    by_seed = {(r.variant, r.seed): r.name for r in results}
    pairs = [(by_seed[("baseline", s)], by_seed[("gr", s)]) for s in valid_seeds]
    variants = {v: [by_seed[(v, s)] for s in valid_seeds] for v in VARIANTS}
    k = eps_key(eps_list[0])
    domain = {r.name: r.scores for r in results}
    masks = {"in-domain": (ts.y == 0) | ~np.isin(ts.method, ts.heldout)}  # the methods training saw
    masks |= {f"heldout:{m}": (ts.y == 0) | (ts.method == m) for m in ts.heldout}
    rows = {}
    for name, mask in masks.items():
        sub = {n: {c: v[mask] for c, v in s.items()} for n, s in domain.items()}
        kind = "in-domain" if name == "in-domain" else "held-out method"
        rows[name] = _row(kind, _subset(ts, mask), sub, f"worst_{k}", pairs, variants, ev)
    why = {}
    for name, s in sets.items():
        rows[name] = _row("unseen set", s, {r.name: r.sets[name].scores for r in results}, f"gradient_{k}", pairs,
                          variants, ev)
        if pairs:
            by_name = {r.name: r.sets[name].why for r in results}
            why[name] = why_differences(s.y, s.cluster, [by_name[a] for a, _ in pairs], [by_name[b] for _, b in pairs],
                                        ev)
    unseen = [rows[n] for n in sets]
    xauc = {v: float(np.mean([r["variants"][v]["auc"] for r in unseen])) if unseen else math.nan for v in VARIANTS}
    paired_x = mean_over_sets([r["paired"]["auc"] for r in unseen], ev.ci, ev.power) if unseen and pairs else None
    return {"rows": rows, "eps": eps_list[0], "why": why, "xauc": {"variants": xauc, "paired": paired_x}}
