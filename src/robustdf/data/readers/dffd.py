"""DFFD (Diverse Fake Face Dataset): images of one split per source.

::

    <root>/<source>/{train,validation,test}/*.png|jpg

Real sources are ``ffhq``, ``celeba*`` and ``youtube``; fake ones GAN (``stylegan_*``, ``pggan_*``),
``faceapp``, ``stargan`` and FF++'s ``Deepfakes``, ``FaceSwap``, ``Face2Face``. Any other folder is
unrecognised. Records are images (``kind="image"``); DFFD has no identity ids, so each image is
its own group.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from robustdf.data.readers.common import Found, key_of, kind_of, record, require, scan
from robustdf.data.readers.registry import register
from robustdf.data.readers.video import Video

SPLITS = ("train", "validation", "test")
_REAL = re.compile(r"^(ffhq|youtube|celeba\w*)$")
_FAKE = re.compile(r"^(stylegan_\w+|pggan_\w+|faceapp|stargan|Deepfakes|FaceSwap|Face2Face)$")


def _label(source: Path) -> int | None:
    """1 for a fake source folder, 0 for a real one, None for anything else."""
    if not source.is_dir():
        return None
    return 0 if _REAL.match(source.name) else 1 if _FAKE.match(source.name) else None


def _image(root: Path, source: str, label: int, path: Path) -> Video | None:
    """The record of an image file of ``source``; None for any other file."""
    if kind_of(path) != "image":
        return None
    key = key_of("dffd", root, path)
    return record(path, key, source, label, key, kind="image")


@register("dffd")
def discover(root: str | Path, split: str) -> Found:
    """The images of ``split`` of every DFFD source under ``root``: (images, unrecognised paths)."""
    if split not in SPLITS:
        raise ValueError(f"DFFD split {split!r} is not one of {list(SPLITS)}")
    root = require(Path(root), "DFFD root")
    images: list[Video] = []
    unknown: list[str] = []
    for source in sorted(root.iterdir()):
        label = _label(source)
        if label is None:
            unknown.append(str(source))
            continue
        found, stray = scan(require(source / split, f"DFFD {split} folder"), partial(_image, root, source.name, label))
        images += found
        unknown += stray
    return images, unknown
