"""Cell-level queries: topic proportions, modality weights, entropy and variance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ._inference import InferenceMixin
from ._likelihood import LikelihoodMixin

DEFAULT_THETA_SAMPLES = 5000


class CellQueriesMixin(LikelihoodMixin, InferenceMixin):
    """Per-cell results; all accept ``adata=None, indices=None, batch_size=None``."""

    def _cached(self, method: str, compute, **arguments):
        key = self._metric_cache.key(method, **arguments)
        hit = self._metric_cache.get(key)
        if hit is not None:
            return hit
        return self._metric_cache.put(key, compute())

    def _check_trained(self) -> None:
        if not self.is_trained_:
            import warnings

            warnings.warn(
                "The model has not been trained; results come from the initial parameters.",
                UserWarning,
                stacklevel=3,
            )

    def get_cell_topic_dist(
        self, adata=None, indices=None, batch_size=None, n_samples: int | None = 5000,
        return_dataframe: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Cell-topic proportions ``Θ`` of shape ``(n_cells, K)`` (spec §5.2).

        Row n is ``E_q[softmax(z_n)]`` from ``n_samples`` draws (chunked, seeded, with the
        same noise for every cell, so a row does not depend on the batch it falls in);
        ``n_samples=None`` returns the deterministic plug-in ``softmax(μ_n)``.
        """
        self._check_trained()

        def compute():
            noise = self._theta_noise(n_samples)
            parts = []
            with self._inference():
                for _, enc in self._encoded(adata, indices, batch_size):
                    parts.append(self._theta(enc, noise).cpu())
            theta = torch.cat(parts).numpy().astype(np.float32) if parts else np.zeros(
                (0, self.n_topics), np.float32
            )
            return theta

        if adata is None and indices is None and n_samples == DEFAULT_THETA_SAMPLES:
            theta = self._cached("theta", compute, batch_size=batch_size)
        else:
            theta = compute()
        if not return_dataframe:
            return theta
        return pd.DataFrame(
            theta, index=self._obs_names(adata, indices), columns=self._topic_columns()
        )

    def get_latent_representation(
        self, adata=None, indices=None, batch_size=None, n_samples: int | None = 5000,
        return_dataframe: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Alias of :meth:`get_cell_topic_dist`."""
        return self.get_cell_topic_dist(adata, indices, batch_size, n_samples, return_dataframe)

    def predict(self, data) -> pd.DataFrame:
        """Topic proportions of new cells (AnnData, MuData, dict or SpatialData).

        The data is set up with the model's modality order, layers and covariate keys, and
        must hold the same features; an unseen covariate level raises ``ValueError``.
        """
        query = self._prepare_query(data)
        return self.get_cell_topic_dist(adata=query, return_dataframe=True)

    def get_modality_weights(
        self, adata=None, indices=None, batch_size=None, return_format: str = "dataframe"
    ) -> pd.DataFrame | dict[str, np.ndarray]:
        """The per-cell modality weights ``ω`` actually used to mix the experts (spec §5.6)."""
        if return_format not in ("dataframe", "dict"):
            raise ValueError(
                f"return_format={return_format!r} is not valid. Allowed: ['dataframe', 'dict']."
            )

        def compute():
            parts = []
            with self._inference():
                for _, enc in self._encoded(adata, indices, batch_size):
                    parts.append(enc.weights.cpu())
            return torch.cat(parts).numpy().astype(np.float32)

        weights = self._cached(
            "modality_weights", compute, adata=adata, indices=indices, batch_size=batch_size
        )
        if return_format == "dict":
            return {name: weights[:, m] for m, name in enumerate(self.modality_names)}
        return pd.DataFrame(
            weights, index=self._obs_names(adata, indices), columns=list(self.modality_names)
        )

    def get_entropy(
        self, adata=None, indices=None, batch_size=None, normalised: bool = True
    ) -> float:
        """Mean per-cell topic entropy ``−Σ_k θ̂ log θ̂`` (θ̂ at the default draws)."""

        def compute():
            theta = self.get_cell_topic_dist(adata, indices, batch_size).astype(np.float64)
            if normalised:
                theta = theta / theta.sum(1, keepdims=True)
            return float(_entropy(theta).mean())

        return self._cached(
            "entropy", compute, adata=adata, indices=indices, batch_size=batch_size,
            normalised=normalised,
        )

    def get_cell_entropy(
        self, adata=None, indices=None, batch_size=None, n_samples: int | None = 100
    ) -> np.ndarray:
        """Per-cell topic entropy, shape ``(n_cells,)``, in ``[0, log K]``."""
        theta = self.get_cell_topic_dist(adata, indices, batch_size, n_samples=n_samples)
        return _entropy(theta.astype(np.float64))

    def get_topic_variance(
        self, adata=None, indices=None, batch_size=None, n_samples: int | None = 100
    ) -> np.ndarray:
        """Across-cell variance (ddof=1) of each topic's proportion, shape ``(K,)``."""
        theta = self.get_cell_topic_dist(adata, indices, batch_size, n_samples=n_samples)
        if theta.shape[0] < 2:
            return np.zeros(self.n_topics)
        return theta.astype(np.float64).var(axis=0, ddof=1)

    def _topic_columns(self) -> list[str]:
        return [f"topic_{k}" for k in range(self.n_topics)]


def _entropy(theta: np.ndarray) -> np.ndarray:
    return -(theta * np.log(np.maximum(theta, 1e-8))).sum(1)
