"""Still images (DFFD and other image sets) through the video path's face pipeline: one frame each."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from robustdf.data import faces
from robustdf.data.frames import ExtractJob, detect, save_crops


def read_image(path: str) -> np.ndarray:
    """An image file as one (1, H, W, 3) uint8 RGB frame (grey and alpha images converted)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))[None]


def extract_image(job: ExtractJob) -> dict[str, Any]:
    """Detect, crop and save one image as a one-frame array; the same fields as
    :func:`robustdf.data.frames.extract_video` (frame index 0), or ``{"error": reason}``."""
    try:
        if job.video.size_bytes == 0:
            raise ValueError("empty file (0 bytes)")
        frames = read_image(job.video.path)
        boxes, stats = detect(frames, np.zeros(1, np.int64), job.face)
        if boxes[0] is None:
            raise ValueError("no face found in the image and face_crop.fallback is 'drop'")
        crops = faces.crop_resize(frames[0], boxes[0], job.image_size)[None]
        save_crops(job, crops)
    except Exception as err:  # PIL raises assorted types for corrupt input; record, don't crash
        return {"error": f"{type(err).__name__}: {err}".strip()[:500]}
    h, w = frames.shape[1:3]
    return {"frames_file": job.rel_file, "n_frames": 1, "frame_indices": [0], "boxes": [list(boxes[0])], **stats,
            "boxes_from": "", "n_total_frames": 1, "width": w, "height": h}
