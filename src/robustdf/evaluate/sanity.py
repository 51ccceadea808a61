"""Automatic checks that a robustness evaluation is not fooled (Carlini et al. 2019; Croce & Hein 2020).

Each check runs per model on robust balanced accuracy (bacc) and names the claim it would undermine:

- ``monotone_in_eps``: a larger eps is never less effective for the iterative attacks and the per-frame worst
  case (else an attack failed to converge); FGSM's overshoot (one signed step can do worse at a larger eps) is
  reported as information, not a failure;
- ``iterative_beats_fgsm``: PGD and APGD are at least as strong as one FGSM step;
- ``whitebox_beats_transfer``: the strongest white-box attack beats the other model's transferred examples;
- ``no_gradient_masking``: Square, run on the frames every gradient attack left correct, breaks at most
  ``tolerance`` of all frames there;
- ``breaks_at_large_eps``: accuracy under PGD at ``attack.pgd.sanity_eps`` is near zero.

A check whose inputs are missing is "not evaluated" (``passed`` None), never passed.
"""

from __future__ import annotations

import math
from typing import Any

ITERATIVE = ("pgd", "apgd")
UNDERMINES = {
    "monotone_in_eps": "the robust-accuracy curves (an attack did not converge)",
    "iterative_beats_fgsm": "robustness to iterative attacks (too few steps or a bad step size)",
    "whitebox_beats_transfer": "the white-box robustness numbers (gradients are uninformative)",
    "no_gradient_masking": "any robustness gain (gradient masking: gradients hide adversarial examples)",
    "breaks_at_large_eps": "the attack implementation or the model (an unbounded attack must succeed)",
}


def eps_key(eps: float) -> str:
    """Readable, dot-free key for an eps: 2/255 -> 'eps2', 0.5/255 -> 'eps0p5'."""
    v = round(eps * 255, 2)
    return "eps" + (f"{v:g}".replace(".", "p"))


def _bacc(metrics: dict[str, Any], cond: str) -> float:
    return metrics[cond]["bacc"] if cond in metrics else math.nan


def _check(name: str, failures: list[str], missing: str = "", info: str = "") -> dict[str, Any]:
    """``passed``: True, False, or None (not evaluated: ``missing`` says which inputs are absent)."""
    detail = f"not evaluated: {missing}" if missing else "; ".join(failures)
    return {"check": name, "passed": None if missing else not failures, "detail": detail, "info": info,
            "undermines": UNDERMINES[name]}


def _rises(metrics: dict[str, Any], cond: str, keys: list[str], tolerance: float) -> list[str]:
    vals = [_bacc(metrics, f"{cond}_{k}") for k in keys]
    return [f"{cond}: {vals[i]:.3f} at {keys[i]} > {vals[i - 1]:.3f} at {keys[i - 1]}"
            for i in range(1, len(keys)) if vals[i] > vals[i - 1] + tolerance]


def monotone_in_eps(metrics: dict[str, Any], keys: list[str], tolerance: float) -> dict[str, Any]:
    conds = [c for c in (*ITERATIVE, "worst") if all(f"{c}_{k}" in metrics for k in keys)]
    if len(keys) < 2 or not conds:
        return _check("monotone_in_eps", [], "needs two eps and an iterative attack or the worst case")
    fails = [f for c in conds for f in _rises(metrics, c, keys, tolerance)]
    overshoot = _rises(metrics, "fgsm", keys, tolerance) if all(f"fgsm_{k}" in metrics for k in keys) else []
    info = ("FGSM overshoots (one signed step, not a convergence failure): " + "; ".join(overshoot)
            if overshoot else "")
    return _check("monotone_in_eps", fails, info=info)


def iterative_beats_fgsm(metrics: dict[str, Any], keys: list[str], tolerance: float) -> dict[str, Any]:
    pairs = [(a, k) for k in keys for a in ITERATIVE if f"{a}_{k}" in metrics and f"fgsm_{k}" in metrics]
    if not pairs:
        return _check("iterative_beats_fgsm", [], "needs FGSM and PGD or APGD at the same eps")
    fails = [f"{a} {_bacc(metrics, f'{a}_{k}'):.3f} > fgsm {_bacc(metrics, f'fgsm_{k}'):.3f} at {k}"
             for a, k in pairs if _bacc(metrics, f"{a}_{k}") > _bacc(metrics, f"fgsm_{k}") + tolerance]
    return _check("iterative_beats_fgsm", fails)


def whitebox_beats_transfer(metrics: dict[str, Any], keys: list[str], tolerance: float) -> dict[str, Any]:
    fails, ran = [], False
    for k in keys:
        transfer = [v["bacc"] for c, v in metrics.items() if c.startswith("transfer_") and c.endswith(f"_{k}")]
        if transfer and f"worst_{k}" in metrics:
            ran = True
            if _bacc(metrics, f"worst_{k}") > min(transfer) + tolerance:
                fails.append(f"white-box {_bacc(metrics, f'worst_{k}'):.3f} > transfer {min(transfer):.3f} at {k}")
    return _check("whitebox_beats_transfer", fails, "" if ran else "needs transferred examples and the worst case")


def no_gradient_masking(masking: dict[str, Any], keys: list[str], tolerance: float) -> dict[str, Any]:
    present = [k for k in keys if k in masking]
    if not present:
        return _check("no_gradient_masking", [], "needs Square on the gradient attacks' survivors")
    fails = [f"Square broke {masking[k]['square_broke']} frames ({100 * masking[k]['share']:.1f}%) that every "
             f"gradient attack left correct at {k}" for k in present if masking[k]["share"] > tolerance]
    return _check("no_gradient_masking", fails)


def breaks_at_large_eps(metrics: dict[str, Any], sanity_eps: float, max_acc: float) -> dict[str, Any]:
    cond = f"pgd_{eps_key(sanity_eps)}"
    if cond not in metrics:
        return _check("breaks_at_large_eps", [], f"needs PGD at {eps_key(sanity_eps)}")
    acc = metrics[cond]["acc"]
    fails = [f"accuracy {acc:.3f} > {max_acc} under PGD at {eps_key(sanity_eps)}"] if acc > max_acc else []
    return _check("breaks_at_large_eps", fails)


def sanity_checks(metrics: dict[str, Any], masking: dict[str, Any], eps_list: list[float], sanity_eps: float,
                  tolerance: float, max_acc_at_sanity_eps: float) -> list[dict[str, Any]]:
    """Checks of one model's condition metrics (keys like ``pgd_eps2``, ``worst_eps2``, ``transfer_pgd_eps2``)
    and its masking counts per eps key (:func:`robustdf.attack.masking.square_extra`)."""
    keys = [eps_key(e) for e in eps_list]
    return [monotone_in_eps(metrics, keys, tolerance), iterative_beats_fgsm(metrics, keys, tolerance),
            whitebox_beats_transfer(metrics, keys, tolerance), no_gradient_masking(masking, keys, tolerance),
            breaks_at_large_eps(metrics, sanity_eps, max_acc_at_sanity_eps)]
