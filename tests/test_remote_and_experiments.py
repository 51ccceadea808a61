"""DVC experiments, queued sweeps, and `dvc push/pull` against a real S3 server (moto) on loopback."""

import hashlib
import json
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import dvc, sh
from test_pipeline import ATTACKS, ran_stages

CACHED_OUTS = ["data/sample", "data/frames", "data/split", "data/balanced", "data/models/baseline-0",
               "data/models/gr-0",
               *[f"data/attacks/{m}-0/{a}" for m in ("baseline", "gr") for a in ATTACKS],
               *[f"data/square/{m}-0" for m in ("baseline", "gr")]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server on 127.0.0.1 with an empty bucket; stopped after the test."""
    import boto3
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(k, v)  # credentials from the environment, as for real users
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="robustdf-test")  # DVC does not create it
    yield endpoint
    server.stop()


def snapshot(repo: Path) -> dict[str, str]:
    """Content hash of every file of every DVC-cached output."""
    files = [f for out in CACHED_OUTS for f in ([repo / out] if (repo / out).is_file() else (repo / out).rglob("*"))]
    return {str(f.relative_to(repo)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(files) if f.is_file()}


def test_s3_push_pull_round_trip_is_byte_identical(pipeline_copy: Path, s3_server: str):
    dvc("remote", "modify", "--local", "storage", "url", "s3://robustdf-test/dvc", cwd=pipeline_copy)
    dvc("remote", "modify", "--local", "storage", "endpointurl", s3_server, cwd=pipeline_copy)
    before = snapshot(pipeline_copy)
    assert len(before) > 50
    dvc("push", cwd=pipeline_copy)
    shutil.rmtree(pipeline_copy / ".dvc" / "cache")
    for out in CACHED_OUTS:
        path = pipeline_copy / out
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    dvc("pull", cwd=pipeline_copy)
    assert snapshot(pipeline_copy) == before
    assert json.loads(dvc("status", "--json", cwd=pipeline_copy).stdout) == {}
    assert "testing" not in (pipeline_copy / ".dvc" / "config").read_text()  # no credentials in the repo


def test_unreachable_remote_is_a_clear_error_and_deletes_nothing(pipeline_copy: Path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    dvc("remote", "modify", "--local", "storage", "url", "s3://robustdf-test/dvc", cwd=pipeline_copy)
    dvc("remote", "modify", "--local", "storage", "endpointurl", f"http://127.0.0.1:{free_port()}", cwd=pipeline_copy)
    before = snapshot(pipeline_copy)
    cache_files = sum(1 for p in (pipeline_copy / ".dvc/cache").rglob("*") if p.is_file())
    t0 = time.time()
    for cmd in ("push", "pull"):
        res = dvc(cmd, cwd=pipeline_copy, check=False)
        assert res.returncode != 0
        assert "127.0.0.1" in res.stderr or "connect" in res.stderr.lower(), res.stderr[-2000:]
    assert time.time() - t0 < 240
    assert snapshot(pipeline_copy) == before
    assert sum(1 for p in (pipeline_copy / ".dvc/cache").rglob("*") if p.is_file()) == cache_files


def test_readme_experiment_commands_do_what_the_readme_says(pipeline_copy: Path, tmp_path: Path):
    """`dvc exp run -S`, `exp show --only-changed`, `metrics diff` and `plots diff HEAD <exp>`, as in the README."""
    res = dvc("exp", "run", "-n", "alpha08", "-S", "train.gr.alpha=0.8", cwd=pipeline_copy)
    expected = {"check_params", "train@gr-0", *(f"attack@gr-0-{a}" for a in ATTACKS), "square@gr-0", "evaluate",
                *(f"attack_set@celebdf-gr-0-{a}" for a in ATTACKS)}
    assert ran_stages(res.stdout) == expected, res.stdout  # the baseline is reused
    diff = json.loads(dvc("metrics", "diff", "HEAD", "--json", cwd=pipeline_copy).stdout)
    assert list(diff) == ["data/evaluate/metrics.json"], diff  # only the headline is registered
    rows = list(diff["data/evaluate/metrics.json"])
    assert rows and all(k.split(".")[0] in ("base", "gr", "flags") for k in rows), rows
    verdict = json.loads(dvc("metrics", "diff", "HEAD", "--targets", "data/evaluate/verdict.json", "--json",
                             cwd=pipeline_copy).stdout)
    assert "auc.diff" in verdict["data/evaluate/verdict.json"], verdict
    # the README's table command, rendered as in a 160-column terminal: nothing elided, nothing wider
    table = sh([sys.executable, "-m", "dvc", "exp", "show", "--only-changed", "--drop", "Created|.*/", "--no-pager"],
               pipeline_copy, env={"COLUMNS": "160"}).stdout
    lines = [line for line in table.splitlines() if line.strip()]
    assert "alpha08" in table and "train.gr.alpha" in table and "gr.auc" in table, table
    assert "…" not in table and max(len(line) for line in lines) <= 160, table
    out = tmp_path / "plots"
    dvc("plots", "diff", "HEAD", "alpha08", "-o", str(out), cwd=pipeline_copy)
    page = (out / "index.html").read_text()
    assert "HEAD_" in page and "alpha08_" in page  # both revisions' images, side by side


def test_queued_grid_runs_two_experiments(pipeline_copy: Path):
    """`-S 'k=a,b'` queues one experiment per value (the README's sweep)."""
    dvc("exp", "run", "--queue", "-S", "attack.pgd.steps=1,4", cwd=pipeline_copy)
    dvc("queue", "start", "-j", "1", cwd=pipeline_copy)
    deadline = time.time() + 420
    while time.time() < deadline:
        status = dvc("queue", "status", cwd=pipeline_copy).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert "Failed" not in status, status
    assert status.count("Success") == 2, status
    show = json.loads(dvc("exp", "show", "--json", cwd=pipeline_copy).stdout)
    steps = {e["data"]["params"]["params.yaml"]["data"]["attack"]["pgd"]["steps"]
             for rev in show for exps in rev.get("experiments") or [] for e in exps["revs"]}
    assert {1, 4} <= steps, steps
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    assert params["attack"]["pgd"]["steps"] == 2  # the workspace itself is untouched
