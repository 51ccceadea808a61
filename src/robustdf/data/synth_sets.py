"""Unseen test sets for the sample, in the layouts of real ones: Celeb-DF v2 (videos) and DFFD (images).

Their identities are new (drawn from their own seeded streams) and their fakes come from manipulation
families the FF++-shaped training corpus never shows (:mod:`robustdf.data.synth`: ``CelebSynthesis``,
``GANSynthesis``, ``FaceApp``), at another compression, so a detector trained on the sample meets what
cross-dataset evaluation is about: other people, other forgeries, other encoders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from robustdf.params import MakeSampleParams
from robustdf.data.synth import encode_h264, encoder_pool, make_identity, render_frame

CELEBDF_STREAM, DFFD_STREAM = 1, 2  # default_rng([seed, stream]): independent of the FF++-shaped corpus
# DFFD source folder -> (manipulation family or None for reals, file format)
DFFD_SOURCES = {"ffhq": (None, "png"), "celeba": (None, "jpg"),
                "stylegan_ffhq": ("GANSynthesis", "png"), "faceapp": ("FaceApp", "jpg")}
DFFD_OTHER_SPLITS = {"train": 2, "validation": 2}


def _write_video(task: tuple) -> None:
    path, seed, target, source, method, p, crf = task
    rng = np.random.default_rng(seed)
    frames = [render_frame(target, k, p.size, rng, method, source) for k in range(p.frames)]
    encode_h264(frames, path, p.fps, crf, p.keyframe_interval)


def make_celebdf(root: Path, p: MakeSampleParams) -> dict[str, int]:
    """Write ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/`` and ``List_of_testing_videos.txt``.

    Celebrities ``id0, id1, ...`` are paired (each pair swapped both ways, as Celeb-DF swaps celebrities of
    one gender); the last ``celebdf.unlisted`` videos are written but not listed, as in the real set.
    """
    c = p.celebdf
    rng = np.random.default_rng([p.seed, CELEBDF_STREAM])
    celebs = [make_identity(rng, p.size) for _ in range(c.celebrities)]
    jobs = [(f"Celeb-real/id{k}_0000.mp4", celebs[k], None, None, 1) for k in range(c.celebrities)]
    jobs += [(f"YouTube-real/{k:05d}.mp4", make_identity(rng, p.size), None, None, 1) for k in range(c.youtube_reals)]
    for a in range(0, c.celebrities, 2):
        for t, s in ((a, a + 1), (a + 1, a)):
            jobs.append((f"Celeb-synthesis/id{t}_id{s}_0000.mp4", celebs[t], celebs[s], "CelebSynthesis", 0))
    tasks = [(root / rel, [p.seed, CELEBDF_STREAM, i], t, s, m, p, c.crf)
             for i, (rel, t, s, m, _) in enumerate(jobs)]
    with encoder_pool(p.workers) as pool:
        for _ in tqdm(pool.imap_unordered(_write_video, tasks), total=len(tasks), desc="make_sample celebdf",
                      unit="video"):
            pass
    skip = set(rng.choice(len(jobs), min(c.unlisted, len(jobs) - 1), replace=False).tolist())
    listed = sorted(f"{label} {rel}" for i, (rel, _, _, _, label) in enumerate(jobs) if i not in skip)
    (root / "List_of_testing_videos.txt").write_text("".join(f"{line}\n" for line in listed))
    return {"celebdf_videos": len(jobs), "celebdf_listed": len(listed)}


def make_dffd(root: Path, p: MakeSampleParams) -> dict[str, int]:
    """Write ``<source>/{train,validation,test}/<n>.png|jpg`` for every source of :data:`DFFD_SOURCES`."""
    rng = np.random.default_rng([p.seed, DFFD_STREAM])
    sizes = {**DFFD_OTHER_SPLITS, "test": p.dffd.images_per_source}
    n = 0
    for source, (method, fmt) in DFFD_SOURCES.items():
        for split, count in sizes.items():
            folder = root / source / split
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                ident = make_identity(rng, p.size)
                frame = render_frame(ident, int(rng.integers(p.frames)), p.size, rng, method, ident)
                image = Image.fromarray(frame)
                path = folder / f"{k:05d}.{fmt}"
                image.save(path, **({"quality": 90} if fmt == "jpg" else {}))
                n += 1
    return {"dffd_images": n}
