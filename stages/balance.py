"""Stage balance: equalise real vs fake videos inside each chosen split (never across splits)."""

import argparse
from pathlib import Path

from robustdf.data.balance import balance
from robustdf.data.manifest import counts, read_rows, write_rows
from robustdf.params import load_group
from robustdf.runtime import StageRun, atomic_dir, main_guard


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--split", default="data/split")
    ap.add_argument("--out", default="data/balanced")
    args = ap.parse_args()
    p = load_group("balance")
    run = StageRun("balance")
    rows = read_rows(Path(args.split) / "manifest.csv")
    run.read(Path(args.split) / "manifest.csv", f"({len(rows)} videos)")
    run.count(before=counts(rows, "split", "label"), before_methods=counts(rows, "split", "method"))
    out = balance(rows, p.strategy, p.splits, p.seed)
    with atomic_dir(args.out) as tmp:
        write_rows(tmp / "manifest.csv", out)
    run.count(strategy=p.strategy, after=counts(out, "split", "label"), after_methods=counts(out, "split", "method"))
    run.wrote(Path(args.out) / "manifest.csv")
    run.save(Path(args.out))


if __name__ == "__main__":
    main_guard(main)
