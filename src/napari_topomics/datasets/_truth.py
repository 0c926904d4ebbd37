"""Container for the planted truth of the simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SimulationTruth:
    """Planted ground truth of :func:`simulate_tissue`.

    Attributes
    ----------
    theta
        ``(N, K)`` cell-topic proportions (rows sum to 1).
    topic_feature
        ``{modality: (K, F_m)}`` topic-feature distributions (rows sum to 1), before batch
        offsets and ambient background.
    markers
        ``{modality: (K, n_markers)}`` indices of each topic's disjoint marker block.
    domain
        ``(N,)`` spatial domain of each cell.
    batch
        ``(N,)`` batch of each cell, or ``None`` for a single batch.
    coords
        ``(N, 2)`` spatial coordinates (also ``obsm["spatial"]``).
    domain_means
        ``(D, K)`` mean topic mixture of each domain.
    library_size
        ``{modality: (N,)}``: expected total counts (RNA, protein) or the Bernoulli
        library ``ℓ`` with ``P(open) = 1 − exp(−ℓ r)`` (ATAC).
    batch_offset
        ``{modality: (n_batches, F_m)}`` log-scale feature offsets (empty without batches).
        Batch ``b`` uses ``φ̃_bk ∝ φ_k · exp(offset_b)``, normalised per topic.
    ambient_profile, ambient_fraction
        ``{modality: (F_m,)}`` ambient profile and ``{modality: a}`` its share of the
        expected counts: ``r_n = (1 − a) θ_n φ + a · ambient``.
    dispersion
        ``{modality: (F_m,)}`` negative-binomial size per feature (NB modalities only).
    params
        The arguments of the call.
    """

    theta: np.ndarray
    topic_feature: dict[str, np.ndarray]
    markers: dict[str, np.ndarray]
    domain: np.ndarray
    batch: np.ndarray | None
    coords: np.ndarray
    domain_means: np.ndarray
    library_size: dict[str, np.ndarray] = field(default_factory=dict)
    batch_offset: dict[str, np.ndarray] = field(default_factory=dict)
    ambient_profile: dict[str, np.ndarray] = field(default_factory=dict)
    ambient_fraction: dict[str, float] = field(default_factory=dict)
    dispersion: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_topics(self) -> int:
        """Number of planted topics ``K``."""
        return int(self.theta.shape[1])

    def marker_mask(self, modality: str) -> np.ndarray:
        """``(K, F_m)`` boolean mask of each topic's planted markers."""
        n_feat = self.topic_feature[modality].shape[1]
        mask = np.zeros((self.n_topics, n_feat), dtype=bool)
        mask[np.arange(self.n_topics)[:, None], self.markers[modality]] = True
        return mask
