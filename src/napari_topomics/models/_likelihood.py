"""ELBO, plug-in likelihoods and perplexity (spec §5.3, §5.4)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import torch
from pyro import poutine

from ._inference import seeded_generator

REGULARISER_SITES = ["entropy_bonus", "topic_variance_bonus"]


class LikelihoodMixin:
    """Goodness-of-fit queries; all use plug-in point estimates except the ELBO."""

    def get_elbo(self, adata=None, indices=None, batch_size=None) -> float:
        """ELBO of the selected cells (higher is better), at the final KL weight.

        Each minibatch's one-sample estimate is rescaled to the selected cell count and the
        estimates are averaged, weighted by batch size, so the expectation does not depend
        on ``batch_size``. The regularisers are left out.
        """
        n_cells = self._n_selected(adata, indices)
        module = self.module
        loss_fn = pyro.infer.TraceMeanField_ELBO()
        model = poutine.block(module.model, hide=REGULARISER_SITES)
        saved_n_obs, saved_neighbour = module.n_obs, module.neighbour_weight
        module.neighbour_weight = 0.0  # the ELBO of the cells' own data (§5.3)
        total = 0.0
        with torch.random.fork_rng(devices=[]), self._inference():
            torch.manual_seed(seeded_generator().initial_seed())
            module.n_obs = n_cells
            try:
                for args in self._batches(adata, indices, batch_size):
                    loss = loss_fn.loss(model, module.guide, *args, kl_weight=self.kl_weight)
                    total += loss * args[0].shape[0] / n_cells
            finally:
                module.n_obs, module.neighbour_weight = saved_n_obs, saved_neighbour
        return -float(total)

    def _n_selected(self, adata, indices) -> int:
        if indices is not None:
            return len(indices)
        return (self.adata if adata is None else adata).n_obs

    def _plugin_log_likelihoods(self, adata, indices, batch_size) -> tuple[dict, dict]:
        """Per-modality ``Σ_n log p(x_nm | θ̂_n, point globals)`` and token counts."""
        noise = self._theta_noise(5000)
        module, cfg = self.module, self.module.config
        ll = np.zeros(self.n_modalities)
        tokens = np.zeros(self.n_modalities)
        with self._inference():
            point = [g.posterior_point() for g in module.globals]
            for args in self._batches(adata, indices, batch_size):
                x, ind, cat, cont, extra = args
                theta = self._theta(module.encode(x, cat, cont, extra, ind), noise)
                mask = module.modality_mask(x) > 0
                blocks = module.observed_blocks(x)
                for m in range(self.n_modalities):
                    obs, data = module.observation(m, blocks[m], theta, point[m], cat, cont)
                    log_p = obs.log_prob(data)
                    if not cfg.is_count(m):
                        log_p = log_p[mask[:, m]]
                    ll[m] += float(log_p.double().sum())
                    tokens[m] += float(data.double().sum()) if cfg.is_count(m) else 0.0
        names = list(self.modality_names)
        return dict(zip(names, ll, strict=True)), dict(zip(names, tokens, strict=True))

    def get_likelihood_per_modality(
        self, adata=None, indices=None, batch_size=None
    ) -> dict[str, float]:
        """Plug-in log-likelihood of each modality (no weights, no subsample rescaling)."""

        # shares the cached pass of the perplexity methods (one pass gives both)
        ll, _ = self._perplexity_parts(adata, indices, batch_size)
        return {k: float(v) for k, v in ll.items()}

    def _perplexity_parts(self, adata, indices, batch_size):
        key = self._metric_cache.key(
            "ll_tokens", adata=adata, indices=indices, batch_size=batch_size
        )
        parts = self._metric_cache.get(key)
        if parts is None:
            parts = self._metric_cache.put(
                key, self._plugin_log_likelihoods(adata, indices, batch_size)
            )
        return parts

    def get_perplexity_per_modality(
        self, adata=None, indices=None, batch_size=None
    ) -> dict[str, float]:
        """``exp(−LL_m / T_m)`` per modality; Gaussian modalities map to ``nan``."""
        ll, tokens = self._perplexity_parts(adata, indices, batch_size)
        out = {}
        for m, name in enumerate(self.modality_names):
            if not self.module.config.is_count(m):
                warnings.warn(
                    f"Perplexity is undefined for the Gaussian modality {name!r}; it is nan.",
                    UserWarning,
                    stacklevel=2,
                )
                out[name] = float("nan")
            else:
                out[name] = math.exp(-ll[name] / tokens[name]) if tokens[name] > 0 else math.inf
        return out

    def get_perplexity(self, adata=None, indices=None, batch_size=None) -> float:
        """``exp(−Σ_m LL_m / Σ_m T_m)`` over the count and binary modalities (lower is better)."""
        ll, tokens = self._perplexity_parts(adata, indices, batch_size)
        counted = [n for m, n in enumerate(self.modality_names) if self.module.config.is_count(m)]
        total = sum(tokens[n] for n in counted)
        if total <= 0:
            return math.inf
        return math.exp(-sum(ll[n] for n in counted) / total)
