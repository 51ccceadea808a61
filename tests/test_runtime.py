"""Atomic outputs, the run log, and how a stage reports errors (disk full, unwritable output)."""

import errno
import json
import subprocess
import sys

import pytest

from conftest import ROOT, tiny_params, tool_env, write_params
from robustdf.runtime import StageRun, atomic_dir, atomic_file, write_json


def test_atomic_dir_keeps_previous_output_when_the_write_fails(tmp_path):
    out = tmp_path / "frames"
    with atomic_dir(out) as tmp:
        (tmp / "a.npy").write_text("complete")
    with pytest.raises(OSError):
        with atomic_dir(out) as tmp:
            (tmp / "a.npy").write_text("half")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "b.npy"))
    assert (out / "a.npy").read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_atomic_file_and_json_never_leave_partial_files(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"auc": float("nan"), "acc": 0.5})
    assert json.loads(target.read_text()) == {"auc": None, "acc": 0.5}  # valid JSON for DVC
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("{broken")
            raise RuntimeError("killed")
    assert json.loads(target.read_text())["acc"] == 0.5
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_run_log_beside_the_output(tmp_path):
    run = StageRun("demo")
    run.read("in.csv")
    run.count(videos=3)
    with run.timed("work"):
        pass
    run.save(tmp_path / "out")
    log = json.loads((tmp_path / "out.run_log.json").read_text())
    assert log["stage"] == "demo" and log["counts"] == {"videos": 3} and "work" in log["timings_s"]


def test_unwritable_output_is_one_clear_error(tmp_path, tiny_sample):
    params = tiny_params()
    params["extract_frames"]["ffpp_root"] = str(tiny_sample)
    write_params(tmp_path, params)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the output folder should go")
    env = {**tool_env(), "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, str(ROOT / "stages/extract_frames.py"), "--out", str(blocker / "frames")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 1
    assert "cannot read or write" in res.stderr and "blocked" in res.stderr
    assert "Traceback" not in res.stderr
    assert blocker.read_text().startswith("a file")


def test_missing_dataset_root_stops_at_validation(tmp_path):
    params = tiny_params()
    params["extract_frames"]["ffpp_root"] = str(tmp_path / "no_ffpp_here")
    write_params(tmp_path, params)
    env = {**tool_env(), "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run([sys.executable, str(ROOT / "stages/extract_frames.py"), "--out", str(tmp_path / "f")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 1
    assert "extract_frames.ffpp_root" in res.stderr and "no_ffpp_here" in res.stderr and "does not exist" in res.stderr
    assert not (tmp_path / "f").exists()
