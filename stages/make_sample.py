"""Stage make_sample: write the synthetic FF++-shaped corpus (real H.264 videos + split files) and the unseen
test sets beside it, a Celeb-DF-v2-shaped video set and a DFFD-shaped image set."""

import argparse

from robustdf.params import load_group
from robustdf.runtime import StageRun, atomic_dir, main_guard
from robustdf.data.synth import make_sample
from robustdf.data.synth_sets import make_celebdf, make_dffd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="data/sample")
    ap.add_argument("--celebdf", default="data/sample_celebdf")
    ap.add_argument("--dffd", default="data/sample_dffd")
    args = ap.parse_args()
    p = load_group("make_sample")
    run = StageRun("make_sample")
    for out, write in ((args.out, make_sample), (args.celebdf, make_celebdf), (args.dffd, make_dffd)):
        with atomic_dir(out) as tmp:
            with run.timed(f"render+encode {out}"):
                run.count(**write(tmp, p))
        run.wrote(out)
    run.count(compression=p.compression, celebdf_crf=p.celebdf.crf, size=p.size, frames=p.frames)
    run.save(args.out)


if __name__ == "__main__":
    main_guard(main)
