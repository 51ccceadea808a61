"""The headline of a run: few numbers with short keys, so `dvc exp show` fits a terminal.

``metrics.json`` (registered as DVC metrics) holds per variant the across-seed means in percent;
``verdict.json`` holds GR minus baseline paired by seed, in points, with its calibrated interval and the smallest
difference the run could detect (``mde``, at ``evaluate.power``). With test-only sets, ``xauc`` is the clean AUC
averaged over them (cross-dataset generalization); per-set figures are in ``details.json`` and ``report.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from robustdf.evaluate.sanity import eps_key

SHORT = {"baseline": "base", "gr": "gr"}  # variant -> its column prefix in `dvc exp show`


@dataclass(frozen=True)
class HeadlineRow:
    """One headline quantity: its short key (a `dvc exp show` column), where it comes from, a readable name."""

    key: str
    condition: str
    metric: str
    name: str


def headline_rows(eps_list: list[float]) -> list[HeadlineRow]:
    """Clean AUC and balanced accuracy, then robust balanced accuracy (worst case over attacks) per eps."""
    rows = [HeadlineRow("auc", "clean", "auc", "clean AUC"),
            HeadlineRow("bacc", "clean", "bacc", "clean balanced accuracy")]
    for e in eps_list:
        k = eps_key(e).removeprefix("eps")
        rows.append(HeadlineRow(f"rob{k}", f"worst_{eps_key(e)}", "bacc",
                                f"robust balanced accuracy at eps {k.replace('p', '.')}/255"))
    return rows


def _pct(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(100 * v, 2)


def headline(details: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, verdict). ``metrics``: the registered headline, per variant across-seed means in percent plus
    one count of flags (models that did not learn + failed attack sanity checks), few and short keys so that
    `dvc exp show` fits a terminal. ``verdict``: GR minus baseline paired by seed, in points, with the
    interval bounds and whether the interval excludes zero."""
    rows = headline_rows(details["eps"])
    metrics: dict[str, Any] = {}
    for v in SHORT:
        means = details["variants"][v]
        metrics[SHORT[v]] = {r.key: _pct(means.get(r.condition, {}).get(r.metric, {}).get("mean", math.nan))
                             for r in rows}
    failed = sum(1 for m in details["models"].values() for s in m["sanity"] if s["passed"] is False)
    unchecked = sum(1 for m in details["models"].values() for s in m["sanity"] if s["passed"] is None)
    metrics["flags"] = len(details["degenerate"]) + failed
    verdict: dict[str, Any] = {}
    for r in rows:
        d = details["paired"].get(r.condition, {}).get(r.metric)
        verdict[r.key] = ({"diff": _pct(d["diff"]), "lo": _pct(d["lo"]), "hi": _pct(d["hi"]),
                           "mde": _pct(d["mde"]), "finding": d["finding"]} if d
                          else {"diff": None, "lo": None, "hi": None, "mde": None, "finding": False})
    gen = details.get("generalization", {}).get("xauc", {})
    if gen.get("paired") is not None:  # test-only sets exist: their mean clean AUC, the cross-dataset figure
        for v in SHORT:
            metrics[SHORT[v]]["xauc"] = _pct(gen["variants"][v])
        d = gen["paired"]
        verdict["xauc"] = {"diff": _pct(d["diff"]), "lo": _pct(d["lo"]), "hi": _pct(d["hi"]), "mde": _pct(d["mde"]),
                           "finding": d["finding"]}
    verdict["checks"] = {"degenerate_models": len(details["degenerate"]), "failed_sanity_checks": failed,
                         "unevaluated_sanity_checks": unchecked}
    return metrics, verdict
