"""Benchmark: face detection share and cost per resolution, and extraction time per video with and
without reusing the originals' boxes for their fakes, on an FF++-shaped tree made from the real clip.

(a) dlib HOG on 32 evenly spaced frames of the real clip resized to 320x180, 640x360 and 1280x720,
    with 0, 1, 2 upsampling steps and with ``upsample: auto``: share of frames with a face, s/frame.
(b) A 1280x720 tree: originals 000 (the clip) and 001 (mirrored), and for each of four methods the
    fakes 000_001 and 001_000, which re-render their target frame for frame (tinted, blurred), as FF++'s
    fakes do. Full extraction (1 worker, a fresh output folder each run) with ``reuse_original_boxes``
    on and off, interleaved a b a b; medians of seconds per video.

Usage: python bench/extract_reuse.py [--frames-per-video 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from common import ROOT, report
from robustdf.data import faces
from robustdf.data.extraction import extract_all
from robustdf.data.readers.ffpp import discover
from robustdf.data.frames import read_frames
from robustdf.params import ExtractParams, FaceCropParams
from robustdf.data.synth import encode_h264

CLIP = ROOT / "tests" / "data" / "short_hamilton_clip.mp4"
METHODS = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"]
SIZES = [(320, 180), (640, 360), (1280, 720)]


def resized(frames: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    return [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR)) for f in frames]


def detection_table(n: int) -> dict:
    """Share of frames with a detected face and seconds per frame, per size and upsampling."""
    _, frames = read_frames(str(CLIP), n)
    out = {}
    for w, h in SIZES:
        fs = resized(frames, (w, h))
        auto = faces.auto_upsample(w, h, FaceCropParams().min_face)
        for up in (0, 1, 2):
            t0 = time.perf_counter()
            found = [faces.detect_largest(f, up) is not None for f in fs]
            out[f"{w}x{h}_upsample{up}"] = {"face_share": round(sum(found) / n, 3),
                                            "s_per_frame": round((time.perf_counter() - t0) / n, 4)}
        out[f"{w}x{h}_auto"] = {"upsample": auto, **out[f"{w}x{h}_upsample{auto}"]}
    return out


def make_tree(root: Path) -> None:
    """The 720p FF++-shaped tree described in the module docstring (every 2nd frame of the clip)."""
    import decord

    vr = decord.VideoReader(str(CLIP))
    clip = resized(vr.get_batch(list(range(0, len(vr), 2))).asnumpy(), (1280, 720))
    scenes = {"000": clip, "001": [np.ascontiguousarray(f[:, ::-1]) for f in clip]}
    for vid, frames in scenes.items():
        encode_h264(frames, root / f"original_sequences/youtube/c23/videos/{vid}.mp4", 25, 23, 50)
    for k, method in enumerate(METHODS):
        for target, source in (("000", "001"), ("001", "000")):
            fake = [np.asarray(Image.fromarray((f * (1.0 - 0.05 * k)).astype(np.uint8)).filter(
                ImageFilter.GaussianBlur(1 + k))) for f in scenes[target]]
            encode_h264(fake, root / f"manipulated_sequences/{method}/c23/videos/{target}_{source}.mp4", 25, 23, 50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames-per-video", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    results: dict = {"detection_real_clip_32_frames": detection_table(32)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ffpp"
        make_tree(root)
        times: dict[bool, list[float]] = {True: [], False: []}
        counts = {}
        for rep in range(args.repeats):
            for reuse in (True, False):  # a b a b
                p = ExtractParams(ffpp_root=str(root), methods=METHODS, frames_per_video=args.frames_per_video,
                                  image_size=224, workers=1,
                                  face_crop={"enabled": True, "reuse_original_boxes": reuse})
                videos, _ = discover(root, "c23", METHODS, ["youtube"])
                t0 = time.perf_counter()
                ex = extract_all(videos, p, Path(tmp) / f"out-{rep}-{reuse}", 1)
                times[reuse].append((time.perf_counter() - t0) / len(videos))
                assert all("error" not in r for r in ex.results), ex.results
                counts[reuse] = {**ex.counts, "face_share": [r["face_share"] for r in ex.results[:2]]}
        with_s, without_s = statistics.median(times[True]), statistics.median(times[False])
        results["extract_720p_tree"] = {
            "videos": len(videos), "frames_per_video": args.frames_per_video,
            "frames_per_source_video": 138,
            "s_per_video_with_reuse": round(with_s, 3), "s_per_video_without_reuse": round(without_s, 3),
            "speedup": round(without_s / with_s, 2),
            "runs_s_per_video": {"with_reuse": [round(t, 3) for t in times[True]],
                                 "without_reuse": [round(t, 3) for t in times[False]]},
            "counts_with_reuse": counts[True], "counts_without_reuse": counts[False],
        }
    report("extract_reuse", results)


if __name__ == "__main__":
    main()
