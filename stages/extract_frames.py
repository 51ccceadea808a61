"""Stage extract_frames: find FF++ videos, decode N evenly spaced frames (decord), crop, store uint8 arrays.

The output folder persists between runs (``persist: true``): finished videos are kept and only
missing or out-of-date ones are extracted; see :mod:`robustdf.data.extraction`.
"""

import argparse
import os
import shutil
from pathlib import Path

import yaml

from robustdf.data.extraction import extract_into
from robustdf.data.readers.ffpp import discover, video_folders
from robustdf.data.manifest import write_rows
from robustdf.params import ExtractParams, ParamsError, load_group
from robustdf.runtime import StageRun, log, main_guard
ROOT_VAR, COMP_VAR = "${extract_frames.ffpp_root}", "${extract_frames.compression}"


def dataset_deps(p: ExtractParams) -> list[str]:
    """The dataset paths this run reads, as dvc.yaml must list them: each video folder, then splits/."""
    folders = [f.relative_to(p.ffpp_root).as_posix() for f, _, _ in
               video_folders(p.ffpp_root, COMP_VAR, p.methods, p.real_sources)]
    return [f"{ROOT_VAR}/{f}" for f in [*folders, "splits"]]


def check_dvc_deps(p: ExtractParams, dvc_yaml: Path) -> None:
    """dvc.yaml's extract_frames deps under the dataset root must cover every folder this run reads (a params
    list cannot be expanded into deps, so they are written out there): a folder read but not listed is an
    error (DVC would miss its changes); one listed but not read only costs hashing, and is a warning."""
    if not dvc_yaml.is_file():  # run outside a DVC project
        return
    deps = yaml.safe_load(dvc_yaml.read_text())["stages"]["extract_frames"]["deps"]
    listed = {d for d in deps if d.startswith(ROOT_VAR)}
    wanted = set(dataset_deps(p))
    if wanted - listed:
        raise ParamsError(f"{dvc_yaml}: stage extract_frames reads dataset folders its deps do not list; "
                          f"add {sorted(wanted - listed)}")
    if listed - wanted:
        log.warning("[extract_frames] %s lists dataset folders this run does not read (hashed for nothing): %s",
                    dvc_yaml, sorted(listed - wanted))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="data/frames")
    args = ap.parse_args()
    p = load_group("extract_frames")
    check_dvc_deps(p, Path(os.environ.get("DVC_ROOT", ".")) / "dvc.yaml")
    run = StageRun("extract_frames")
    out = Path(args.out)
    videos, unknown = discover(p.ffpp_root, p.compression, p.methods, p.real_sources)
    run.read(p.ffpp_root, f"({len(videos)} videos, {len(unknown)} unrecognised files)")
    (out / "manifest.csv").unlink(missing_ok=True)  # an interrupted run must not look complete
    shutil.rmtree(out / "splits", ignore_errors=True)
    splits = Path(p.ffpp_root) / "splits"
    if splits.is_dir():
        shutil.copytree(splits, out / "splits")
        run.read(splits, "(official split files, copied for the split stage)")
    copied = {f.relative_to(out).as_posix() for f in (out / "splits").rglob("*") if f.is_file()}
    rows = extract_into(out, videos, unknown, p, p.ffpp_root, run, keep=copied)
    write_rows(out / "manifest.csv", rows)  # last: its presence marks a complete output
    run.wrote(out, "(videos/*.npy, records/*.json, manifest.csv, failures.csv, unrecognised_files.txt, splits/)")
    run.save(out)


if __name__ == "__main__":
    main_guard(main)
