import math

import pytest
import torch
from torch import nn

from robustdf.attack.artifacts import Artifact, ArtifactWriter, quantize_8bit, rebuild, stored_image
from robustdf.attack.attacks import (APGD, FGSM, PGD, Square, WorstCase, apgd_checkpoints, as_computed, build_attack,
                                     margin, square_p)
from robustdf.params import ParamsError, validate_group
from conftest import tiny_params


class Linear(nn.Module):
    """logits = (0, w.x): the fake logit grows along w."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x.flatten(1) * self.w.flatten()).sum(1)
        return torch.stack([torch.zeros_like(z), z], 1)


def test_fgsm_equals_closed_form_on_linear_model():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    model = Linear(w)
    x = torch.rand(6, 3, 4, 4)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    eps = 8 / 255
    adv = FGSM()(model, x, y, eps)
    # real (y=0): push the fake logit up, along +sign(w); fake (y=1): along -sign(w)
    direction = torch.where(y.view(-1, 1, 1, 1) == 0, 1.0, -1.0) * w.sign()
    assert torch.allclose(adv, (x + eps * direction).clamp(0, 1), atol=1e-7)


@pytest.mark.parametrize("attack", [FGSM(), PGD(steps=4, rel_step_size=0.5),
                                    PGD(steps=2, restarts=2, losses=["margin"]), APGD(steps=6),
                                    APGD(steps=5, restarts=2, losses=["ce", "margin"]),
                                    Square(queries=30, p_init=0.3, restarts=2)], ids=lambda a: a.name)
def test_attacks_stay_in_ball_and_box_and_eps0_is_identity(attack):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    x = torch.rand(5, 3, 8, 8)
    x[0] = 0.0
    x[1] = 1.0
    y = torch.tensor([0, 1, 1, 0, 1])
    eps = 4 / 255
    adv = attack(model, x, y, eps)
    assert (adv - x).abs().max() <= eps + 1e-7
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv != x).any()
    assert torch.equal(attack(model, x, y, 0.0), x)


def test_apgd_checkpoints_follow_the_paper():
    assert apgd_checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]


def test_stronger_attacks_hurt_more(trained_small_model):
    model, x, y = trained_small_model

    def acc(inp):
        with torch.no_grad():
            return float((model(inp).argmax(1) == y).float().mean())

    clean = acc(x)
    assert clean > 0.9
    for eps in (2 / 255, 8 / 255):
        a_fgsm = acc(FGSM()(model, x, y, eps))
        a_pgd = acc(PGD(steps=10, rel_step_size=0.25)(model, x, y, eps))
        a_apgd = acc(APGD(steps=10)(model, x, y, eps))
        assert a_pgd <= a_fgsm + 0.02 and a_apgd <= a_fgsm + 0.02
        assert a_fgsm <= clean and a_pgd <= clean
    assert acc(PGD(steps=10)(model, x, y, 8 / 255)) < clean - 0.2


def test_build_attack_by_name_from_params():
    p = validate_group("attack", tiny_params()["attack"])
    assert isinstance(build_attack("pgd", p), PGD) and build_attack("pgd", p).steps == 2
    assert isinstance(build_attack("apgd", p), APGD)
    square = build_attack("square", p, seed=3)
    assert isinstance(square, Square)
    assert (square.queries, square.p_init, square.restarts, square.seed) == (5, 0.05, 1, 3)
    pgd = build_attack("pgd", validate_group("attack", {"eps": [0.1], "pgd": {"restarts": 3, "losses": ["margin"]}}), 5)
    assert (pgd.restarts, pgd.losses, pgd.seed) == (3, ("margin",), 5)
    with pytest.raises(ValueError, match="unknown attack"):
        build_attack("cw", p)
    assert math.isclose(p.eps[0], 2 / 255)


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return margin(model(x), y)


def test_margin_and_worst_case_prefer_misclassified_points():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    assert torch.allclose(margin(logits, torch.tensor([0, 0])), torch.tensor([1.5, -3.0]))
    model = Linear(torch.ones(1, 1, 1))  # logits (0, x): fake iff x > 0
    x, y = torch.tensor([[[[-1.0]]], [[[-1.0]]]]), torch.tensor([0, 0])
    best = WorstCase(model, x, y, 1.0, as_computed)
    assert torch.equal(best.margin, torch.tensor([1.0, 1.0]))
    best.offer(torch.tensor([[[[0.5]]], [[[-2.0]]]]))  # margins -0.5 and 2: the first improves, the second not
    assert torch.equal(best.x.flatten(), torch.tensor([0.5, -1.0]))
    assert torch.equal(best.margin, torch.tensor([-0.5, 1.0]))
    best.offer(torch.tensor([[[[3.0]]]]), idx=torch.tensor([1]))
    assert torch.equal(best.x.flatten(), torch.tensor([0.5, 3.0]))
    # a candidate is judged on the image that is stored: here rounded to whole units (1.4 -> 1.0, margin -1)
    rounded = WorstCase(model, x[:1], y[:1], 1.0, lambda xa, x0, eps: xa.round())
    assert rounded.offer(torch.tensor([[[[1.4]]]])).item() == -1.0 and rounded.x.item() == 1.0


@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd", "square"])
@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_the_stored_artifact_scores_the_margin_the_attack_selected(trained_small_model, tmp_path, name, dtype):
    model, x, y = trained_small_model
    x, y = x[:32], y[:32]
    u8 = torch.round(x * 255).to(torch.uint8)
    x = u8.float() / 255
    p = validate_group("attack", {**tiny_params()["attack"], "square": {"queries": 20}})
    eps_list = [1 / 255, 2 / 255, 4 / 255]
    attack = build_attack(name, p, 0, stored_image(dtype))
    writer = ArtifactWriter(tmp_path, eps_list, tuple(x.shape[1:]), len(x), dtype, {})
    selected = []
    for eps in eps_list:
        adv = attack(model, x, y, eps)
        selected.append(attack.margin.clone())
        writer.write(quantize_8bit(adv, u8, eps) if dtype == "int8" else adv - x)
    writer.close()
    art, clean = Artifact(tmp_path), _margins(model, x, y)
    for e, eps in enumerate(eps_list):
        stored = _margins(model, rebuild(u8, art.delta(e, 0, len(x)), eps), y)
        assert torch.allclose(stored, selected[e], atol=1e-5), (name, eps)  # evaluation scores what was selected
        assert (stored <= clean + 1e-5).all()  # never weaker than the clean image
    assert (_margins(model, rebuild(u8, art.delta(2, 0, len(x)), 4 / 255), y) < clean - 1e-3).any()


def test_square_schedule_follows_the_paper():
    assert [square_p(0.8, it, 10000) for it in (0, 10, 11, 50, 51, 500, 501, 10000)] == \
        [0.8, 0.8, 0.4, 0.4, 0.2, 0.1, 0.05, 0.8 / 512]
    assert square_p(0.05, 50, 100) == 0.05 / 128  # the schedule is rescaled to the query budget


def test_square_flips_a_trained_model_at_large_eps(trained_small_model):
    model, x, y = trained_small_model
    attack = Square(queries=1000, p_init=0.3)
    adv = attack(model, x, y, 16 / 255)
    assert (adv - x).abs().max() <= 16 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert _acc(model, adv, y) < 0.1 < 0.9 < _acc(model, x, y)
    assert attack.queries_made < 2 * len(x) + (attack.queries - 1) * len(x)  # fooled images stop querying


@pytest.mark.parametrize("make", [lambda r: PGD(steps=3, restarts=r, seed=7),
                                  lambda r: APGD(steps=4, restarts=r, seed=7),
                                  lambda r: Square(queries=15, restarts=r, seed=7)], ids=["pgd", "apgd", "square"])
def test_restarts_are_never_weaker_than_a_single_start(trained_small_model, make):
    model, x, y = trained_small_model
    x, y = x[:48], y[:48]
    eps = 2 / 255
    one, three = make(1)(model, x, y, eps), make(3)(model, x, y, eps)
    assert (_margins(model, three, y) <= _margins(model, one, y) + 1e-6).all()
    assert (_margins(model, one, y) <= _margins(model, x, y) + 1e-6).all()  # never weaker than the clean image
    assert (three - x).abs().max() <= eps + 1e-6


@pytest.mark.parametrize("eps", [2 / 255, 4 / 255])
def test_pgd_is_never_weaker_than_fgsm(trained_small_model, eps):
    model, x, y = trained_small_model
    correct_fgsm = int((_margins(model, FGSM()(model, x, y, eps), y) >= 0).sum())
    for pgd in (PGD(steps=10), PGD(steps=10, losses=["ce"]), PGD(steps=20, rel_step_size=0.1, restarts=2)):
        assert int((_margins(model, pgd(model, x, y, eps), y) >= 0).sum()) <= correct_fgsm


def test_apgd_margin_loss_with_the_standard_100_steps(trained_small_model):
    model, x, y = trained_small_model
    x, y = x[:32], y[:32]
    eps = 4 / 255
    adv = APGD(steps=100, losses=["margin"])(model, x, y, eps)
    assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert _acc(model, adv, y) <= _acc(model, FGSM()(model, x, y, eps), y)


def test_unknown_losses_are_refused():
    with pytest.raises(ValueError, match="losses"):
        PGD(losses=["dlr"])
    with pytest.raises(ValueError, match="losses"):
        APGD(losses=[])


class Masked(nn.Module):
    """A gradient-masked detector: the fake logit is the mean of the image rounded to a 1/16 grid
    (minus 0.5), so every input gradient is zero while the decision still depends on the input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 200 * ((x * 16).round() / 16).mean((1, 2, 3)) - 100
        return torch.stack([torch.zeros_like(z), z], 1)


def test_gradient_masking_fools_pgd_but_not_square():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (64,), generator=g)
    x = (0.48 + 0.04 * y.float()).view(-1, 1, 1, 1) + (torch.rand(64, 3, 8, 8, generator=g) * 2 - 1) * 0.1
    model, eps = Masked(), 8 / 255
    assert _acc(model, x, y) == 1.0
    assert _acc(model, PGD(steps=10, restarts=2)(model, x, y, eps), y) > 0.95
    assert _acc(model, APGD(steps=10, losses=["ce", "margin"])(model, x, y, eps), y) > 0.95
    adv = Square(queries=500)(model, x, y, eps)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert _acc(model, adv, y) < 0.1


@pytest.mark.parametrize("make", [lambda s: PGD(steps=2, restarts=2, seed=s), lambda s: APGD(steps=3, seed=s),
                                  lambda s: Square(queries=10, seed=s)], ids=["pgd", "apgd", "square"])
def test_same_seed_same_tensors(make):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 0, 1, 1, 0])
    a = make(1)(model, x, y, 4 / 255)
    torch.manual_seed(99)  # the global RNG plays no part
    assert torch.equal(a, make(1)(model, x, y, 4 / 255))
    assert not torch.equal(a, make(2)(model, x, y, 4 / 255))


@pytest.mark.parametrize("group, match", [
    ({"pgd": {"losses": ["dlr"]}}, r"attack\.pgd\.losses = \['dlr'\].*unknown: \['dlr'\]"),
    ({"apgd": {"losses": ["ce", "ce"]}}, r"attack\.apgd\.losses .*without repeats"),
    ({"apgd": {"losses": "ce"}}, r"attack\.apgd\.losses"),
    ({"pgd": {"restarts": 0}}, r"attack\.pgd\.restarts = 0"),
    ({"pgd": {"restarts": 2, "random_start": False}}, r"needs random_start"),
    ({"square": {"queries": 0}}, r"attack\.square\.queries = 0"),
    ({"square": {"p_init": 1.5}}, r"attack\.square\.p_init = 1\.5"),
    ({"square": {"restarts": 0}}, r"attack\.square\.restarts"),
    ({"square": {"querys": 10}}, r"attack\.square\.querys = 10: unknown key"),
    ({"apgd": {"loss": "ce"}}, r"attack\.apgd\.loss = 'ce': unknown key"),
])
def test_attack_params_validation(group, match):
    with pytest.raises(ParamsError, match=match):
        validate_group("attack", {"eps": ["2/255"], **group})


def test_attack_params_defaults_in_params_yaml():
    p = validate_group("attack", tiny_params()["attack"])
    assert p.pgd.losses == ["ce", "margin"] and p.pgd.restarts == 1 and p.pgd.rel_step_size == 0.25
    assert p.apgd.losses == ["ce"] and p.square.queries >= 1
