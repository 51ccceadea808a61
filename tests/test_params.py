import pytest
import yaml

from conftest import ROOT, tiny_params
from robustdf.params import ParamsError, load_group, parse_eps, validate_group


def test_default_params_validate():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group in ("make_sample", "split", "balance", "train", "attack", "evaluate"):
        validate_group(group, params[group])


@pytest.mark.parametrize("text,value", [("2/255", 2 / 255), (0.5, 0.5), ("0", 0.0), (1, 1.0), ("8 / 255", 8 / 255),
                                        ("0.5/255", 0.5 / 255), ("0.0078", 0.0078)])
def test_parse_eps(text, value):
    assert parse_eps(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["-1/255", 1.5, "abc", "1/0", "1/2/3", "nan", True, None])
def test_parse_eps_rejects(bad):
    with pytest.raises(ValueError):
        parse_eps(bad)


def _attack(**kw):
    return {**tiny_params()["attack"], **kw}


@pytest.mark.parametrize("group,raw,needle", [
    ("attack", _attack(eps=["-2/255"]), "attack.eps"),
    ("attack", _attack(eps=[2.0]), "must lie in [0, 1]"),
    ("attack", _attack(eps="2/255"), "non-empty list"),
    ("attack", _attack(pgd={"steps": 0}), "attack.pgd.steps"),
    ("attack", _attack(cw={}), "attack.cw"),
    ("attack", _attack(batch_size="lots"), "attack.batch_size"),
    ("evaluate", {"n_bootstrap": 200, "ci": 1.5}, "evaluate.ci"),
    ("balance", {"strategy": "smote"}, "balance.strategy"),
    ("extract_frames", {**tiny_params()["extract_frames"], "ffpp_root": "/no/such/dir"}, "does not exist"),
    ("extract_frames", {**tiny_params()["extract_frames"], "methods": ["DeepFaceLab"]}, "extract_frames.methods"),
    ("extract_frames", {**tiny_params()["extract_frames"], "frames_per_video": -3}, "frames_per_video"),
    ("extract_frames", {**tiny_params()["extract_frames"], "face_crop": {"upsample": 3}}, "face_crop.upsample"),
    ("extract_frames", {**tiny_params()["extract_frames"], "face_crop": {"upsample": "max"}}, "face_crop.upsample"),
    ("extract_frames", {**tiny_params()["extract_frames"], "face_crop": {"max_fallback_share": 1.5}},
     "face_crop.max_fallback_share"),
    ("extract_frames", {**tiny_params()["extract_frames"], "face_crop": {"low_face": "warn"}}, "face_crop.low_face"),
    ("train", {**tiny_params()["train"], "arch": "efficientnet_b99"}, "unknown timm architecture"),
    ("train", {**tiny_params()["train"], "pretrained": "/no/weights.safetensors"}, "does not exist"),
    ("train", {**tiny_params()["train"], "gr": {"regularizer": "gr", "alpha": 1.5}}, "train.gr"),
    ("train", {**tiny_params()["train"], "recipe": {**tiny_params()["train"]["recipe"], "lr": "fast"}}, "lr"),
])
def test_bad_params_name_key_and_value(group, raw, needle):
    with pytest.raises(ParamsError) as err:
        validate_group(group, raw)
    assert needle in str(err.value)


def _train(**kw):
    return {**tiny_params()["train"], **kw}


def _recipe(**kw):
    return {**tiny_params()["train"]["recipe"], **kw}


@pytest.mark.parametrize("raw,needle", [
    (_train(baseline={"regularizer": "gr"}, gr={"regularizer": "none"}), "train.baseline must have regularizer: none"),
    (_train(gr={"regularizer": "none"}), "train.gr must have regularizer: gr"),
    (_train(recipe=_recipe(augment={"jpeg_quality": [99, 5]})), "train.recipe.augment.jpeg_quality"),
    (_train(recipe=_recipe(augment={"jpeg_quality": [0, 50]})), "1 <= low <= high <= 100"),
    (_train(recipe=_recipe(augment={"jpeg_quality": [50, 101]})), "1 <= low <= high <= 100"),
    (_train(nproc=3, recipe=_recipe(batch_size=16)), "must divide evenly over 3 processes"),
    (_train(amp="fp32"), "train.amp"),
    (_train(recipe=_recipe(batch_scope="local")), "train.recipe.batch_scope"),
])
def test_train_shortcuts_are_rejected_naming_the_key(raw, needle):
    with pytest.raises(ParamsError) as err:
        validate_group("train", raw)
    assert needle in str(err.value)


def test_both_variants_swapped_name_both_keys():
    with pytest.raises(ParamsError) as err:
        validate_group("train", _train(baseline={"regularizer": "gr"}, gr={"regularizer": "none"}))
    assert "train.baseline" in str(err.value) and "train.gr" in str(err.value)


def test_jpeg_quality_edges_and_per_process_scope_validate():
    p = validate_group("train", _train(nproc=3, recipe=_recipe(batch_scope="per_process",
                                                               augment={"jpeg_quality": [1, 1]})))
    assert p.recipe.augment.jpeg_quality == (1, 1)
    validate_group("train", _train(recipe=_recipe(augment={"jpeg_quality": [5, 100]})))


@pytest.mark.parametrize("scope,batch,lr", [("global", 8, 0.002), ("per_process", 16, 0.004)])
def test_batch_scope_rule_for_two_processes(scope, batch, lr):
    p = validate_group("train", _train(nproc=2, recipe=_recipe(batch_size=16, lr=0.002, batch_scope=scope)))
    assert p.recipe.for_processes(1) == (16, 0.002)  # one process: the recipe as written, either way
    per_batch, per_lr = p.recipe.for_processes(2)
    assert per_batch == batch and per_lr == pytest.approx(lr)


def test_global_batch_that_does_not_divide_the_world_fails_at_run_time():
    p = validate_group("train", _train(recipe=_recipe(batch_size=10)))  # valid for nproc 1 ...
    with pytest.raises(ParamsError, match="batch_size = 10 is the global batch"):
        p.recipe.for_processes(4)  # ... not for a torchrun launched by hand with 4 processes


def test_unknown_key_is_reported_as_typo(tmp_path):
    params = tiny_params()
    params["train"]["recipe"]["epoch"] = 3  # typo of 'epochs'
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"train\.recipe\.epoch = 3: unknown key"):
        load_group("train", tmp_path / "params.yaml")


def test_missing_group_and_file(tmp_path):
    (tmp_path / "params.yaml").write_text("evaluate: {}\n")
    with pytest.raises(ParamsError, match="no group 'attack'"):
        load_group("attack", tmp_path / "params.yaml")
    with pytest.raises(ParamsError, match="not found"):
        load_group("attack", tmp_path / "nope.yaml")
