"""Generalization: the in-domain / held-out / unseen-set table, the cross-dataset mean, test-set params, image
extraction and the sample's unseen sets."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_params
from robustdf.data.readers import READERS, discover
from robustdf.evaluate.results import ModelResult, SetScores, TestSet
from robustdf.evaluate.explain import QUANTITIES
from robustdf.data.extraction import extract_into
from robustdf.evaluate.generalization import generalization
from robustdf.evaluate.headline import headline
from robustdf.evaluate.metrics import rank_auc_rows
from robustdf.evaluate.paired import mean_over_sets, paired_seed_difference
from robustdf.params import DATASET_KINDS, ParamsError, validate_group
from robustdf.evaluate.report import generalization_lines
from robustdf.runtime import DataError, StageRun
from robustdf.data.synth_sets import make_celebdf, make_dffd

EPS = [2 / 255]
CONDS = ["clean", "worst_eps2", "gradient_eps2"]


def _set(n_clusters: int, per: int, rng, methods=("fakeA",)) -> TestSet:
    """Clusters of ``per`` frames, half real; fakes cycle through ``methods``."""
    n = n_clusters * per
    y = np.tile(np.r_[np.zeros(per // 2), np.ones(per - per // 2)].astype(int), n_clusters)
    method = np.where(y == 1, np.array(methods)[np.arange(n) % len(methods)], "real")
    cluster = np.repeat(np.arange(n_clusters), per).astype(str)
    return TestSet(None, y, np.arange(n).astype(str), method, cluster)  # type: ignore[arg-type]


def _scores(ts: TestSet, strength: float, rng) -> dict[str, np.ndarray]:
    return {c: np.clip(0.5 + strength * (ts.y - 0.5) + rng.normal(0, 0.3, len(ts.y)), 0, 1) for c in CONDS}


def _results(ts: TestSet, sets: dict[str, TestSet], gain: dict[str, float], seeds=(0, 1, 2), seed=0):
    """Baseline and GR per seed; GR separates set ``s`` better by ``gain[s]`` (0: no true difference)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in seeds:
        for v in ("baseline", "gr"):
            extra = {name: gain.get(name, 0.0) if v == "gr" else 0.0 for name in sets}
            why = {q: rng.random(len(ts.y)) for q in QUANTITIES}
            res = ModelResult(f"{v}-{s}", v, s, 0.95, _scores(ts, 0.6, rng), why)
            res.sets = {name: SetScores(_scores(st, 0.2 + extra[name], rng),
                                        {q: rng.random(len(st.y)) for q in QUANTITIES}) for name, st in sets.items()}
            out.append(res)
    return out


def test_rows_cover_in_domain_held_out_and_each_set_and_find_only_the_real_gain():
    rng = np.random.default_rng(0)
    ts = _set(12, 10, rng, methods=("Deepfakes", "NeuralTextures"))
    ts.heldout = ["NeuralTextures"]
    sets = {"cdfa": _set(10, 12, rng), "cdfb": _set(10, 12, rng)}
    ev = validate_group("evaluate", tiny_params()["evaluate"] | {"n_bootstrap": 200})
    gen = generalization(_results(ts, sets, {"cdfa": 0.5}), ts, sets, [0, 1, 2], EPS, ev)
    rows = gen["rows"]
    assert list(rows) == ["in-domain", "heldout:NeuralTextures", "cdfa", "cdfb"]
    assert rows["in-domain"]["n_frames"] == int((ts.method != "NeuralTextures").sum())  # only the methods trained on
    held = rows["heldout:NeuralTextures"]
    assert held["n_frames"] == int((ts.y == 0).sum() + (ts.method == "NeuralTextures").sum())
    assert held["robust_condition"] == "worst_eps2" and rows["cdfa"]["robust_condition"] == "gradient_eps2"
    assert rows["cdfa"]["paired"]["auc"]["finding"] and rows["cdfa"]["paired"]["auc"]["diff"] > 0
    assert not rows["cdfb"]["paired"]["auc"]["finding"]  # no true difference there
    assert set(gen["why"]) == {"cdfa", "cdfb"} and set(gen["why"]["cdfa"]) == set(QUANTITIES)
    x = gen["xauc"]
    assert x["variants"]["gr"] == pytest.approx(np.mean([rows[n]["variants"]["gr"]["auc"] for n in sets]))
    assert x["paired"]["diff"] == pytest.approx(np.mean([rows[n]["paired"]["auc"]["diff"] for n in sets]))
    metrics, verdict = headline({"eps": EPS, "variants": {"baseline": {}, "gr": {}}, "paired": {}, "models": {},
                                 "degenerate": [], "generalization": gen})
    assert metrics["gr"]["xauc"] == round(100 * x["variants"]["gr"], 2)
    assert verdict["xauc"]["finding"] == x["paired"]["finding"]
    lines = generalization_lines({"generalization": gen, "ci": ev.ci, "power": ev.power})
    assert any(line.startswith("| cdfa (unseen set) |") and "**+" in line for line in lines)  # the finding, bold
    assert any("cross-dataset AUC" in line for line in lines)


def test_mean_over_one_set_is_that_sets_interval_and_over_two_is_narrower_than_each():
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 60)
    cluster = np.repeat(np.arange(20), 6)
    paired = []
    for _ in range(2):
        a = [np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.3, len(y)), 0, 1) for _ in range(5)]
        b = [np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.3, len(y)), 0, 1) for _ in range(5)]
        paired.append(paired_seed_difference(y, cluster, a, b, rank_auc_rows, 200, 0.95, 0, 0.8))
    one = mean_over_sets(paired[:1], 0.95, 0.8)
    for k in ("diff", "lo", "hi", "mde"):
        assert one[k] == pytest.approx(paired[0][k])
    two = mean_over_sets(paired, 0.95, 0.8)
    assert two["diff"] == pytest.approx((paired[0]["diff"] + paired[1]["diff"]) / 2)
    assert two["test_se"] < min(p["test_se"] for p in paired)  # independent sets average out test noise


@pytest.mark.parametrize("entry, needle", [
    ({"kind": "celebd", "root": "."}, "'celebdf', 'csv', 'dfdc', 'dffd' or 'ffpp'"),
])
def test_a_bad_test_set_entry_names_the_key(entry, needle):
    raw = tiny_params()["extract_frames"] | {"test_sets": {"cdf": entry}}
    with pytest.raises(ParamsError, match="extract_frames.test_sets.cdf") as err:
        validate_group("extract_frames", raw)
    assert needle in str(err.value)


def test_the_params_kinds_are_the_registered_readers_and_options_must_fit_the_reader(tmp_path):
    assert sorted(DATASET_KINDS) == sorted(READERS)
    with pytest.raises(TypeError, match="dataset kind 'dffd': missing a required argument: 'split'"):
        discover("dffd", tmp_path)  # DFFD needs its split: named before anything is read
    with pytest.raises(DataError, match="Celeb-DF root no/such/folder does not exist"):
        discover("celebdf", "no/such/folder")  # checked when its stage runs (other stages never need it)


def test_a_test_set_name_must_fit_stage_names_and_metric_keys():
    raw = tiny_params()["extract_frames"] | {"test_sets": {"Celeb-DF": {"kind": "celebdf", "root": "."}}}
    with pytest.raises(ParamsError, match="lower-case letters or digits"):
        validate_group("extract_frames", raw, check_files=False)


@pytest.fixture(scope="module")
def unseen_sample(tmp_path_factory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("unseen")
    p = validate_group("make_sample", tiny_params()["make_sample"] | {"size": 128})
    make_celebdf(root / "cdf", p)
    make_dffd(root / "dffd", p)
    return root / "cdf", root / "dffd", p


def test_sample_celebdf_is_read_by_its_official_list_only(unseen_sample):
    cdf, _, p = unseen_sample
    listed = (cdf / "List_of_testing_videos.txt").read_text().splitlines()
    videos, unknown = discover("celebdf", cdf)
    assert len(videos) == len(listed) == p.celebdf.celebrities * 2 + p.celebdf.youtube_reals - p.celebdf.unlisted
    assert len(unknown) == p.celebdf.unlisted  # written, not listed: reported, never read
    assert {v.method for v in videos if v.label == 1} == {"Celeb-synthesis"}
    assert all(f"{0 if v.label else 1} {Path(v.path).relative_to(cdf).as_posix()}" in listed for v in videos)


def test_images_go_through_the_face_pipeline_as_one_frame_each(unseen_sample, tmp_path):
    _, dffd, _ = unseen_sample
    (dffd / "ffhq" / "test" / "00099.png").write_bytes(b"not a png")  # corrupt: a failure row, not a crash
    try:
        images, unknown = discover("dffd", dffd, split="test")
        p = validate_group("extract_frames", tiny_params()["extract_frames"] | {"face_crop": {"enabled": True},
                                                                                 "max_failure_share": 0.2},
                           check_files=False)
        rows = extract_into(tmp_path, images, unknown, p, str(dffd), StageRun("test"))
    finally:
        (dffd / "ffhq" / "test" / "00099.png").unlink()
    assert len(rows) == len(images) - 1 and {r["n_frames"] for r in rows} == {1}
    assert all(r["face_share"] == 1.0 for r in rows)  # the drawn faces are found in every image
    arr = np.load(tmp_path / rows[0]["frames_file"])
    assert arr.shape == (1, p.image_size, p.image_size, 3) and arr.dtype == np.uint8
    failures = (tmp_path / "failures.csv").read_text()
    assert "00099" in failures and "UnidentifiedImageError" in failures
    record = json.loads((tmp_path / "records" / f"{rows[0]['key']}.json").read_text())
    assert record["fields"]["frame_indices"] == [0]


def test_a_dfdc_fake_whose_original_is_in_the_set_reuses_its_boxes(unseen_sample, tmp_path):
    cdf, _, _ = unseen_sample
    root = tmp_path / "dfdc"
    root.mkdir()
    shutil.copy(cdf / "Celeb-real" / "id0_0000.mp4", root / "orig.mp4")
    shutil.copy(cdf / "Celeb-synthesis" / "id0_id1_0000.mp4", root / "fake.mp4")  # frame-aligned, as DFDC's fakes
    (root / "metadata.json").write_text(json.dumps({"orig.mp4": {"label": "REAL"},
                                                    "fake.mp4": {"label": "FAKE", "original": "orig.mp4"}}))
    videos, unknown = discover("dfdc", root)
    p = validate_group("extract_frames", tiny_params()["extract_frames"] | {"face_crop": {"enabled": True}},
                       check_files=False)
    rows = {r["key"]: r for r in extract_into(tmp_path / "out", videos, unknown, p, str(root), StageRun("test"))}
    fake, orig = rows["dfdc:fake"], rows["dfdc:orig"]
    assert fake["boxes_from"] == "dfdc:orig" and orig["boxes_from"] == ""
    assert fake["boxes"] == orig["boxes"] and fake["frame_indices"] == orig["frame_indices"]
    assert fake["target"] == orig["target"] == "dfdc:orig"  # one identity group
