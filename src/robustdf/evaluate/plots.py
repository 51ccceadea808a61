"""Static PNG plots (matplotlib, no network needed to view them), registered as DVC image plots.

One colour per variant everywhere; lines are across-seed means, bands span the seeds' min to max;
dotted lines mark chance (0.5 balanced accuracy / AUC); eps ticks only where there is data.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from robustdf.evaluate.explain import NAMES as WHY_NAMES  # noqa: E402
from robustdf.evaluate.explain import QUANTITIES  # noqa: E402
from robustdf.evaluate.sanity import eps_key  # noqa: E402

COLOURS = {"baseline": "#1f77b4", "gr": "#d62728"}
LABELS = {"baseline": "baseline", "gr": "GR"}
METRIC_LABELS = {"bacc": "balanced accuracy", "auc": "ROC-AUC", "asr": "attack success rate", "acc_fake":
                 "accuracy on fakes"}


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})  # no version string: same bytes across installs
    plt.close(fig)


def _band(ax: Any, x: list[float], stats: list[dict[str, float]], variant: str) -> None:
    mean = [s["mean"] for s in stats]
    ax.plot(x, mean, "o-", color=COLOURS[variant], label=LABELS[variant])
    ax.fill_between(x, [s["min"] for s in stats], [s["max"] for s in stats], color=COLOURS[variant], alpha=0.2,
                    linewidth=0)


def _eps_axis(ax: Any, xs: list[float]) -> None:
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel("eps x 255")


def _stat(details: dict[str, Any], variant: str, cond: str, metric: str) -> dict[str, float]:
    return details["variants"][variant].get(cond, {}).get(metric, {"mean": math.nan, "min": math.nan, "max": math.nan})


def metric_vs_eps(details: dict[str, Any], metric: str, path: Path, prefix: str = "") -> None:
    """One panel per attack (and the per-frame worst case): ``metric`` vs eps per variant."""
    attacks = [*details["attacks"], *([] if prefix else ["worst"])]
    xs = [0.0, *[round(e * 255, 3) for e in details["eps"]]]
    fig, axes = plt.subplots(1, len(attacks), figsize=(3.2 * len(attacks), 3.2), sharey=True, squeeze=False)
    for ax, attack in zip(axes[0], attacks, strict=True):
        for v in COLOURS:
            conds = ["clean", *[f"{prefix}{attack}_{eps_key(e)}" for e in details["eps"]]]
            x, stats = xs, [_stat(details, v, c, metric) for c in conds]
            if metric == "asr":  # not defined on clean frames
                x, stats = xs[1:], stats[1:]
            _band(ax, x, stats, v)
        if metric in ("bacc", "auc"):
            ax.axhline(0.5, ls=":", color="grey", label="chance / constant prediction")
        ax.set_title(f"{prefix.replace('_', ' ')}{attack}" + (" (all attacks, per frame)" if attack == "worst" else ""))
        ax.set_ylim(-0.02, 1.02)
        _eps_axis(ax, xs if metric != "asr" else xs[1:])
    axes[0][0].set_ylabel(("robust " if metric != "asr" else "") + METRIC_LABELS[metric])
    axes[0][0].legend(fontsize=7, loc="lower left")
    what = "the other variant's examples replayed (black box)" if prefix else "white-box, each model attacked"
    fig.suptitle(f"{METRIC_LABELS[metric]} vs L-inf radius eps (in 8-bit levels; 0 = clean), {what}; "
                 "line: mean over seeds, band: min-max over seeds", fontsize=9)
    _save(fig, path)


def per_method(details: dict[str, Any], path: Path) -> None:
    """Balanced accuracy per manipulation method: clean and the worst case at the smallest eps (larger ones
    usually leave nothing to compare)."""
    models = [m for m in details["models"].values() if not m["degenerate"]] or list(details["models"].values())
    smallest = f"worst_{eps_key(details['eps'][0])}"
    methods = list(models[0]["by_method"]["clean"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    width = 0.38
    panels = ((axes[0], "clean", "clean"), (axes[1], smallest, f"robust at {eps_key(details['eps'][0])}"))
    for ax, cond, title in panels:
        for k, v in enumerate(COLOURS):
            vals = np.array([[m["by_method"][cond][meth]["bacc"] for meth in methods] for m in models
                             if m["variant"] == v])
            if not len(vals):
                continue
            mean = vals.mean(0)
            err = np.stack([mean - vals.min(0), vals.max(0) - mean])
            ax.bar(np.arange(len(methods)) + (k - 0.5) * width, mean, width, yerr=err, color=COLOURS[v],
                   label=LABELS[v], capsize=3)
        ax.axhline(0.5, ls=":", color="grey", label="chance")
        ax.set_xticks(np.arange(len(methods)))
        ax.set_xticklabels(methods, rotation=20, fontsize=8)
        ax.set_title(title)
        ax.set_ylim(0, 1.02)
    axes[0].set_ylabel("balanced accuracy")
    fig.suptitle("per manipulation method (its fakes + all reals): mean over seeds, bars: min-max", fontsize=9)
    axes[0].legend(fontsize=7)
    _save(fig, path)


def learning_curves(curves: dict[str, dict[str, list[float]]], variants: dict[str, str], path: Path) -> None:
    """Per-epoch training loss, validation loss and AUC, and GR's grad_s norm; mean and seed band per variant."""
    panels = [("train/loss", "training loss"), ("val/loss", "validation loss"), ("val/auc", "validation ROC-AUC"),
              ("train/grad_s_norm", "GR: ||grad_s L|| (train)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.2))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for v in COLOURS:
            runs = [c[key] for name, c in curves.items() if variants[name] == v and key in c]
            if not runs:
                continue
            n = min(len(r) for r in runs)
            arr = np.array([r[:n] for r in runs])
            x = np.arange(1, n + 1)
            ax.plot(x, arr.mean(0), "o-", ms=3, color=COLOURS[v], label=LABELS[v])
            ax.fill_between(x, arr.min(0), arr.max(0), color=COLOURS[v], alpha=0.2, linewidth=0)
        if key == "val/auc":
            ax.axhline(0.5, ls=":", color="grey", label="chance")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle("learning curves: line = mean over seeds, band = min-max over seeds (checkpoint chosen on val AUC)",
                 fontsize=9)
    _save(fig, path)


def why(details: dict[str, Any], per_frame: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    """Distributions over clean test frames of the explanatory quantities, per model (seed)."""
    names = [n for n in details["models"] if n in per_frame]
    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(13, 3.2))
    for ax, q in zip(axes, QUANTITIES, strict=True):
        data = [per_frame[n][q] for n in names]
        box = ax.boxplot(data, showfliers=False, patch_artist=True)
        for patch, n in zip(box["boxes"], names, strict=True):
            patch.set_facecolor(COLOURS[details["models"][n]["variant"]])
            patch.set_alpha(0.5)
        ax.set_xticks(range(1, len(names) + 1))
        ax.set_xticklabels(names, rotation=45, fontsize=7)
        ax.set_title(WHY_NAMES[q], fontsize=8)
        if q in ("input_grad_l1", "grad_s_norm"):
            ax.set_yscale("log")
    fig.suptitle("explanatory quantities on clean test frames, per model (boxes: quartiles)", fontsize=9)
    _save(fig, path)


def roc(curves: dict[str, tuple[np.ndarray, np.ndarray]], variants: dict[str, str], path: Path) -> None:
    """Clean-frame ROC curves, one line per model (seed), coloured by variant."""
    fig, ax = plt.subplots(figsize=(4, 4))
    seen = set()
    for name, (fpr, tpr) in curves.items():
        v = variants[name]
        ax.plot(fpr, tpr, color=COLOURS[v], alpha=0.7, label=None if v in seen else LABELS[v])
        seen.add(v)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    ax.set_xlabel("false positive rate (reals called fake)")
    ax.set_ylabel("true positive rate (fakes called fake)")
    ax.legend(fontsize=7)
    ax.set_title("ROC on clean test frames (one line per seed)", fontsize=9)
    _save(fig, path)


def write_all(details: dict[str, Any], curves: dict[str, dict[str, list[float]]],
              rocs: dict[str, tuple[np.ndarray, np.ndarray]], per_frame_why: dict[str, dict[str, np.ndarray]],
              folder: Path) -> list[str]:
    """Every plot into ``folder``; returns the file names."""
    variants = {n: m["variant"] for n, m in details["models"].items()}
    metric_vs_eps(details, "bacc", folder / "robust_bacc_vs_eps.png")
    metric_vs_eps(details, "auc", folder / "auc_vs_eps.png")
    metric_vs_eps(details, "asr", folder / "attack_success_vs_eps.png")
    metric_vs_eps(details, "bacc", folder / "transfer_bacc_vs_eps.png", prefix="transfer_")
    per_method(details, folder / "per_method.png")
    learning_curves(curves, variants, folder / "learning_curves.png")
    roc(rocs, variants, folder / "roc_clean.png")
    why(details, per_frame_why, folder / "why.png")
    return sorted(p.name for p in folder.glob("*.png"))
