import math

import pytest
import torch
from torch import nn

from robustdf.attacks import APGD, FGSM, PGD, apgd_checkpoints, build_attack
from robustdf.params import validate_group
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


@pytest.mark.parametrize("attack", [FGSM(), PGD(steps=4, rel_step_size=0.5), APGD(steps=6)])
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


@pytest.fixture(scope="module")
def trained_small_model():
    """A small CNN trained to separate bright-centre 'fakes' from 'reals'."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 3, 12, 12, generator=g) * 0.6
    y = torch.randint(0, 2, (256,), generator=g)
    x[y == 1, :, 4:8, 4:8] += 0.15
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 2))
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x[:128], y[:128]


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
    with pytest.raises(ValueError, match="unknown attack"):
        build_attack("cw", p)
    assert math.isclose(p.eps[0], 2 / 255)
