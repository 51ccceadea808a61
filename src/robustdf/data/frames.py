"""Evenly spaced frame sampling with decord, optional face crops, one uint8 array per video."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustdf.data import faces
from robustdf.data.readers.video import Video
from robustdf.params import FaceCropParams
from robustdf.runtime import atomic_file

# decord's own prefix ("[08:22:15] /path/video_reader.cc:83: ") and FFmpeg's context address ("@ 0x55e1...")
_LOG_NOISE = re.compile(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: |\s*@ 0x[0-9a-f]+")


def even_indices(n_total: int, n: int) -> np.ndarray:
    """``n`` evenly spaced frame indices over ``n_total`` frames (centres of n equal segments)."""
    return ((np.arange(n) + 0.5) * n_total / n).astype(np.int64)


@contextlib.contextmanager
def decoder_errors(path: str) -> Iterator[None]:
    """Turn a decord failure into ``ValueError`` carrying the decoder's own messages.

    FFmpeg (inside decord) explains a failure, e.g. ``moov atom not found``, only on file
    descriptor 2, while the exception says just ``Error reading <path>``; the descriptor is
    redirected for the duration of the block and what it received becomes the message.
    """
    with tempfile.TemporaryFile(mode="w+b") as buf:
        saved = os.dup(2)
        os.dup2(buf.fileno(), 2)
        try:
            yield
        except Exception as err:
            os.dup2(saved, 2)
            buf.seek(0)
            lines = [_LOG_NOISE.sub("", ln).strip() for ln in buf.read().decode(errors="replace").splitlines()]
            detail = "; ".join(dict.fromkeys(ln for ln in lines if ln)) or str(err)
            raise ValueError(f"cannot decode {path}: {detail}") from None
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def open_video(path: str) -> Any:
    """A decord ``VideoReader`` (single-threaded); decoder messages on failure."""
    import decord

    with decoder_errors(path):
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)


def get_frames(vr: Any, path: str, indices: list[int]) -> np.ndarray:
    """Decode ``indices`` in one batched call: (n, H, W, 3) uint8."""
    with decoder_errors(path):
        return vr.get_batch(indices).asnumpy()


def read_frames(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``n`` evenly spaced frames in one batched decord call: (indices, (n, H, W, 3) uint8)."""
    vr = open_video(path)
    if len(vr) < n:
        raise ValueError(f"video has {len(vr)} frames, fewer than frames_per_video={n}")
    idx = even_indices(len(vr), n)
    return idx, get_frames(vr, path, idx.tolist())


# what extract_video returns for a usable video, in manifest column order
FIELDS = ("frames_file", "n_frames", "frame_indices", "boxes", "n_fallback", "fallback_frames", "face_share",
          "boxes_from", "n_total_frames", "width", "height")


@dataclass(frozen=True)
class ExtractJob:
    video: Video
    out_root: Path  # output folder; the array goes to out_root / rel_file
    rel_file: str
    n_frames: int
    image_size: int
    face: FaceCropParams
    reuse: dict[str, Any] | None = None  # extraction row of the fake's target original: reuse its boxes


def detect(frames: np.ndarray, idx: np.ndarray, face: FaceCropParams) -> tuple[list, dict[str, Any]]:
    """Boxes per frame (after the fallback) and the face statistics of the video."""
    h, w = frames.shape[1:3]
    if not face.enabled:
        return [faces.center_box(w, h)] * len(frames), {"n_fallback": 0, "fallback_frames": [], "face_share": None}
    up = faces.auto_upsample(w, h, face.min_face) if face.upsample == "auto" else face.upsample
    found = [faces.detect_largest(f, up) for f in frames]
    boxes = [faces.square_box(b, face.scale, w, h) if b else None for b in found]
    boxes, n_fallback = faces.fill_missing(boxes, face.fallback, w, h)
    missed = [int(i) for i, b in zip(idx, found, strict=True) if b is None]
    return boxes, {"n_fallback": n_fallback, "fallback_frames": missed,
                   "face_share": round(1 - n_fallback / len(frames), 4)}


def save_crops(job: ExtractJob, crops: np.ndarray) -> None:
    """Write one video's (or image's) crops, a uint8 (N, S, S, 3) array, to ``job.rel_file`` atomically."""
    out = job.out_root / job.rel_file
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp, tmp.open("wb") as fh:
        np.save(fh, crops, allow_pickle=False)


def _reused_boxes(vr: Any, job: ExtractJob) -> tuple[np.ndarray, np.ndarray, list, dict[str, Any]] | None:
    """(indices, frames, boxes, stats) of the target original, if the fake matches it frame for frame.

    FF++'s fakes keep their original's frame count, timing and size; otherwise None (detect).
    """
    r = job.reuse
    if r is None or r["n_total_frames"] != len(vr):
        return None
    frames = get_frames(vr, job.video.path, r["frame_indices"])
    if frames.shape[1:3] != (r["height"], r["width"]):
        return None
    stats = {k: r[k] for k in ("n_fallback", "fallback_frames", "face_share")}
    return np.asarray(r["frame_indices"]), frames, [tuple(b) for b in r["boxes"]], {**stats, "boxes_from": r["key"]}


def extract_video(job: ExtractJob) -> dict[str, Any]:
    """Sample, crop and save one video; returns its extraction fields, or ``{"error": reason}``.

    With ``job.reuse`` (the target original's fields) and the same frame count and size, the
    original's frame indices and boxes are taken instead of detecting again, so the real and
    fake frames of one scene get the identical crop.
    """
    try:
        if job.video.size_bytes == 0:
            raise ValueError("empty file (0 bytes)")
        vr = open_video(job.video.path)
        if len(vr) < job.n_frames:
            raise ValueError(f"video has {len(vr)} frames, fewer than frames_per_video={job.n_frames}")
        reused = _reused_boxes(vr, job)
        if reused is not None:
            idx, frames, boxes, stats = reused
        else:
            idx = even_indices(len(vr), job.n_frames)
            frames = get_frames(vr, job.video.path, idx.tolist())
            boxes, stats = detect(frames, idx, job.face)
            stats["boxes_from"] = ""
        keep = [i for i, b in enumerate(boxes) if b is not None]
        if not keep:
            raise ValueError("no face found in any sampled frame and face_crop.fallback is 'drop'")
        crops = np.stack([faces.crop_resize(frames[i], boxes[i], job.image_size) for i in keep])
        save_crops(job, crops)
    except Exception as err:  # decord raises assorted types for corrupt input; record, don't crash
        return {"error": f"{type(err).__name__}: {err}".strip()[:500]}
    h, w = frames.shape[1:3]
    return {
        "frames_file": job.rel_file, "n_frames": len(keep), "frame_indices": [int(idx[i]) for i in keep],
        "boxes": [list(boxes[i]) for i in keep], **stats, "n_total_frames": len(vr), "width": w, "height": h,
    }
