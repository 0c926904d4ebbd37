"""Spatial encoders (spec §3.11): a trainable graph encoder (GCN mode) and SGC heads.

torch-geometric is imported lazily, only when a GCN-mode encoder is built, so the
non-spatial model works without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scvi.nn import FCLayers
from torch import nn
from torch.nn import functional as F

VAR_EPS = 1e-4
ALPHA_LOGIT_LIMIT = 20.0
SPATIAL_EXTRA_MSG = 'pip install "napari-topomics[spatial]"'


@dataclass
class GraphInputs:
    """One sampled subgraph on the device: raw registered rows of its nodes, seeds first.

    ``edge_index`` holds local indices (with self-loops and ``edge_weight`` for
    ``GCNConv``); ``cat``/``cont``/``extra`` are the nodes' covariates, or None.
    """

    x: torch.Tensor
    cat: torch.Tensor | None
    cont: torch.Tensor | None
    extra: torch.Tensor | None
    edge_index: torch.Tensor
    edge_weight: torch.Tensor | None
    n_seeds: int


def require_graph_layers():
    """torch-geometric's ``GATv2Conv`` and ``GCNConv``, or an ImportError naming the extra."""
    try:
        from torch_geometric.nn import GATv2Conv, GCNConv
    except ImportError as err:  # pragma: no cover - the spatial extra installs it
        raise ImportError(
            "spatial_mode='gcn' needs torch-geometric for its graph layers: "
            f"{SPATIAL_EXTRA_MSG} (or use spatial_mode='sgc', which does not)."
        ) from err
    return GATv2Conv, GCNConv


def alpha_logit(alpha: float) -> float:
    """``logit(alpha)``, or ±20 at the end points (spec §3.11.2)."""
    if alpha <= 0.0:
        return -ALPHA_LOGIT_LIMIT
    if alpha >= 1.0:
        return ALPHA_LOGIT_LIMIT
    return math.log(alpha / (1.0 - alpha))


class GraphEncoder(nn.Module):
    """Encoder of one modality over a sampled subgraph: self path mixed with graph layers.

    ``h = α h_self + (1 − α) h_nei`` with ``α = sigmoid(a)``; ``h_self`` is an FC layer of
    the node's own input and ``h_nei`` comes from ``gcn_n_pre_layers`` FC layers and
    ``gcn_n_layers`` graph layers (``GATv2Conv`` with 4 concatenated heads or ``GCNConv``
    with precomputed symmetric weights). Only the seed nodes (the first ``n_seeds``)
    produce outputs.

    Parameters
    ----------
    n_input
        Width of a node's encoder input.
    n_topics, n_hidden
        Output and hidden widths.
    n_layers, n_pre_layers, conv_type, hidden_dims
        Graph-layer configuration (``gcn_*`` options).
    alpha_init, learn_alpha
        Initial self-path weight and whether it is learned.
    conv_first
        Run the self path on the seeds only (cheaper, same function in eval mode).
    """

    def __init__(
        self, n_input: int, n_topics: int, n_hidden: int, n_layers: int, n_pre_layers: int,
        conv_type: str, hidden_dims: tuple[int, ...], alpha_init: float, learn_alpha: bool,
        conv_first: bool,
    ):
        super().__init__()
        GATv2Conv, GCNConv = require_graph_layers()
        self.conv_type = conv_type
        self.conv_first = conv_first
        self.self_path = FCLayers(
            n_in=n_input, n_out=n_hidden, n_layers=1, n_hidden=n_hidden, dropout_rate=0.1
        )
        self.pre = (
            FCLayers(
                n_in=n_input, n_out=n_hidden, n_layers=n_pre_layers, n_hidden=n_hidden,
                dropout_rate=0.1,
            )
            if n_pre_layers > 0 else None
        )
        width = n_hidden if self.pre is not None else n_input
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for h in hidden_dims:
            if conv_type == "GATv2Conv":
                per_head = max(1, h // 4)
                conv = GATv2Conv(width, per_head, heads=4, concat=True, dropout=0.1,
                                 add_self_loops=True)
                width = 4 * per_head
            else:
                conv = GCNConv(width, h, normalize=False, add_self_loops=False)
                width = h
            self.convs.append(conv)
            self.norms.append(nn.BatchNorm1d(width))
        self.project = nn.Linear(width, n_hidden, bias=False) if width != n_hidden else None
        logit = torch.tensor(alpha_logit(alpha_init), dtype=torch.float32)
        if learn_alpha:
            self.alpha_logit = nn.Parameter(logit)
        else:
            self.register_buffer("alpha_logit", logit)
        self.mean = nn.Linear(n_hidden, n_topics)
        self.var = nn.Linear(n_hidden, n_topics)

    @property
    def alpha(self) -> torch.Tensor:
        """The self-path weight ``α_g``."""
        return torch.sigmoid(self.alpha_logit)

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, edge_weight: torch.Tensor | None,
        n_seeds: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gaussian of the seeds' topic logits and their hidden representation.

        Parameters
        ----------
        x
            ``(S, n_input)`` node inputs, the seeds first.
        edge_index
            ``(2, E)`` local edges (self-loops included for ``GCNConv``).
        edge_weight
            ``(E,)`` symmetric normalisation weights (``GCNConv`` only).
        n_seeds
            Number of seed nodes.
        """
        h_self = self.self_path(x[:n_seeds] if self.conv_first else x)[:n_seeds]
        h = self.pre(x) if self.pre is not None else x
        last = len(self.convs) - 1
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = conv(h, edge_index) if self.conv_type == "GATv2Conv" else conv(
                h, edge_index, edge_weight
            )
            h = norm(h)
            if i < last:
                h = F.dropout(F.relu(h), p=0.1, training=self.training)
        h_nei = h[:n_seeds]
        if self.project is not None:
            h_nei = self.project(h_nei)
        alpha = self.alpha
        hidden = alpha * h_self + (1.0 - alpha) * h_nei
        return self.mean(hidden), F.softplus(self.var(hidden)) + VAR_EPS, hidden


class LevelBatchNorm(nn.Module):
    """BatchNorm of the topic means, one per level of a covariate, with frozen scale.

    Vectorised over levels (no loop): per-level batch statistics by ``index_add``. A level
    with fewer than two cells in the batch is normalised with its running statistics.
    """

    def __init__(self, n_features: int, n_levels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(n_levels, n_features))
        self.register_buffer("running_var", torch.ones(n_levels, n_features))
        self.bias = nn.Parameter(torch.zeros(n_levels, n_features))

    def forward(self, x: torch.Tensor, level: torch.Tensor | None) -> torch.Tensor:
        n_levels = self.running_mean.shape[0]
        level = (
            torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            if level is None else level.long().reshape(-1)
        )
        mean, var = self.running_mean[level], self.running_var[level]
        if self.training:
            count = torch.zeros(n_levels, device=x.device, dtype=x.dtype).index_add_(
                0, level, torch.ones_like(x[:, 0])
            )
            total = torch.zeros_like(self.running_mean).index_add_(0, level, x)
            squares = torch.zeros_like(self.running_mean).index_add_(0, level, x * x)
            n = count.clamp_min(1.0)[:, None]
            batch_mean = total / n
            batch_var = (squares / n - batch_mean**2).clamp_min(0.0)
            usable = (count >= 2)[:, None]
            with torch.no_grad():
                unbiased = batch_var * n / (n - 1).clamp_min(1.0)
                m = self.momentum
                self.running_mean.copy_(torch.where(
                    usable, (1 - m) * self.running_mean + m * batch_mean, self.running_mean
                ))
                self.running_var.copy_(torch.where(
                    usable, (1 - m) * self.running_var + m * unbiased, self.running_var
                ))
            use_batch = usable[level]
            mean = torch.where(use_batch, batch_mean[level], mean)
            var = torch.where(use_batch, batch_var[level], var)
        return (x - mean) / torch.sqrt(var + self.eps) + self.bias[level]


class SGCEncoder(nn.Module):
    """Encoder on precomputed smoothed features (SGC mode, spec §3.11.3).

    Dropout → Linear → BatchNorm → ReLU → Dropout, then a mean head (normalised per level
    of the first categorical covariate, scale frozen) and a variance head
    ``softplus(·) + 1e-4``.
    """

    def __init__(self, n_input: int, n_topics: int, n_hidden: int, n_levels: int):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(n_input, n_hidden), nn.BatchNorm1d(n_hidden), nn.ReLU(),
            nn.Dropout(0.1),
        )
        self.mean = nn.Linear(n_hidden, n_topics)
        self.var = nn.Linear(n_hidden, n_topics)
        self.mean_norm = LevelBatchNorm(n_topics, n_levels)

    def forward(
        self, features: torch.Tensor, level: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.hidden(features)
        return self.mean_norm(self.mean(h), level), F.softplus(self.var(h)) + VAR_EPS, h
