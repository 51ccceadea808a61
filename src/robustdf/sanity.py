"""Automatic checks that a robustness evaluation is not fooled (Carlini et al. 2019; Croce & Hein 2020).

Each check runs per model on robust balanced accuracy (bacc) and names the claim it would undermine:

- ``monotone_in_eps``: a larger eps is never less effective (else an attack failed to converge);
- ``iterative_beats_fgsm``: PGD and APGD are at least as strong as one FGSM step;
- ``whitebox_beats_transfer``: the strongest white-box attack beats the other model's transferred examples;
- ``no_gradient_masking``: the gradient-free Square attack is not stronger than the best gradient-based one;
- ``breaks_at_large_eps``: accuracy under PGD at ``attack.sanity_eps`` is near zero.
"""

from __future__ import annotations

import math
from typing import Any

GRADIENT_ATTACKS = ("fgsm", "pgd", "apgd")
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


def _check(name: str, failures: list[str], ran: bool) -> dict[str, Any]:
    return {"check": name, "passed": None if not ran else not failures, "detail": "; ".join(failures),
            "undermines": UNDERMINES[name]}


def sanity_checks(metrics: dict[str, Any], eps_list: list[float], attacks: list[str], sanity_eps: float,
                  tolerance: float, max_acc_at_sanity_eps: float) -> list[dict[str, Any]]:
    """Checks of one model's condition metrics (keys like ``pgd_eps2``, ``worst_eps2``, ``transfer_pgd_eps2``).

    ``passed`` is None where the check could not run (e.g. no Square attack was configured).
    """
    keys = [eps_key(e) for e in eps_list]
    out = []

    fails = []
    for a in [*attacks, "worst"]:
        vals = [_bacc(metrics, f"{a}_{k}") for k in keys]
        for i in range(1, len(keys)):
            if vals[i] > vals[i - 1] + tolerance:
                fails.append(f"{a}: {vals[i]:.3f} at {keys[i]} > {vals[i - 1]:.3f} at {keys[i - 1]}")
    out.append(_check("monotone_in_eps", fails, True))

    fails, ran = [], "fgsm" in attacks and any(a in attacks for a in ("pgd", "apgd"))
    for k in keys:
        for a in ("pgd", "apgd"):
            if a in attacks and _bacc(metrics, f"{a}_{k}") > _bacc(metrics, f"fgsm_{k}") + tolerance:
                fails.append(f"{a} {_bacc(metrics, f'{a}_{k}'):.3f} > fgsm {_bacc(metrics, f'fgsm_{k}'):.3f} at {k}")
    out.append(_check("iterative_beats_fgsm", fails, ran))

    fails, ran = [], any(c.startswith("transfer_") for c in metrics)
    for k in keys:
        transfer = [v["bacc"] for c, v in metrics.items() if c.startswith("transfer_") and c.endswith(f"_{k}")]
        if transfer and _bacc(metrics, f"worst_{k}") > min(transfer) + tolerance:
            fails.append(f"white-box {_bacc(metrics, f'worst_{k}'):.3f} > transfer {min(transfer):.3f} at {k}")
    out.append(_check("whitebox_beats_transfer", fails, ran))

    fails, ran = [], "square" in attacks and any(a in attacks for a in GRADIENT_ATTACKS)
    for k in keys:
        grad = [_bacc(metrics, f"{a}_{k}") for a in GRADIENT_ATTACKS if a in attacks]
        if ran and _bacc(metrics, f"square_{k}") < min(grad) - tolerance:
            fails.append(f"square {_bacc(metrics, f'square_{k}'):.3f} < best gradient attack {min(grad):.3f} at {k}")
    out.append(_check("no_gradient_masking", fails, ran))

    cond = f"pgd_{eps_key(sanity_eps)}"
    ran = cond in metrics
    fails = []
    if ran and metrics[cond]["acc"] > max_acc_at_sanity_eps:
        acc = metrics[cond]["acc"]
        fails.append(f"accuracy {acc:.3f} > {max_acc_at_sanity_eps} under PGD at {eps_key(sanity_eps)}")
    out.append(_check("breaks_at_large_eps", fails, ran))
    return out
