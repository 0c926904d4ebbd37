"""Frozen configuration passed from the user class to the Pyro module."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class ModuleConfig:
    """Everything the module needs to build itself; validated by the user class.

    Likelihood names are canonical lower-case (``"nb"`` stays ``"nb"`` but behaves exactly
    like ``"gamma_poisson"``).
    """

    n_inputs: tuple[int, ...]
    likelihoods: tuple[str, ...]
    modality_names: tuple[str, ...] = ()
    n_topics: int = 20
    n_hidden: int = 128
    cell_topic_prior: tuple[float, ...] = ()
    topic_feature_prior: tuple[float, ...] = ()
    prior_type: str = "logistic_normal"
    use_feature_background: bool = True
    dispersion: float = 1.0
    learnable_dispersion: bool = False
    global_dispersion: bool = True
    weight_mode: str = "cell"
    aggregation_type: str = "moe"
    att_dim: int = 32
    normalize_encoder_inputs: bool = True
    encoder_scale: tuple[float, ...] = ()
    entropy_weight: float = 0.01
    topic_variance_weight: float = 1.0
    kl_weight: float = 1.0
    encode_covariates: bool = True
    learnable_bg: bool = True
    n_cats_per_cov: tuple[int, ...] = ()
    n_continuous_cov: int = 0
    n_extra_encoder_features: int = 0
    likelihood_weights: tuple[float, ...] = ()
    # spatial branch (§3.11); ``spatial`` is True only when a graph is registered
    spatial: bool = False
    spatial_mode: str = "gcn"
    gcn_n_layers: int = 1
    gcn_n_pre_layers: int = 0
    gcn_conv_type: str = "GATv2Conv"
    gcn_hidden_dims: tuple[int, ...] = ()
    gcn_alpha_init: float = 0.7
    gcn_use_learned_alpha: bool = True
    gcn_sampling: str = "approx"
    gcn_fan_out: tuple[int, ...] = ()
    gcn_conv_first: bool = False
    sgc_n_layers: int = 1
    sgc_scale: tuple[float, ...] = ()

    @property
    def n_modalities(self) -> int:
        return len(self.n_inputs)

    @cached_property
    def blocks(self) -> tuple[slice, ...]:
        """Column slice of each modality in the registered matrix."""
        ends = np.cumsum(self.n_inputs)
        return tuple(slice(int(e - f), int(e)) for e, f in zip(ends, self.n_inputs, strict=True))

    @property
    def sgc_level_norm(self) -> bool:
        """Whether SGC normalises topic means per level of the first categorical key."""
        return self.encode_covariates and bool(self.n_cats_per_cov) and self.n_cats_per_cov[0] > 1

    def block(self, m: int) -> slice:
        return self.blocks[m]

    def is_nb(self, m: int) -> bool:
        return self.likelihoods[m] in ("gamma_poisson", "nb")

    def is_count(self, m: int) -> bool:
        return self.likelihoods[m] != "gaussian"

    def has_background(self, m: int) -> bool:
        return self.use_feature_background and self.is_nb(m)


@dataclass
class DataConstants:
    """Data-dependent constants computed once from the registered matrix."""

    background_init: dict[int, np.ndarray] = field(default_factory=dict)
    continuous_mean: np.ndarray | None = None
    continuous_scale: np.ndarray | None = None
