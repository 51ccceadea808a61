"""Leakage-free train/val/test assignment by identity, following FF++'s official split files."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from robustdf.params import SPLITS
from robustdf.runtime import DataError


def load_official(folder: str | Path) -> dict[str, str]:
    """Map every ``yt:<id>`` in FF++'s ``{train,val,test}.json`` (lists of [target, source]) to its split."""
    folder = Path(folder)
    out: dict[str, str] = {}
    for split in SPLITS:
        path = folder / f"{split}.json"
        if not path.is_file():
            raise DataError(f"official split file {path} not found: put FF++'s splits/*.json under the dataset "
                            "root, or set split.official: false for a seeded split grouped by identity")
        try:
            pairs = json.loads(path.read_text())
            ids = [str(i) for pair in pairs for i in pair]
        except (ValueError, TypeError) as err:
            raise DataError(f"official split file {path} is not a JSON list of [target, source] pairs: {err}") from None
        for i in ids:
            if out.get(f"yt:{i}", split) != split:
                raise DataError(f"identity {i} appears in two official split files ({out[f'yt:{i}']}, {split})")
            out[f"yt:{i}"] = split
    return out


def _components(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Union-find over identities linked by a (target, source) video; returns identity -> root."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for r in rows:
        a = find(r["target"])
        if r["source"]:
            b = find(r["source"])
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {i: find(i) for i in list(parent)}


def identity_groups(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Identity -> the group it is split with.

    Identities linked by fakes into a component of at most two are FF++ pairs (``A_B`` and
    ``B_A``) and stay together. In a larger component, as DeepFakeDetection's actors form (each
    actor swapped with many others), keeping the component whole would put every linked actor in
    one split, so each identity is its own group and fakes that straddle two splits are dropped.
    """
    comp = _components(rows)
    members = Counter(comp.values())
    return {i: root if members[root] <= 2 else i for i, root in comp.items()}


def grouped_split(rows: list[dict[str, Any]], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded split of identity groups (:func:`identity_groups`) to reach ``fractions`` of videos."""
    group = identity_groups(rows)
    size: dict[str, int] = defaultdict(int)
    for r in rows:
        size[group[r["target"]]] += 1
    for g in set(group.values()):  # an identity only ever seen as a source still gets a split
        size.setdefault(g, 0)
    groups = sorted(size)
    order = np.random.default_rng(seed).permutation(len(groups))
    total = max(1, sum(size.values()))
    filled = {s: 0 for s in SPLITS}
    assign: dict[str, str] = {}
    for gi in order:
        g = groups[gi]
        # the split furthest below its target share takes the next group
        split = min(SPLITS, key=lambda s: (filled[s] / total - fractions[s], SPLITS.index(s)))
        assign[g] = split
        filled[split] += size[g]
    return {ident: assign[g] for ident, g in group.items()}


class Assignment(NamedTuple):
    rows: list[dict[str, Any]]  # with ``split``
    dropped: list[dict[str, Any]]  # fakes whose target and source identities fell in different splits
    notes: list[str]  # for the log


def assign_splits(
    rows: list[dict[str, Any]], official: dict[str, str] | None, fractions: dict[str, float], seed: int
) -> Assignment:
    """Give every video a split and its identity ``group`` (:func:`identity_groups`, the unit that evaluation
    resamples); identities missing from ``official`` get a grouped split.

    A fake whose target and source land in different splits through that grouped split is
    dropped (and counted), never moved; a conflict within the official files is an error.
    """
    notes: list[str] = []
    official = official or {}
    uncovered = [r for r in rows if r["target"] not in official or (r["source"] and r["source"] not in official)]
    fallback = grouped_split(uncovered, fractions, seed) if uncovered else {}
    group = identity_groups(rows)
    if official and uncovered:
        notes.append(f"{len(uncovered)} videos have identities outside the official split files: grouped split")
    out, dropped = [], []
    for r in rows:
        ids = [r["target"]] + ([r["source"]] if r["source"] else [])
        where = {official.get(i) or fallback[i] for i in ids}
        if len(where) == 1:
            out.append({**r, "split": where.pop(), "group": group[r["target"]]})
        elif all(i in official for i in ids):
            raise DataError(f"video {r['key']} links identities in different official splits {sorted(where)}")
        else:
            dropped.append(r)
    if dropped:
        notes.append(f"dropped {len(dropped)} fakes whose target and source identities are in different splits")
    return Assignment(out, dropped, notes)


def apply_holdout(rows: list[dict[str, Any]], holdout: list[str]) -> list[dict[str, Any]]:
    """Drop held-out methods from train and val; they stay in test (cross-manipulation protocol)."""
    return [r for r in rows if not (r["method"] in holdout and r["split"] != "test")]


def identity_leaks(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Identities that appear in more than one split (should be empty)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for i in (r["target"], r["source"]):
            if i:
                seen[i].add(r["split"])
    return {i: s for i, s in seen.items() if len(s) > 1}
