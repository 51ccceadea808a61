"""Shared fixtures: tiny params, a real FF++-shaped sample, and a real DVC pipeline in a temp repo."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
REAL_CLIP = ROOT / "tests" / "data" / "short_hamilton_clip.mp4"  # MIT, see tests/data/LICENSE-face_recognition.txt

# seconds per stage on 2 CPU cores
TINY = {
    "make_sample": {"n_identities": 8, "frames": 8, "size": 64, "keyframe_interval": 4, "workers": 1,
                    "split_fractions": {"train": 0.5, "val": 0.25, "test": 0.25},
                    "celebdf": {"celebrities": 4, "youtube_reals": 2, "unlisted": 1}, "dffd": {"images_per_source": 3}},
    "extract_frames": {"frames_per_video": 2, "image_size": 32, "workers": 1},
    "train": {"seeds": [0], "recipe": {"epochs": 1, "batch_size": 8}},
    "attack": {"eps": ["2/255", "4/255"], "batch_size": 32, "pgd": {"steps": 2}, "apgd": {"steps": 2},
               "square": {"queries": 5}},
    "evaluate": {"n_bootstrap": 20, "min_val_auc": 0.0},  # one epoch learns little: compare anyway
}


def deep_update(base: dict, upd: dict) -> dict:
    for k, v in upd.items():
        base[k] = deep_update(dict(base.get(k, {})), v) if isinstance(v, dict) else v
    return base


def tiny_params(**overrides: dict) -> dict:
    """params.yaml with :data:`TINY` and ``overrides``; of the test-only sets only celebdf (a test adds dffd)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["extract_frames"]["test_sets"] = {"celebdf": params["extract_frames"]["test_sets"]["celebdf"]}
    return deep_update(deep_update(params, TINY), overrides)


def tool_env() -> dict[str, str]:
    """Environment for dvc/python subprocesses: this interpreter's bin first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "robustdf tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@robustdf.local"
    return env


def sh(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env={**tool_env(), **(env or {})}, capture_output=True, text=True,
                         timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}")
    return res


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return sh([sys.executable, "-m", "dvc", *args], cwd, check)


@contextlib.contextmanager
def cpu_load(n: int = 4) -> Iterator[None]:
    """Keep ``n`` CPU-burning processes running inside the block (a busy machine, on purpose)."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for b in burners:
            b.kill()
            b.wait()


def copy_project(dest: Path) -> Path:
    """Copy the project's tracked (and untracked, not ignored) files into a fresh git repo."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def init_git(repo: Path) -> None:
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "test snapshot"], repo)


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp copy of the project with tiny params, after one real `dvc repro` (committed)."""
    repo = copy_project(tmp_path_factory.mktemp("pipeline") / "repo")
    write_params(repo, tiny_params())
    init_git(repo)
    dvc("repro", cwd=repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "tiny run"], repo)
    return repo


@pytest.fixture
def pipeline_copy(pipeline_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the reproduced pipeline (workspace, git history and DVC cache)."""
    dest = tmp_path / "repo"
    shutil.copytree(pipeline_repo, dest, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def tiny_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic FF++ tree written by the real generator."""
    from robustdf.params import validate_group
    from robustdf.data.synth import make_sample

    root = tmp_path_factory.mktemp("sample") / "ffpp"
    make_sample(root, validate_group("make_sample", tiny_params()["make_sample"]))
    return root


@pytest.fixture(scope="session")
def trained_small_model():
    """A small CNN trained to separate bright-centre 'fakes' from 'reals'."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 3, 12, 12, generator=g) * 0.6
    y = torch.randint(0, 2, (256,), generator=g)
    x[y == 1, :, 4:8, 4:8] += 0.15
    torch.manual_seed(0)  # before the layers: their initialisation must not depend on which tests ran first
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x[:128], y[:128]
