"""Observation distributions of the four modality likelihoods (spec §3.6)."""

from __future__ import annotations

import torch
from pyro.distributions import Normal, TorchDistribution
from torch.distributions import constraints

BERNOULLI_EPS = 1e-6
NB_MEAN_FLOOR = 1e-8


class TokenMultinomial(TorchDistribution):
    """Multinomial over features in token form: ``log p(x) = Σ_f x_f log r_f``.

    The combinatorial coefficient is left out (it does not depend on any parameter), and
    zero counts at zero-probability features contribute 0. The event is the last axis.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, probs: torch.Tensor, validate_args=None):
        self.probs = probs
        super().__init__(
            batch_shape=probs.shape[:-1], event_shape=probs.shape[-1:], validate_args=False
        )

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.event_shape
        return TokenMultinomial(self.probs.expand(shape))

    def sample(self, sample_shape=torch.Size()):
        raise NotImplementedError("TokenMultinomial is used for observed data only.")

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return torch.xlogy(value, self.probs).sum(-1)


def multinomial_obs(r: torch.Tensor) -> TorchDistribution:
    """Token-form multinomial with feature frequencies ``r`` (rows sum to 1)."""
    return TokenMultinomial(r)


class CountNegativeBinomial(TorchDistribution):
    """NB with mean ``μ`` and size ``ρ``, event over features, for observed counts.

    ``log p = x log μ + ρ log ρ − (x + ρ) log(ρ + μ) + [lgamma(x + ρ) − lgamma(ρ) −
    lgamma(x + 1)]``. The bracket is 0 wherever ``x = 0``, so it is evaluated on the
    non-zero counts only, which makes the log-pmf exact at a fraction of the cost.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(
        self, mu: torch.Tensor, size: torch.Tensor, fixed_size: float | None = None,
        validate_args=None,
    ):
        self.mu, self.size, self.fixed_size = mu, size, fixed_size
        super().__init__(
            batch_shape=mu.shape[:-1], event_shape=mu.shape[-1:], validate_args=False
        )

    @property
    def mean(self) -> torch.Tensor:
        return self.mu

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.event_shape
        return CountNegativeBinomial(self.mu.expand(shape), self.size, self.fixed_size)

    def sample(self, sample_shape=torch.Size()):
        rate = torch.distributions.Gamma(self.size, self.size / self.mu).sample(sample_shape)
        return torch.poisson(rate)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        size = self.size.expand(self.mu.shape[-1:])
        dense = value * torch.log(self.mu) - (value + size) * torch.log(size + self.mu)
        dense = dense.sum(-1) + (size * torch.log(size)).sum(-1)
        return dense + self._count_term(value, size)

    def _count_term(self, value: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        """``Σ_f lgamma(x + ρ) − lgamma(ρ) − lgamma(x + 1)``, which is 0 where ``x = 0``."""
        if self.fixed_size is not None:
            if self.fixed_size == 1.0:
                return value.new_zeros(value.shape[:-1])  # lgamma(x + 1) cancels exactly
            with torch.no_grad():
                term = torch.lgamma(value + size) - torch.lgamma(size) - torch.lgamma(value + 1)
                return term.sum(-1)
        rows, cols = value.nonzero(as_tuple=True)
        x, s = value[rows, cols], size[cols]
        bracket = torch.lgamma(x + s) - torch.lgamma(s) - torch.lgamma(x + 1)
        total = value.new_zeros(value.shape[:-1])
        return total.index_add(0, rows, bracket)


def negative_binomial_obs(
    r: torch.Tensor, library: torch.Tensor, size: torch.Tensor, fixed_size: float | None = None
) -> TorchDistribution:
    """NB with mean ``max(ℓ r, 1e-8)`` and size ``size`` (``Var = μ + μ²/size``).

    ``fixed_size`` is the size as a Python number when it is not learned.
    """
    mu = (library.unsqueeze(-1) * r).clamp_min(NB_MEAN_FLOOR)
    return CountNegativeBinomial(mu, size.reshape(-1), fixed_size)


class SqueezedBernoulli(TorchDistribution):
    """Bernoulli features with ``p = ε + (1 − 2ε)(1 − exp(−rate))``, event over features."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, rate: torch.Tensor, validate_args=None):
        self.rate = rate
        super().__init__(
            batch_shape=rate.shape[:-1], event_shape=rate.shape[-1:], validate_args=False
        )

    @property
    def probs(self) -> torch.Tensor:
        return BERNOULLI_EPS + (1.0 - 2.0 * BERNOULLI_EPS) * (-torch.expm1(-self.rate))

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.event_shape
        return SqueezedBernoulli(self.rate.expand(shape))

    def sample(self, sample_shape=torch.Size()):
        return torch.bernoulli(self.probs.expand(torch.Size(sample_shape) + self.rate.shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # log(1 − p) densely; log p − log(1 − p) only where the feature is open.
        closed = torch.log(BERNOULLI_EPS + (1.0 - 2.0 * BERNOULLI_EPS) * torch.exp(-self.rate))
        # flat positions: index_select and its index_add backward are ~4x cheaper than
        # two-dimensional advanced indexing
        value = value.expand(self.rate.shape)
        n_features = value.shape[-1]
        flat = value.reshape(-1).nonzero().squeeze(-1)
        rows = torch.div(flat, n_features, rounding_mode="floor")
        rate = self.rate.reshape(-1).index_select(0, flat)
        open_ = torch.log(BERNOULLI_EPS + (1.0 - 2.0 * BERNOULLI_EPS) * (-torch.expm1(-rate)))
        # soft targets (a neighbourhood's open fraction) weigh the gain by their value
        gain = (open_ - closed.reshape(-1).index_select(0, flat)) * value.reshape(-1)[flat]
        total = closed.sum(-1)
        gains = torch.zeros(total.numel(), dtype=total.dtype, device=total.device)
        return total + gains.index_add_(0, rows, gain).reshape(total.shape)


def bernoulli_probability(r: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
    """``P(open) = ε + (1 − 2ε)(1 − exp(−ℓ r))``: a Poisson count with mean ``ℓ r`` is > 0."""
    return SqueezedBernoulli(library.unsqueeze(-1) * r).probs


def bernoulli_obs(r: torch.Tensor, library: torch.Tensor) -> TorchDistribution:
    """Bernoulli accessibility with the squeezed Poisson link of spec §3.6.3."""
    return SqueezedBernoulli(library.unsqueeze(-1) * r)


def gaussian_obs(mean: torch.Tensor, sigma: torch.Tensor) -> TorchDistribution:
    """Independent Gaussian features with a per-feature scale."""
    return Normal(mean, sigma.expand_as(mean), validate_args=False)
