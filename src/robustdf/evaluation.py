"""Scores every trained model (variant x seed) on clean test frames, on its own adversarial artifacts, on
the per-image worst case over its attacks, and on its same-seed counterpart's artifacts (black-box
transfer); then aggregates across seeds and compares the variants paired by seed.

Frames and artifacts are read one batch at a time, so memory is bounded by the batch size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustdf import metrics as M
from robustdf.artifacts import Artifact, rebuild
from robustdf.data import FrameDataset
from robustdf.explain import MORE_ROBUST_WHEN, QUANTITIES, why_quantities
from robustdf.manifest import test_rows
from robustdf.model import FAKE
from robustdf.paired import paired_seed_difference
from robustdf.sanity import eps_key, sanity_checks

VARIANTS = ("baseline", "gr")
HEADLINE_METRICS = ("auc", "bacc")


@dataclass
class TestSet:
    """The evaluated frames (read lazily), labels, per-frame video key (method/video) and method."""

    __test__ = False  # not a pytest class

    ds: FrameDataset
    y: np.ndarray
    video: np.ndarray
    method: np.ndarray
    heldout: list[str] = field(default_factory=list)


def load_test_set(rows: list[dict[str, Any]], frames_root: str | Path) -> TestSet:
    """The test videos of a balanced manifest; held-out methods are those never seen in train/val."""
    trained_on = {r["method"] for r in rows if r["split"] in ("train", "val")}
    ds = FrameDataset(test_rows(rows), frames_root)
    vid = ds.video_index()
    return TestSet(ds, ds.labels(), np.array([r["key"] for r in ds.rows])[vid],
                   np.array([r["method"] for r in ds.rows])[vid],
                   sorted({r["method"] for r in ds.rows if r["label"] == 1} - trained_on))


@torch.no_grad()
def predict(model: torch.nn.Module, images: Iterator[torch.Tensor], device: torch.device) -> np.ndarray:
    """Fake-class probabilities for batches of [0, 1] images."""
    model.eval()
    out = []
    for x in images:
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = model(x.to(device))
        out.append(torch.softmax(logits.float(), 1)[:, FAKE].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def clean_images(ts: TestSet, batch_size: int) -> Iterator[torch.Tensor]:
    for u8, _ in ts.ds.batches(batch_size):
        yield u8.float().div_(255)


def adversarial_images(ts: TestSet, art: Artifact, e: int, batch_size: int) -> Iterator[torch.Tensor]:
    start = 0
    for u8, _ in ts.ds.batches(batch_size):
        yield rebuild(u8, art.delta(e, start, start + len(u8)), art.eps[e])
        start += len(u8)


def worst_case(y: np.ndarray, scores: list[np.ndarray]) -> np.ndarray:
    """Per frame, the score most adverse to the true label (lowest for fakes, highest for reals)."""
    stacked = np.stack(scores)
    return np.where(y == 1, stacked.min(0), stacked.max(0))


@dataclass
class ModelResult:
    """One trained model's per-frame scores per condition and its explanatory quantities."""

    name: str  # "gr-0"
    variant: str
    seed: int
    val_auc: float
    scores: dict[str, np.ndarray]
    why: dict[str, np.ndarray]
    vanished: list[str] = field(default_factory=list)


def score_model(model: torch.nn.Module, name: str, config: dict[str, Any], ts: TestSet, attacks_root: Path,
                attacks: list[str], eps_list: list[float], counterpart: str | None, layer: str, r: float,
                batch_size: int, device: torch.device) -> ModelResult:
    """Clean, white-box (each attack and the worst case per eps) and transfer scores of one model."""
    model = model.to(device)
    scores = {"clean": predict(model, clean_images(ts, batch_size), device)}
    vanished = []
    for a in attacks:
        art = Artifact(attacks_root / name / a)
        _check_cover(art, ts)
        for e, eps in enumerate(art.eps):
            cond = f"{a}_{eps_key(eps)}"
            scores[cond] = predict(model, adversarial_images(ts, art, e, batch_size), device)
            if eps > 0 and art.is_zero(e):
                vanished.append(cond)
    for eps in eps_list:
        scores[f"worst_{eps_key(eps)}"] = worst_case(ts.y, [scores[f"{a}_{eps_key(eps)}"] for a in attacks])
    if counterpart is not None:
        for a in attacks:
            art = Artifact(attacks_root / counterpart / a)
            _check_cover(art, ts)
            for e, eps in enumerate(art.eps):
                if eps in eps_list:
                    scores[f"transfer_{a}_{eps_key(eps)}"] = predict(
                        model, adversarial_images(ts, art, e, batch_size), device)
    why = why_quantities(model, ts.ds.batches(batch_size), layer, r, device)
    return ModelResult(name, config["variant"], int(config["seed"]), float(config["val_auc"]), scores, why, vanished)


def _check_cover(art: Artifact, ts: TestSet) -> None:
    if art.meta["n_frames"] != len(ts.y):
        raise ValueError(f"artifact {art.folder} covers {art.meta['n_frames']} frames, the test set has "
                         f"{len(ts.y)}; rerun the attack stage")


def score(ts: TestSet, p: np.ndarray, p_clean: np.ndarray | None, threshold: float) -> dict[str, float]:
    """Every metric of one condition."""
    out = {**M.frame_metrics(ts.y, p, threshold), **M.video_metrics(ts.y, p, ts.video, threshold)}
    if p_clean is not None:
        out["asr"] = M.attack_success_rate(ts.y, p_clean, p, threshold)
    return out


def by_method(ts: TestSet, p: np.ndarray, threshold: float) -> dict[str, dict[str, float]]:
    """Per manipulation method: reals plus that method's fakes (and 'heldout' / 'seen' groups)."""
    groups = {m: ts.method == m for m in sorted(set(ts.method[ts.y == 1]))}
    if ts.heldout:
        held = np.isin(ts.method, ts.heldout)
        groups["heldout"], groups["seen"] = held, (~held) & (ts.y == 1)
    out = {}
    for name, fake_mask in groups.items():
        mask = (ts.y == 0) | (fake_mask & (ts.y == 1))
        fm = M.frame_metrics(ts.y[mask], p[mask], threshold)
        out[name] = {"bacc": fm["bacc"], "auc": fm["auc"], "acc_fake": fm["acc_fake"], "n_frames": int(mask.sum())}
    return out


def _stat(metric: str, threshold: float) -> Any:
    if metric == "auc":
        return M.rank_auc
    return lambda y, p: M.balanced_accuracy(y, p, threshold)


def _median(_y: np.ndarray, v: np.ndarray) -> float:
    return float(np.median(v))


def _summary(values: list[float]) -> dict[str, float]:
    v = [x for x in values if x is not None and not math.isnan(x)]
    if not v:
        return {"mean": math.nan, "min": math.nan, "max": math.nan}
    return {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}


def evaluate_all(results: list[ModelResult], ts: TestSet, ev: Any, eps_list: list[float], attacks: list[str],
                 sanity_eps: float) -> dict[str, Any]:
    """Details: per model, per variant across seeds, and GR minus baseline paired by seed."""
    models: dict[str, Any] = {}
    for res in results:
        clean = res.scores["clean"]
        conds = {c: score(ts, p, None if c == "clean" else clean, ev.threshold) for c, p in res.scores.items()}
        for c, p in res.scores.items():
            conds[c].update(M.bootstrap_ci(ts.y, p, ts.video, ev.n_bootstrap, ev.ci, ev.seed, ev.threshold))
        models[res.name] = {
            "variant": res.variant, "seed": res.seed, "val_auc": res.val_auc,
            "degenerate": res.val_auc < ev.min_val_auc,
            "conditions": conds,
            "by_method": {c: by_method(ts, res.scores[c], ev.threshold)
                          for c in ["clean", *[f"worst_{eps_key(e)}" for e in eps_list]]},
            "why": {q: float(np.median(v)) for q, v in res.why.items()},
            "sanity": sanity_checks(conds, eps_list, attacks, sanity_eps, ev.sanity_tolerance,
                                    ev.max_acc_at_sanity_eps),
            "vanished": res.vanished,
        }
    by_seed = {(r.variant, r.seed): r for r in results}
    seeds = sorted({r.seed for r in results})
    valid = [s for s in seeds if all((v, s) in by_seed and not models[by_seed[(v, s)].name]["degenerate"]
                                     for v in VARIANTS)]
    variants: dict[str, Any] = {}
    for v in VARIANTS:
        names = [by_seed[(v, s)].name for s in valid]
        conds = list(models[names[0]]["conditions"]) if names else []
        variants[v] = {c: {k: _summary([models[n]["conditions"][c][k] for n in names])
                           for k in models[names[0]]["conditions"][c] if not k.endswith("_ci")} for c in conds}
        variants[v]["why"] = {q: _summary([models[n]["why"][q] for n in names]) for q in QUANTITIES}
    paired: dict[str, Any] = {}
    paired_why: dict[str, Any] = {}
    if valid:
        a = [by_seed[("baseline", s)] for s in valid]
        b = [by_seed[("gr", s)] for s in valid]
        common = [c for c in a[0].scores if all(c in r.scores for r in a + b)]
        for c in common:
            paired[c] = {m: paired_seed_difference(ts.y, ts.video, [r.scores[c] for r in a], [r.scores[c] for r in b],
                                                   _stat(m, ev.threshold), ev.n_bootstrap, ev.ci, ev.seed)
                         for m in HEADLINE_METRICS}
        for q in QUANTITIES:
            paired_why[q] = paired_seed_difference(ts.y, ts.video, [r.why[q] for r in a], [r.why[q] for r in b],
                                                   _median, ev.n_bootstrap, ev.ci, ev.seed)
            paired_why[q]["more_robust_when"] = MORE_ROBUST_WHEN[q]
    degenerate = sorted(n for n, m in models.items() if m["degenerate"])
    details = {"models": models, "variants": variants, "paired": paired, "paired_why": paired_why,
               "seeds": seeds, "valid_seeds": valid, "degenerate": degenerate,
               "eps": eps_list, "attacks": attacks, "sanity_eps": sanity_eps}
    return details


def curve_tables(details: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per attack (and the worst case), rows of eps vs across-seed mean/min/max of bacc and AUC per variant."""
    tables = {}
    for attack in [*details["attacks"], "worst"]:
        rows = []
        for eps in [0.0, *details["eps"]]:
            cond = "clean" if eps == 0 else f"{attack}_{eps_key(eps)}"
            row: dict[str, Any] = {"eps_255": round(eps * 255, 3)}
            for v in VARIANTS:
                for m in HEADLINE_METRICS:
                    s = details["variants"][v].get(cond, {}).get(m, {})
                    for k in ("mean", "min", "max"):
                        row[f"{v}_{m}_{k}"] = s.get(k, math.nan)
            rows.append(row)
        tables[attack] = rows
    return tables


def read_curves(live_dir: Path) -> dict[str, list[float]]:
    """Per-epoch values logged by dvclive under ``<live_dir>/plots/metrics`` (e.g. ``val/auc``)."""
    root = live_dir / "plots" / "metrics"
    curves = {}
    for tsv in sorted(root.rglob("*.tsv")):
        rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:] if line]
        curves[tsv.relative_to(root).with_suffix("").as_posix()] = [float(r[-1]) for r in rows]
    return curves
