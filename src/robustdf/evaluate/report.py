"""The human-readable ``report.md``: the verdict from the seed-paired comparison first, then the attack
sanity checks, the measured explanation, per-seed figures and the detailed tables. Every sentence is
generated from the numbers."""

from __future__ import annotations

import math
from typing import Any

from robustdf.evaluate.explain import NAMES as WHY_NAMES
from robustdf.evaluate.explain import QUANTITIES
from robustdf.evaluate.headline import HeadlineRow, headline_rows
from robustdf.evaluate.sanity import eps_key


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pct(v: Any) -> str:
    return "n/a" if _nan(v) else f"{100 * v:.1f}"


def _pts(v: Any) -> str:
    return "n/a" if _nan(v) else f"{100 * v:+.1f}"


def _num(v: Any) -> str:
    return "n/a" if _nan(v) else f"{v:.3g}"


def _findings(details: dict[str, Any]) -> list[tuple[HeadlineRow, dict[str, Any]]]:
    """Each headline quantity with its seed-paired GR - baseline difference (where measured)."""
    rows = [(r, details["paired"].get(r.condition, {}).get(r.metric)) for r in headline_rows(details["eps"])]
    return [(r, d) for r, d in rows if d and not _nan(d["diff"])]


INCONCLUSIVE_MDE = 0.10  # a run that can detect only differences above 10 points cannot tell


def verdict_line(name: str, d: dict[str, Any], ci: float, power: float) -> str:
    """One sentence: a finding only when the interval excludes zero; a null result says what it excludes."""
    if _nan(d["lo"]):
        return (f"- {name}: GR - baseline {_pts(d['diff'])} points; **this run cannot tell** (no interval: it needs "
                f"at least two compared seeds and two identity clusters).")
    interval = (f"{_pts(d['diff'])} points, {int(100 * ci)}% interval [{_pts(d['lo'])}, {_pts(d['hi'])}]; "
                f"detectable at {int(100 * power)}% power: {_pct(d['mde'])} points")
    if d["finding"]:
        return f"- **{name}: GR is {'higher' if d['diff'] > 0 else 'lower'}** ({interval})."
    if d["mde"] > INCONCLUSIVE_MDE:
        return f"- {name}: **this run cannot tell** ({interval})."
    return (f"- {name}: no difference found; a difference beyond [{_pts(d['lo'])}, {_pts(d['hi'])}] points is "
            f"excluded ({interval}).")


def verdict_lines(details: dict[str, Any]) -> list[str]:
    """One sentence per headline comparison."""
    if not details["valid_seeds"]:
        return ["**No verdict**: no seed has a baseline and a GR model that both learned (see the warnings above)."]
    return [verdict_line(row.name, d, details["ci"], details.get("power", 0.8)) for row, d in _findings(details)]


def warning_lines(details: dict[str, Any]) -> list[str]:
    out = []
    for name in details["degenerate"]:
        m = details["models"][name]
        out.append(f"> **Warning: model {name} did not learn** (best val AUC {m['val_auc']:.3f} < "
                   f"{details['min_val_auc']}). It is reported below but left out of every comparison, and so is "
                   f"its seed's counterpart.")
    for name, m in details["models"].items():
        for s in m["sanity"]:
            if s["passed"] is False:
                out.append(f"> **Sanity check failed: {s['check']} on {name}** ({s['detail']}). This undermines "
                           f"{s['undermines']}.")
    unchecked = sorted({s["check"] for m in details["models"].values() for s in m["sanity"] if s["passed"] is None})
    if unchecked:
        out.append(f"> **Not evaluated: {', '.join(unchecked)}** (inputs missing, see the sanity table): the claims "
                   "they guard are unchecked.")
    return out


def masking_lines(details: dict[str, Any]) -> list[str]:
    """Per model and eps: frames that survived every gradient attack, and how many of them Square broke."""
    keys = [eps_key(e) for e in details["eps"]]
    lines = ["Square (gradient-free) on the frames every gradient attack left correct: survivors / broken by "
             "Square. Frames Square breaks there are adversarial examples that the gradients hid.", "",
             "| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, m in details["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m['masking'][k]['survivors']} / {m['masking'][k]['square_broke']}"
                                                 for k in keys) + " |")
    return lines


def why_lines(details: dict[str, Any]) -> list[str]:
    """A table of the explanatory quantities and a paragraph generated from which of them differ."""
    pw = details["paired_why"]
    if not pw:
        return ["Not measured: no valid seed pair."]
    lines = ["Medians over clean test frames, mean over seeds; GR - baseline paired by seed.", "",
             "| quantity | baseline | GR | GR - baseline [interval] | detectable | more robust when | finding |",
             "|---|---|---|---|---|---|---|"]
    for q in QUANTITIES:
        b, g, d = details["variants"]["baseline"]["why"][q], details["variants"]["gr"]["why"][q], pw[q]
        finding = "yes" if d["finding"] else "no"
        lines.append(f"| {WHY_NAMES[q]} | {_num(b['mean'])} | {_num(g['mean'])} | {_num(d['diff'])} "
                     f"[{_num(d['lo'])}, {_num(d['hi'])}] | {_num(d['mde'])} | {d['more_robust_when']} | {finding} |")
    robust = [(r, d) for r, d in _findings(details) if r.condition.startswith("worst_") and d["finding"]]
    differ = [q for q in QUANTITIES if pw[q]["finding"]]
    consistent = [q for q in differ if (pw[q]["diff"] < 0) == (pw[q]["more_robust_when"] == "lower")]
    lines.append("")
    if not robust:
        text = "Robust balanced accuracy does not differ between the variants at any eps"
        text += (", although GR changes " + ", ".join(WHY_NAMES[q] for q in differ) + "." if differ
                 else ", and neither do the measured quantities.")
        lines.append(text)
        return lines
    sign = "more" if robust[0][1]["diff"] > 0 else "less"
    text = f"GR is {sign} robust ({', '.join(r.name for r, _ in robust)})."
    if not differ:
        text += " None of the measured quantities differs, so they do not explain it."
    else:
        for q in differ:
            b, g = details["variants"]["baseline"]["why"][q]["mean"], details["variants"]["gr"]["why"][q]["mean"]
            ratio = f" ({_num(g / b)}x the baseline's)" if b and not _nan(b) and b > 0 and g > 0 else ""
            text += f" GR's {WHY_NAMES[q]} is {'lower' if pw[q]['diff'] < 0 else 'higher'}{ratio}."
        agree = (sign == "more") == bool(consistent)
        if consistent and agree:
            text += (" These go in the direction that predicts " + sign + " robustness: "
                     + ", ".join(WHY_NAMES[q] for q in consistent) + ".")
        if "input_grad_l1" in consistent and sign == "more":
            text += (" A smaller input gradient means a pixel perturbation of radius eps moves the loss less to "
                     "first order, which is the direct mechanism of L-infinity robustness.")
        if "grad_s_norm" in differ:
            text += (" The gradient w.r.t. the shallow statistics is what GR penalises; a change there shows the "
                     "regulariser acted as intended.")
    lines.append(text)
    return lines


def generalization_lines(details: dict[str, Any]) -> list[str]:
    """The in-domain / held-out method / unseen-set table (across-seed means; GR - baseline paired by seed)."""
    gen = details.get("generalization")
    if not gen:
        return []
    k = eps_key(gen["eps"]).removeprefix("eps").replace("p", ".")
    lines = [f"Clean AUC and balanced accuracy, and robust balanced accuracy at {k}/255 (in-domain and held-out "
             "methods: worst case over every attack and Square; unseen sets: over the gradient attacks), across-seed "
             "means; GR - baseline paired by seed with its interval and detectable size.", "",
             "| rows | frames (clusters) | base AUC | GR AUC | GR - base AUC [interval], detectable | base bacc | "
             f"GR bacc | GR - base bacc | base rob{k} | GR rob{k} | GR - base rob{k} |", "|---" * 11 + "|"]

    def diff(d: dict[str, Any] | None, interval: bool) -> str:
        if not d:
            return "n/a"
        text = f"{_pts(d['diff'])} [{_pts(d['lo'])}, {_pts(d['hi'])}]"
        text += f", {_pct(d['mde'])}" if interval else ""
        return f"**{text}**" if d["finding"] else text

    for name, r in gen["rows"].items():
        v, pr = r["variants"], r["paired"]
        label = name if name == r["kind"] else f"{name} ({r['kind']})"
        lines.append(f"| {label} | {r['n_frames']} ({r['n_clusters']}) | {_pct(v['baseline']['auc'])} | "
                     f"{_pct(v['gr']['auc'])} | {diff(pr.get('auc'), True)} | {_pct(v['baseline']['bacc'])} | "
                     f"{_pct(v['gr']['bacc'])} | {diff(pr.get('bacc'), False)} | {_pct(v['baseline']['rob'])} | "
                     f"{_pct(v['gr']['rob'])} | {diff(pr.get('rob'), False)} |")
    x = gen["xauc"]
    if x["paired"] is not None:
        lines += ["", verdict_line("cross-dataset AUC (mean over the unseen sets)", x["paired"], details["ci"],
                                   details.get("power", 0.8))]
    for name, why in gen["why"].items():
        moved = [f"{WHY_NAMES[q]} {_num(d['diff'])} [{_num(d['lo'])}, {_num(d['hi'])}]" for q, d in why.items()]
        lines.append(f"- Why, on {name} (GR - baseline, median per frame): " + "; ".join(moved) + ".")
    return lines


def face_lines(context: dict[str, Any]) -> list[str]:
    """Per method, the share of sampled frames in which the face detector found a face."""
    shares = context.get("face_share") or {}
    if not shares:
        return ["Face crop off: the models saw whole frames (turn on `extract_frames.face_crop` for real FF++)."]
    lines = ["Share of the sampled frames (all splits) in which the detector found a face; the rest were cropped "
             "by the fallback (`extract_frames.face_crop.fallback`).", "", "| method | frames with a detected face |",
             "|---|---|"]
    lines += [f"| {m} | {_pct(v)}% |" for m, v in shares.items()]
    return lines


def heldout_note(context: dict[str, Any]) -> str:
    """What the headline's test set holds besides the methods trained on."""
    held = context.get("heldout_methods")
    if not held:
        return ""
    return (f", including the fakes of the held-out {', '.join(held)}, never trained on (the Generalization "
            "table's in-domain row leaves them out)")


def render(details: dict[str, Any], context: dict[str, Any]) -> str:
    seeds, valid = details["seeds"], details["valid_seeds"]
    lines = ["# Baseline vs gradient regularization (GR): accuracy and robustness", ""]
    lines += warning_lines(details)
    if context.get("low_face_videos"):
        low = context["low_face_videos"]
        lines.append(f"> **Warning: {len(low)} videos kept with few detected faces** (`face_crop.low_face: flag`), "
                     f"e.g. {', '.join(low[:3])}: their crops may not show the face.")
    if lines[-1] != "":
        lines.append("")
    lines += [
        f"Test set: {context['n_frames']} frames from {context['n_videos']} videos ({context['n_real_videos']} real, "
        f"{context['n_fake_videos']} fake; fake is the positive class){heldout_note(context)}. Seeds: {seeds} "
        f"({len(valid)} compared). "
        f"Attacks: L-inf on [0, 1] pixels, {', '.join(details['attacks'])}, then Square on their survivors, each "
        f"scored on the 8-bit image it stores, in float32; 'robust' = per-frame worst case over all of them. "
        f"Intervals: {int(100 * details['ci'])}% t-intervals over seeds with the test-sampling variance of an "
        f"identity-cluster bootstrap added ({context.get('n_clusters', 'n/a')} clusters, {context['n_bootstrap']} "
        f"resamples); 'detectable' is the smallest difference the run finds with probability "
        f"{details.get('power', 0.8)}. Balanced accuracy = mean of the recall on fakes and on reals. "
        "Percentages and points.", "",
        "## Verdict", ""]
    lines += verdict_lines(details)
    gen = generalization_lines(details)
    if gen:
        lines += ["", "## Generalization: in-domain, held-out methods, unseen sets", ""] + gen
    lines += ["", "## Face crops", ""] + face_lines(context)
    lines += ["", "## Sanity checks of the attacks", "",
              "| check | " + " | ".join(details["models"]) + " | undermines |",
              "|---" * (len(details["models"]) + 2) + "|"]
    checks = [s["check"] for s in next(iter(details["models"].values()))["sanity"]]
    for i, c in enumerate(checks):
        cells = [{True: "pass", False: "**FAIL**", None: "not evaluated"}[m["sanity"][i]["passed"]]
                 for m in details["models"].values()]
        undermines = next(iter(details["models"].values()))["sanity"][i]["undermines"]
        lines.append(f"| {c} | " + " | ".join(cells) + f" | {undermines} |")
    infos = [f"{name}: {m['sanity'][i]['info']}" for name, m in details["models"].items()
             for i in range(len(checks)) if m["sanity"][i].get("info")]
    if infos:
        lines += [""] + [f"Information, {t}." for t in infos]
    lines += ["", "## Gradient masking", ""] + masking_lines(details)
    lines += ["", "## Why: measured", ""] + why_lines(details)
    robust_keys = [f"worst_{eps_key(e)}" for e in details["eps"]]
    lines += ["", "## Per seed", "", "| model | val AUC | clean AUC | clean bacc | "
              + " | ".join(f"robust bacc {k.removeprefix('worst_')}" for k in robust_keys) + " | learned |",
              "|---" * (5 + len(robust_keys)) + "|"]
    for name, m in details["models"].items():
        c = m["conditions"]
        lines.append(f"| {name} | {m['val_auc']:.3f} | {_pct(c['clean']['auc'])} | {_pct(c['clean']['bacc'])} | "
                     + " | ".join(_pct(c[k]["bacc"]) for k in robust_keys)
                     + f" | {'no' if m['degenerate'] else 'yes'} |")
    lines += ["", "## Every condition (across-seed mean [min, max])", "",
              "| condition | baseline bacc | GR bacc | baseline AUC | GR AUC | baseline acc on fakes | GR acc on fakes "
              "| GR - baseline bacc [interval] |", "|---" * 8 + "|"]
    for cond in details["variants"]["baseline"]:
        if cond == "why":
            continue
        cells = []
        for m in ("bacc", "auc", "acc_fake"):
            for v in ("baseline", "gr"):
                s = details["variants"][v][cond][m]
                cells.append(f"{_pct(s['mean'])} [{_pct(s['min'])}, {_pct(s['max'])}]")
        d = details["paired"].get(cond, {}).get("bacc")
        cells.append(f"{_pts(d['diff'])} [{_pts(d['lo'])}, {_pts(d['hi'])}], detectable {_pct(d['mde'])}" if d
                     else "n/a")
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    smallest = f"worst_{eps_key(details['eps'][0])}"
    lines += ["", f"## Per manipulation method (balanced accuracy, across-seed mean; clean and {smallest})", "",
              "| method | baseline clean | GR clean | baseline robust | GR robust |", "|---|---|---|---|---|"]
    by_variant = {v: [m for m in details["models"].values() if m["variant"] == v and not m["degenerate"]]
                  for v in ("baseline", "gr")}
    methods = list(next(iter(details["models"].values()))["by_method"]["clean"])
    for meth in methods:
        cells = []
        for cond in ("clean", smallest):
            for v in ("baseline", "gr"):
                vals = [m["by_method"][cond][meth]["bacc"] for m in by_variant[v]]
                cells.append(_pct(sum(vals) / len(vals)) if vals else "n/a")
        lines.append(f"| {meth} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} |")
    vanished = sorted({c for m in details["models"].values() for c in m["vanished"]})
    if vanished:
        lines += ["", f"Note: 8-bit rounding removed the whole perturbation for {', '.join(vanished)} (an eps below "
                      "1/255 rounds back to the clean image); those rows equal clean."]
    return "\n".join(lines) + "\n"
