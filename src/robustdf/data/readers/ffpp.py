"""Discovery of the FaceForensics++ folder layout (as written by FF++'s download script).

::

    original_sequences/youtube/<comp>/videos/000.mp4
    original_sequences/actors/<comp>/videos/01__exit_phone_room.mp4
    manipulated_sequences/<Method>/<comp>/videos/000_003.mp4
    manipulated_sequences/DeepFakeDetection/<comp>/videos/01_02__exit_phone_room__YVGY8LOK.mp4

Every video gets a key unique across the corpus (``<method>/<stem>``), never a bare file name,
and identities are namespaced (``yt:000``, ``dfd:01``) so the two id spaces never collide.
"""

from __future__ import annotations

import re
from pathlib import Path

from robustdf.data.readers.common import Found, scan
from robustdf.data.readers.registry import register
from robustdf.data.readers.video import Video
from robustdf.runtime import DataError

REAL_METHOD = {"youtube": "original", "actors": "actors"}
_YT_REAL = re.compile(r"^(\d{3})$")
_YT_FAKE = re.compile(r"^(\d{3})_(\d{3})$")
_DFD_REAL = re.compile(r"^(\d{2})__([A-Za-z0-9_-]+?)$")
_DFD_FAKE = re.compile(r"^(\d{2})_(\d{2})__([A-Za-z0-9_-]+?)__([A-Za-z0-9]{8})$")
VIDEO_EXT = ".mp4"


def parse_name(stem: str, method: str) -> tuple[str, str] | None:
    """Return (target, source) identities for a file stem, or None if the name is not FF++'s."""
    if method == "original":
        m = _YT_REAL.match(stem)
        return (f"yt:{m[1]}", "") if m else None
    if method == "actors":
        m = _DFD_REAL.match(stem)
        return (f"dfd:{m[1]}", "") if m else None
    if method == "DeepFakeDetection":
        m = _DFD_FAKE.match(stem)
        return (f"dfd:{m[1]}", f"dfd:{m[2]}") if m else None
    m = _YT_FAKE.match(stem)
    return (f"yt:{m[1]}", f"yt:{m[2]}") if m else None


def target_original(stem: str, method: str, label: int) -> str:
    """Key of the original a fake re-renders (``000_003`` -> ``original/000``; DFD
    ``01_02__scene__ID`` -> ``actors/01__scene``), "" for reals and unknown names."""
    if method == "DeepFakeDetection":
        m = _DFD_FAKE.match(stem)
        return f"actors/{m[1]}__{m[3]}" if m else ""
    m = _YT_FAKE.match(stem) if label == 1 else None
    return f"original/{m[1]}" if m else ""


def _scan(folder: Path, method: str, label: int, compression: str) -> Found:
    if not folder.is_dir():
        raise DataError(f"expected video folder {folder} does not exist (method {method!r}, {compression})")

    def parse(path: Path) -> Video | None:
        ids = parse_name(path.stem, method) if path.suffix == VIDEO_EXT else None
        if ids is None:
            return None
        return Video(f"{method}/{path.stem}", method, label, ids[0], ids[1], compression, str(path),
                     path.stat().st_size, target_original(path.stem, method, label))

    videos, unknown = scan(folder, parse)
    if not videos:
        raise DataError(f"video folder {folder} holds no FF++ videos (method {method!r})")
    return videos, unknown


def video_folders(root: str | Path, compression: str, methods: list[str], real_sources: list[str]) -> list[
        tuple[Path, str, int]]:
    """(folder, method, label) of every video folder a selection reads: the real sources, then the methods."""
    root = Path(root)
    return ([(root / "original_sequences" / src / compression / "videos", REAL_METHOD[src], 0) for src in real_sources]
            + [(root / "manipulated_sequences" / m / compression / "videos", m, 1) for m in methods])


@register("ffpp")
def discover(root: str | Path, compression: str, methods: list[str], real_sources: list[str]) -> Found:
    """List the real and fake videos under an FF++ root; returns (videos, unrecognised paths)."""
    if not Path(root).is_dir():
        raise DataError(f"dataset root {root} does not exist")
    videos: list[Video] = []
    unknown: list[str] = []
    for folder, method, label in video_folders(root, compression, methods, real_sources):
        v, u = _scan(folder, method, label, compression)
        videos += v
        unknown += u
    return videos, unknown
