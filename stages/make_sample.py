"""Stage make_sample: write the synthetic FF++-shaped corpus (real H.264 videos + split files)."""

import argparse

from robustdf.params import load_group
from robustdf.runtime import StageRun, atomic_dir, main_guard
from robustdf.synth import make_sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="data/sample")
    args = ap.parse_args()
    p = load_group("make_sample")
    run = StageRun("make_sample")
    with atomic_dir(args.out) as tmp:
        with run.timed("render+encode"):
            run.count(**make_sample(tmp, p))
    run.wrote(args.out, f"({p.compression}, {p.size}x{p.size}, {p.frames} frames/video)")
    run.save(args.out)


if __name__ == "__main__":
    main_guard(main)
