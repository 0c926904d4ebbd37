"""Encoder and aggregation networks (spec §3.9, §3.10)."""

from __future__ import annotations

import torch
from scvi.nn import FCLayers
from torch import nn

VAR_EPS = 1e-4
ABSENT_LOGIT = -1e5
MU_CLAMP = 1e5
VAR_MIN, VAR_MAX = 1e-5, 1e5


class ModalityEncoder(nn.Module):
    """scvi-style ``ln`` encoder for one modality: input → Gaussian over topic logits.

    One hidden layer of width ``n_hidden`` (BatchNorm, ReLU, dropout 0.1) with categorical
    covariates injected one-hot, then a mean head and a variance head ``exp(·) + 1e-4``.
    The hidden representation is returned too, so that a gate can read it.
    """

    def __init__(self, n_input: int, n_topics: int, n_hidden: int, n_cat_list: list[int]):
        super().__init__()
        self.hidden = FCLayers(
            n_in=n_input,
            n_out=n_hidden,
            n_cat_list=n_cat_list,
            n_layers=1,
            n_hidden=n_hidden,
            dropout_rate=0.1,
        )
        self.mean = nn.Linear(n_hidden, n_topics)
        self.log_var = nn.Linear(n_hidden, n_topics)

    def forward(
        self, x: torch.Tensor, cat_codes: list[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.hidden(x, *cat_codes)
        return self.mean(h), self.log_var(h).exp() + VAR_EPS, h


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over modalities with absent ones (``mask == 0``) given zero weight.

    Cells with no modality at all get uniform weights over all modalities.
    """
    present = mask > 0
    masked = torch.where(present, logits, torch.full_like(logits, ABSENT_LOGIT))
    weights = torch.softmax(masked, dim=-1)
    none = ~present.any(dim=-1, keepdim=True)
    uniform = torch.full_like(weights, 1.0 / weights.shape[-1])
    return torch.where(none, uniform, weights)


def moment_match(
    mu: torch.Tensor, var: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Moment-match a mixture of Gaussian experts to one Gaussian.

    Parameters
    ----------
    mu, var
        Expert means and variances, shape ``(B, M, K)``.
    weights
        Mixing weights, shape ``(B, M)``, rows summing to 1.
    """
    w = weights.unsqueeze(-1)
    mean = (w * mu).sum(1)
    second = (w * (var + (mu - mean.unsqueeze(1)) ** 2)).sum(1)
    return mean.clamp(-MU_CLAMP, MU_CLAMP), second.clamp(VAR_MIN, VAR_MAX)


class UniversalWeights(nn.Module):
    """One learned logit per modality shared by every cell (initialised to ones)."""

    def __init__(self, n_modalities: int):
        super().__init__()
        self.logits = nn.Parameter(torch.ones(n_modalities))

    def forward(self, mu, hidden, mask):
        return self.logits.expand(mask.shape[0], -1)


class CellGate(nn.Module):
    """Amortised per-cell weights: one logit per modality read from its encoder's hidden layer.

    This replaces the free ``N × M`` matrix of the published design (spec §8): new cells get
    their own weights and memory does not grow with the number of cells. The gates start
    with zero weights and bias 1, i.e. every cell starts with equal logits.
    """

    def __init__(self, n_modalities: int, n_hidden: int):
        super().__init__()
        self.gates = nn.ModuleList(nn.Linear(n_hidden, 1) for _ in range(n_modalities))
        for gate in self.gates:
            nn.init.zeros_(gate.weight)
            nn.init.ones_(gate.bias)

    def forward(self, mu, hidden, mask):
        return torch.cat([gate(h) for gate, h in zip(self.gates, hidden, strict=True)], dim=-1)


class AttentionWeights(nn.Module):
    """Additive attention over the experts' means: ``e_m = uᵀ tanh(Wᵀ μ_m)``."""

    def __init__(self, n_topics: int, att_dim: int):
        super().__init__()
        self.W = nn.Parameter(torch.empty(n_topics, att_dim))
        self.u = nn.Parameter(torch.empty(att_dim, 1))
        nn.init.xavier_uniform_(self.W)
        nn.init.xavier_uniform_(self.u)

    def forward(self, mu, hidden, mask):
        return (torch.tanh(mu @ self.W) @ self.u).squeeze(-1)


def build_weighting(
    aggregation_type: str, weight_mode: str, n_modalities: int, n_topics: int, n_hidden: int,
    att_dim: int,
) -> nn.Module | None:
    """Build only the weighting network the configuration uses (``None`` for equal)."""
    if aggregation_type == "attention":
        return AttentionWeights(n_topics, att_dim)
    if weight_mode == "universal":
        return UniversalWeights(n_modalities)
    if weight_mode == "cell":
        return CellGate(n_modalities, n_hidden)
    return None
