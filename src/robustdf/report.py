"""The human-readable ``report.md``: baseline vs GR tables with CIs and a generated summary."""

from __future__ import annotations

import math
from typing import Any


def _pct(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _with_ci(v: float, ci: list[float]) -> str:
    return f"{_pct(v)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def render(metrics: dict[str, Any], details: dict[str, Any], context: dict[str, Any]) -> str:
    models = list(metrics)
    conds = list(metrics[models[0]])
    lines = [
        "# Baseline vs gradient regularization: accuracy and robustness",
        "",
        f"Test set: {context['n_frames']} frames from {context['n_videos']} videos "
        f"({context['n_real_videos']} real, {context['n_fake_videos']} fake). Fake is the positive class. "
        f"Attacks: L-inf, white-box on each model; `transfer_*` rows attack the *other* model and replay its "
        f"stored examples (black box). Brackets: {int(100 * context['ci'])}% bootstrap CI over test videos "
        f"({context['n_bootstrap']} resamples). Percentages.",
        "",
        "| condition | " + " | ".join(f"{m} acc | {m} AUC" for m in models) + " | " +
        " | ".join(f"{m} ASR" for m in models) + " | " + " | ".join(f"{m} video AUC" for m in models) + " |",
        "|---" * (1 + 4 * len(models)) + "|",
    ]
    for c in conds:
        cells = []
        for m in models:
            d = details["conditions"][m][c]
            cells += [_with_ci(metrics[m][c]["acc"], d["acc_ci"]), _with_ci(metrics[m][c]["auc"], d["auc_ci"])]
        cells += [_pct(metrics[m][c].get("asr", math.nan)) for m in models]
        cells += [_pct(metrics[m][c]["video_auc"]) for m in models]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "## Per manipulation method (clean)", ""]
    methods = list(details["conditions"][models[0]]["clean"]["by_method"])
    lines.append("| method | " + " | ".join(f"{m} acc | {m} AUC" for m in models) + " |")
    lines.append("|---" * (1 + 2 * len(models)) + "|")
    for meth in methods:
        cells = []
        for m in models:
            b = details["conditions"][m]["clean"]["by_method"][meth]
            cells += [_pct(b["acc"]), _pct(b["auc"])]
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    lines += ["", "## What the numbers say", "", *summary_paragraph(models, details)]
    lines += ["", "## Why", "", *why_paragraph(metrics)]
    if details.get("vanished"):
        lines += ["", f"Note: 8-bit rounding removed the whole perturbation for {', '.join(details['vanished'])} "
                      "(eps below 1/255 rounds back to the clean image); those rows equal clean."]
    return "\n".join(lines) + "\n"


def summary_paragraph(models: list[str], details: dict[str, Any]) -> list[str]:
    if len(models) != 2 or not details["paired_differences"]:
        return ["Only one model was evaluated; no comparison."]
    a, b = models
    sig, insig = [], []
    for cond, d in details["paired_differences"].items():
        for metric in ("acc", "auc"):
            x = d[metric]
            if isinstance(x["diff"], float) and math.isnan(x["diff"]):
                continue
            text = (f"{cond} {metric.upper()}: {b} - {a} = {100 * x['diff']:+.1f} points "
                    f"(CI {100 * x['ci'][0]:+.1f} to {100 * x['ci'][1]:+.1f})")
            (sig if x["significant"] else insig).append(text)
    out = [f"Paired bootstrap over test videos of the difference {b} minus {a}."]
    if sig:
        out += ["", "Differences whose confidence interval excludes zero:", ""] + [f"- {s}" for s in sig]
    else:
        out += ["", "No difference between the two models lies outside its confidence interval: on this test "
                    "set the models cannot be told apart."]
    if insig:
        out += ["", f"{len(insig)} other comparisons have intervals that include zero and are not findings."]
    return out


def why_paragraph(metrics: dict[str, Any]) -> list[str]:
    """Numbers that explain the comparison, with the mechanism behind them."""
    out = []
    for m, conds in metrics.items():
        own = [c for c in conds if c != "clean" and not c.startswith("transfer_")]
        transfer = [c for c in conds if c.startswith("transfer_")]
        asr = [conds[c]["asr"] for c in own if conds[c].get("asr") is not None and not math.isnan(conds[c]["asr"])]
        t_drop = [conds["clean"]["acc"] - conds[c]["acc"] for c in transfer]
        text = f"- {m}: clean AUC {_pct(conds['clean']['auc'])}, clean accuracy {_pct(conds['clean']['acc'])}"
        if asr:
            text += f"; white-box attack success {_pct(min(asr))}-{_pct(max(asr))}% over attacks and eps"
        if t_drop:
            text += f"; transfer attacks cost at most {100 * max(t_drop):.1f} accuracy points"
        out.append(text + ".")
    if len(metrics) == 2:
        a, b = list(metrics)
        own = [c for c in metrics[a] if c != "clean" and not c.startswith("transfer_")]
        if own:
            best = max(own, key=lambda c: metrics[b][c]["acc"] - metrics[a][c]["acc"])
            worst = min(own, key=lambda c: metrics[b][c]["acc"] - metrics[a][c]["acc"])
            out += ["", f"Largest white-box gap in favour of {b}: {best} ({_pct(metrics[b][best]['acc'])} vs "
                        f"{_pct(metrics[a][best]['acc'])} accuracy); smallest: {worst} "
                        f"({_pct(metrics[b][worst]['acc'])} vs {_pct(metrics[a][worst]['acc'])})."]
    out += [
        "",
        "GR penalises the loss gradient with respect to the channel mean and standard deviation of a shallow "
        "feature map, i.e. it makes the detector insensitive to small shifts of low-level *style* statistics "
        "(colour, contrast, texture energy) that differ between identities, sources and compressions. That "
        "targets generalisation to unseen data, which shows in the clean and per-method rows. A flatter loss "
        "around the shallow statistics also damps how far a small pixel perturbation, which shifts exactly "
        "those statistics, can move the output, so GR can resist the weakest attacks; but it does not bound "
        "the input gradient itself, so iterative white-box attacks with a larger eps still succeed against "
        "both models. Robustness to transferred (black-box) examples mainly reflects how different the two "
        "models' input gradients are.",
    ]
    return out
