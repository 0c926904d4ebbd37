"""Unit tests of the maths building blocks (spec §3.2, §3.3.2, §3.6, §3.10, §3.12)."""

from __future__ import annotations

import math

import pytest
import torch

from napari_topomics.module import _likelihoods as lik
from napari_topomics.module import (
    logistic_normal_approximation,
    masked_softmax,
    moment_match,
    regularised_horseshoe_scale,
)


# ---------------------------------------------------------------------- priors
@pytest.mark.parametrize("k", [2, 5, 20])
def test_logistic_normal_symmetric_constants(k):
    mu, sigma = logistic_normal_approximation(torch.full((k,), 1.0 / k))
    torch.testing.assert_close(mu, torch.zeros(k), atol=1e-6, rtol=0)
    torch.testing.assert_close(sigma**2, torch.full((k,), float(k - 1)), atol=1e-4, rtol=1e-5)


def test_logistic_normal_asymmetric_formula():
    a = torch.tensor([0.5, 2.0, 1.0, 4.0])
    d = 4
    mu, sigma = logistic_normal_approximation(a)
    log_a = a.log()
    torch.testing.assert_close(mu, log_a - log_a.mean())
    var = (1 / a) * (1 - 2 / d) + (1 / a).sum() / d**2
    torch.testing.assert_close(sigma**2, var)
    assert mu.sum().abs() < 1e-6


def test_logistic_normal_topic_feature_constants():
    """γ·1 over F features gives μ = 0 and σ² = (1/γ)(1 − 1/F) (spec §3.3.1)."""
    f, gamma = 30, 0.25
    mu, sigma = logistic_normal_approximation(torch.full((f,), gamma))
    torch.testing.assert_close(mu, torch.zeros(f), atol=1e-6, rtol=0)
    torch.testing.assert_close(sigma**2, torch.full((f,), (1 / gamma) * (1 - 1 / f)))


def test_horseshoe_shrinkage_between_zero_and_unshrunk_scale():
    gen = torch.Generator().manual_seed(0)
    k, f = 3, 50
    for c in (1e-3, 0.1, 1.0, 30.0, 1e4):
        tau = torch.rand(k, generator=gen) * 10
        delta = torch.rand(f, generator=gen) * 10
        lam = torch.distributions.HalfCauchy(1.0).sample((k, f)) + 1e-6
        scale = regularised_horseshoe_scale(torch.tensor(c), tau, delta, lam)
        assert scale.shape == (k, f)
        unshrunk = tau[:, None] * delta[None, :] * lam
        ratio = scale / unshrunk
        assert torch.all(ratio >= 0) and torch.all(ratio <= 1 + 1e-6)
        assert torch.all(scale <= c * (1 + 1e-6))  # the slab caps the scale at c
        expected = (c**2 * unshrunk**2 / (c**2 + unshrunk**2 + 1e-8)).sqrt()
        torch.testing.assert_close(scale, expected, rtol=1e-5, atol=1e-6)
    # tiny local scales are barely shrunk, huge ones approach c
    small = regularised_horseshoe_scale(
        torch.tensor(1.0), torch.tensor([1e-3]), torch.tensor([1.0]), torch.tensor([[1.0]])
    )
    assert small.item() == pytest.approx(1e-3, rel=1e-3)
    large = regularised_horseshoe_scale(
        torch.tensor(2.0), torch.tensor([1e4]), torch.tensor([1.0]), torch.tensor([[1.0]])
    )
    assert large.item() == pytest.approx(2.0, rel=1e-3)


# ---------------------------------------------------------------------- aggregation
def test_moment_match_single_expert_is_that_expert():
    gen = torch.Generator().manual_seed(1)
    mu = torch.randn(6, 1, 4, generator=gen)
    var = torch.rand(6, 1, 4, generator=gen) + 0.1
    mean, agg = moment_match(mu, var, torch.ones(6, 1))
    torch.testing.assert_close(mean, mu[:, 0])
    torch.testing.assert_close(agg, var[:, 0])
    # one expert with weight 1 among several: the same
    mu3 = torch.cat([torch.randn(6, 1, 4, generator=gen), mu, torch.randn(6, 1, 4)], dim=1)
    var3 = torch.cat([torch.rand(6, 1, 4) + 1, var, torch.rand(6, 1, 4) + 1], dim=1)
    mean, agg = moment_match(mu3, var3, torch.tensor([[0.0, 1.0, 0.0]]).expand(6, 3))
    torch.testing.assert_close(mean, mu[:, 0])
    torch.testing.assert_close(agg, var[:, 0])


def test_moment_match_law_of_total_variance():
    mu = torch.tensor([[[0.0, 1.0], [2.0, 1.0]]])
    var = torch.tensor([[[1.0, 0.5], [3.0, 0.5]]])
    w = torch.tensor([[0.25, 0.75]])
    mean, agg = moment_match(mu, var, w)
    torch.testing.assert_close(mean, torch.tensor([[1.5, 1.0]]))
    expected0 = 0.25 * 1 + 0.75 * 3 + 0.25 * 1.5**2 + 0.75 * 0.5**2
    torch.testing.assert_close(agg, torch.tensor([[expected0, 0.5]]))
    # clamps of §3.10
    mean, agg = moment_match(torch.full((1, 1, 2), 1e7), torch.full((1, 1, 2), 1e-9), w[:, :1])
    assert mean.max() <= 1e5 and agg.min() >= 1e-5


def test_masked_softmax_absent_modalities_get_zero():
    logits = torch.tensor([[5.0, 1.0, 0.0], [0.3, 9.0, -2.0], [1.0, 2.0, 3.0]])
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    w = masked_softmax(logits, mask)
    torch.testing.assert_close(w.sum(-1), torch.ones(3))
    assert w[0, 1] == 0 and w[1, 0] == 0 and w[1, 1] == 0
    torch.testing.assert_close(w[0, [0, 2]], torch.softmax(torch.tensor([5.0, 0.0]), -1))
    torch.testing.assert_close(w[1], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(w[2], torch.full((3,), 1 / 3))  # no modality: uniform


# ---------------------------------------------------------------------- likelihoods
def test_negative_binomial_mean_is_library_times_frequency():
    r = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(2)), -1)
    library = torch.tensor([0.0, 1.0, 10.0, 250.0, 1e4])
    d = lik.negative_binomial_obs(r, library, torch.tensor([2.0]), 2.0)
    expected = (library[:, None] * r).clamp_min(1e-8)
    torch.testing.assert_close(d.mean, expected)
    assert torch.all(d.mean >= 1e-8)


def _torch_nb_log_prob(mu, size, x):
    # torch's NegativeBinomial(total_count=ρ, probs=p) has mean ρ p / (1 − p)
    probs = mu / (mu + size)
    return torch.distributions.NegativeBinomial(total_count=size, probs=probs).log_prob(x)


@pytest.mark.parametrize("size_kind", ["fixed_1", "fixed_2.5", "per_feature", "learned_1"])
def test_count_negative_binomial_log_prob_matches_torch(size_kind):
    gen = torch.Generator().manual_seed(3)
    r = torch.softmax(torch.randn(6, 9, generator=gen), -1).double()
    library = torch.tensor([0.0, 3.0, 20.0, 100.0, 500.0, 7.0]).double()
    mu = (library[:, None] * r).clamp_min(1e-8)
    x = torch.poisson(mu * 1.3, generator=gen)
    x[0] = 0.0
    if size_kind == "fixed_1":
        size, fixed = torch.tensor([1.0]).double(), 1.0
    elif size_kind == "fixed_2.5":
        size, fixed = torch.tensor([2.5]).double(), 2.5
    elif size_kind == "learned_1":
        size, fixed = torch.tensor([1.0]).double(), None
    else:
        size, fixed = (torch.rand(9, generator=gen) * 5 + 0.2).double(), None
    d = lik.negative_binomial_obs(r, library, size, fixed)
    expected = _torch_nb_log_prob(mu, size.expand(9), x).sum(-1)
    torch.testing.assert_close(d.log_prob(x), expected, rtol=1e-8, atol=1e-8)


def test_count_negative_binomial_gradient_reaches_mean():
    r = torch.softmax(torch.randn(3, 4), -1).requires_grad_(True)
    d = lik.negative_binomial_obs(r, torch.tensor([5.0, 10.0, 1.0]), torch.tensor([2.5]), 2.5)
    d.log_prob(torch.tensor([[1.0, 0, 3, 0], [0, 0, 0, 9], [1, 0, 0, 0]])).sum().backward()
    assert r.grad is not None and torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0


@pytest.mark.parametrize("library", [0.0, 1e-12, 1.0, 1e4, 1e12])
def test_bernoulli_probability_squeezed_for_extreme_libraries(library):
    r = torch.tensor([[1e-30, 1e-6, 0.2, 1.0 - 1e-6]])
    p = lik.bernoulli_probability(r, torch.tensor([library]))
    assert torch.all(p > 0) and torch.all(p < 1)
    assert torch.all(p >= 1e-6 - 1e-12) and torch.all(p <= 1 - 1e-6 + 1e-12)
    if library == 0.0:
        torch.testing.assert_close(p, torch.full_like(p, 1e-6))
    lam = library * r
    expected = 1e-6 + (1 - 2e-6) * (-torch.expm1(-lam))
    torch.testing.assert_close(p, expected)


def test_bernoulli_probability_does_not_depend_on_other_cells():
    r = torch.softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(4)), -1)
    lib = torch.tensor([3.0, 0.0, 8.0, 1.0])
    together = lik.bernoulli_probability(r, lib)
    alone = torch.cat([lik.bernoulli_probability(r[i : i + 1], lib[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)


def test_squeezed_bernoulli_log_prob_matches_torch():
    gen = torch.Generator().manual_seed(5)
    r = torch.softmax(torch.randn(5, 11, generator=gen), -1).double()
    lib = torch.tensor([0.0, 1.0, 4.0, 11.0, 300.0]).double()
    x = (torch.rand(5, 11, generator=gen) < 0.4).double()
    x[0] = 0.0
    x[4] = 1.0
    d = lik.bernoulli_obs(r, lib)
    probs = lik.bernoulli_probability(r, lib)
    expected = torch.distributions.Bernoulli(probs=probs).log_prob(x).sum(-1)
    torch.testing.assert_close(d.log_prob(x), expected, rtol=1e-8, atol=1e-8)


def test_token_multinomial_log_prob():
    r = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    x = torch.tensor([[2.0, 1.0, 0.0], [0.0, 4.0, 1.0]])
    d = lik.multinomial_obs(r)
    expected = torch.tensor([3 * math.log(0.5), 4 * math.log(0.3) + math.log(0.5)])
    torch.testing.assert_close(d.log_prob(x), expected)


# ---------------------------------------------------------------------- regulariser sign
def _loss_and_theta(model, seed=0):
    """One-sample ELBO loss of the first minibatch, and the guide's θ̃ for the same draw."""
    import pyro
    from pyro import poutine

    module = model.module
    loader = model._make_data_loader(adata=model.adata, batch_size=64, shuffle=False)
    args, _ = module._get_fn_args_from_batch(next(iter(loader)))
    module.eval()  # deterministic encoders; the draw of z is seeded
    torch.manual_seed(seed)
    loss = pyro.infer.TraceMeanField_ELBO().loss(module.model, module.guide, *args,
                                                 kl_weight=1.0)
    torch.manual_seed(seed)
    trace = poutine.trace(module.guide).get_trace(*args, kl_weight=1.0)
    z = trace.nodes["log_cell_topic_dist"]["value"].detach()
    return loss, torch.softmax(z, -1)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.filterwarnings("ignore:.*not created by muon/mudata:UserWarning")
def test_regularisers_are_bonuses(build_model):
    """Both regularisers increase the objective (lower the loss) by exactly their value."""
    base = build_model(partial=False, train=False, entropy_weight=0.0, topic_variance_weight=0.0)
    ent = build_model(partial=False, train=False, entropy_weight=2.0, topic_variance_weight=0.0)
    var = build_model(partial=False, train=False, entropy_weight=0.0, topic_variance_weight=500.0)
    for m in (base, ent, var):
        m.module.n_obs = None  # plate size = minibatch: no N/B rescaling
    loss0, theta = _loss_and_theta(base)
    loss_ent, theta_ent = _loss_and_theta(ent)
    loss_var, _ = _loss_and_theta(var)
    torch.testing.assert_close(theta, theta_ent)
    entropy = -(theta * torch.log(theta + 1e-5)).sum(-1).sum().item()
    variance = theta.var(0, unbiased=False).sum().item()
    assert entropy > 0 and variance > 0
    assert loss_ent < loss0 and loss_var < loss0
    assert loss0 - loss_ent == pytest.approx(2.0 * entropy, rel=1e-3)
    assert loss0 - loss_var == pytest.approx(500.0 * variance, rel=1e-3)
