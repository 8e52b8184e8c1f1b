"""Every registered model builds a network that keeps the score-network contract (see
``scorelab_builtins.models._net``), and trained-network sources give the oracle what they announce."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from scorelab.oracle import ScoreOracle
from scorelab.sources import ModelScore

SHAPES = {"conv": (1, 8, 8)}
FLAGS = ("noise_conditional", "energy", "second_order")


def _variants(host):
    """Each registered model with its defaults, and with each boolean option it has switched on."""
    out = []
    for name in host.names("model"):
        cls = host.get("model", name)
        fields = {f.name for f in dataclasses.fields(cls)}
        out.append((name, {}))
        out += [(name, {flag: True}) for flag in FLAGS if flag in fields]
        if {"noise_conditional", "energy"} <= fields:
            out.append((name, {"noise_conditional": True, "energy": True}))
    return out


def _perturbed(network, seed=0):
    """Random weights everywhere (the heads start at zero), so outputs depend on every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return network


def test_every_model_keeps_the_network_contract(host):
    variants = _variants(host)
    assert {n for n, _ in variants} >= {"mlp", "conv", "linear"}
    for name, options in variants:
        model = host.get("model", name)(**options)
        shape = SHAPES.get(name, (3,))
        net = _perturbed(model.build(shape)).double()  # float64: the autograd comparison is exact
        x = torch.randn(5, *shape, dtype=torch.float64)
        conditional = bool(net.noise_conditional)
        assert conditional == bool(model.noise_conditional), name
        args = (torch.full((5,), 0.3, dtype=torch.float64),) if conditional else ()
        s = net(x, *args)
        assert s.shape == x.shape and torch.isfinite(s).all(), (name, options)
        if conditional:  # a scalar noise level means the same level for every sample
            torch.testing.assert_close(net(x, 0.3), s)
        if getattr(net, "second_order", False):  # its values: test_untrained_second_order_heads_...
            s2, diag = net.score_and_diag(x, *args)
            assert s2.shape == diag.shape == x.shape and torch.isfinite(diag).all(), (name, options)
        if getattr(net, "energy", False):  # the score is the gradient of log_prob
            xr = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(net.log_prob(xr, *args).sum(), xr)
            torch.testing.assert_close(grad, s)


@pytest.mark.parametrize("name", ["mlp", "conv"])
def test_untrained_noise_conditional_network_is_a_gaussian_score(host, name):
    """The preconditioning starts every level at the score of N(0, (data_scale^2 + sigma^2) I)."""
    model = host.get("model", name)(data_scale=2.0, **({"noise_conditional": True} if name == "mlp" else {}))
    shape = SHAPES.get(name, (3,))
    net = model.build(shape)
    x = torch.randn(4, *shape)
    for sigma in (0.01, 1.0, 50.0):
        torch.testing.assert_close(net(x, sigma), -x / (4.0 + sigma**2))


@pytest.mark.parametrize(("name", "options"), [("mlp", {"noise_conditional": True}), ("mlp", {}), ("conv", {})])
def test_untrained_second_order_heads_give_the_gaussian_score_and_its_exact_jacobian_diagonal(host, name, options):
    """Both heads start at zero, so the network is the preconditioned baseline: for a noise-conditional
    one the score of N(0, (sigma_d^2 + sigma^2) I), -x / (sigma_d^2 + sigma^2), whose Jacobian is
    -I / (sigma_d^2 + sigma^2); for a plain one the zero score and a zero Jacobian. The learned diagonal
    must be that Jacobian's diagonal, and the score that score, whatever the second head holds."""
    net = host.get("model", name)(data_scale=2.0, second_order=True, **options).build(SHAPES.get(name, (3,)))
    x = torch.randn(4, *SHAPES.get(name, (3,)))
    for sigma in (0.1, 1.0, 10.0) if net.noise_conditional else (None,):
        c = -1.0 / (4.0 + sigma**2) if sigma is not None else 0.0
        s, diag = net.score_and_diag(x, sigma)
        torch.testing.assert_close(s, c * x)
        torch.testing.assert_close(diag, torch.full_like(x, c))
        torch.testing.assert_close(net(x, sigma), c * x)


def test_the_score_does_not_read_the_second_head(host):
    """Random weights in the second head only: the score is still the baseline's, the diagonal is not."""
    net = host.get("model", "mlp")(data_scale=2.0, noise_conditional=True, second_order=True).build((3,))
    with torch.no_grad():
        net.head2.weight.normal_(generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 3)
    s, diag = net.score_and_diag(x, 1.0)
    torch.testing.assert_close(s, -x / 5.0)
    assert not torch.allclose(diag, torch.full_like(x, -1 / 5.0))


def test_conv_refuses_vector_data(host):
    with pytest.raises(ValueError, match="conv needs image data"):
        host.get("model", "conv")().build((2,))


def test_model_source_provides_what_the_network_has(host):
    mlp = host.get("model", "mlp")
    plain = ModelScore(mlp().build((2,)))
    assert plain.provides == frozenset()
    cond = ModelScore(mlp(noise_conditional=True, second_order=True).build((2,)), default_sigma=0.1)
    assert cond.provides == {"noise_conditional", "second_order_head"}
    energy = ModelScore(_perturbed(mlp(energy=True).build((2,))))
    assert energy.provides == {"log_prob"}

    x = torch.randn(6, 2)
    oracle = ScoreOracle(cond)
    s, diag = oracle.score_and_learned_diag(x, 0.5)
    torch.testing.assert_close(s, cond.score(x, 0.5))
    torch.testing.assert_close(oracle.score(x), cond.score(x, 0.1))  # no level asked: the smallest trained
    assert oracle.counts.nfe == 2 and oracle.counts.vjp == 0

    oracle = ScoreOracle(energy)
    lp, s = oracle.log_prob_and_score(x)
    torch.testing.assert_close(s, energy.score(x))
    torch.testing.assert_close(lp, energy.network.log_prob(x))
    _, jv = oracle.jvp(x, torch.ones_like(x))  # differentiable through the energy's gradient
    assert torch.isfinite(jv).all() and oracle.counts.nfe == 1 and oracle.counts.jvp == 1
