import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, f1_score, roc_auc_score

from robustdf.evaluate import metrics as M
from robustdf.evaluate.sanity import eps_key as eps_tag


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.35 * y + rng.random(200) * 0.65, 0, 1)
    return y, p


def test_frame_metrics_equal_sklearn(scores):
    y, p = scores
    m = M.frame_metrics(y, p, 0.5)
    assert m["acc"] == accuracy_score(y, p >= 0.5)
    assert m["auc"] == roc_auc_score(y, p)
    assert m["ap"] == average_precision_score(y, p)
    assert m["f1"] == f1_score(y, p >= 0.5)


def test_rank_auc_equals_sklearn_with_ties(scores):
    y, p = scores
    assert M.rank_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    q = np.round(p, 1)  # many ties
    assert M.rank_auc(y, q) == pytest.approx(roc_auc_score(y, q), abs=1e-12)
    assert math.isnan(M.rank_auc(np.ones(3, int), p[:3]))


def test_eer_on_known_rocs():
    # perfectly separated -> 0; fully inverted -> 1
    assert M.eer(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert M.eer(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    # one real above one fake out of 4 each: FPR = FNR = 0.25 at the crossing
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.85, 0.9])
    assert M.eer(y, p) == pytest.approx(0.25)
    assert math.isnan(M.eer(np.array([1, 1]), np.array([0.2, 0.9])))


def test_video_grouping_keeps_methods_apart():
    y = np.array([1, 1, 1, 1])
    p = np.array([0.9, 0.9, 0.1, 0.1])
    video = np.array(["Deepfakes/000_003", "Deepfakes/000_003", "Face2Face/000_003", "Face2Face/000_003"])
    yv, pv = M.video_scores(y, p, video)
    assert len(pv) == 2 and sorted(pv.tolist()) == [pytest.approx(0.1), pytest.approx(0.9)]
    assert M.video_metrics(y, p, video)["video_acc"] == 0.5


def test_attack_success_rate():
    y = np.array([0, 0, 1, 1])
    clean = np.array([0.1, 0.9, 0.8, 0.7])  # 3 correct
    adv = np.array([0.6, 0.9, 0.2, 0.9])  # flips frame 0 and 2
    assert M.attack_success_rate(y, clean, adv) == pytest.approx(2 / 3)


def test_bootstrap_ci_brackets_the_point_estimate(scores):
    y, p = scores
    video = np.repeat(np.arange(50), 4)
    ci = M.bootstrap_ci(y, p, video, 200, 0.95, 0)
    auc, acc = roc_auc_score(y, p), accuracy_score(y, p >= 0.5)
    assert ci["auc_ci"][0] < auc < ci["auc_ci"][1]
    assert ci["acc_ci"][0] < acc < ci["acc_ci"][1]
    assert ci == M.bootstrap_ci(y, p, video, 200, 0.95, 0)  # seeded


def test_eps_tags_are_readable_and_dot_free():
    assert eps_tag(2 / 255) == "eps2"
    assert eps_tag(0.5 / 255) == "eps0p5"


def test_balanced_accuracy_is_one_half_for_any_constant_prediction():
    y = np.array([0] * 20 + [1] * 80)  # 80% fake: a constant "fake" has 80% plain accuracy
    for const in (0.0, 1.0):
        p = np.full(100, const)
        assert M.balanced_accuracy(y, p) == 0.5
    m = M.frame_metrics(y, np.ones(100))
    assert m["acc"] == 0.8 and m["bacc"] == 0.5 and m["acc_fake"] == 1.0 and m["acc_real"] == 0.0
