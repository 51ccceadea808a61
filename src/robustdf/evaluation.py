"""Scores every model on clean test frames, on its own adversarial artifacts and on the other
model's (black-box transfer), with per-method breakdowns and bootstrap confidence intervals."""

from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_curve

from robustdf import metrics as M
from robustdf.artifacts import rebuild
from robustdf.data import FrameDataset
from robustdf.manifest import test_rows
from robustdf.model import predict_fake_proba
from robustdf.params import ATTACKS


def eps_tag(eps: float) -> str:
    """Readable, dot-free key for an eps: 2/255 -> 'eps2', 0.5/255 -> 'eps0p5'."""
    v = round(eps * 255, 2)
    return "eps" + (f"{v:g}".replace(".", "p"))


@dataclass
class TestSet:
    """The evaluated frames: uint8 images, labels, per-frame video key (method/video) and method."""

    images: torch.Tensor
    y: np.ndarray
    video: np.ndarray
    method: np.ndarray
    heldout: list[str] = field(default_factory=list)


def load_test_set(rows: list[dict[str, Any]], frames_root: str | Path) -> TestSet:
    """The test videos of a balanced manifest; held-out methods are those never seen in train/val."""
    trained_on = {r["method"] for r in rows if r["split"] in ("train", "val")}
    ds = FrameDataset(test_rows(rows), frames_root)
    vid = ds.video_index()
    return TestSet(ds.all_images(), ds.labels(), np.array([r["key"] for r in ds.rows])[vid],
                   np.array([r["method"] for r in ds.rows])[vid],
                   sorted({r["method"] for r in ds.rows if r["label"] == 1} - trained_on))


@dataclass
class Condition:
    name: str  # "clean", "pgd_eps4", "transfer_pgd_eps4"
    attack: str | None
    eps: float
    p: np.ndarray
    vanished: bool = False  # 8-bit rounding left the images unchanged


def score(ts: TestSet, p: np.ndarray, p_clean: np.ndarray | None, ev: Any) -> dict[str, float]:
    """Headline metrics of one condition."""
    out = {**M.frame_metrics(ts.y, p, ev.threshold), **M.video_metrics(ts.y, p, ts.video, ev.threshold)}
    if p_clean is not None:
        out["asr"] = M.attack_success_rate(ts.y, p_clean, p, ev.threshold)
    return out


def breakdown(ts: TestSet, p: np.ndarray, ev: Any) -> dict[str, dict[str, float]]:
    """Per manipulation method: reals plus that method's fakes (and 'heldout' / 'seen' groups)."""
    groups = {m: ts.method == m for m in sorted(set(ts.method[ts.y == 1]))}
    if ts.heldout:
        held = np.isin(ts.method, ts.heldout)
        groups["heldout"], groups["seen"] = held, (~held) & (ts.y == 1)
    out = {}
    for name, fake_mask in groups.items():
        mask = (ts.y == 0) | (fake_mask & (ts.y == 1))
        fm = M.frame_metrics(ts.y[mask], p[mask], ev.threshold)
        out[name] = {"acc": fm["acc"], "auc": fm["auc"], "n_frames": int(mask.sum())}
    return out


def predict_conditions(model: torch.nn.Module, ts: TestSet, artifacts: dict[str, dict[str, torch.Tensor]],
                       own: str, batch_size: int, device: torch.device) -> list[Condition]:
    """Clean, own-attack and transfer predictions of one model. ``artifacts`` maps
    ``"<model>/<attack>"`` to loaded artifacts."""
    conds = [Condition("clean", None, 0.0, predict_fake_proba(model, ts.images, batch_size, device))]
    order = {a: i for i, a in enumerate(ATTACKS)}
    for key in sorted(artifacts, key=lambda k: (k.split("/")[0] != own, order.get(k.split("/")[1], 99), k)):
        source, attack = key.split("/")
        art = artifacts[key]
        idx = art["frame_index"]
        if len(idx) != len(ts.y) or not torch.equal(idx, torch.arange(len(ts.y))):
            raise ValueError(f"artifact {key} does not cover the current test frames; rerun the attack stage")
        for e, eps in enumerate(art["eps"].tolist()):
            delta = art["delta"][e]
            # rebuild one batch at a time: the float adversarial set is never held in memory whole
            p = np.concatenate([
                predict_fake_proba(model, rebuild(ts.images[i:i + batch_size], delta[i:i + batch_size], eps),
                                   batch_size, device)
                for i in range(0, len(ts.y), batch_size)])
            prefix = "" if source == own else "transfer_"
            vanished = bool(eps > 0 and not delta.any())
            conds.append(Condition(f"{prefix}{attack}_{eps_tag(eps)}", attack, eps, p, vanished))
    return conds


def evaluate_models(preds: dict[str, list[Condition]], ts: TestSet, ev: Any) -> tuple[dict, dict]:
    """(metrics, details): headline metrics per model and condition; CIs, breakdowns, paired deltas."""
    metrics: dict[str, Any] = {}
    details: dict[str, Any] = {"conditions": {}, "paired_differences": {}, "vanished": []}
    for model, conds in preds.items():
        p_clean = conds[0].p
        metrics[model] = {}
        details["conditions"][model] = {}
        for c in conds:
            metrics[model][c.name] = score(ts, c.p, None if c.attack is None else p_clean, ev)
            details["conditions"][model][c.name] = {
                **M.bootstrap_ci(ts.y, c.p, ts.video, ev.n_bootstrap, ev.ci, ev.seed, ev.threshold),
                "by_method": breakdown(ts, c.p, ev),
            }
            if c.vanished and c.name not in details["vanished"]:
                details["vanished"].append(c.name)
    models = list(preds)
    if len(models) == 2:
        a, b = models
        for ca, cb in zip(preds[a], preds[b], strict=True):
            if ca.name == cb.name:
                details["paired_differences"][ca.name] = paired_difference(ts, ca.p, cb.p, ev)
    return metrics, details


def paired_difference(ts: TestSet, p_a: np.ndarray, p_b: np.ndarray, ev: Any) -> dict[str, Any]:
    """Bootstrap over videos of (second model - first model) accuracy and AUC on the same resamples."""
    d_acc, d_auc = [], []
    for pick in M.video_resamples(ts.video, ev.n_bootstrap, ev.seed):
        y = ts.y[pick]
        d_acc.append(np.mean((p_b[pick] >= ev.threshold) == y) - np.mean((p_a[pick] >= ev.threshold) == y))
        diff = M.rank_auc(y, p_b[pick]) - M.rank_auc(y, p_a[pick])
        if not math.isnan(diff):
            d_auc.append(diff)

    def summary(d: list[float], point: float) -> dict[str, Any]:
        ci = M.percentile_band(d, ev.ci)
        return {"diff": point, "ci": ci, "significant": bool(ci[0] > 0 or ci[1] < 0)}

    acc = float(np.mean((p_b >= ev.threshold) == ts.y) - np.mean((p_a >= ev.threshold) == ts.y))
    both = len(np.unique(ts.y)) == 2
    auc = float(M.roc_auc_score(ts.y, p_b) - M.roc_auc_score(ts.y, p_a)) if both else math.nan
    return {"acc": summary(d_acc, acc), "auc": summary(d_auc, auc)}


def curve_tables(metrics: dict[str, Any], eps_list: list[float], attacks: list[str]) -> dict[str, list[dict]]:
    """Per attack, rows of eps vs accuracy and AUC for every model (eps 0 is the clean score)."""
    tables = {}
    for attack in attacks:
        rows = []
        for eps in [0.0, *[e for e in eps_list if e > 0]]:
            row: dict[str, Any] = {"eps": round(eps, 6), "eps_255": round(eps * 255, 3)}
            for model, conds in metrics.items():
                cond = "clean" if eps == 0 else f"{attack}_{eps_tag(eps)}"
                row[f"{model}_acc"] = conds[cond]["acc"]
                row[f"{model}_auc"] = conds[cond]["auc"]
            rows.append(row)
        tables[attack] = rows
    return tables


def roc_table(ts: TestSet, p: np.ndarray) -> list[dict[str, float]]:
    fpr, tpr, _ = roc_curve(ts.y, p)
    return [{"fpr": float(f), "tpr": float(t)} for f, t in zip(fpr, tpr, strict=True)]
