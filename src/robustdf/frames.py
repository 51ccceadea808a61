"""Evenly spaced frame sampling with decord, optional face crops, one uint8 array per video."""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robustdf import faces
from robustdf.ffpp import Video
from robustdf.params import FaceCropParams
from robustdf.runtime import DataError


def even_indices(n_total: int, n: int) -> np.ndarray:
    """``n`` evenly spaced frame indices over ``n_total`` frames (centres of n equal segments)."""
    return ((np.arange(n) + 0.5) * n_total / n).astype(np.int64)


def read_frames(path: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``n`` evenly spaced frames in one batched decord call: (indices, (n, H, W, 3) uint8)."""
    import decord

    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    total = len(vr)
    if total < n:
        raise ValueError(f"video has {total} frames, fewer than frames_per_video={n}")
    idx = even_indices(total, n)
    return idx, vr.get_batch(list(idx)).asnumpy()


@dataclass(frozen=True)
class ExtractJob:
    video: Video
    out_root: Path  # output folder; the array goes to out_root / rel_file
    rel_file: str
    n_frames: int
    image_size: int
    face: FaceCropParams


def extract_video(job: ExtractJob) -> dict[str, Any]:
    """Sample, crop and save one video; returns a manifest row, or a failure row with ``error``."""
    v = job.video
    try:
        if v.size_bytes == 0:
            raise ValueError("empty file (0 bytes)")
        idx, frames = read_frames(v.path, job.n_frames)
        h, w = frames.shape[1:3]
        if job.face.enabled:
            found = [faces.detect_largest(f, job.face.upsample) for f in frames]
            boxes = [faces.square_box(b, job.face.scale, w, h) if b else None for b in found]
            boxes, n_fallback = faces.fill_missing(boxes, job.face.fallback, w, h)
            fallback_frames = [int(i) for i, b in zip(idx, found, strict=True) if b is None]
        else:
            boxes, n_fallback, fallback_frames = [faces.center_box(w, h)] * len(frames), 0, []
        keep = [i for i, b in enumerate(boxes) if b is not None]
        if not keep:
            raise ValueError("no face found in any sampled frame and face_crop.fallback is 'drop'")
        crops = np.stack([faces.crop_resize(frames[i], boxes[i], job.image_size) for i in keep])
        out = job.out_root / job.rel_file
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, crops, allow_pickle=False)
    except Exception as err:  # decord raises assorted types for corrupt input; record, don't crash
        return {"key": v.key, "path": v.path, "error": f"{type(err).__name__}: {err}".strip()[:500]}
    return {
        **v.row(), "frames_file": job.rel_file, "n_frames": len(keep),
        "frame_indices": [int(idx[i]) for i in keep], "boxes": [list(boxes[i]) for i in keep],
        "n_fallback": n_fallback, "fallback_frames": fallback_frames,
    }


def extract_all(jobs: list[ExtractJob], workers: int) -> list[dict[str, Any]]:
    """Run :func:`extract_video` over all jobs, in order, with ``workers`` processes."""
    bar = dict(total=len(jobs), desc="extract_frames", unit="video")
    if workers == 1:
        return [extract_video(j) for j in tqdm(jobs, **bar)]
    with get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(extract_video, jobs, chunksize=4), **bar))


def split_results(results: list[dict[str, Any]], max_failure_share: float, root: str) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    """(manifest rows, failure rows); fail only when nothing usable remains or too many failed."""
    rows = [r for r in results if "error" not in r]
    failures = [r for r in results if "error" in r]
    share = len(failures) / max(1, len(results))
    if not rows:
        raise DataError(f"no usable video under {root}: all {len(failures)} failed; first: {failures[:1]}")
    if share > max_failure_share:
        raise DataError(f"{len(failures)} of {len(results)} videos failed ({share:.0%}), more than "
                        f"extract_frames.max_failure_share={max_failure_share}; first: {failures[0]}")
    return rows, failures
