"""`dvc plots show` as a user sees it: its HTML opened in headless Chromium with no network draws every plot."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import dvc

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  # every network request goes to a closed port: only what is on disk can render
                  "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def ink(img: np.ndarray) -> int:
    """Pixels that are not (near) white: lines, text, bands, bars."""
    return int((img.min(axis=2) < 200).sum())


def test_every_plot_is_drawn_offline(pipeline_repo: Path, tmp_path: Path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the test needs Chromium (Debian package 'chromium'; `make test` installs it as root)"
    html = tmp_path / "html"
    dvc("plots", "show", "-o", str(html), cwd=pipeline_repo)
    page = (html / "index.html").read_text()
    assert not re.search(r"https?://", page), "the page must not load anything from the network"
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 8, sources
    images = [np.asarray(Image.open(html / s).convert("RGB")) for s in sources]
    width = max(i.shape[1] for i in images) + 200
    height = sum(i.shape[0] for i in images) + 150 * len(images)
    shot = tmp_path / "shot.png"
    res = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                          f"--window-size={width},{height}", f"--screenshot={shot}", (html / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert shot.is_file(), res.stderr[-2000:]
    drawn = ink(np.asarray(Image.open(shot).convert("RGB")))
    expected = sum(ink(i) for i in images)
    # every image at its natural size: a missing one (broken link, blocked download) loses its share
    assert drawn >= 0.95 * expected, (drawn, expected, [ink(i) for i in images])
