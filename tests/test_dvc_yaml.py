"""dvc.yaml's hand-written deps must equal each stage script's import closure inside src/robustdf."""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, dvc

PACKAGE = "robustdf"


def imported_modules(path: Path) -> set[str]:
    """Modules of the package that a file imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)  # from robustdf.evaluate import metrics: submodules
            names = {f"{node.module}.{a.name}" for a in node.names}
            found |= {m for m in names if module_file(m).is_file()}
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(2, m.count(".") + 1)}  # run on import
    return {m for m in found | parents if m != PACKAGE}


def module_file(module: str) -> Path:
    base = ROOT / "src" / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def import_closure(script: Path) -> set[str]:
    """Repo-relative paths of every package module the script needs, transitively."""
    todo, seen = list(imported_modules(script)), set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(imported_modules(module_file(mod)))
    return {module_file(m).relative_to(ROOT).as_posix() for m in seen}


def stage_definitions() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: spec.get("do", spec) for name, spec in stages.items()}


def code_deps(spec: dict) -> set[str]:
    deps = [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", [])]
    return {d for d in deps if d.startswith(("src/", "stages/"))}


@pytest.mark.parametrize("stage", sorted(stage_definitions()))
def test_stage_deps_equal_the_script_import_closure(stage):
    spec = stage_definitions()[stage]
    scripts = re.findall(r"stages/\w+\.py", spec["cmd"])
    assert len(scripts) == 1, f"stage {stage}: expected one stages/*.py in its cmd, got {scripts}"
    script = ROOT / scripts[0]
    expected = {scripts[0]} | import_closure(script)
    listed = code_deps(spec)
    missing, extra = sorted(expected - listed), sorted(listed - expected)
    assert not missing, f"dvc.yaml stage '{stage}' does not list modules it imports: {missing}"
    assert not extra, f"dvc.yaml stage '{stage}' lists modules its script never imports: {extra}"


def test_closure_follows_imports_inside_functions(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("def f():\n    from robustdf.evaluate import metrics\n    import robustdf.evaluate.report\n")
    assert imported_modules(script) == {"robustdf.evaluate", "robustdf.evaluate.metrics", "robustdf.evaluate.report"}
    assert "src/robustdf/train/model.py" not in import_closure(script)
    script.write_text("from robustdf.data.readers.video import Video\n")  # runs the package's __init__ and its imports
    assert imported_modules(script) == {"robustdf.data", "robustdf.data.readers", "robustdf.data.readers.video"}
    assert {"src/robustdf/data/readers/__init__.py", "src/robustdf/data/readers/ffpp.py"} <= import_closure(script)


def test_every_stage_waits_for_the_params_check():
    for name, spec in stage_definitions().items():
        if name != "check_params":
            assert "data/params_valid.json" in spec["deps"], name


def extract_stage_module():
    spec = importlib.util.spec_from_file_location("extract_frames_stage", ROOT / "stages" / "extract_frames.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extract_frames_lists_every_dataset_folder_it_reads(tiny_sample):
    from robustdf.params import ParamsError, validate_group

    stage = extract_stage_module()
    params = {**yaml.safe_load((ROOT / "params.yaml").read_text())["extract_frames"], "ffpp_root": str(tiny_sample),
              "test_sets": {}}  # read by their own stages
    stage.check_dvc_deps(validate_group("extract_frames", params), ROOT / "dvc.yaml")  # the defaults agree
    params["real_sources"] = ["youtube", "actors"]
    with pytest.raises(ParamsError, match="original_sequences/actors"):
        stage.check_dvc_deps(validate_group("extract_frames", params), ROOT / "dvc.yaml")


def test_unread_dataset_folders_leave_extract_frames_up_to_date(pipeline_copy):
    fakes = pipeline_copy / "data" / "sample" / "manipulated_sequences" / "Deepfakes"
    video = sorted((fakes / "c23" / "videos").iterdir())[0]
    for unread in ["c40/videos", "raw/videos", "masks/videos"]:  # other compressions and FF++'s masks
        (fakes / unread).mkdir(parents=True)
        shutil.copy(video, fakes / unread / video.name)
    assert "up to date" in dvc("status", "extract_frames", cwd=pipeline_copy).stdout
    with video.open("ab") as fh:  # a folder it reads: out of date
        fh.write(b"changed")
    assert "Deepfakes/c23/videos" in dvc("status", "extract_frames", cwd=pipeline_copy).stdout
