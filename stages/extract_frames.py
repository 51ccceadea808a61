"""Stage extract_frames: find FF++ videos, decode N evenly spaced frames (decord), crop, store uint8 arrays."""

import argparse
import shutil
from pathlib import Path

from robustdf.ffpp import discover
from robustdf.frames import ExtractJob, extract_all, split_results
from robustdf.manifest import counts, write_rows
from robustdf.params import load_group
from robustdf.runtime import StageRun, atomic_dir, log, main_guard


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="data/frames")
    args = ap.parse_args()
    p = load_group("extract_frames")
    run = StageRun("extract_frames")
    videos, unknown = discover(p.ffpp_root, p.compression, p.methods, p.real_sources)
    run.read(p.ffpp_root, f"({len(videos)} videos, {len(unknown)} unrecognised files)")
    for path in unknown:
        log.warning("[extract_frames] unrecognised file, skipped: %s", path)
    with atomic_dir(args.out) as tmp:
        jobs = [ExtractJob(v, tmp, f"videos/{v.key}.npy", p.frames_per_video, p.image_size, p.face_crop)
                for v in videos]
        with run.timed("decode+crop"):
            results = extract_all(jobs, p.workers)
        for f in (r for r in results if "error" in r):
            log.warning("[extract_frames] failed %s: %s", f["path"], f["error"])
        rows, failures = split_results(results, p.max_failure_share, p.ffpp_root)
        write_rows(tmp / "manifest.csv", rows)
        write_rows(tmp / "failures.csv", failures, ["key", "path", "error"])
        (tmp / "unrecognised_files.txt").write_text("".join(f"{u}\n" for u in unknown))
        splits = Path(p.ffpp_root) / "splits"
        if splits.is_dir():
            shutil.copytree(splits, tmp / "splits")
            run.read(splits, "(official split files, copied for the split stage)")
        run.count(videos=len(rows), failed=len(failures), unrecognised=len(unknown),
                  frames=sum(r["n_frames"] for r in rows), fallbacks=sum(r["n_fallback"] for r in rows),
                  by_method=counts(rows, "method"))
    run.wrote(args.out, "(videos/*.npy, manifest.csv, failures.csv, unrecognised_files.txt, splits/)")
    run.save(Path(args.out))


if __name__ == "__main__":
    main_guard(main)
