"""Start the topic-feature logits from clusters of the registered cells (before training)."""

from __future__ import annotations

import numpy as np
import torch
from scvi import REGISTRY_KEYS, settings

TOPIC_INITS = ("kmeans", "zero")


def start_topics_from_clusters(model) -> bool:
    """Set every logistic-normal modality's ``q(β)`` mean from k-means clusters of the cells.

    Gaussian modalities and horseshoe priors keep the zero start; spatial models cluster
    each cell with its graph neighbours. Returns whether anything was set. Deterministic
    for a given ``scvi.settings.seed``.
    """
    from ..data._topic_start import clustered_topic_logits

    module = model.module
    if model.topic_feature_prior_type != "logistic_normal":
        return False
    X = model.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
    likelihoods = list(module.config.likelihoods)
    use = [lik != "gaussian" for lik in likelihoods]
    relative = [bool(g.has_background) for g in module.globals]
    seed = int(settings.seed or 0)
    codes = None
    if REGISTRY_KEYS.CAT_COVS_KEY in model.adata_manager.data_registry:
        codes = np.asarray(model.adata_manager.get_from_registry(REGISTRY_KEYS.CAT_COVS_KEY))
    graphs = None
    source = getattr(module, "graph_source", None)
    if source is not None:
        graphs = [source.graphs.adjacency[g] for g in source.graphs.assignment]
    logits = clustered_topic_logits(
        X, model.n_inputs_modalities, model.n_topics, relative, use, codes, graphs, seed=seed
    )
    changed = False
    with torch.no_grad():
        for globals_, start in zip(module.globals, logits, strict=True):
            if start is None:
                continue
            globals_.beta_loc.copy_(torch.as_tensor(np.asarray(start), dtype=torch.float32))
            changed = True
    return changed
