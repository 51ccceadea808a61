"""GR must be the paper's update, proven against double backpropagation."""

import pytest
import torch
from torch import nn

from robustdf.train.gr import GradientRegularizer, PerturbationInjection, frozen_bn_stats, resolve_layer


class Tiny(nn.Module):
    """conv -> BN -> ReLU ('shallow', hooked at `shallow`) -> conv -> pool -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.shallow = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh())
        self.deep = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(6, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deep(self.shallow(x))


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    net = Tiny().double()
    x = torch.rand(6, 3, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    return net, x, y


def _grads(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def exact_gr_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """d/dtheta [L + lam * sum_i ||grad_{s_i} L||] (per-sample norms) by double backprop through explicit
    zero perturbations of mu, sigma."""
    pim = PerturbationInjection(net.shallow)
    pim.mode = "probe"
    with frozen_bn_stats(net):
        loss = nn.functional.cross_entropy(net(x), y)
    d_mu, d_sigma = pim.probe
    g_mu, g_sigma = torch.autograd.grad(loss, (d_mu, d_sigma), create_graph=True)
    penalty = torch.sqrt(g_mu.flatten(1).square().sum(1) + g_sigma.flatten(1).square().sum(1)).sum()
    net.zero_grad()
    (loss + lam * penalty).backward()
    pim.remove()
    return _grads(net)


def gr_gradient(net: nn.Module, x: torch.Tensor, y: torch.Tensor, r: float, alpha: float) -> tuple[torch.Tensor, float]:
    gr = GradientRegularizer(net, "shallow", r=r, alpha=alpha)
    net.zero_grad()
    with frozen_bn_stats(net):  # same BN behaviour as the exact reference (batch stats, no update)
        _, norm = gr.backward(net, x, y, nn.functional.cross_entropy)
    gr.pim.remove()
    return _grads(net), norm


def test_gr_matches_double_backprop_with_error_linear_in_r():
    net, x, y = _setup()
    lam = 5e-4  # alpha = lam / r stays below 1 for every r
    plain = exact_gr_gradient(net, x, y, 0.0)
    exact = exact_gr_gradient(net, x, y, lam)
    assert (exact - plain).norm() > 1e-6  # the penalty really changes the gradient
    errors = []
    for r in (0.1, 0.01, 0.001):
        approx, _ = gr_gradient(net, x, y, r=r, alpha=lam / r)
        # error of the regularizer's contribution, relative to its size
        errors.append(float(((approx - plain) - (exact - plain)).norm() / (exact - plain).norm()))
    assert errors[2] < 0.02, errors
    # first-order Taylor: error shrinks roughly linearly with r (factor ~10 per decade)
    assert 4 < errors[0] / errors[1] < 25 and 4 < errors[1] / errors[2] < 25, errors


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75, 1.0])
def test_every_alpha_up_to_one_matches_double_backprop(alpha):
    """The update for alpha is the gradient of L + alpha * r * ||grad_s L||, alpha = 1 (SAM-like) included."""
    net, x, y = _setup()
    r = 1e-3
    plain = exact_gr_gradient(net, x, y, 0.0)
    exact = exact_gr_gradient(net, x, y, alpha * r)
    approx, norm = gr_gradient(net, x, y, r=r, alpha=alpha)
    assert norm > 0
    assert float(((approx - plain) - (exact - plain)).norm() / (exact - plain).norm()) < 0.02


def test_alpha_zero_equals_plain_gradient_exactly():
    net, x, y = _setup()
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    plain = _grads(net)
    net2, _, _ = _setup()
    gr = GradientRegularizer(net2, "shallow", r=0.05, alpha=0.0)
    net2.zero_grad()
    gr.backward(net2, x, y, nn.functional.cross_entropy)
    assert torch.equal(_grads(net2), plain)


def test_grad_s_is_nonzero_and_matches_finite_differences():
    net, x, y = _setup()
    net.eval()  # deterministic forward for finite differences
    pim = PerturbationInjection(net.shallow)
    pim.mode = "probe"
    loss = nn.functional.cross_entropy(net(x), y)
    d_mu, d_sigma = pim.probe
    g_mu, g_sigma = torch.autograd.grad(loss, (d_mu, d_sigma))
    assert g_mu.abs().sum() > 0 and g_sigma.abs().sum() > 0
    h = 1e-6
    for grad, which in ((g_mu, 0), (g_sigma, 1)):
        for idx in [(0, 0, 0, 0), (3, 2, 0, 0), (5, 3, 0, 0)]:
            vals = []
            for sign in (1, -1):
                delta = [torch.zeros_like(g_mu), torch.zeros_like(g_sigma)]
                delta[which][idx] = sign * h
                pim.mode, pim.delta = "inject", tuple(delta)
                with torch.no_grad():
                    vals.append(float(nn.functional.cross_entropy(net(x), y)))
            fd = (vals[0] - vals[1]) / (2 * h)
            assert abs(fd - float(grad[idx])) < 1e-6 * max(1.0, abs(fd)), (which, idx, fd, float(grad[idx]))
    pim.remove()


def test_batchnorm_running_stats_change_exactly_once_per_step():
    net, x, y = _setup()
    bn = net.shallow[1]
    gr = GradientRegularizer(net, "shallow", r=0.05, alpha=0.5)
    before_mean, before_n = bn.running_mean.clone(), int(bn.num_batches_tracked)
    gr.backward(net, x, y, nn.functional.cross_entropy)
    assert int(bn.num_batches_tracked) == before_n + 1
    # the one update equals a plain forward's update
    net2, _, _ = _setup()
    net2(x)
    assert torch.allclose(bn.running_mean, net2.shallow[1].running_mean)
    assert not torch.equal(bn.running_mean, before_mean)


def test_pim_is_off_outside_the_gr_step():
    net, x, y = _setup()
    net.eval()
    ref = net(x)
    gr = GradientRegularizer(net, "shallow", r=0.5, alpha=0.5)
    gr.backward(net, x, y, nn.functional.cross_entropy)
    net.eval()
    assert gr.pim.mode == "off"
    out = net(x)
    assert out.shape == ref.shape  # weights changed? no: backward only fills .grad
    assert torch.equal(out, ref)


def test_shallow_layer_by_name_or_feature_index():
    import timm

    m = timm.create_model("efficientnet_b0", num_classes=2)
    assert resolve_layer(m, "blocks.1") is m.blocks[1]
    assert resolve_layer(m, "1") is m.blocks[1]
    for bad in ("blocks.99", "9"):
        try:
            resolve_layer(m, bad)
        except ValueError as err:
            assert "shallow_layer" in str(err)
        else:
            raise AssertionError(bad)


def _injected(net: nn.Module, run) -> tuple[torch.Tensor, torch.Tensor]:
    """(Delta_mu, Delta_sigma) that ``run()`` really injected, recovered from the shallow output of its probe
    pass f and of its injecting pass f' = f + D_mu + D_sigma * (f - mu) / sigma, as seen by the next module."""
    seen = []
    handle = net.deep.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach()))
    try:
        run()
    finally:
        handle.remove()
    f, f2 = seen
    mu, sigma = PerturbationInjection.stats(f)
    d_mu = (f2 - f).mean(dim=(2, 3), keepdim=True)
    z = (f - mu) / sigma
    d_sigma = ((f2 - f - d_mu) * z).sum(dim=(2, 3), keepdim=True) / (z * z).sum(dim=(2, 3), keepdim=True)
    return d_mu, d_sigma


def _norms(delta: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return torch.cat([d.flatten(1) for d in delta], 1).norm(dim=1)


@pytest.mark.parametrize("batch", [4, 16])
def test_every_frame_is_moved_by_exactly_r_whatever_the_batch_size(batch):
    torch.manual_seed(1)
    net = Tiny().double()
    x = torch.rand(batch, 3, 8, 8, dtype=torch.float64)
    y = torch.arange(batch) % 2
    gr = GradientRegularizer(net, "shallow", r=0.05, alpha=0.5)
    net.train()
    delta = _injected(net, lambda: gr.backward(net, x, y, nn.functional.cross_entropy))
    assert torch.allclose(_norms(delta), torch.full((batch,), 0.05, dtype=torch.float64), rtol=1e-9)


def test_a_frames_delta_does_not_depend_on_its_batch_and_equals_explains():
    from robustdf.evaluate.explain import why_quantities

    torch.manual_seed(2)
    net = Tiny().eval()
    u8 = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    y = torch.arange(16) % 2
    x = u8.float() / 255
    gr = GradientRegularizer(net, "shallow", r=0.05, alpha=0.5)
    small = _injected(net, lambda: gr.backward(net, x[:4], y[:4], nn.functional.cross_entropy))
    large = _injected(net, lambda: gr.backward(net, x, y, nn.functional.cross_entropy))
    why = _injected(net, lambda: why_quantities(net, [(u8, y)], "shallow", 0.05, torch.device("cpu")))
    for a, b in zip(small, large, strict=True):
        assert torch.allclose(a, b[:4], rtol=1e-4, atol=1e-7)
    for a, b in zip(large, why, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7)
    assert torch.allclose(_norms(why), torch.full((16,), 0.05), rtol=1e-4)


def test_loss_scale_changes_neither_the_update_nor_the_logged_norm():
    results = []
    for scale in (None, 1024.0):
        net, x, y = _setup()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=scale) if scale else None
        gr = GradientRegularizer(net, "shallow", r=0.05, alpha=0.5)
        net.zero_grad()
        _, norm = gr.backward(net, x, y, nn.functional.cross_entropy, scaler)
        if scaler is not None:
            assert scaler.get_scale() == 1024.0
            raw = _grads(net)
            scaler.unscale_(opt)
            assert torch.allclose(raw / 1024, _grads(net), rtol=1e-12)  # .grad really was scaled
        results.append((_grads(net), norm))
        gr.pim.remove()
    (g1, n1), (g2, n2) = results
    assert n1 > 0 and n2 == pytest.approx(n1, rel=1e-9)
    assert torch.allclose(g1, g2, rtol=1e-9, atol=1e-15)
