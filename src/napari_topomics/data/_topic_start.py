"""A data-driven start for the topic-feature logits: cluster the cells, profile each cluster.

Amortised topic models started from all-zero topic logits form their topics slowly and, on
small data, often let several topics collapse onto one. Starting each topic from the
feature profile of one k-means cluster of the cells gives the optimiser distinct topics to
refine. Everything here is sparse-aware and works on at most ``max_cells`` cells.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ._stats import block_slices


def _cell_embedding(
    blocks: list[sp.csr_matrix], n_components: int, seed: int
) -> np.ndarray:
    """Per-modality log-normalised, SVD-reduced profiles, each block scaled to equal weight."""
    from sklearn.decomposition import TruncatedSVD

    parts = []
    for block in blocks:
        lib = np.asarray(block.sum(1)).ravel()
        lib[lib <= 0] = 1.0
        normalised = sp.diags(1e4 / lib) @ block
        normalised.data = np.log1p(normalised.data)
        n_comp = min(n_components, block.shape[1] - 1, block.shape[0] - 1)
        if n_comp < 1:
            continue
        reduced = TruncatedSVD(n_comp, random_state=seed).fit_transform(normalised)
        scale = np.linalg.norm(reduced, axis=1).mean()
        parts.append(reduced / (scale if scale > 0 else 1.0))
    return np.hstack(parts)


def clustered_topic_logits(
    X,
    feature_counts: Sequence[int],
    n_topics: int,
    relative_to_mean: Sequence[bool],
    use_modality: Sequence[bool] | None = None,
    *,
    seed: int = 0,
    max_cells: int = 20000,
    n_components: int = 20,
    pseudocount: float = 0.05,
) -> list[np.ndarray | None]:
    """Topic-feature logits, one ``(n_topics, F_m)`` array per modality, from k-means.

    Parameters
    ----------
    X
        Registered matrix ``(N, F)`` (dense or sparse), non-negative in the used blocks.
    feature_counts
        Feature count of each modality block.
    n_topics
        Number of topics (= clusters).
    relative_to_mean
        Per modality: True gives ``log(p_k + ε) − log(p + ε)`` (the model adds a feature
        background ``≈ log p``); False gives the centred ``log(p_k + ε)``.
    use_modality
        Per modality, whether to use it (default all); unused ones get None.
    seed
        Seed of the cell subsample, the SVD and k-means.
    max_cells
        Cells used at most (a random subsample of larger data).
    n_components
        SVD components per modality for the clustering.
    pseudocount
        ``ε`` as a fraction of a uniform frequency, ``ε = pseudocount / F_m``.

    Returns
    -------
    list of arrays or None
        Logits per modality (None for unused modalities or when there are fewer cells than
        topics).
    """
    from sklearn.cluster import KMeans

    slices = block_slices(feature_counts)
    use = list(use_modality) if use_modality is not None else [True] * len(slices)
    n_obs = X.shape[0]
    if n_obs < 2 * n_topics or not any(use):
        return [None] * len(slices)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n_obs, max_cells, replace=False)) if n_obs > max_cells else None
    matrix = sp.csr_matrix(X if rows is None else X[rows], dtype=np.float64)
    blocks = [matrix[:, sl] for sl, on in zip(slices, use, strict=True) if on]
    embedding = _cell_embedding(blocks, n_components, seed)
    labels = KMeans(n_topics, n_init=3, random_state=seed).fit_predict(embedding)
    indicator = sp.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(n_topics, len(labels))
    )
    out: list[np.ndarray | None] = []
    for sl, on, relative in zip(slices, use, relative_to_mean, strict=True):
        if not on:
            out.append(None)
            continue
        block = matrix[:, sl]
        eps = pseudocount / block.shape[1]
        sums = np.asarray((indicator @ block).todense())
        profiles = sums / np.maximum(sums.sum(1, keepdims=True), 1e-12)
        logits = np.log(profiles + eps)
        if relative:
            overall = np.asarray(block.sum(0)).ravel()
            logits -= np.log(overall / max(overall.sum(), 1e-12) + eps)
        else:
            logits -= logits.mean(1, keepdims=True)
        out.append(logits.astype(np.float32))
    return out
