"""Stage extract_test@<name>: one test-only dataset of ``extract_frames.test_sets`` through the same face
pipeline as the training corpus, into its own persistent folder, every video in split ``test`` with its
identity group (the unit evaluation resamples)."""

import argparse
from pathlib import Path

from robustdf.data.readers import discover
from robustdf.data.extraction import extract_into
from robustdf.data.manifest import write_rows
from robustdf.params import ParamsError, load_group
from robustdf.runtime import StageRun, main_guard
from robustdf.data.splitting import identity_groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("name", help="a key of extract_frames.test_sets")
    ap.add_argument("--out", default=None, help="default: data/sets/<name>")
    args = ap.parse_args()
    p = load_group("extract_frames")
    if args.name not in p.test_sets:
        raise ParamsError(f"extract_frames.test_sets has no set {args.name!r}; it has {sorted(p.test_sets)}")
    ts = p.test_sets[args.name]
    run = StageRun(f"extract_test@{args.name}")
    out = Path(args.out or f"data/sets/{args.name}")
    videos, unknown = discover(ts.kind, ts.root, **ts.options)
    run.read(ts.root, f"({ts.kind}: {len(videos)} records, {len(unknown)} unrecognised files)")
    rows = extract_into(out, videos, unknown, p, ts.root, run)
    group = identity_groups(rows)
    write_rows(out / "manifest.csv", [{**r, "split": "test", "group": group[r["target"]]} for r in rows])
    run.count(groups=len(set(group.values())))
    run.wrote(out, "(videos/*.npy, records/*.json, manifest.csv, failures.csv, unrecognised_files.txt)")
    run.save(out)


if __name__ == "__main__":
    main_guard(main)
