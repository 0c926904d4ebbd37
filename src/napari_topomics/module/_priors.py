"""Prior constants and custom prior densities."""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints


def logistic_normal_approximation(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Laplace approximation of ``Dirichlet(alpha)`` in the softmax basis.

    Parameters
    ----------
    alpha
        Concentration vector of length ``D`` (all entries > 0).

    Returns
    -------
    Mean and standard deviation (not variance) of the Normal over the logits.
    """
    alpha = alpha.to(torch.float32)
    d = alpha.shape[-1]
    log_alpha = alpha.log()
    mu = log_alpha - log_alpha.mean(-1, keepdim=True)
    var = (1.0 / alpha) * (1.0 - 2.0 / d) + (1.0 / alpha).sum(-1, keepdim=True) / d**2
    return mu, var.sqrt()


def regularised_horseshoe_scale(
    c: torch.Tensor, tau: torch.Tensor, delta: torch.Tensor, lam: torch.Tensor
) -> torch.Tensor:
    """Regularised horseshoe scale ``λ̃`` (spec §3.3.2), broadcast to ``(..., K, F)``.

    ``c`` is a scalar per modality, ``tau`` is per topic ``(K,)``, ``delta`` per feature
    ``(F,)`` and ``lam`` per topic and feature ``(K, F)``.
    """
    c2 = c.unsqueeze(-1).unsqueeze(-1) ** 2 if c.dim() else c**2
    local2 = (tau.unsqueeze(-1) * delta.unsqueeze(-2) * lam) ** 2
    return (c2 * local2 / (c2 + local2 + 1e-8)).sqrt()


_LOG_BETA_HALF_HALF = math.lgamma(0.5) * 2 - math.lgamma(1.0)


class LogitBeta(TorchDistribution):
    """Density of ``t = logit(τ)`` for ``τ ~ Beta(a, b)``, evaluated stably.

    ``log p(t) = a log σ(t) + b log σ(−t) − log B(a, b)``: the Beta density times the
    sigmoid Jacobian, which never saturates in float32 (spec §3.13).
    """

    arg_constraints = {}
    support = constraints.real
    has_rsample = False

    def __init__(self, a: float, b: float, batch_shape=torch.Size(), validate_args=None):
        self.a, self.b = float(a), float(b)
        self._log_norm = math.lgamma(self.a) + math.lgamma(self.b) - math.lgamma(self.a + self.b)
        super().__init__(batch_shape=torch.Size(batch_shape), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return LogitBeta(self.a, self.b, batch_shape=batch_shape)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        tau = torch.distributions.Beta(self.a, self.b).sample(shape).clamp(1e-6, 1 - 1e-6)
        return torch.logit(tau)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        logsig = torch.nn.functional.logsigmoid
        return self.a * logsig(value) + self.b * logsig(-value) - self._log_norm
