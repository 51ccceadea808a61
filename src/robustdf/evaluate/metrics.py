"""Detection metrics (fake = positive class) on scikit-learn primitives, video grouping, cluster-bootstrap CIs."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score, roc_curve


def _both_classes(y: np.ndarray) -> bool:
    return len(np.unique(y)) == 2


def eer(y: np.ndarray, p: np.ndarray) -> float:
    """Equal error rate: where the false positive rate equals the false negative rate (interpolated)."""
    if not _both_classes(y):
        return math.nan
    fpr, tpr, _ = roc_curve(y, p)
    fnr = 1 - tpr
    diff = fnr - fpr  # decreasing from 1 to -1 along the curve
    i = int(np.argmax(diff <= 0))
    if i == 0 or diff[i] == 0:
        return float(fpr[i])
    w = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def class_recalls(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """(share of fakes called fake, share of reals called real); NaN for an absent class."""
    pred = p >= threshold
    fake = float(pred[y == 1].mean()) if (y == 1).any() else math.nan
    real = float((~pred[y == 0]).mean()) if (y == 0).any() else math.nan
    return fake, real


def balanced_accuracy(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Mean of the per-class recalls: 0.5 for any constant prediction, whatever the class balance."""
    return float(np.nanmean(class_recalls(y, p, threshold)))


def frame_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Balanced accuracy, ROC-AUC, accuracy (overall and per class), EER, AP and F1 of fake-probabilities ``p``."""
    pred = (p >= threshold).astype(int)
    both = _both_classes(y)
    acc_fake, acc_real = class_recalls(y, p, threshold)
    return {
        "bacc": float(np.nanmean([acc_fake, acc_real])),
        "acc": float(accuracy_score(y, pred)),
        "acc_fake": acc_fake,
        "acc_real": acc_real,
        "auc": float(roc_auc_score(y, p)) if both else math.nan,
        "eer": eer(y, p),
        "ap": float(average_precision_score(y, p)) if both else math.nan,
        "f1": float(f1_score(y, pred, zero_division=0)),
    }


def video_scores(y: np.ndarray, p: np.ndarray, video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean fake-probability per video (``video`` ids must already be unique per method + video)."""
    ids, inv = np.unique(video, return_inverse=True)
    pv = np.bincount(inv, weights=p) / np.bincount(inv)
    yv = np.zeros(len(ids), dtype=int)
    yv[inv] = y
    return yv, pv


def video_metrics(y: np.ndarray, p: np.ndarray, video: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    yv, pv = video_scores(y, p, video)
    return {
        "video_bacc": balanced_accuracy(yv, pv, threshold),
        "video_acc": float(accuracy_score(yv, pv >= threshold)),
        "video_auc": float(roc_auc_score(yv, pv)) if _both_classes(yv) else math.nan,
    }


def attack_success_rate(y: np.ndarray, p_clean: np.ndarray, p_adv: np.ndarray, threshold: float = 0.5) -> float:
    """Share of frames classified correctly when clean that the attack makes misclassified."""
    ok = (p_clean >= threshold).astype(int) == y
    if not ok.any():
        return math.nan
    flipped = (p_adv[ok] >= threshold).astype(int) != y[ok]
    return float(flipped.mean())


def rank_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC via the Mann-Whitney rank statistic (ties averaged): equals scikit-learn's value,
    without its input checks, for the thousands of calls a bootstrap makes."""
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def balanced_accuracy_rows(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """:func:`balanced_accuracy` of each row of ``p`` (models x frames); NaN where a class is absent."""
    pred = np.atleast_2d(p) >= threshold
    fake = y == 1
    if fake.all() or not fake.any():
        return np.full(len(pred), math.nan)
    return 0.5 * (pred[:, fake].mean(1) + (~pred[:, ~fake]).mean(1))


def rank_auc_rows(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """:func:`rank_auc` of each row of ``p`` (models x frames)."""
    p = np.atleast_2d(p)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.full(len(p), math.nan)
    ranks = rankdata(p, axis=1)
    return (ranks[:, y == 1].sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def median_rows(_y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The median of each row (a per-frame quantity per model)."""
    return np.median(np.atleast_2d(v), axis=1)


def cluster_resamples(cluster: np.ndarray, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Frame indices of ``n_boot`` bootstrap resamples that draw whole clusters (identity groups) with replacement."""
    ids, inv = np.unique(cluster, return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(len(ids) + 1))
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        picked = rng.integers(0, len(ids), len(ids))
        yield np.concatenate([order[starts[k]:starts[k + 1]] for k in picked])


def percentile_band(values: list[float], ci: float) -> list[float]:
    if not values:
        return [math.nan, math.nan]
    return [float(np.percentile(values, (1 - ci) / 2 * 100)), float(np.percentile(values, (1 + ci) / 2 * 100))]


def bootstrap_ci(
    y: np.ndarray, p: np.ndarray, cluster: np.ndarray, n_boot: int, ci: float, seed: int, threshold: float = 0.5
) -> dict[str, list[float]]:
    """Percentile CIs of frame accuracy and AUC, resampling whole identity clusters with replacement."""
    accs, aucs = [], []
    for pick in cluster_resamples(cluster, n_boot, seed):
        yb, pb = y[pick], p[pick]
        accs.append(float(np.mean((pb >= threshold) == yb)))
        auc = rank_auc(yb, pb)
        if not math.isnan(auc):
            aucs.append(auc)
    return {"acc_ci": percentile_band(accs, ci), "auc_ci": percentile_band(aucs, ci)}
