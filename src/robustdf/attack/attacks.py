"""L-infinity evasion attacks on [0, 1] pixels (normalisation lives inside the model).

Each attack is a small class with the uniform call ``attack(model, x, y, eps) -> x_adv``:
untargeted on the true label ``y``, the model in eval mode, results clipped to [0, 1] and to the
eps-ball around ``x``. Candidates are judged on the image that will be stored (``store``: e.g. rounded to
8-bit levels inside the ball, see :func:`robustdf.attack.artifacts.stored_image`), in float32, so the stored
artifact scores exactly the margin the attack selected (``attack.margin``). Following the evaluation
protocol of Carlini et al. (2019) and Croce & Hein (2020), every attack returns, per image, the worst
case (lowest margin) over every point it evaluated, every restart and every loss, starting from the
clean image itself, so more steps, restarts or losses can never give a weaker result. Square
(Andriushchenko et al. 2020) needs no gradient at all and so exposes gradient masking. Random draws
come from CPU generators seeded by the attack seed and the restart index: the same seed gives
identical tensors on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustdf.params import LOSSES


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample ``z_y - max_{j != y} z_j``: negative when the sample is misclassified (0 is a tie)."""
    logits = logits.float()
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return true - other


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y, reduction="none")


def _neg_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -margin(logits, y)


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_LOSS_FNS: dict[str, Loss] = {"ce": _ce, "margin": _neg_margin}  # both are maximised by the attacks


def _loss_fns(losses: Iterable[str]) -> list[Loss]:
    losses = list(losses)
    unknown = [name for name in losses if name not in _LOSS_FNS]
    if not losses or unknown:
        raise ValueError(f"losses must be a non-empty list from {list(LOSSES)}, got {losses}")
    return [_LOSS_FNS[name] for name in losses]


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              loss_fn: Loss) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample loss, margin and the loss gradient w.r.t. the input: one forward and one backward."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        loss = loss_fn(logits, y)
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), margin(logits.detach(), y), grad.detach()


@torch.no_grad()
def _query(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample margin at ``x``: one forward, no gradient."""
    return margin(model(x), y)


def _generator(seed: int, restart: int) -> torch.Generator:
    """CPU generator for one restart, seeded from (attack seed, restart index)."""
    state = np.random.SeedSequence([seed, restart]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _uniform(shape: torch.Size, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Uniform noise in [-1, 1], drawn on CPU (the same on every device)."""
    return (torch.rand(shape, generator=g) * 2 - 1).to(like)


Store = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (x_adv, x, eps) -> the image that is stored


def as_computed(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    """The candidate itself (no storage rounding)."""
    return x_adv


class WorstCase:
    """Per image, the lowest-margin stored image seen so far (a misclassified point always beats a correct one).

    Every candidate is first mapped by ``store`` to the image the artifact will hold (e.g. rounded to 8-bit
    levels inside the eps-ball) and its margin is measured there, in float32, so what the attack selects is
    exactly what evaluation scores. Starts from the clean images, so the result is never weaker than ``x``.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, store: Store) -> None:
        self.model, self.x0, self.y, self.eps, self.store = model, x, y, eps, store
        self.x, self.margin = x.clone(), _query(model, x, y)

    def offer(self, x_new: torch.Tensor, idx: torch.Tensor | None = None,
              margin_new: torch.Tensor | None = None) -> torch.Tensor:
        """Keep the stored ``x_new`` where its margin is lower; ``idx`` maps its rows to images (default: all).

        ``margin_new`` may be passed only for candidates that are already stored images. Returns their margins.
        """
        idx = torch.arange(len(self.x), device=self.x.device) if idx is None else idx
        if margin_new is None:
            x_new = self.store(x_new, self.x0[idx], self.eps)
            margin_new = _query(self.model, x_new, self.y[idx])
        better = margin_new < self.margin[idx]
        self.margin[idx[better]] = margin_new[better]
        self.x[idx[better]] = x_new[better]
        return margin_new


class Attack:
    """Shared call: ``attack(model, x, y, eps) -> x_adv`` (stored images); ``margin`` holds their margins."""

    name = ""

    def __init__(self, store: Store = as_computed) -> None:
        self.store = store
        self.margin: torch.Tensor | None = None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        best = WorstCase(model, x, y, eps, self.store)
        if eps > 0:
            self.run(model, x, y, eps, best)
        self.margin = best.margin
        return best.x

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, best: WorstCase) -> None:
        raise NotImplementedError


class FGSM(Attack):
    """Fast Gradient Sign Method (Goodfellow et al. 2015): one signed gradient step of size eps (kept where it
    lowers the margin, like every attack here)."""

    name = "fgsm"

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, best: WorstCase) -> None:
        _, _, grad = _evaluate(model, x, y, _ce)
        best.offer(_project(x + eps * grad.sign(), x, eps))


class PGD(Attack):
    """Projected gradient descent (Madry et al. 2018) with a fixed step ``rel_step_size * eps``.

    Runs every loss in ``losses`` ("ce": cross-entropy; "margin": CW-style ``z_true - z_other``,
    minimised) from ``restarts`` starts (uniform in the ball if ``random_start``, seeded by
    ``seed`` and the restart index) and returns per image the lowest-margin iterate of all runs.
    """

    name = "pgd"

    def __init__(self, steps: int = 10, rel_step_size: float = 0.25, random_start: bool = True, seed: int = 0,
                 restarts: int = 1, losses: Iterable[str] = ("ce", "margin"), store: Store = as_computed) -> None:
        super().__init__(store)
        self.steps, self.rel_step_size, self.random_start, self.seed = steps, rel_step_size, random_start, seed
        self.restarts, self.losses = restarts, tuple(losses)
        self._loss_fns = _loss_fns(self.losses)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, best: WorstCase) -> None:
        step = self.rel_step_size * eps
        for r in range(self.restarts):
            start = x
            if self.random_start:
                start = _project(x + eps * _uniform(x.shape, _generator(self.seed, r), x), x, eps)
            for loss_fn in self._loss_fns:
                x_adv = start
                for _ in range(self.steps):
                    _, _, grad = _evaluate(model, x_adv, y, loss_fn)
                    best.offer(x_adv)
                    x_adv = _project(x_adv + step * grad.sign(), x, eps)
                best.offer(x_adv)


def apgd_checkpoints(n_iter: int) -> list[int]:
    """Iterations at which APGD may halve its step (Croce & Hein 2020, Sec. 3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(round(q * n_iter, 6)) for q in p if q <= 1})


class APGD(Attack):
    """Auto-PGD (Croce & Hein 2020): momentum, step size halved per sample at checkpoints.

    ``losses``: "ce" (cross-entropy) and/or "margin" (CW-style ``z_true - z_other``, minimised).
    The paper's DLR loss needs at least three classes; with our two logits it reduces to a
    rescaled margin, so "margin" takes its role. Each restart starts uniformly in the ball (seeded
    by ``seed`` and the restart index); the step schedule follows each run's own loss, and the
    result is per image the lowest-margin iterate over all runs.
    """

    name = "apgd"

    def __init__(self, steps: int = 10, rho: float = 0.75, momentum: float = 0.75, seed: int = 0,
                 restarts: int = 1, losses: Iterable[str] = ("ce",), store: Store = as_computed) -> None:
        super().__init__(store)
        self.steps, self.rho, self.momentum, self.seed = steps, rho, momentum, seed
        self.restarts, self.losses = restarts, tuple(losses)
        self._loss_fns = _loss_fns(self.losses)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, best: WorstCase) -> None:
        for r in range(self.restarts):
            start = _project(x + eps * _uniform(x.shape, _generator(self.seed, r), x), x, eps)
            for loss_fn in self._loss_fns:
                self._run(model, x, y, eps, start, loss_fn, best)

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, start: torch.Tensor,
             loss_fn: Loss, best: WorstCase) -> None:
        n = len(x)
        checkpoints = set(apgd_checkpoints(self.steps))
        eta = torch.full((n,) + (1,) * (x.dim() - 1), 2 * eps, device=x.device, dtype=x.dtype)
        loss, _, grad = _evaluate(model, start, y, loss_fn)
        best.offer(start)
        best_loss, x_best, grad_best = loss.clone(), start.clone(), grad.clone()
        x_prev, x_cur = start, start
        successes = torch.zeros(n, device=x.device)
        last_ck, reduced_last = 0, torch.zeros(n, dtype=torch.bool, device=x.device)
        best_at_last_ck, prev_loss = best_loss.clone(), loss
        for k in range(1, self.steps + 1):
            z = _project(x_cur + eta * grad.sign(), x, eps)
            a = self.momentum if k > 1 else 1.0
            x_prev, x_cur = x_cur, _project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev), x, eps)
            best.offer(x_cur)
            if k == self.steps:
                break
            loss, _, grad = _evaluate(model, x_cur, y, loss_fn)
            improved = loss > best_loss
            successes += (loss > prev_loss).float()
            prev_loss = loss
            best_loss = torch.where(improved, loss, best_loss)
            x_best[improved], grad_best[improved] = x_cur[improved], grad[improved]
            if k in checkpoints:
                few = successes < self.rho * (k - last_ck)
                stalled = ~reduced_last & (best_at_last_ck >= best_loss)
                reduce = few | stalled
                eta[reduce] /= 2
                x_cur[reduce], grad[reduce] = x_best[reduce], grad_best[reduce]
                reduced_last, best_at_last_ck = reduce, best_loss.clone()
                successes.zero_()
                last_ck = k


def square_p(p_init: float, it: int, n_iters: int) -> float:
    """Fraction of pixels changed at iteration ``it`` (Andriushchenko et al. 2020, schedule for
    10 000 iterations, rescaled to ``n_iters``): ``p_init`` halved at fixed points."""
    it = int(it / n_iters * 10000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
                       (8000, 256), (10000, 512)):
        if it <= bound:
            return p_init / div
    return p_init


class Square(Attack):
    """Square Attack, L-infinity (Andriushchenko et al. 2020): score-based, no gradients.

    Starts from vertical stripes of +-eps, then per iteration proposes, for every image still
    classified correctly, a random square (side from the ``p_init`` schedule) set to +-eps per
    channel, kept only where it lowers the margin ``z_true - z_other``. ``queries`` counts model
    calls per image and restart, the initial stripes included; ``queries_made`` holds how many
    image-queries the last call actually made (fooled images stop querying).
    """

    name = "square"

    def __init__(self, queries: int = 1000, p_init: float = 0.05, restarts: int = 1, seed: int = 0,
                 store: Store = as_computed) -> None:
        super().__init__(store)
        self.queries, self.p_init, self.restarts, self.seed = queries, p_init, restarts, seed
        self.queries_made = 0

    @torch.no_grad()
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        self.queries_made = len(x)
        return super().__call__(model, x, y, eps)

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, best: WorstCase) -> None:
        for r in range(self.restarts):
            self._run(model, x, y, eps, _generator(self.seed, r), best)

    @staticmethod
    def _signs(n: int, c: int, g: torch.Generator, width: int = 1) -> torch.Tensor:
        """Random +-1 of shape (n, c, 1, width), drawn on CPU."""
        return torch.randint(0, 2, (n, c, 1, width), generator=g).float() * 2 - 1

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, g: torch.Generator,
             best: WorstCase) -> None:
        n, c, h, w = x.shape
        x_cur = self.store(_project(x + eps * self._signs(n, c, g, w).to(x), x, eps), x, eps)
        m_cur = best.offer(x_cur, margin_new=_query(model, x_cur, y))
        self.queries_made += n
        for it in range(1, self.queries):
            idx = (best.margin >= 0).nonzero().squeeze(1)  # images no run has fooled yet
            if len(idx) == 0:
                break
            s = min(max(round(math.sqrt(square_p(self.p_init, it, self.queries) * h * w)), 1), h - 1, w - 1)
            vh = int(torch.randint(0, h - s + 1, (1,), generator=g))
            vw = int(torch.randint(0, w - s + 1, (1,), generator=g))
            window = (slice(None), slice(None), slice(vh, vh + s), slice(vw, vw + s))
            cur, x_win = x_cur[idx], x[idx][window]
            signs = self._signs(len(idx), c, g).to(x)
            while True:  # redraw the signs of images whose square would change nothing
                new = (x_win + eps * signs).clamp(0, 1)
                same = ((new - cur[window]).abs() < 1e-7).flatten(1).all(1)
                if not same.any():
                    break
                signs[same] = self._signs(int(same.sum()), c, g).to(x)
            cand = cur.clone()
            cand[window] = new
            cand = self.store(cand, x[idx], eps)
            m_new = best.offer(cand, idx, _query(model, cand, y[idx]))
            self.queries_made += len(idx)
            better = m_new < m_cur[idx]
            x_cur[idx[better]], m_cur[idx[better]] = cand[better], m_new[better]


def build_attack(name: str, params: object, seed: int = 0, store: Store = as_computed) -> Attack:
    """Attack by name from the ``attack`` params group, selecting on the images ``store`` makes; unknown names are
    a clear error."""
    if name == "fgsm":
        return FGSM(store)
    if name == "pgd":
        c = params.pgd  # type: ignore[attr-defined]
        return PGD(c.steps, c.rel_step_size, c.random_start, seed, c.restarts, c.losses, store)
    if name == "apgd":
        c = params.apgd  # type: ignore[attr-defined]
        return APGD(c.steps, c.rho, seed=seed, restarts=c.restarts, losses=c.losses, store=store)
    if name == "square":
        c = params.square  # type: ignore[attr-defined]
        return Square(c.queries, c.p_init, c.restarts, seed, store)
    raise ValueError(f"unknown attack {name!r}; known: fgsm, pgd, apgd, square")
