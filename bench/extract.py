"""Benchmark: extraction frames/s (decode + face crop) with 1 and 2 workers, and decord's batched
evenly spaced decode vs reading the same frames sequentially with PyAV, on a 640x480 H.264 clip.

Usage: python bench/extract.py [--frames-per-video 8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from common import ROOT, report
from robustdf.data.extraction import extract_all
from robustdf.data.readers.video import Video
from robustdf.data.frames import even_indices, read_frames
from robustdf.params import ExtractParams, FaceCropParams
from robustdf.data.synth import encode_h264

CLIP = ROOT / "tests" / "data" / "short_hamilton_clip.mp4"


def make_clip(path: Path, n: int, gop: int) -> None:
    """A 640x480 clip of moving texture (x264, CRF 23, keyframe every ``gop`` frames)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (480 + 64, 640 + 64, 3), dtype=np.uint8)
    frames = [np.ascontiguousarray(base[(t % 64):(t % 64) + 480, (2 * t % 64):(2 * t % 64) + 640]) for t in range(n)]
    encode_h264(frames, path, 30, 23, gop)


def pyav_sequential(path: Path, n: int) -> np.ndarray:
    """Decode from the start, keeping the wanted frames (what a naive reader does)."""
    with av.open(str(path)) as c:
        total = c.streams.video[0].frames
        want = set(even_indices(total, n).tolist())
        out = []
        for i, frame in enumerate(c.decode(video=0)):
            if i in want:
                out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return np.stack(out)


def timed(fn, repeat: int = 3) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames-per-video", type=int, default=8)
    ap.add_argument("--videos", type=int, default=8)
    args = ap.parse_args()
    n = args.frames_per_video
    results: dict = {"frames_per_video": n}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for gop in (30, 250):
            clip = tmp / f"clip_gop{gop}.mp4"
            make_clip(clip, 300, gop)
            t_decord = timed(lambda c=clip: read_frames(str(c), n))
            t_pyav = timed(lambda c=clip: pyav_sequential(c, n))
            results[f"gop{gop}_640x480_300f"] = {
                "decord_batched_s": round(t_decord, 4), "pyav_sequential_s": round(t_pyav, 4),
                "speedup_decord_over_pyav": round(t_pyav / t_decord, 2),
            }
        videos = []
        for i in range(args.videos):
            path = tmp / f"v{i}.mp4"
            shutil.copy(CLIP, path)
            videos.append(Video(f"original/{i:03d}", "original", 0, f"yt:{i:03d}", "", "c23", str(path),
                                path.stat().st_size))
        for face in (False, True):
            for workers in (1, 2):
                p = ExtractParams(ffpp_root=str(tmp), methods=["Deepfakes"], frames_per_video=n, image_size=224,
                                  face_crop=FaceCropParams(enabled=face), workers=workers)
                t0 = time.perf_counter()
                ex = extract_all(videos, p, tmp / f"out-{face}-{workers}", workers)  # a fresh folder: no resume
                dt = time.perf_counter() - t0
                assert all("error" not in r for r in ex.results)
                results[f"extract_{'face' if face else 'noface'}_{workers}w_frames_per_s"] = round(
                    args.videos * n / dt, 1)
    report("extract", results)


if __name__ == "__main__":
    main()
