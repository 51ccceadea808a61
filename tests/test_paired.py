"""The paired comparison's calibration: false findings under the null, power, seed and cluster variance."""

import numpy as np
import pytest

from robustdf.evaluate.metrics import balanced_accuracy_rows
from robustdf.evaluate.paired import paired_seed_difference

N_CLUSTERS, VIDEOS, FRAMES = 24, 4, 3  # per cluster: one original and three fakes, three frames each


def _corpus(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, cluster ids and a common per-frame difficulty (cluster + video + frame parts)."""
    n = N_CLUSTERS * VIDEOS * FRAMES
    cluster = np.repeat(np.arange(N_CLUSTERS), VIDEOS * FRAMES)
    y = np.tile(np.repeat([0] + [1] * (VIDEOS - 1), FRAMES), N_CLUSTERS)
    difficulty = (np.repeat(rng.normal(0, 0.8, N_CLUSTERS), VIDEOS * FRAMES)
                  + np.repeat(rng.normal(0, 0.5, N_CLUSTERS * VIDEOS), FRAMES) + rng.normal(0, 0.3, n))
    return y, cluster, difficulty


def _model(rng: np.random.Generator, y: np.ndarray, difficulty: np.ndarray, shift: float) -> np.ndarray:
    """Fake-probabilities of one trained model: its seed's offset, the common difficulty, its own frame noise."""
    offset = rng.normal(0, 0.35)
    logit = (2 * y - 1) * (1.2 + shift + offset - difficulty) + rng.normal(0, 0.6, len(y))
    return 1 / (1 + np.exp(-logit))


def _bacc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return balanced_accuracy_rows(y, p, 0.5)


def _finding_rate(n_seeds: int, shift: float, replicates: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    found = 0
    for r in range(replicates):
        y, cluster, difficulty = _corpus(rng)
        a = [_model(rng, y, difficulty, 0.0) for _ in range(n_seeds)]
        b = [_model(rng, y, difficulty, shift) for _ in range(n_seeds)]
        found += paired_seed_difference(y, cluster, a, b, _bacc, 100, 0.95, r)["finding"]
    return found / replicates


@pytest.mark.parametrize("n_seeds", [3, 5, 10])
def test_false_finding_rate_under_the_null_is_at_most_nominal(n_seeds):
    # 400 replicates: a method at 0.10 passes this with probability < 0.5%, one at 0.05 fails it with < 1%
    assert _finding_rate(n_seeds, 0.0, 400, n_seeds) <= 0.07


def test_a_true_difference_is_found_at_ten_seeds():
    # +0.7 logit on every frame: about +5 points of balanced accuracy
    assert _finding_rate(10, 0.7, 40, 99) >= 0.8


def test_three_seeds_agreeing_against_one_keep_zero_inside_through_the_seed_variance():
    rng = np.random.default_rng(0)
    y, cluster, difficulty = _corpus(rng)
    base = _model(rng, y, difficulty, 0.0)
    better, worse = _model(rng, y, difficulty, 3.0), _model(rng, y, difficulty, -0.8)
    res = paired_seed_difference(y, cluster, [base] * 4, [better, better, better, worse], _bacc, 200, 0.95, 0)
    assert max(res["per_seed"]) > 0 > min(res["per_seed"]) and res["diff"] > 0
    assert res["lo"] < 0 < res["hi"] and not res["finding"]
    # the test-sampling part alone would call it: the seed spread is what keeps zero inside
    assert res["diff"] - 1.96 * res["test_se"] > 0


def test_duplicating_the_videos_of_every_cluster_does_not_narrow_the_interval():
    rng = np.random.default_rng(1)
    y, cluster, difficulty = _corpus(rng)
    a = [_model(rng, y, difficulty, 0.0) for _ in range(5)]
    b = [_model(rng, y, difficulty, 0.2) for _ in range(5)]
    once = paired_seed_difference(y, cluster, a, b, _bacc, 400, 0.95, 0)
    twice = paired_seed_difference(np.r_[y, y], np.r_[cluster, cluster], [np.r_[s, s] for s in a],
                                   [np.r_[s, s] for s in b], _bacc, 400, 0.95, 0)
    assert twice["diff"] == pytest.approx(once["diff"])
    assert twice["hi"] - twice["lo"] >= 0.95 * (once["hi"] - once["lo"])
    assert twice["test_se"] >= 0.9 * once["test_se"]


def test_one_seed_gives_no_interval_and_no_finding():
    rng = np.random.default_rng(2)
    y, cluster, difficulty = _corpus(rng)
    res = paired_seed_difference(y, cluster, [_model(rng, y, difficulty, 0.0)], [_model(rng, y, difficulty, 3.0)],
                                 _bacc, 50, 0.95, 0)
    assert res["diff"] > 0 and np.isnan(res["lo"]) and np.isnan(res["mde"]) and not res["finding"]


def test_detectable_size_shrinks_with_more_seeds():
    rng = np.random.default_rng(3)
    y, cluster, difficulty = _corpus(rng)
    models = [(_model(rng, y, difficulty, 0.0), _model(rng, y, difficulty, 0.0)) for _ in range(10)]
    mde = [paired_seed_difference(y, cluster, [m[0] for m in models[:s]], [m[1] for m in models[:s]], _bacc, 200,
                                  0.95, 0)["mde"] for s in (3, 10)]
    assert 0 < mde[1] < mde[0]
