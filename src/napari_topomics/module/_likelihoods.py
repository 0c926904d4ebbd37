"""Observation distributions of the four modality likelihoods (spec §3.6)."""

from __future__ import annotations

import math

import numpy as np
import torch
from pyro.distributions import Normal, TorchDistribution
from torch.distributions import constraints

BERNOULLI_EPS = 1e-6
NB_MEAN_FLOOR = 1e-8
#: Rates above which a closed feature's ε floor is evaluated exactly (factorised Bernoulli).
FLOOR_RATE = 1.0
#: Above this share of candidate features per batch the dense formula is cheaper.
DENSE_SHARE = 0.25


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
        return _open_probability(self.rate)

    def expand(self, batch_shape, _instance=None):
        shape = torch.Size(batch_shape) + self.event_shape
        return SqueezedBernoulli(self.rate.expand(shape))

    def sample(self, sample_shape=torch.Size()):
        return torch.bernoulli(self.probs.expand(torch.Size(sample_shape) + self.rate.shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # log(1 − p) densely; log p − log(1 − p) only where the feature is open.
        closed = _log_closed(self.rate)
        value = value.expand(self.rate.shape)
        flat, rows, values = open_positions(value)
        rate = self.rate.reshape(-1).index_select(0, flat)
        total = closed.sum(-1)
        gain = _open_gain(rate, closed.reshape(-1).index_select(0, flat), values)
        return total + _per_row(gain, rows, total)


class FactorisedBernoulli(TorchDistribution):
    """:class:`SqueezedBernoulli` with ``rate = ℓ θ φ``, scored without the dense rate.

    The dense sum of ``log(1 − p) = log(ε + (1 − 2ε) e^{−x})`` over features is
    ``F log(1 − 2ε) − ℓ Σ_f r_f + Σ_f log(1 + ε e^{x_f} / (1 − 2ε))``. The last term is
    evaluated exactly where ``x_f`` may exceed ``FLOOR_RATE`` (bounded through ``ℓ`` and the
    feature's largest topic frequency) and to first order elsewhere (error below
    ``ε ℓ e / 2`` nats per cell, ~1e-4 at 200 open features); the open features are scored
    exactly from gathered rates. This makes the cost scale with the open features instead
    of cells × features.

    Parameters
    ----------
    theta
        Topic proportions ``(B, K)``.
    phi
        Topic feature frequencies ``(K, F)``, rows summing to 1.
    library
        Number of open features per cell ``(B,)``.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = False

    def __init__(self, theta, phi, library, validate_args=None):
        self.theta, self.phi, self.library = theta, phi, library
        super().__init__(
            batch_shape=theta.shape[:-1], event_shape=phi.shape[-1:], validate_args=False
        )

    @property
    def rate(self) -> torch.Tensor:
        return self.library.unsqueeze(-1) * (self.theta @ self.phi)

    @property
    def probs(self) -> torch.Tensor:
        return SqueezedBernoulli(self.rate).probs

    def expand(self, batch_shape, _instance=None):
        # Pyro's plates expand every site to their shape: the cell plate is already it
        if torch.Size(batch_shape) == self.batch_shape:
            return self
        return SqueezedBernoulli(self.rate).expand(batch_shape)

    def sample(self, sample_shape=torch.Size()):
        return SqueezedBernoulli(self.rate).sample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        n_features = value.shape[-1]
        theta, phi, library = self.theta, self.phi, self.library
        candidates = _floor_candidates(phi, library)
        if candidates is None:  # many large rates: the dense formula is cheaper
            return SqueezedBernoulli(self.rate).log_prob(value)
        flat, rows, values = open_positions(value)
        c_rows, c_cols = candidates
        n_open = flat.numel()
        # r itself is cheap (K is small); the saving is in not working on every entry of it
        gathered = torch.cat([flat, c_rows * n_features + c_cols])
        every_rows = torch.cat([rows, c_rows])
        r = (theta @ phi).reshape(-1).index_select(0, gathered)
        rate = library.index_select(0, every_rows) * r
        rate, x = rate[:n_open], rate[n_open:]
        gain = _open_gain(rate, _log_closed(rate), values)
        squeeze = 1.0 - 2.0 * BERNOULLI_EPS
        first = BERNOULLI_EPS / squeeze
        total_rate = library * (theta @ phi.sum(-1))  # ℓ Σ_f r_f (= ℓ when θ, φ sum to 1)
        closed = n_features * math.log(squeeze) - total_rate + first * (n_features + total_rate)
        floor = _log_closed(x) + x - math.log(squeeze) - first * (1.0 + x)
        return closed + _per_row(torch.cat([gain, floor]), every_rows, closed)


def open_positions(value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Flat index and row of the non-zero entries of ``value`` and their values.

    Rows are all leading dimensions flattened; ``value`` may be a strided view.
    """
    n_features = value.shape[-1]
    value = value.detach().reshape(-1, n_features)
    if value.device.type == "cpu":
        # numpy on a boolean mask is ~2x faster than torch's nonzero here, and reads a
        # column block of the batch without copying it first
        array = value.numpy()
        flat = np.flatnonzero(array != 0)
        rows, cols = np.divmod(flat, n_features)
        values = torch.from_numpy(array[rows, cols])
        return torch.from_numpy(flat), torch.from_numpy(rows), values
    flat = value.reshape(-1).nonzero().squeeze(-1)
    rows = torch.div(flat, n_features, rounding_mode="floor")
    return flat, rows, value.reshape(-1).index_select(0, flat)


def _open_probability(rate: torch.Tensor) -> torch.Tensor:
    """``p = ε + (1 − 2ε)(1 − e^{−rate})``."""
    return BERNOULLI_EPS + (1.0 - 2.0 * BERNOULLI_EPS) * (-torch.expm1(-rate))


def _log_closed(rate: torch.Tensor) -> torch.Tensor:
    """``log(1 − p) = log(ε + (1 − 2ε) e^{−rate})``, accurate where ``p`` is near 1."""
    return torch.log(BERNOULLI_EPS + (1.0 - 2.0 * BERNOULLI_EPS) * torch.exp(-rate))


def _open_gain(rate, closed, values) -> torch.Tensor:
    """``(log p − log(1 − p)) · value`` at the open entries (soft targets weigh the gain)."""
    return (torch.log(_open_probability(rate)) - closed) * values


def _per_row(values: torch.Tensor, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` into the rows of a vector shaped like ``like``."""
    sums = torch.zeros(like.numel(), dtype=like.dtype, device=like.device)
    return sums.index_add_(0, rows, values).reshape(like.shape)


def _floor_candidates(phi: torch.Tensor, library: torch.Tensor):
    """``(rows, cols)`` of the entries whose rate may exceed ``FLOOR_RATE``, or ``None``.

    ``x_nf = ℓ_n Σ_k θ_nk φ_kf ≤ ℓ_n max_k φ_kf``; ``None`` when more than ``DENSE_SHARE``
    of all entries qualify.
    """
    with torch.no_grad():
        bound, order = phi.amax(0).sort(descending=True)
        limit = FLOOR_RATE / library.clamp_min(1e-12)
        counts = torch.searchsorted(-bound, -limit.contiguous(), side="left")
        total = int(counts.sum())
        if total > DENSE_SHARE * library.numel() * bound.numel():
            return None
        rows = torch.repeat_interleave(torch.arange(len(counts), device=phi.device), counts)
        starts = torch.cumsum(counts, 0) - counts
        ranks = torch.arange(total, device=phi.device) - starts.index_select(0, rows)
        return rows, order.index_select(0, ranks)


def bernoulli_probability(r: torch.Tensor, library: torch.Tensor) -> torch.Tensor:
    """``P(open) = ε + (1 − 2ε)(1 − exp(−ℓ r))``: a Poisson count with mean ``ℓ r`` is > 0."""
    return SqueezedBernoulli(library.unsqueeze(-1) * r).probs


def bernoulli_obs(r, library: torch.Tensor) -> TorchDistribution:
    """Bernoulli accessibility with the squeezed Poisson link of spec §3.6.3.

    ``r`` is the dense frequency matrix or its :class:`TopicFactors`.
    """
    if isinstance(r, TopicFactors):
        return FactorisedBernoulli(r.theta, r.phi, library)
    return SqueezedBernoulli(library.unsqueeze(-1) * r)


class TopicFactors:
    """Feature frequencies ``r = θ φ`` kept as their factors."""

    __slots__ = ("theta", "phi")

    def __init__(self, theta: torch.Tensor, phi: torch.Tensor):
        self.theta, self.phi = theta, phi


def gaussian_obs(mean: torch.Tensor, sigma: torch.Tensor) -> TorchDistribution:
    """Independent Gaussian features with a per-feature scale."""
    return Normal(mean, sigma.expand_as(mean), validate_args=False)
