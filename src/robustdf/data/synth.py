"""A synthetic corpus in the exact FaceForensics++ layout, with real H.264 videos.

Each identity is a drawn, shaded face (skin tone, face shape, eyes, brows, nose, mouth, hair, ears,
neck, textured background) that moves, scales and talks over time. It is lit like an ellipsoid, with
shadows in the eye sockets, beside and under the nose and under the lower lip, so dlib's HOG frontal
detector finds it as it finds a real face (in every sampled frame of the default sample), and the
default run crops faces as a run on FF++ does. A fake ``T_S`` keeps the target's video (background,
motion, pose) and inserts the source's identity or expression; every manipulation method leaves its
own kind of artifact inside the face, mimicking what the real method is known for:

- ``Deepfakes``: the source face blended in with a soft mask, smoothed, colour mismatched;
- ``Face2Face``: the target's own face with a resampled (blurred, blocky) mouth region driven
  by the source's mouth motion;
- ``FaceSwap``: the source face pasted with a hard edge and a small misalignment;
- ``NeuralTextures``: a high-frequency texture rendered into the mouth and cheeks;
- ``FaceShifter``: a subtle, well blended swap with slight tone shift (the hardest one).

Three more families exist for the unseen test sets (:mod:`robustdf.data.synth_sets`), never for training:

- ``CelebSynthesis`` (Celeb-DF v2's improved synthesis): the source face colour-matched to the target's
  skin, blended with a wide soft mask that flickers from frame to frame, half of the camera noise kept;
- ``GANSynthesis`` (DFFD's StyleGAN images): the whole picture generated, so no camera noise anywhere,
  with the faint checkerboard of transposed-convolution upsampling;
- ``FaceApp`` (DFFD's attribute edits): the skin smoothed and brightened, the camera noise of the face gone.
"""

from __future__ import annotations

import json
import os
from multiprocessing import get_context
from multiprocessing.pool import Pool
from dataclasses import dataclass, replace
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
    eye: np.ndarray  # iris
    bg: np.ndarray  # (H, W, 3) background texture, a little larger than the frame
    face_w: float  # face half-width, share of the frame
    face_h: float  # face half-height (hairline to chin), share of the frame
    eye_dx: float  # eye centre from the midline, in face half-widths (like every feature size below)
    eye_w: float  # eye half-width
    nose_w: float  # half-width of the nose
    mouth_w: float  # mouth half-width
    hairline: float  # in face half-heights from the face centre (negative: above)
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
        skin=np.clip((0.55 + 0.4 * rng.random()) * np.array([1.0, 0.74, 0.6]) + rng.normal(0, 0.02, 3), 0, 1),
        hair=np.array([0.25, 0.18, 0.12]) * (0.3 + 1.2 * rng.random()),
        eye=np.array([0.3, 0.22, 0.15]) * (0.4 + 1.2 * rng.random()),
        bg=bg,
        face_w=0.24 + rng.random() * 0.04,
        face_h=0.31 + rng.random() * 0.04,
        eye_dx=0.38 + rng.random() * 0.08,
        eye_w=0.15 + rng.random() * 0.04,
        nose_w=0.09 + rng.random() * 0.04,
        mouth_w=0.28 + rng.random() * 0.1,
        hairline=-0.85 + rng.random() * 0.2,
        phase=rng.random(4) * 2 * np.pi,
        freq=0.02 + rng.random(4) * 0.05,
        talk_freq=0.15 + rng.random() * 0.2,
    )


def make_identities(rng: np.random.Generator, n: int, size: int) -> dict[str, Identity]:
    """``n`` identities named like FF++'s videos (``000``, ``001``, ...).

    :func:`make_sample` draws them first from ``default_rng(seed)``, so they can be rebuilt from the seed.
    """
    return {f"{i:03d}": make_identity(rng, size) for i in range(n)}


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
        cy=0.5 + 0.04 * np.sin(2 * np.pi * f[1] * t + p[1]),
        scale=1.0 + 0.06 * np.sin(2 * np.pi * f[2] * t + p[2]),
        mouth_open=0.5 + 0.5 * np.sin(2 * np.pi * ident.talk_freq * t + p[3]),
    )


def _ellipse(v: np.ndarray, u: np.ndarray, cv: float, cu: float, rv: float, ru: float) -> np.ndarray:
    return ((v - cv) / rv) ** 2 + ((u - cu) / ru) ** 2


def _inside(d: np.ndarray, soft: float) -> np.ndarray:
    """Coverage of the shape ``d < 1`` (an :func:`_ellipse` distance) with a soft edge."""
    return np.clip((1.0 - d) / soft, 0, 1)


def _gauss(v: np.ndarray, u: np.ndarray, cv: float, cu: float, sv: float, su: float) -> np.ndarray:
    return np.exp(-_ellipse(v, u, cv, cu, sv, su))


@dataclass(frozen=True)
class FaceLayer:
    rgb: np.ndarray  # (H, W, 3) the head: face, hair, ears, neck
    alpha: np.ndarray  # (H, W) coverage of the head over the background
    face: np.ndarray  # (H, W) the face (skin ellipse, hairline to chin)
    mouth: np.ndarray  # (H, W) the region around the mouth


def _shading(ident: Identity, u: np.ndarray, v: np.ndarray, face_d: np.ndarray) -> np.ndarray:
    """Light from the front and above on an ellipsoid, with the shadows that make a face a face:
    eye sockets, the sides of the nose, under the nose and under the lower lip."""
    nz = np.sqrt(np.clip(1 - face_d, 0, 1))
    shade = 0.45 + 0.55 * np.clip(0.94 * nz - 0.35 * np.clip(v, -1, 1), 0, 1)
    for side in (-1, 1):
        shade *= 1 - 0.35 * _gauss(v, u, -0.13, side * ident.eye_dx, 0.13, 0.2)
        shade *= 1 - 0.25 * _gauss(v, u, 0.08, side * ident.nose_w, 0.2, 0.04)
    shade *= 1 - 0.35 * _gauss(v, u, 0.36, 0, 0.035, 0.12)
    shade *= 1 - 0.25 * _gauss(v, u, 0.74, 0, 0.05, 0.25)
    return shade


def _paint(rgb: np.ndarray, cover: np.ndarray, colour: np.ndarray) -> None:
    """Lay ``colour`` over ``rgb`` in place, with coverage ``cover`` in [0, 1] (only where it is > 0)."""
    m = cover > 0
    c = cover[m][:, None]
    rgb[m] = rgb[m] * (1 - c) + c * colour


def _eyes_and_brows(ident: Identity, rgb: np.ndarray, u: np.ndarray, v: np.ndarray, aspect: float) -> None:
    """Almond eyes (lid line, white, iris, pupil) and arched brows; ``aspect`` = face half-height / half-width."""
    ey, ew, eh = -0.13, ident.eye_w, 0.065
    for side in (-1, 1):
        du = (u - side * ident.eye_dx) / ew
        _paint(rgb, np.abs(v - ey) < (eh + 0.025) * (1 - du ** 2), 0.25 * ident.hair)
        white = np.abs(v - ey) < eh * (1 - du ** 2)
        _paint(rgb, white, np.array([0.88, 0.86, 0.82]))
        r = np.hypot(du * ew, (v - ey) * aspect)  # in face half-widths, round on screen
        _paint(rgb, white & (r < 0.55 * ew), ident.eye)
        _paint(rgb, white & (r < 0.25 * ew), np.array([0.05, 0.04, 0.04]))
        arch = -0.33 - 0.05 * (1 - np.clip(du / 1.3, -1, 1) ** 2)
        _paint(rgb, (np.abs(v - arch) < 0.035) & (np.abs(du) < 1.3), 0.7 * ident.hair)


def _nose_and_mouth(ident: Identity, rgb: np.ndarray, u: np.ndarray, v: np.ndarray, mouth_open: float) -> None:
    """Nostrils, lips and (with the mouth open) the dark inside of the mouth."""
    for side in (-1, 1):
        _paint(rgb, _inside(_ellipse(v, u, 0.3, side * 0.7 * ident.nose_w, 0.025, 0.045), 0.5), 0.4 * ident.skin)
    mv, mw = 0.56, ident.mouth_w
    _paint(rgb, _inside(_ellipse(v, u, mv, 0, 0.07 + 0.05 * mouth_open, mw), 0.3),
           ident.skin * np.array([0.85, 0.5, 0.5]))
    _paint(rgb, _inside(_ellipse(v, u, mv, 0, 0.012 + 0.06 * mouth_open, 0.85 * mw), 0.3), np.array([0.22, 0.06, 0.06]))


def _embed(window: np.ndarray, y0: int, x0: int, size: int) -> np.ndarray:
    """``window`` placed at (``y0``, ``x0``) in a zero ``size`` x ``size`` frame."""
    full = np.zeros((size, size) + window.shape[2:])
    full[y0:y0 + window.shape[0], x0:x0 + window.shape[1]] = window
    return full


def render_face(ident: Identity, pose: Pose, size: int) -> FaceLayer:
    """Render the head of ``ident`` in ``pose`` over a ``size`` x ``size`` frame.

    Only a window around the head (and the neck below it) is computed; outside it the masks are zero.
    """
    fw, fh = ident.face_w * pose.scale * size, ident.face_h * pose.scale * size
    y0 = max(0, int(pose.cy * size - 1.25 * fh))
    x0, x1 = max(0, int(pose.cx * size - 1.2 * fw)), min(size, int(pose.cx * size + 1.2 * fw) + 2)
    yy, xx = np.mgrid[y0:size, x0:x1].astype(float)
    u, v = (xx - pose.cx * size) / fw, (yy - pose.cy * size) / fh  # face coordinates: the face is |(u, v)| < 1
    jaw_u = u / (1 - 0.15 * np.clip(v, 0, 1))  # narrower towards the chin
    face_d = jaw_u ** 2 + v ** 2
    face = _inside(face_d, 2.5 / fw)
    ears = sum(_inside(_ellipse(v, u, 0.0, side * 0.98, 0.22, 0.13), 0.3) for side in (-1, 1))
    neck = np.clip((0.5 - np.abs(u)) * fw / 1.5, 0, 1) * (v > 0.5)
    head = _ellipse(v, u, -0.15, 0, 1.05, 1.1) < 1
    hair = head & ((v < ident.hairline + 0.35 * u ** 2) | ((face_d > 1) & (v < 0.05)))
    rgb = ident.skin * _shading(ident, u, v, face_d)[..., None]
    _paint(rgb, (1 - face) * np.maximum(ears, neck), 0.7 * ident.skin)
    _eyes_and_brows(ident, rgb, u, v, fh / fw)
    _nose_and_mouth(ident, rgb, u, v, pose.mouth_open)
    _paint(rgb, hair, ident.hair)
    alpha = np.clip(face + ears + neck + hair, 0, 1)
    mouth = _ellipse(v, u, 0.56, 0, 0.22, ident.mouth_w + 0.15) < 1
    layers = (rgb, alpha, face * ~hair, mouth)
    return FaceLayer(*(_embed(a * 1.0, y0, x0, size) for a in layers))


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
    head = render_face(target, pose, size)
    frame = bg * (1 - head.alpha[..., None]) + head.rgb * head.alpha[..., None]
    noise = rng.normal(0, 0.02, frame.shape)  # camera sensor noise
    if method is not None:
        assert source is not None
        frame, region = _manipulate(frame, target, source, pose, t, size, method, head)
        # a re-rendered region lacks the camera's noise: the common trace of every method
        noise *= 1 - 0.85 * region[..., None]
    frame = frame + noise
    return (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)


def _manipulate(
    frame: np.ndarray, target: Identity, source: Identity, pose: Pose, t: int, size: int, method: str,
    head: FaceLayer,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``method``; returns (frame, mask of the manipulated region in [0, 1])."""
    # the source's inner face (skin, eyes, nose, mouth) in the target's pose, face outline and hair
    src_ident = replace(target, skin=source.skin, eye=source.eye, eye_dx=source.eye_dx, eye_w=source.eye_w,
                        nose_w=source.nose_w, mouth_w=source.mouth_w)
    inner = np.clip((head.face - 0.2) / 0.8, 0, 1)
    if method == "Deepfakes":
        swap = _blur(render_face(src_ident, pose, size).rgb, 5) * np.array([1.1, 0.95, 0.88])
        mask = _blur(inner, 5)[..., None]
        return frame * (1 - mask) + swap * mask, mask[..., 0]
    if method == "Face2Face":
        src_pose = pose_at(source, t)
        driven = Pose(pose.cx, pose.cy, pose.scale, src_pose.mouth_open)
        reenacted = render_face(target, driven, size).rgb
        region = _resample(_blur(reenacted, 5), 6) * np.array([1.12, 0.92, 0.92])
        mask = _blur(head.mouth, 3)[..., None]
        return frame * (1 - mask) + region * mask, mask[..., 0]
    if method == "FaceSwap":
        shifted = Pose(pose.cx + 0.015, pose.cy + 0.01, pose.scale * 0.97, pose.mouth_open)
        swap = render_face(src_ident, shifted, size).rgb
        mask = (inner > 0.3)[..., None]
        return np.where(mask, swap * np.array([0.85, 1.0, 1.15]), frame), mask[..., 0].astype(float)
    if method == "NeuralTextures":
        yy, xx = np.mgrid[0:size, 0:size]
        texture = 0.1 * np.sign(np.sin(yy * 0.55 + t) * np.sin(xx * 0.45 - t))
        region = np.clip(head.mouth + 0.5 * inner * (yy > pose.cy * size), 0, 1)
        return frame + (texture * region)[..., None], region
    if method == "FaceShifter":
        swap = render_face(src_ident, pose, size).rgb
        mask = _blur(inner, 7)[..., None]
        return frame * (1 - mask) + (swap * np.array([1.02, 1.0, 0.98])) * mask, mask[..., 0]
    if method == "CelebSynthesis":
        swap = render_face(replace(src_ident, skin=target.skin), pose, size).rgb
        mask = _blur(inner, 9)[..., None] * (0.85 + 0.1 * np.sin(1.7 * t + source.phase[0]))
        return frame * (1 - mask) + swap * mask, 0.6 * mask[..., 0]
    if method == "GANSynthesis":
        yy, xx = np.mgrid[0:size, 0:size]
        checker = 0.025 * (((yy // 2) + (xx // 2)) % 2 - 0.5)
        return frame + checker[..., None], np.ones((size, size))
    if method == "FaceApp":
        mask = _blur(inner, 5)[..., None]
        return frame * (1 - mask) + np.clip(_blur(frame, 3) * 1.06, 0, 1) * mask, mask[..., 0]
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
    idents = make_identities(rng, p.n_identities, p.size)
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
