"""The seed-paired comparison, degenerate-model flags, sanity checks and the measured 'why'."""

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from robustdf.evaluate.results import ModelResult, TestSet, evaluate_all, worst_case
from robustdf.evaluate.headline import headline
from robustdf.evaluate.explain import why_quantities
from robustdf.data.manifest import face_share_by_method
from robustdf.evaluate.metrics import rank_auc_rows
from robustdf.evaluate.paired import paired_seed_difference
from robustdf.params import validate_group
from robustdf.evaluate.report import render
from robustdf.evaluate.sanity import eps_key, no_gradient_masking
from conftest import ROOT
from conftest import tiny_params


def _test_set(n_videos: int = 40, frames: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.permutation(np.r_[np.zeros(n_videos // 2), np.ones(n_videos // 2)]).astype(int), frames)
    video = np.repeat(np.arange(n_videos), frames).astype(str)
    return y, video, rng


def _scores(y, rng, strength):
    return np.clip(0.5 + strength * (y - 0.5) + rng.normal(0, 0.25, len(y)), 0, 1)


def test_paired_interval_excludes_zero_for_a_consistent_effect_only():
    y, video, rng = _test_set()
    auc = rank_auc_rows
    base = [_scores(y, rng, 0.3) for _ in range(4)]
    better = [_scores(y, rng, 0.9) for _ in range(4)]
    consistent = paired_seed_difference(y, video, base, better, auc, 200, 0.95, 0)
    assert consistent["finding"] and consistent["lo"] > 0 and all(d > 0 for d in consistent["per_seed"])
    # the sign flips between seeds: seeds 0, 1 favour b, seeds 2, 3 favour a, by the same amount
    flip_a = [base[0], base[1], better[2], better[3]]
    flip_b = [better[0], better[1], base[2], base[3]]
    flipping = paired_seed_difference(y, video, flip_a, flip_b, auc, 200, 0.95, 0)
    assert not flipping["finding"] and flipping["lo"] < 0 < flipping["hi"]
    assert max(flipping["per_seed"]) > 0 > min(flipping["per_seed"])


def test_worst_case_takes_the_adverse_score_per_frame():
    y = np.array([1, 0])
    assert worst_case(y, [np.array([0.9, 0.2]), np.array([0.4, 0.6])]).tolist() == [0.4, 0.6]


def _result(name, variant, seed, val_auc, y, rng, strength, attacks, eps):
    scores = {"clean": _scores(y, rng, strength)}
    for a in attacks:
        for e in eps:
            scores[f"{a}_{e}"] = _scores(y, rng, strength * 0.5)
    for e in eps:
        scores[f"gradient_{e}"] = worst_case(y, [scores[f"{a}_{e}"] for a in attacks])
        scores[f"square_{e}"] = scores["clean"]
        scores[f"worst_{e}"] = worst_case(y, [scores[f"gradient_{e}"], scores[f"square_{e}"]])
    why = {q: rng.random(len(y)) for q in ("input_grad_l1", "grad_s_norm", "margin", "stat_loss_increase")}
    return ModelResult(name, variant, seed, val_auc, scores, why)


def test_a_model_that_did_not_learn_is_flagged_and_left_out(tiny_test_set_meta):
    y, video, rng = _test_set()
    ev = validate_group("evaluate", {**tiny_params()["evaluate"], "min_val_auc": 0.7})
    attacks, eps = ["fgsm", "pgd"], ["eps2", "eps4"]
    results = [
        _result("baseline-0", "baseline", 0, 0.95, y, rng, 0.8, attacks, eps),
        _result("gr-0", "gr", 0, 0.97, y, rng, 0.8, attacks, eps),
        ModelResult("baseline-1", "baseline", 1, 0.5, {k: np.full(len(y), 0.9) for k in
                    ["clean", *[f"{a}_{e}" for a in [*attacks, "square", "gradient", "worst"] for e in eps]]},
                    {q: rng.random(len(y)) for q in ("input_grad_l1", "grad_s_norm", "margin", "stat_loss_increase")}),
        _result("gr-1", "gr", 1, 0.96, y, rng, 0.8, attacks, eps),
        _result("baseline-2", "baseline", 2, 0.95, y, rng, 0.8, attacks, eps),
        _result("gr-2", "gr", 2, 0.96, y, rng, 0.8, attacks, eps),
    ]
    ts = TestSet(None, y, video, np.where(y == 1, "Deepfakes", "youtube"), video)  # type: ignore[arg-type]
    details = evaluate_all(results, ts, ev, [2 / 255, 4 / 255], attacks, 32 / 255)
    metrics, verdict = headline(details)
    assert details["degenerate"] == ["baseline-1"]
    assert details["valid_seeds"] == [0, 2]  # the constant model's seed is not compared
    assert verdict["checks"]["degenerate_models"] == 1 and metrics["flags"] >= 1
    # the registered headline: per variant, percent, short keys (columns of `dvc exp show`)
    assert set(metrics) == {"base", "gr", "flags"}
    for v in ("base", "gr"):
        assert list(metrics[v]) == ["auc", "bacc", "rob2", "rob4"]
        assert all(0.0 <= x <= 100.0 for x in metrics[v].values()), metrics[v]
    assert metrics["gr"]["auc"] == round(100 * details["variants"]["gr"]["clean"]["auc"]["mean"], 2)
    # the verdict: paired differences in points with bounds; a finding exactly when the interval excludes 0
    for key, cond, m in [("auc", "clean", "auc"), ("bacc", "clean", "bacc"), ("rob2", "worst_eps2", "bacc")]:
        d, p = verdict[key], details["paired"][cond][m]
        assert d["diff"] == round(100 * p["diff"], 2) and d["lo"] <= d["diff"] <= d["hi"]
        assert d["finding"] == (p["lo"] > 0 or p["hi"] < 0)
    assert details["models"]["baseline-1"]["conditions"]["clean"]["bacc"] == 0.5  # constant -> chance
    details.update(ci=ev.ci, min_val_auc=ev.min_val_auc)
    report = render(details, tiny_test_set_meta)
    assert report.index("did not learn") < report.index("## Verdict")
    assert "Face crop off" in report  # no face shares in the context: whole frames, said so
    rows = [{"method": "original", "face_share": 1.0}, {"method": "original", "face_share": 0.5},
            {"method": "Deepfakes", "face_share": 0.25}, {"method": "Face2Face", "face_share": ""}]
    faces = {**tiny_test_set_meta, "face_share": face_share_by_method(rows), "low_face_videos": ["Deepfakes/000_003"]}
    report = render(details, faces)
    assert "| original | 75.0% |" in report and "| Deepfakes | 25.0% |" in report and "Face2Face" not in report
    assert report.index("1 videos kept with few detected faces") < report.index("## Verdict")


@pytest.fixture
def tiny_test_set_meta():
    return {"n_frames": 120, "n_videos": 40, "n_real_videos": 20, "n_fake_videos": 20, "n_bootstrap": 20}


def _masking(model, x, y):
    """The masking check as the pipeline runs it, at the default params: the gradient attacks on stored 8-bit
    images, then Square on the frames all of them left correct."""
    from robustdf.attack.artifacts import stored_image
    from robustdf.attack.attacks import build_attack
    from robustdf.attack.masking import square_extra

    p = validate_group("attack", yaml.safe_load((ROOT / "params.yaml").read_text())["attack"])
    x = torch.round(x * 255) / 255
    store, yy = stored_image("int8"), y.numpy()

    def probs(inp):
        with torch.no_grad():
            return torch.softmax(model(inp), 1)[:, 1].numpy()

    out = {}
    for eps in p.eps:
        grad = worst_case(yy, [probs(build_attack(a, p, 0, store)(model, x, y, eps)) for a in p.attacks])
        alive = torch.from_numpy((grad >= 0.5).astype(int) == yy)
        sq = probs(x)
        if alive.any():
            sq[alive.numpy()] = probs(build_attack("square", p, 0, store)(model, x[alive], y[alive], eps))
        out[eps_key(eps)] = square_extra(yy, grad, sq, 0.5)
    return out, p.eps


def test_masking_check_at_default_params_fires_on_a_masked_model_and_not_on_the_same_model(trained_pair):
    normal, masked, x, y = trained_pair
    checks = {}
    for name, model in (("normal", normal), ("masked", masked)):
        masking, eps_list = _masking(model, x, y)
        checks[name] = no_gradient_masking(masking, [eps_key(e) for e in eps_list], 0.02)
    assert checks["normal"]["passed"] is True, checks["normal"]
    assert checks["masked"]["passed"] is False and "Square broke" in checks["masked"]["detail"]


@pytest.fixture(scope="module")
def trained_pair(trained_small_model):
    """A small trained CNN and the same CNN behind an input quantiser (its input gradient is zero)."""
    net, x, y = trained_small_model
    return net, Quantised(net).eval(), x[:96], y[:96]


class Quantised(nn.Module):
    """Rounds its input to 1/16 steps before the network: the input gradient is exactly zero."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 16) / 16)


def test_why_quantities_are_per_frame_and_match_autograd():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 2)).eval()
    u8 = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    q = why_quantities(model, [(u8[:4], y[:4]), (u8[4:], y[4:])], "2", 0.05, torch.device("cpu"))
    assert all(len(v) == 6 and np.isfinite(v).all() for v in q.values())
    x = (u8.float() / 255).requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="none")
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert np.allclose(q["input_grad_l1"], g.abs().flatten(1).sum(1).numpy(), rtol=1e-5)
    logits = model(x).detach()
    assert np.allclose(q["margin"], (logits.gather(1, y[:, None]) - logits.gather(1, 1 - y[:, None]))[:, 0].numpy(),
                       rtol=1e-5)
    assert (q["grad_s_norm"] > 0).all()
    assert (q["stat_loss_increase"] > 0).mean() > 0.5  # a step along the gradient raises the loss
