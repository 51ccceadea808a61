"""Celeb-DF (v2): the videos of the official test list.

::

    Celeb-real/id<k>_<n>.mp4                    real, celebrity k
    YouTube-real/<n>.mp4                        real, an unnamed person
    Celeb-synthesis/id<t>_id<s>_<n>.mp4         fake: target t with the face of source s
    List_of_testing_videos.txt                  lines "<label> <relative path>", label 1 = REAL, 0 = fake

Only listed videos are returned; files present but not listed are unrecognised. A fake is not
frame-aligned to one original, so no fake names an original (no box reuse).
"""

from __future__ import annotations

import re
from pathlib import Path

from robustdf.data.readers.common import Found, key_of, label_of, listed_file, record, require, unlisted
from robustdf.data.readers.registry import register
from robustdf.data.readers.video import Video
from robustdf.runtime import DataError

TEST_LIST = "List_of_testing_videos.txt"
CDF_LABELS = {"1": 0, "0": 1}  # Celeb-DF's 1 = REAL; ours 1 = fake
# folder: (our label, file-stem pattern, its identities (target, source))
FOLDERS = {
    "Celeb-real": (0, re.compile(r"^id(\d+)_(\d+)$"), lambda m: (f"cdf:{m[1]}", "")),
    "YouTube-real": (0, re.compile(r"^(\d+)$"), lambda m: (f"cdf-yt:{m[1]}", "")),
    "Celeb-synthesis": (1, re.compile(r"^id(\d+)_id(\d+)_(\d+)$"), lambda m: (f"cdf:{m[1]}", f"cdf:{m[2]}")),
}


def _listed(root: Path, where: str, line: str) -> Video:
    """The record of one line of the test list."""
    fields = line.split()
    if len(fields) != 2:
        raise DataError(f"{where}: expected '<label> <relative path>', got {line!r}")
    label = label_of(fields[0], where, "label", CDF_LABELS)
    path = listed_file(root, fields[1], where)
    folder = path.relative_to(root).parts[0]
    if folder not in FOLDERS or path.parent != root / folder:
        raise DataError(f"{where}: {fields[1]} is not in one of {sorted(FOLDERS)}")
    folder_label, pattern, identities = FOLDERS[folder]
    m = pattern.match(path.stem) if path.suffix == ".mp4" else None
    if m is None:
        raise DataError(f"{where}: {fields[1]} is not a Celeb-DF name for {folder}/ ({pattern.pattern}.mp4)")
    if label != folder_label:
        raise DataError(f"{where}: label {fields[0]} ({'fake' if label else 'REAL'}) contradicts folder {folder}/")
    return record(path, key_of("celebdf", root, path), folder, label, *identities(m))


@register("celebdf")
def discover(root: str | Path) -> Found:
    """The Celeb-DF videos of the official test list under ``root``: (videos, unrecognised paths)."""
    root = require(Path(root), "Celeb-DF root")
    folders = [require(root / f, "Celeb-DF folder") for f in FOLDERS]
    listing = require(root / TEST_LIST, "Celeb-DF test list", folder=False)
    videos = [_listed(root, f"{listing}:{n}", line)
              for n, line in enumerate(listing.read_text().splitlines(), 1) if line.strip()]
    listed = {Path(v.path) for v in videos}
    return videos, [u for f in folders for u in unlisted(f, listed)]
