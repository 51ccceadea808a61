"""A synthetic corpus in the exact FaceForensics++ layout, with real H.264 videos.

Each identity is a cartoon face (skin tone, eyes, brows, mouth, hair, textured background)
that moves, scales and talks over time. A fake ``T_S`` keeps the target's video (background,
motion, pose) and inserts the source's identity or expression; every manipulation method
leaves its own kind of artifact, mimicking what the real method is known for:

- ``Deepfakes``: the source face blended in with a soft mask, smoothed, colour mismatched;
- ``Face2Face``: the target's own face with a resampled (blurred, blocky) mouth region driven
  by the source's mouth motion;
- ``FaceSwap``: the source face pasted with a hard edge and a small misalignment;
- ``NeuralTextures``: a high-frequency texture rendered into the mouth and cheeks;
- ``FaceShifter``: a subtle, well blended swap with slight tone shift (the hardest one).
"""

from __future__ import annotations

import json
import os
from multiprocessing import get_context
from multiprocessing.pool import Pool
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

CRF = {"raw": 0, "c23": 23, "c40": 40}

# The libx264 encode path (as bundled with PyAV) reads heap memory that it never initialised: the
# same frames encoded 300 times in one process gave 7 different files (5 of 400 on a busy machine),
# which changed `data/sample`'s hash from run to run. With glibc's MALLOC_PERTURB_ every fresh
# allocation holds this fixed byte, so the output is the same bytes every time (1 of 400, idle or
# busy). glibc reads the variable only at process start, so encoding runs in spawned workers.
MALLOC_PERTURB = "165"


@dataclass(frozen=True)
class Identity:
    skin: np.ndarray  # RGB in [0, 1]
    hair: np.ndarray
    eye: np.ndarray
    bg: np.ndarray  # (H, W, 3) background texture, a little larger than the frame
    face_w: float
    face_h: float
    eye_dx: float
    mouth_w: float
    phase: np.ndarray  # motion phases
    freq: np.ndarray  # motion frequencies
    talk_freq: float


def make_identity(rng: np.random.Generator, size: int) -> Identity:
    pad = size // 4
    low = rng.random((6, 6, 3))
    ys = np.linspace(0, 5, size + pad)
    yi = np.clip(ys.astype(int), 0, 4)
    frac = (ys - yi)[:, None, None]
    rows = low[yi] * (1 - frac) + low[yi + 1] * frac
    cols = rows[:, yi] * (1 - frac.transpose(1, 0, 2)) + rows[:, yi + 1] * frac.transpose(1, 0, 2)
    base = rng.random(3) * 0.6 + 0.2
    bg = np.clip(0.6 * base + 0.4 * cols, 0, 1)
    return Identity(
        skin=np.clip((0.6 + 0.3 * rng.random()) * np.array([1.0, 0.74, 0.6]) + rng.normal(0, 0.02, 3), 0, 1),
        hair=np.array([0.25, 0.18, 0.12]) * (0.5 + rng.random()),
        eye=np.array([0.3, 0.22, 0.15]) * (0.5 + rng.random()),
        bg=bg,
        face_w=0.30 + rng.random() * 0.05,
        face_h=0.38 + rng.random() * 0.05,
        eye_dx=0.11 + rng.random() * 0.03,
        mouth_w=0.09 + rng.random() * 0.04,
        phase=rng.random(4) * 2 * np.pi,
        freq=0.02 + rng.random(4) * 0.05,
        talk_freq=0.15 + rng.random() * 0.2,
    )


@dataclass(frozen=True)
class Pose:
    cx: float
    cy: float
    scale: float
    mouth_open: float


def pose_at(ident: Identity, t: int) -> Pose:
    p, f = ident.phase, ident.freq
    return Pose(
        cx=0.5 + 0.05 * np.sin(2 * np.pi * f[0] * t + p[0]),
        cy=0.53 + 0.04 * np.sin(2 * np.pi * f[1] * t + p[1]),
        scale=1.0 + 0.06 * np.sin(2 * np.pi * f[2] * t + p[2]),
        mouth_open=0.5 + 0.5 * np.sin(2 * np.pi * ident.talk_freq * t + p[3]),
    )


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def render_face(ident: Identity, pose: Pose, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the face layer: (rgb, face mask, mouth mask), each (H, W[, 3]) floats.

    Only a window around the face is computed; outside it the masks are zero.
    """
    s = pose.scale * ident.face_w / 0.22  # features scale with the face
    half = 0.6 * pose.scale * size
    y0, y1 = max(0, int(pose.cy * size - half)), min(size, int(pose.cy * size + half) + 1)
    x0, x1 = max(0, int(pose.cx * size - half)), min(size, int(pose.cx * size + half) + 1)
    yy, xx = np.mgrid[y0:y1, x0:x1] / size
    fw, fh = ident.face_w * pose.scale, ident.face_h * pose.scale
    face_d = _ellipse(yy, xx, pose.cy, pose.cx, fh, fw)
    face = np.clip((1.0 - face_d) * 8, 0, 1)
    shade = 1.0 - 0.25 * np.clip(face_d, 0, 1)
    rgb = ident.skin[None, None, :] * shade[..., None]
    hair = (_ellipse(yy, xx, pose.cy - fh * 0.75, pose.cx, fh * 0.45, fw * 1.05) < 1) & (yy < pose.cy - fh * 0.45)
    rgb = np.where(hair[..., None], ident.hair, rgb)
    for side in (-1, 1):
        ex = pose.cx + side * ident.eye_dx * pose.scale
        ey = pose.cy - 0.06 * s
        eye = _ellipse(yy, xx, ey, ex, 0.022 * s, 0.035 * s) < 1
        rgb = np.where(eye[..., None], np.array([0.95, 0.95, 0.95]), rgb)
        iris = _ellipse(yy, xx, ey, ex, 0.016 * s, 0.016 * s) < 1
        rgb = np.where(iris[..., None], ident.eye, rgb)
        brow = (np.abs(yy - (ey - 0.045 * s)) < 0.008 * s) & (np.abs(xx - ex) < 0.04 * s)
        rgb = np.where(brow[..., None], ident.hair * 0.8, rgb)
    nose = _ellipse(yy, xx, pose.cy + 0.03 * s, pose.cx, 0.04 * s, 0.015 * s) < 1
    rgb = np.where(nose[..., None], ident.skin * 0.8, rgb)
    mh = (0.008 + 0.03 * pose.mouth_open) * s
    mouth_d = _ellipse(yy, xx, pose.cy + 0.13 * s, pose.cx, mh, ident.mouth_w * pose.scale)
    mouth = mouth_d < 1
    rgb = np.where(mouth[..., None], np.array([0.55, 0.12, 0.15]), rgb)
    mouth_region = _ellipse(yy, xx, pose.cy + 0.13 * s, pose.cx, 0.07 * s, ident.mouth_w * pose.scale + 0.04 * s) < 1
    full_rgb, full_face, full_mouth = np.zeros((size, size, 3)), np.zeros((size, size)), np.zeros((size, size))
    full_rgb[y0:y1, x0:x1], full_face[y0:y1, x0:x1], full_mouth[y0:y1, x0:x1] = rgb, face, mouth_region
    return full_rgb, full_face, full_mouth


def _blur(img: np.ndarray, k: int) -> np.ndarray:
    """Box blur of odd width ``k`` along both axes (edge padded)."""
    if k <= 1:
        return img
    pad = k // 2
    out = np.pad(img, [(pad, pad), (pad, pad)] + [(0, 0)] * (img.ndim - 2), mode="edge")
    c = np.cumsum(out, axis=0)
    c = np.concatenate([np.zeros_like(c[:1]), c])
    out = (c[k:] - c[:-k]) / k
    c = np.cumsum(out, axis=1)
    c = np.concatenate([np.zeros_like(c[:, :1]), c], axis=1)
    return (c[:, k:] - c[:, :-k]) / k


def _resample(img: np.ndarray, factor: int) -> np.ndarray:
    """Down- then up-sample by ``factor`` (nearest), the blocky look of a re-rendered region."""
    h, w = img.shape[:2]
    small = img[::factor, ::factor]
    return np.repeat(np.repeat(small, factor, axis=0), factor, axis=1)[:h, :w]


def render_frame(
    target: Identity, t: int, size: int, rng: np.random.Generator, method: str | None = None,
    source: Identity | None = None,
) -> np.ndarray:
    """One uint8 RGB frame of ``target`` at time ``t``; with ``method`` a fake using ``source``."""
    pose = pose_at(target, t)
    pad = target.bg.shape[0] - size
    ox = int(pad / 2 + pad / 2 * np.sin(0.03 * t + target.phase[0]))
    bg = target.bg[ox:ox + size, pad // 2:pad // 2 + size]
    face_rgb, face_m, mouth_m = render_face(target, pose, size)
    frame = bg * (1 - face_m[..., None]) + face_rgb * face_m[..., None]
    noise = rng.normal(0, 0.02, frame.shape)  # camera sensor noise
    if method is not None:
        assert source is not None
        frame, region = _manipulate(frame, target, source, pose, t, size, method, face_m, mouth_m)
        # a re-rendered region lacks the camera's noise: the common trace of every method
        noise *= 1 - 0.85 * region[..., None]
    frame = frame + noise
    return (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)


def _manipulate(
    frame: np.ndarray, target: Identity, source: Identity, pose: Pose, t: int, size: int, method: str,
    face_m: np.ndarray, mouth_m: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``method``; returns (frame, mask of the manipulated region in [0, 1])."""
    # the source identity rendered in the target's pose, with the target's face geometry
    src_ident = Identity(
        skin=source.skin, hair=target.hair, eye=source.eye, bg=target.bg, face_w=target.face_w,
        face_h=target.face_h, eye_dx=source.eye_dx, mouth_w=source.mouth_w, phase=target.phase,
        freq=target.freq, talk_freq=target.talk_freq,
    )
    inner = np.clip((face_m - 0.2) / 0.8, 0, 1)
    if method == "Deepfakes":
        swap, _, _ = render_face(src_ident, pose, size)
        swap = _blur(swap, 5) * np.array([1.1, 0.95, 0.88])
        mask = _blur(inner, 5)[..., None]
        return frame * (1 - mask) + swap * mask, mask[..., 0]
    if method == "Face2Face":
        src_pose = pose_at(source, t)
        driven = Pose(pose.cx, pose.cy, pose.scale, src_pose.mouth_open)
        reenacted, _, _ = render_face(target, driven, size)
        region = _resample(_blur(reenacted, 5), 6) * np.array([1.12, 0.92, 0.92])
        mask = _blur(mouth_m, 3)[..., None]
        return frame * (1 - mask) + region * mask, mask[..., 0]
    if method == "FaceSwap":
        shifted = Pose(pose.cx + 0.015, pose.cy + 0.01, pose.scale * 0.97, pose.mouth_open)
        swap, _, _ = render_face(src_ident, shifted, size)
        mask = (inner > 0.3)[..., None]
        return np.where(mask, swap * np.array([0.85, 1.0, 1.15]), frame), mask[..., 0].astype(float)
    if method == "NeuralTextures":
        yy, xx = np.mgrid[0:size, 0:size]
        texture = 0.1 * np.sign(np.sin(yy * 0.55 + t) * np.sin(xx * 0.45 - t))
        region = np.clip(mouth_m + 0.5 * inner * (yy > pose.cy * size), 0, 1)
        return frame + (texture * region)[..., None], region
    if method == "FaceShifter":
        swap, _, _ = render_face(src_ident, pose, size)
        mask = _blur(inner, 7)[..., None]
        return frame * (1 - mask) + (swap * np.array([1.02, 1.0, 0.98])) * mask, mask[..., 0]
    raise ValueError(f"unknown manipulation method {method!r}")


def encode_h264(frames: list[np.ndarray], path: Path, fps: int, crf: int, keyframe_interval: int) -> None:
    """Encode uint8 RGB frames into an H.264 mp4 (single-threaded x264, so byte-reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    h, w = frames[0].shape[:2]
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {
            "crf": str(crf), "g": str(keyframe_interval), "keyint_min": str(keyframe_interval),
            "sc_threshold": "0", "threads": "1", "preset": "veryfast",
        }
        for arr in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
        container.mux(stream.encode(None))
    tmp.replace(path)


def make_pairs(n_identities: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Pair identities at random, as FF++ does: every id is target in one pair and source in its mirror."""
    ids = [f"{i:03d}" for i in rng.permutation(n_identities)]
    return [(ids[i], ids[i + 1]) for i in range(0, len(ids) - 1, 2)]


def split_pairs(
    pairs: list[tuple[str, str]], fractions: dict[str, float], rng: np.random.Generator
) -> dict[str, list[list[str]]]:
    order = rng.permutation(len(pairs))
    n_test = max(1, round(fractions["test"] * len(pairs)))
    n_val = max(1, round(fractions["val"] * len(pairs)))
    chosen = {
        "test": order[:n_test], "val": order[n_test:n_test + n_val], "train": order[n_test + n_val:],
    }
    return {name: [list(pairs[i]) for i in sorted(idx)] for name, idx in chosen.items()}


def _write_video(task: tuple) -> None:
    path, seed, i, target, source, method, p = task
    rng = np.random.default_rng([seed, i])
    frames = [render_frame(target, k, p.size, rng, method, source) for k in range(p.frames)]
    encode_h264(frames, path, p.fps, CRF[p.compression], p.keyframe_interval)


def encoder_pool(workers: int) -> Pool:
    """Spawned worker processes whose heap starts in a fixed state (see MALLOC_PERTURB)."""
    previous = os.environ.get("MALLOC_PERTURB_")
    os.environ["MALLOC_PERTURB_"] = MALLOC_PERTURB
    try:
        return get_context("spawn").Pool(workers)
    finally:
        if previous is None:
            del os.environ["MALLOC_PERTURB_"]
        else:
            os.environ["MALLOC_PERTURB_"] = previous


def make_sample(root: Path, p: "MakeSampleParams") -> dict[str, int]:  # noqa: F821
    """Write the corpus under ``root``; returns counts of videos written."""
    rng = np.random.default_rng(p.seed)
    idents = {f"{i:03d}": make_identity(rng, p.size) for i in range(p.n_identities)}
    pairs = make_pairs(p.n_identities, rng)
    splits = split_pairs(pairs, p.split_fractions, rng)
    jobs: list[tuple[Path, str, str | None, str | None]] = []
    for vid in sorted(idents):
        jobs.append((root / "original_sequences/youtube" / p.compression / "videos" / f"{vid}.mp4", vid, None, None))
    for method in p.methods:
        for a, b in pairs:
            for t, s in ((a, b), (b, a)):
                out = root / "manipulated_sequences" / method / p.compression / "videos" / f"{t}_{s}.mp4"
                jobs.append((out, t, s, method))
    tasks = [(path, p.seed, i, idents[t], idents[s] if s else None, method, p)
             for i, (path, t, s, method) in enumerate(jobs)]
    with encoder_pool(p.workers) as pool:
        for _ in tqdm(pool.imap_unordered(_write_video, tasks), total=len(tasks), desc="make_sample", unit="video"):
            pass
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for name, pair_list in splits.items():
        (root / "splits" / f"{name}.json").write_text(json.dumps(pair_list) + "\n")
    return {"real": len(idents), "fake": len(jobs) - len(idents), "pairs": len(pairs)}
