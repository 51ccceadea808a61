"""Stage split: assign videos to train/val/test by identity (official FF++ split files when given)."""

import argparse
from pathlib import Path

from robustdf.data.manifest import counts, read_rows, write_rows
from robustdf.params import load_group
from robustdf.runtime import DataError, StageRun, atomic_dir, log, main_guard
from robustdf.data.splitting import apply_holdout, assign_splits, identity_leaks, load_official


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", default="data/frames")
    ap.add_argument("--out", default="data/split")
    args = ap.parse_args()
    p = load_group("split")
    run = StageRun("split")
    rows = read_rows(Path(args.frames) / "manifest.csv")
    run.read(Path(args.frames) / "manifest.csv", f"({len(rows)} videos)")
    official = load_official(Path(args.frames) / "splits") if p.official else None
    if official:
        run.read(Path(args.frames) / "splits", f"({len(official)} identities)")
    rows, straddling, notes = assign_splits(rows, official, p.fractions, p.seed)
    for n in notes:
        log.info("[split] %s", n)
    before = len(rows)
    rows = apply_holdout(rows, p.holdout_methods)
    leaks = identity_leaks(rows)
    if leaks:
        raise DataError(f"identity leakage across splits: {dict(list(leaks.items())[:5])}")
    with atomic_dir(args.out) as tmp:
        write_rows(tmp / "manifest.csv", rows)
    run.count(videos=len(rows), straddling_dropped=len(straddling), held_out_removed=before - len(rows),
              by_split=counts(rows, "split", "label"), by_split_method=counts(rows, "split", "method"))
    run.wrote(Path(args.out) / "manifest.csv")
    run.save(Path(args.out))


if __name__ == "__main__":
    main_guard(main)
