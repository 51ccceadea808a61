"""Each attack sanity check fires on crafted metrics, stays silent on sound ones, and is 'not evaluated' (never
passed) when its inputs are missing."""

import pytest

from robustdf.evaluate.sanity import sanity_checks

EPS = [1 / 255, 2 / 255, 4 / 255]
KEYS = ["eps1", "eps2", "eps4"]


def _sound() -> tuple[dict, dict]:
    """Metrics of a sound evaluation: curves fall with eps, PGD/APGD beat FGSM, white-box beats transfer."""
    m = {"clean": {"bacc": 0.9, "acc": 0.9}, "pgd_eps32": {"bacc": 0.0, "acc": 0.0}}
    for i, k in enumerate(KEYS):
        m[f"fgsm_{k}"] = {"bacc": 0.6 - 0.1 * i}
        for a in ("pgd", "apgd", "gradient", "worst"):
            m[f"{a}_{k}"] = {"bacc": 0.4 - 0.1 * i}
        m[f"transfer_pgd_{k}"] = {"bacc": 0.8 - 0.1 * i}
    masking = {k: {"survivors": 10, "square_broke": 0, "share": 0.0} for k in KEYS}
    return m, masking


def _checks(m: dict, masking: dict) -> dict[str, dict]:
    return {c["check"]: c for c in sanity_checks(m, masking, EPS, 32 / 255, 0.02, 0.05)}


def test_a_sound_evaluation_passes_every_check():
    assert {n: c["passed"] for n, c in _checks(*_sound()).items()} == dict.fromkeys(
        ["monotone_in_eps", "iterative_beats_fgsm", "whitebox_beats_transfer", "no_gradient_masking",
         "breaks_at_large_eps"], True)


def _set(m: dict, cond: str, bacc: float) -> None:
    m[cond] = {**m.get(cond, {}), "bacc": bacc}


@pytest.mark.parametrize("check, spoil", [
    ("monotone_in_eps", lambda m, k: _set(m, "pgd_eps4", 0.35)),
    ("monotone_in_eps", lambda m, k: _set(m, "worst_eps2", 0.5)),
    ("iterative_beats_fgsm", lambda m, k: _set(m, "apgd_eps1", 0.7)),
    ("whitebox_beats_transfer", lambda m, k: _set(m, "worst_eps1", 0.9)),
    ("no_gradient_masking", lambda m, k: k["eps2"].update(square_broke=3, share=0.03)),
    ("breaks_at_large_eps", lambda m, k: m["pgd_eps32"].update(acc=0.3)),
])
def test_each_check_fires_on_crafted_metrics(check, spoil):
    m, masking = _sound()
    spoil(m, masking)
    got = _checks(m, masking)
    assert got[check]["passed"] is False and got[check]["detail"]
    assert all(c["passed"] for n, c in got.items() if n != check)  # the others stay silent


def test_fgsm_overshoot_is_information_not_a_failure():
    m, masking = _sound()
    _set(m, "fgsm_eps4", 0.7)  # one signed step doing worse at a larger eps
    got = _checks(m, masking)["monotone_in_eps"]
    assert got["passed"] is True and "FGSM overshoots" in got["info"] and "fgsm" in got["info"]


def test_missing_inputs_are_not_evaluated_never_passed():
    got = _checks({"clean": {"bacc": 0.9, "acc": 0.9}}, {})
    assert {n: c["passed"] for n, c in got.items()} == dict.fromkeys(got, None)
    assert all(c["detail"].startswith("not evaluated") for c in got.values())
