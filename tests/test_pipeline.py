"""End to end: real `dvc repro` of every stage on a tiny config in a temp copy of the repo."""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import cpu_load, dvc, tool_env, write_params

MODELS, ATTACKS = ("baseline", "gr"), ("fgsm", "pgd", "apgd")
PGD_ON_SETS = {f"attack_set@celebdf-{m}-0-pgd" for m in MODELS}  # the tiny run's one test-only set


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_every_output_exists_and_metrics_are_in_range(pipeline_repo: Path):
    for m in MODELS:
        assert (pipeline_repo / f"data/models/{m}-0/model.safetensors").is_file()
        live = json.loads((pipeline_repo / f"data/train/{m}-0/metrics.json").read_text())
        assert live["best/epoch"] >= 1
        for a in ATTACKS:
            meta = json.loads((pipeline_repo / f"data/attacks/{m}-0/{a}/meta.json").read_text())
            assert (meta["dtype"], meta["codec"]) == ("int8", "zlib")
            assert (pipeline_repo / f"data/attacks/{m}-0/{a}/delta.zlib").is_file()
        square = json.loads((pipeline_repo / f"data/square/{m}-0/meta.json").read_text())
        assert square["on"] == "gradient-attack survivors" and len(square["survivors"]) == 2
    for f in ("frames/manifest.csv", "frames/failures.csv", "split/manifest.csv", "balanced/manifest.csv",
              "evaluate/details.json", "evaluate/report.md", "evaluate/plots/worst.csv"):
        assert (pipeline_repo / "data" / f).is_file(), f
    head = json.loads((pipeline_repo / "data/evaluate/metrics.json").read_text())
    assert set(head) == {"base", "gr", "flags"}  # a headline, not every number
    for m in ("base", "gr"):
        assert set(head[m]) == {"auc", "bacc", "rob2", "rob4", "xauc"}
        assert all(v is None or 0.0 <= v <= 100.0 for v in head[m].values()), head[m]
    verdict = json.loads((pipeline_repo / "data/evaluate/verdict.json").read_text())
    assert set(verdict) == {"auc", "bacc", "rob2", "rob4", "xauc", "checks"}
    assert set(verdict["auc"]) == {"diff", "lo", "hi", "mde", "finding"}
    details = json.loads((pipeline_repo / "data/evaluate/details.json").read_text())
    conds = details["models"]["gr-0"]["conditions"]
    expected = {"clean", "pgd_eps32"} | {f"{p}{a}_eps{e}" for p in ("", "transfer_") for a in ATTACKS for e in (2, 4)}
    assert expected | {f"{c}_eps{e}" for c in ("gradient", "worst") for e in (2, 4)} == set(conds)
    assert set(details["models"]["gr-0"]["masking"]) == {"eps2", "eps4"}
    for values in conds.values():
        for k in ("bacc", "auc", "acc", "acc_fake", "acc_real", "video_auc"):
            assert values[k] is None or 0.0 <= values[k] <= 1.0, k
    report = (pipeline_repo / "data/evaluate/report.md").read_text()
    assert "## Verdict" in report and "## Sanity checks" in report and "## Why: measured" in report
    assert "this run cannot tell" in report  # one seed: no interval, never a finding
    assert "## Gradient masking" in report
    # the generalization table: in-domain, the held-out method (the default's NeuralTextures: never trained on,
    # in test only) and the Celeb-DF-shaped set, read by its own stages
    rows = details["generalization"]["rows"]
    assert list(rows) == ["in-domain", "heldout:NeuralTextures", "celebdf"] and rows["celebdf"]["kind"] == "unseen set"
    split = list(csv.DictReader((pipeline_repo / "data/split/manifest.csv").open()))
    held = [r for r in split if r["method"] == "NeuralTextures"]
    assert held and {r["split"] for r in held} == {"test"}
    test = [r for r in split if r["split"] == "test"]  # balance.splits leaves test as split wrote it
    frames = {name: sum(int(r["n_frames"]) for r in test if keep(r)) for name, keep in {
        "in-domain": lambda r: r["method"] != "NeuralTextures",
        "heldout:NeuralTextures": lambda r: r["label"] == "0" or r["method"] == "NeuralTextures"}.items()}
    assert {name: rows[name]["n_frames"] for name in frames} == frames
    assert "including the fakes of the held-out NeuralTextures, never trained on" in report
    listed = (pipeline_repo / "data/sample_celebdf/List_of_testing_videos.txt").read_text().splitlines()
    assert rows["celebdf"]["n_frames"] == 2 * len(listed)  # only the official list, two frames per video
    assert set(rows["celebdf"]["models"]) == {"baseline-0", "gr-0"}
    assert "| celebdf (unseen set) |" in report and "| heldout:NeuralTextures (held-out method) |" in report
    # plots are static images, committed to git, so they show from a fresh checkout with no network
    out = json.loads(dvc("plots", "show", "--json", cwd=pipeline_repo).stdout)
    assert not out.get("errors"), out["errors"]
    pngs = {Path(k).name for k, v in out["data"].items() if v}
    assert {"robust_bacc_vs_eps.png", "learning_curves.png", "why.png", "per_method.png"} <= pngs, pngs


def test_status_clean_and_second_repro_runs_nothing(pipeline_repo: Path):
    assert json.loads(dvc("status", "--json", cwd=pipeline_repo).stdout) == {}
    res = dvc("repro", cwd=pipeline_repo)
    assert ran_stages(res.stdout) == set(), res.stdout


def test_attack_param_change_reruns_only_attacks_and_evaluate(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["attack"]["pgd"]["steps"] = 3
    write_params(pipeline_copy, params)
    changed = json.loads(dvc("status", "--json", cwd=pipeline_copy).stdout)
    assert set(changed) == {"check_params", "attack@baseline-0-pgd", "attack@gr-0-pgd"} | PGD_ON_SETS
    before = json.loads((pipeline_copy / "data/evaluate/details.json").read_text())["models"]
    res = dvc("repro", cwd=pipeline_copy)
    # Square reads the PGD artifact (it attacks the frames the gradient attacks left correct)
    assert ran_stages(res.stdout) == {"check_params", "attack@baseline-0-pgd", "attack@gr-0-pgd", "square@baseline-0",
                                      "square@gr-0", "evaluate"} | PGD_ON_SETS, res.stdout
    after = json.loads((pipeline_copy / "data/evaluate/details.json").read_text())["models"]
    changed_conds = {c for m in after for c in after[m]["conditions"]
                     if after[m]["conditions"][c] != before[m]["conditions"][c]}
    assert changed_conds, "PGD with more steps should change some PGD condition"
    assert all("pgd" in c or "worst" in c or "gradient" in c for c in changed_conds), changed_conds


def test_sanity_eps_is_a_pgd_param_only_pgd_stages_and_evaluate_read(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["attack"]["pgd"]["sanity_eps"] = "24/255"
    write_params(pipeline_copy, params)
    changed = json.loads(dvc("status", "--json", cwd=pipeline_copy).stdout)
    expected = {"check_params", "attack@baseline-0-pgd", "attack@gr-0-pgd", "evaluate"} | PGD_ON_SETS
    assert set(changed) == expected, changed


def test_same_params_give_identical_outputs_on_a_busy_machine(pipeline_copy: Path):
    """Rerun every kind of stage while other processes compete for the cores: same bytes."""
    before = (pipeline_copy / "dvc.lock").read_text()
    with cpu_load(4):
        res = dvc("repro", "-f", "-s", "make_sample", "extract_frames", "train@gr-0", "attack@gr-0-apgd", "evaluate",
                  cwd=pipeline_copy)
    assert len(ran_stages(res.stdout)) == 5
    assert (pipeline_copy / "dvc.lock").read_text() == before


def test_sigterm_mid_training_leaves_no_partial_output_and_rerun_matches(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["train"]["recipe"]["epochs"] = 2
    write_params(pipeline_copy, params)
    dvc("repro", "-s", "train@baseline-0", cwd=pipeline_copy)
    model = pipeline_copy / "data/models/baseline-0/model.safetensors"
    reference = model.read_bytes()
    env = {**tool_env(), "PYTHONPATH": "src"}
    proc = subprocess.Popen([sys.executable, "stages/train.py", "baseline", "--seed", "0"], cwd=pipeline_copy, env=env,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # kill once the first epoch is logged
        if "epoch 1 " in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert model.read_bytes() == reference  # the complete previous output is untouched
    assert not list((pipeline_copy / "data/models").glob(".baseline-0.tmp-*"))
    dvc("repro", "-f", "-s", "train@baseline-0", cwd=pipeline_copy)
    assert model.read_bytes() == reference  # the rerun reproduces the uninterrupted result


def test_bad_param_stops_stage_with_clear_message(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["attack"]["eps"] = ["-1/255"]
    write_params(pipeline_copy, params)
    res = dvc("repro", cwd=pipeline_copy, check=False)
    assert res.returncode != 0
    assert "attack.eps" in res.stderr + res.stdout and "must lie in [0, 1]" in res.stderr + res.stdout
    assert (pipeline_copy / "data/models/baseline-0/model.safetensors").is_file()  # upstream outputs kept


def outputs_snapshot(repo: Path) -> dict[str, bytes]:
    """Every file under data/ (cached and git-tracked outputs alike)."""
    return {str(f.relative_to(repo)): f.read_bytes() for f in sorted((repo / "data").rglob("*")) if f.is_file()}


@pytest.mark.parametrize("edit,needle", [
    (lambda p: p["evaluate"].update(n_bootstrapp=100), "evaluate.n_bootstrapp = 100: unknown key"),
    (lambda p: p["train"]["recipe"].update(epochs="ten"), "train.recipe.epochs = 'ten'"),
    (lambda p: p.update(atack={"eps": ["1/255"]}), "unknown group 'atack'"),
    (lambda p: p["train"].update(epochs=3), "train.epochs = 3: unknown key"),
])
def test_a_typo_anywhere_stops_repro_before_any_output_is_removed(pipeline_copy: Path, edit, needle):
    before = outputs_snapshot(pipeline_copy)
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    edit(params)
    write_params(pipeline_copy, params)
    res = dvc("repro", cwd=pipeline_copy, check=False)
    assert res.returncode != 0
    assert needle in res.stderr + res.stdout, res.stderr[-3000:]
    assert ran_stages(res.stdout) == {"check_params"}, res.stdout
    assert outputs_snapshot(pipeline_copy) == before


def _stage_processes(script: str, cwd: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and script in (proc / "cmdline").read_bytes().decode(errors="replace") \
                    and (proc / "cwd").resolve() == cwd.resolve():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_killing_dvc_ends_the_stage_it_started(pipeline_copy: Path):
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "-f", "-s", "train@baseline-0"], cwd=pipeline_copy,
                            env=tool_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not _stage_processes("stages/train.py", pipeline_copy) and time.time() < deadline:
        time.sleep(0.2)
    assert _stage_processes("stages/train.py", pipeline_copy), "the training stage never started"
    time.sleep(2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while _stage_processes("stages/train.py", pipeline_copy) and time.time() < deadline:
        time.sleep(0.2)
    assert not _stage_processes("stages/train.py", pipeline_copy), "stage kept running after dvc was killed"
    assert not list((pipeline_copy / "data/models").glob(".baseline-0.tmp-*"))  # it cleaned up as on SIGTERM


def test_adding_a_seed_runs_exactly_its_stages_and_evaluate(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["train"]["seeds"] = [0, 1]
    write_params(pipeline_copy, params)
    res = dvc("repro", cwd=pipeline_copy)
    new = ({f"train@{m}-1" for m in MODELS} | {f"attack@{m}-1-{a}" for m in MODELS for a in ATTACKS}
           | {f"square@{m}-1" for m in MODELS} | {f"attack_set@celebdf-{m}-1-{a}" for m in MODELS for a in ATTACKS})
    assert ran_stages(res.stdout) == {"check_params", "evaluate"} | new, res.stdout
    details = json.loads((pipeline_copy / "data/evaluate/details.json").read_text())
    assert sorted(details["models"]) == ["baseline-0", "baseline-1", "gr-0", "gr-1"]
    assert len(details["paired"]["clean"]["auc"]["per_seed"]) == len(details["valid_seeds"])


def test_adding_a_test_set_runs_only_its_stages_and_evaluate(pipeline_copy: Path):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["extract_frames"]["test_sets"]["dffd"] = {"kind": "dffd", "root": "data/sample_dffd",
                                                     "options": {"split": "test"}}
    write_params(pipeline_copy, params)
    changed = json.loads(dvc("status", "--json", cwd=pipeline_copy).stdout)
    new = {"extract_test@dffd"} | {f"attack_set@dffd-{m}-0-{a}" for m in MODELS for a in ATTACKS}
    # a new stage has no lock entry, so `dvc status` lists it as changed, as it lists evaluate
    assert set(changed) == {"check_params", "evaluate"} | new, changed
