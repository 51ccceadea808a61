"""Scores every trained model (variant x seed) on clean test frames, on its own adversarial artifacts, on
the per-image worst case over its attacks (Square on the gradient attacks' survivors included), and on its
same-seed counterpart's artifacts (black-box transfer); then aggregates across seeds and compares the
variants paired by seed, resampling identity clusters for the test-sampling variance.

Frames and artifacts are read one batch at a time, so memory is bounded by the batch size; every image is
scored in float32 (:mod:`robustdf.attack.scoring`), as the attacks selected it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustdf.evaluate import metrics as M
from robustdf.attack.artifacts import Artifact
from robustdf.data.dataset import FrameDataset
from robustdf.evaluate.explain import MORE_ROBUST_WHEN, QUANTITIES, why_quantities
from robustdf.data.manifest import test_rows
from robustdf.attack.masking import square_extra
from robustdf.evaluate.paired import paired_seed_difference
from robustdf.runtime import DataError
from robustdf.evaluate.sanity import eps_key, sanity_checks
from robustdf.attack.scoring import adversarial_images, clean_images, predict

VARIANTS = ("baseline", "gr")
HEADLINE_METRICS = ("auc", "bacc")


@dataclass
class TestSet:
    """The evaluated frames (read lazily), labels, per-frame video key (method/video), method and identity
    cluster (the split's group: an original, its fakes and their sources; the resampling unit)."""

    __test__ = False  # not a pytest class

    ds: FrameDataset
    y: np.ndarray
    video: np.ndarray
    method: np.ndarray
    cluster: np.ndarray
    heldout: list[str] = field(default_factory=list)


def load_test_set(rows: list[dict[str, Any]], frames_root: str | Path, manifest: str | Path = "") -> TestSet:
    """The test videos of a balanced manifest; held-out methods are those never seen in train/val."""
    trained_on = {r["method"] for r in rows if r["split"] in ("train", "val")}
    ds = FrameDataset(test_rows(rows), frames_root)
    if any(not r.get("group") for r in ds.rows):
        raise DataError(f"manifest {manifest} has test videos without an identity group: rerun the split stage")
    vid = ds.video_index()
    col = {k: np.array([r[k] for r in ds.rows])[vid] for k in ("key", "method", "group")}
    return TestSet(ds, ds.labels(), col["key"], col["method"], col["group"],
                   sorted({r["method"] for r in ds.rows if r["label"] == 1} - trained_on))


def worst_case(y: np.ndarray, scores: list[np.ndarray]) -> np.ndarray:
    """Per frame, the score most adverse to the true label (lowest for fakes, highest for reals)."""
    stacked = np.stack(scores)
    return np.where(y == 1, stacked.min(0), stacked.max(0))


@dataclass
class SetScores:
    """One model's per-frame scores per condition on a test-only set and its explanatory quantities there."""

    scores: dict[str, np.ndarray]
    why: dict[str, np.ndarray]


@dataclass
class ModelResult:
    """One trained model's per-frame scores per condition and its explanatory quantities, on the FF++ test split
    (held-out methods included) and (``sets``) on every test-only set."""

    name: str  # "gr-0"
    variant: str
    seed: int
    val_auc: float
    scores: dict[str, np.ndarray]
    why: dict[str, np.ndarray]
    vanished: list[str] = field(default_factory=list)
    sets: dict[str, SetScores] = field(default_factory=dict)


def attacked_scores(model: torch.nn.Module, ts: TestSet, artifacts: list[tuple[str, Artifact]], batch_size: int,
                    device: torch.device, prefix: str = "",
                    only: list[float] | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """Scores of every stored example (of the eps in ``only``, if given), as ``<prefix><attack>_<eps>``, and the
    conditions whose 8-bit rounding removed the whole perturbation (Square, which attacks only survivors, never
    counts as vanished)."""
    scores, vanished = {}, []
    for a, art in artifacts:
        _check_cover(art, ts)
        for e, eps in enumerate(art.eps):
            if only is not None and eps not in only:
                continue
            cond = f"{prefix}{a}_{eps_key(eps)}"
            scores[cond] = predict(model, adversarial_images(ts.ds, art, e, batch_size), device)
            if eps > 0 and art.is_zero(e) and a != "square":
                vanished.append(cond)
    return scores, vanished


def score_model(model: torch.nn.Module, name: str, config: dict[str, Any], ts: TestSet, attacks_root: Path,
                square_root: Path, attacks: list[str], eps_list: list[float], counterpart: str | None, layer: str,
                r: float, batch_size: int, device: torch.device) -> ModelResult:
    """Clean, white-box (each attack, Square on the survivors, and the worst case per eps) and transfer scores of
    one model; ``gradient_<eps>`` is the worst case over the gradient attacks alone."""
    model = model.to(device)
    scores = {"clean": predict(model, clean_images(ts.ds, batch_size), device)}
    arts = [(a, Artifact(attacks_root / name / a)) for a in attacks] + [("square", Artifact(square_root / name))]
    attacked, vanished = attacked_scores(model, ts, arts, batch_size, device)
    scores.update(attacked)
    for eps in eps_list:
        k = eps_key(eps)
        scores[f"gradient_{k}"] = worst_case(ts.y, [scores[f"{a}_{k}"] for a in attacks])
        scores[f"worst_{k}"] = worst_case(ts.y, [scores[f"gradient_{k}"], scores[f"square_{k}"]])
    if counterpart is not None:
        arts = [(a, Artifact(attacks_root / counterpart / a)) for a in attacks]
        scores.update(attacked_scores(model, ts, arts, batch_size, device, prefix="transfer_", only=eps_list)[0])
    why = why_quantities(model, ts.ds.batches(batch_size), layer, r, device)
    return ModelResult(name, config["variant"], int(config["seed"]), float(config["val_auc"]), scores, why, vanished)


def score_on_set(model: torch.nn.Module, ts: TestSet, attacks_root: Path, attacks: list[str], eps_list: list[float],
                 layer: str, r: float, batch_size: int, device: torch.device) -> SetScores:
    """Clean and attacked scores of one model on a test-only set (``attacks_root``: that set's artifacts of this
    model); ``gradient_<eps>`` is the worst case over the gradient attacks (no Square runs on these sets)."""
    model = model.to(device)
    scores = {"clean": predict(model, clean_images(ts.ds, batch_size), device)}
    attacked, _ = attacked_scores(model, ts, [(a, Artifact(attacks_root / a)) for a in attacks], batch_size, device)
    scores.update(attacked)
    for eps in eps_list:
        scores[f"gradient_{eps_key(eps)}"] = worst_case(ts.y, [scores[f"{a}_{eps_key(eps)}"] for a in attacks])
    return SetScores(scores, why_quantities(model, ts.ds.batches(batch_size), layer, r, device))


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


def metric_stat(metric: str, threshold: float) -> Any:
    """The per-row statistic of a headline metric, for :func:`paired_seed_difference`."""
    if metric == "auc":
        return M.rank_auc_rows
    return lambda y, p: M.balanced_accuracy_rows(y, p, threshold)


def why_differences(y: np.ndarray, cluster: np.ndarray, a: list[dict[str, np.ndarray]],
                    b: list[dict[str, np.ndarray]], ev: Any) -> dict[str, Any]:
    """GR minus baseline of each explanatory quantity's per-frame median, paired by seed (``a``, ``b``: the
    baseline's and GR's per-frame quantities, one dict per seed), with the direction that means more robust."""
    out = {}
    for q in QUANTITIES:
        out[q] = paired_seed_difference(y, cluster, [w[q] for w in a], [w[q] for w in b], M.median_rows,
                                        ev.n_bootstrap, ev.ci, ev.seed, ev.power)
        out[q]["more_robust_when"] = MORE_ROBUST_WHEN[q]
    return out


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
        conds = {c: score(ts, p, None if c == "clean" else clean, ev.threshold) for c, p in res.scores.items()
                 if not c.startswith("square_")}  # Square attacked only the survivors: no condition of its own
        for c in conds:
            conds[c].update(M.bootstrap_ci(ts.y, res.scores[c], ts.cluster, ev.n_bootstrap, ev.ci, ev.seed,
                                           ev.threshold))
        masking = {eps_key(e): square_extra(ts.y, res.scores[f"gradient_{eps_key(e)}"],
                                            res.scores[f"square_{eps_key(e)}"], ev.threshold) for e in eps_list}
        models[res.name] = {
            "variant": res.variant, "seed": res.seed, "val_auc": res.val_auc,
            "degenerate": res.val_auc < ev.min_val_auc,
            "conditions": conds,
            "by_method": {c: by_method(ts, res.scores[c], ev.threshold)
                          for c in ["clean", *[f"worst_{eps_key(e)}" for e in eps_list]]},
            "why": {q: float(np.median(v)) for q, v in res.why.items()},
            "masking": masking,
            "sanity": sanity_checks(conds, masking, eps_list, sanity_eps, ev.sanity_tolerance,
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
        common = [c for c in models[a[0].name]["conditions"] if all(c in r.scores for r in a + b)]
        for c in common:
            paired[c] = {m: paired_seed_difference(ts.y, ts.cluster, [r.scores[c] for r in a],
                                                   [r.scores[c] for r in b], metric_stat(m, ev.threshold),
                                                   ev.n_bootstrap, ev.ci, ev.seed, ev.power)
                         for m in HEADLINE_METRICS}
        paired_why = why_differences(ts.y, ts.cluster, [r.why for r in a], [r.why for r in b], ev)
    degenerate = sorted(n for n, m in models.items() if m["degenerate"])
    details = {"models": models, "variants": variants, "paired": paired, "paired_why": paired_why,
               "seeds": seeds, "valid_seeds": valid, "degenerate": degenerate,
               "n_clusters": len(np.unique(ts.cluster)),
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
