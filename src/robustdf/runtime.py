"""What every stage shares: logging to stderr and a JSON run log, atomic outputs, seeding, devices."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("robustdf")


def setup_logging() -> None:
    """Log INFO and above to stderr with timestamps (idempotent)."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces ``final`` only if the block succeeds.

    An interrupted or failed stage therefore leaves either the previous complete output or
    nothing, never a half-written folder that looks complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by a killed earlier run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


@contextlib.contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; it replaces ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _finite(data: Any) -> Any:
    """Replace NaN/inf by None so the file stays valid JSON for DVC."""
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    if isinstance(data, float) and not np.isfinite(data):
        return None
    return data


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically; NaN becomes null."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(_finite(data), indent=2) + "\n")


class StageRun:
    """Times a stage and records what it read and wrote.

    The log goes next to the stage's main output as ``<output>.run_log.json``: outside the
    DVC-hashed output, so timings never change an output hash.
    """

    def __init__(self, name: str) -> None:
        setup_logging()
        self.name = name
        self.start = time.perf_counter()
        self.record: dict[str, Any] = {"stage": name, "read": [], "wrote": [], "counts": {}, "timings_s": {}}
        log.info("[%s] start", name)

    def read(self, what: str | Path, detail: str = "") -> None:
        self.record["read"].append(str(what))
        log.info("[%s] read %s %s", self.name, what, detail)

    def wrote(self, what: str | Path, detail: str = "") -> None:
        self.record["wrote"].append(str(what))
        log.info("[%s] wrote %s %s", self.name, what, detail)

    def count(self, **counts: Any) -> None:
        self.record["counts"].update(counts)
        log.info("[%s] %s", self.name, ", ".join(f"{k}={v}" for k, v in counts.items()))

    @contextlib.contextmanager
    def timed(self, step: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.record["timings_s"][step] = round(time.perf_counter() - t0, 3)
        log.info("[%s] %s took %.1fs", self.name, step, time.perf_counter() - t0)

    def save(self, output: str | Path) -> None:
        """Write the run log beside ``output`` (a file or folder)."""
        self.record["total_s"] = round(time.perf_counter() - self.start, 3)
        output = Path(output)
        write_json(output.parent / f"{output.name}.run_log.json", self.record)
        log.info("[%s] done in %.1fs", self.name, self.record["total_s"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def set_cpu_threads(n: int) -> None:
    """Fix torch's CPU thread count (float sums depend on how work is split across threads)."""
    import torch

    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)  # for any worker process a stage starts


def pick_device(choice: str = "auto") -> Any:
    """Return the torch device: CUDA when present (or asked for), else CPU."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested in params.yaml but no CUDA device is available")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the parent process (``dvc``, or the shell it started) dies.

    Without it, a ``kill -9`` of ``dvc repro`` leaves the stage running as an orphan that keeps
    writing while a rerun rebuilds the same output. A no-op where ``prctl`` is unavailable.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def main_guard(fn: Any) -> None:
    """Run a stage's main; print known user errors as one clear line and exit 1."""
    from robustdf.params import ParamsError

    setup_logging()
    # SIGTERM (e.g. a cancelled job, or the death of dvc) unwinds like Ctrl-C, so temporary outputs are removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    die_with_parent()
    try:
        fn()
    except (ParamsError, DataError) as err:
        log.error("%s", err)
        sys.exit(1)
    except OSError as err:  # disk full, read-only or missing folder: name the file, no traceback
        log.error("cannot read or write %s: %s", err.filename or "?", err.strerror or err)
        sys.exit(1)


class DataError(RuntimeError):
    """Input data is missing, corrupt or unusable; the message names the file."""
