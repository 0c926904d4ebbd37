"""Shared inference plumbing: eval mode, minibatches on the device, the seeded generator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from scvi import settings

from ..module import EncodedCells
from ._graph_source import graph_source_for

MODULE_BATCH_ARGS = ("x", "ind", "cat", "cont", "extra")


def seeded_generator() -> torch.Generator:
    """A CPU generator seeded from ``scvi.settings.seed`` (0 when unset)."""
    seed = settings.seed if settings.seed is not None else 0
    return torch.Generator().manual_seed(int(seed))


class InferenceMixin:
    """Minibatched, gradient-free passes over (a subset of) an AnnData."""

    @contextmanager
    def _inference(self):
        """Eval mode under ``torch.inference_mode``, restoring the previous training mode."""
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            self.module.train(was_training)

    def _batches(self, adata=None, indices=None, batch_size=None) -> Iterator[tuple]:
        """Yield the module arguments ``(x, ind, cat, cont, extra)`` on the model's device."""
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(
            adata=adata, indices=indices, batch_size=batch_size or settings.batch_size,
            shuffle=False,
        )
        device = self.module.theta_prior_mu.device
        module = self.module
        training_source = module.graph_source
        if adata is not self.adata and self.spatial:
            module.graph_source = graph_source_for(self, adata)  # the query's own graph
        try:
            for tensors in loader:
                args, _ = module._get_fn_args_from_batch(tensors)
                yield tuple(None if a is None else a.to(device) for a in args)
        finally:
            module.graph_source = training_source

    def _encoded(self, adata=None, indices=None, batch_size=None) -> Iterator[tuple]:
        """Yield ``(args, EncodedCells)`` per minibatch (call inside :meth:`_inference`)."""
        for args in self._batches(adata, indices, batch_size):
            x, ind, cat, cont, extra = args
            yield args, self.module.encode(x, cat, cont, extra, ind)

    def _obs_names(self, adata=None, indices=None) -> pd.Index:
        adata = self.adata if adata is None else adata
        names = adata.obs_names
        return names if indices is None else names[np.asarray(indices)]

    @staticmethod
    def _theta(enc: EncodedCells, noise) -> torch.Tensor:
        from ..module._estimators import expected_softmax

        return expected_softmax(enc.mean, enc.var, noise)

    def _theta_noise(self, n_samples: int | None) -> torch.Tensor | None:
        if n_samples is None:
            return None
        if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or (
            n_samples < 1
        ):
            raise ValueError(f"n_samples must be a positive integer or None; got {n_samples!r}.")
        device = self.module.theta_prior_mu.device
        return torch.randn((int(n_samples), self.n_topics), generator=seeded_generator()).to(
            device
        )
