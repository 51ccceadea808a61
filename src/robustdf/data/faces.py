"""Face boxes with dlib's HOG frontal detector (offline, no model file) and square crops.

HOG finds frontal faces of about 80 px and more; smaller faces are found only in a frame that
dlib upsamples (each step doubles width and height and costs about 4x the time).
:func:`auto_upsample` picks the fewest steps that bring the smallest expected face to 80 px.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), in frame pixels

_DETECTOR = None
HOG_MIN_FACE_PX = 80  # smallest face dlib's HOG window (80x80) finds
MAX_UPSAMPLE = 2


def auto_upsample(width: int, height: int, min_face: float) -> int:
    """Upsampling steps so a face of ``min_face`` x the frame's shorter side reaches 80 px (at most 2)."""
    smallest = min_face * min(width, height)
    return min(MAX_UPSAMPLE, max(0, math.ceil(math.log2(HOG_MIN_FACE_PX / smallest))))


def detect_largest(frame: np.ndarray, upsample: int = 0) -> Box | None:
    """Largest face in an RGB uint8 frame, or None."""
    global _DETECTOR
    if _DETECTOR is None:
        import dlib

        _DETECTOR = dlib.get_frontal_face_detector()
    rects = _DETECTOR(frame, upsample)
    if len(rects) == 0:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    return (r.left(), r.top(), r.right(), r.bottom())


def square_box(box: Box, scale: float, width: int, height: int) -> Box:
    """Square box around ``box`` enlarged by ``scale``, shifted (and if needed shrunk) into the frame."""
    x0, y0, x1, y1 = box
    side = int(round(max(x1 - x0, y1 - y0) * scale))
    side = max(1, min(side, width, height))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return (left, top, left + side, top + side)


def center_box(width: int, height: int) -> Box:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return (left, top, left + side, top + side)


def crop_resize(frame: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Crop ``box`` and resize to ``size`` x ``size`` (antialiased bilinear)."""
    x0, y0, x1, y1 = box
    img = Image.fromarray(np.ascontiguousarray(frame[y0:y1, x0:x1]))
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))


def fill_missing(boxes: list[Box | None], fallback: str, width: int, height: int) -> tuple[list[Box | None], int]:
    """Replace missing boxes by the chosen fallback; returns (boxes, number of fallbacks).

    ``nearest`` reuses the detected box of the closest frame in the same video (centre crop
    if the video has none), ``center`` takes the centre square, ``drop`` leaves ``None``.
    """
    found = [i for i, b in enumerate(boxes) if b is not None]
    out: list[Box | None] = []
    n = 0
    for i, b in enumerate(boxes):
        if b is not None:
            out.append(b)
            continue
        n += 1
        if fallback == "nearest" and found:
            out.append(boxes[min(found, key=lambda j: (abs(j - i), j))])
        elif fallback == "drop":
            out.append(None)
        else:
            out.append(center_box(width, height))
    return out, n
