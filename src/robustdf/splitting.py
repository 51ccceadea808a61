"""Leakage-free train/val/test assignment by identity, following FF++'s official split files."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

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


def grouped_split(rows: list[dict[str, Any]], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Seeded split of identity groups (connected by fakes) to reach ``fractions`` of videos."""
    comp = _components(rows)
    size: dict[str, int] = defaultdict(int)
    for r in rows:
        size[comp[r["target"]]] += 1
    groups = sorted(size)
    order = np.random.default_rng(seed).permutation(len(groups))
    total = sum(size.values())
    filled = {s: 0 for s in SPLITS}
    assign: dict[str, str] = {}
    for gi in order:
        g = groups[gi]
        # the split furthest below its target share takes the next group
        split = min(SPLITS, key=lambda s: (filled[s] / total - fractions[s], SPLITS.index(s)))
        assign[g] = split
        filled[split] += size[g]
    return {ident: assign[root] for ident, root in comp.items()}


def assign_splits(
    rows: list[dict[str, Any]], official: dict[str, str] | None, fractions: dict[str, float], seed: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Give every video a split; identities missing from ``official`` get a grouped split.

    Returns (rows with ``split``, notes for the log).
    """
    notes: list[str] = []
    official = official or {}
    uncovered = [r for r in rows if r["target"] not in official or (r["source"] and r["source"] not in official)]
    fallback = grouped_split(uncovered, fractions, seed) if uncovered else {}
    if official and uncovered:
        notes.append(f"{len(uncovered)} videos have identities outside the official split files: grouped split")
    out = []
    for r in rows:
        ids = [r["target"]] + ([r["source"]] if r["source"] else [])
        where = {official.get(i) or fallback[i] for i in ids}
        if len(where) != 1:
            raise DataError(f"video {r['key']} links identities in different splits {sorted(where)}")
        out.append({**r, "split": where.pop()})
    return out, notes


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
