"""The per-video manifest that flows between data stages: a CSV, list fields as JSON."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from robustdf.runtime import DataError, atomic_file

INT_FIELDS = {"label", "size_bytes", "n_frames", "n_fallback", "copy", "n_total_frames", "width", "height", "low_face"}
FLOAT_FIELDS = {"face_share"}
JSON_FIELDS = {"frame_indices", "boxes", "fallback_frames"}


def write_rows(path: str | Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    """Write dict rows as CSV (atomically); JSON-encode list fields."""
    fields = fields or (list(rows[0]) if rows else [])
    with atomic_file(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: json.dumps(v) if k in JSON_FIELDS else v for k, v in row.items()})


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a manifest CSV written by :func:`write_rows`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} not found (did the upstream stage run?)")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for k in row:
            if k in INT_FIELDS and row[k] != "":
                row[k] = int(row[k])
            elif k in FLOAT_FIELDS and row[k] != "":
                row[k] = float(row[k])
            elif k in JSON_FIELDS:
                row[k] = json.loads(row[k])
    return rows


def counts(rows: list[dict[str, Any]], *keys: str) -> dict[str, int]:
    """Count rows by the joined values of ``keys`` (e.g. ``counts(rows, 'split', 'method')``)."""
    c = Counter("/".join(str(r[k]) for k in keys) for r in rows)
    return dict(sorted(c.items()))


def test_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluated videos: the test split without oversampling copies."""
    return [r for r in rows if r["split"] == "test" and not r.get("copy")]


def face_share_by_method(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per method, the mean share of sampled frames with a detected face (videos without face crops skipped)."""
    shares: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.get("face_share") not in (None, ""):
            shares[r["method"]].append(r["face_share"])
    return {m: round(sum(s) / len(s), 4) for m, s in sorted(shares.items())}
