"""A data-driven start for the topic-feature logits: cluster the cells, profile each cluster.

Amortised topic models started from all-zero topic logits form their topics slowly and, on
small data, often let several topics collapse onto one. Starting each topic from the
feature profile of one k-means cluster of the cells gives the optimiser distinct topics to
refine. Everything here is sparse-aware and works on at most ``max_cells`` cells.

Registered categorical covariates (batches) are divided out first: each level's mean
feature profile is scaled to the overall one, the multiplicative per-feature effect the
model's decoder offsets describe. Clustering uncorrected data would otherwise find the
batches and start topics that the covariate offsets can no longer take apart.

Spatial models cluster each cell together with its graph neighbours (their counts pooled),
as their encoders read it: at low depth a cell alone is too noisy to tell similar topics
apart, and a start that merged two of them costs the spatial model its advantage. The
profiles are still taken from the cells' own counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from ._lazy import read_rows, times_rows
from ._stats import block_slices


def most_variable(normalised: sp.csr_matrix, n_top: int) -> sp.csr_matrix:
    """The ``n_top`` columns of largest variance (all when there are no more than that)."""
    if normalised.shape[1] <= n_top:
        return normalised
    n_obs, n_features = normalised.shape
    columns = normalised.indices
    mean = np.bincount(columns, weights=normalised.data, minlength=n_features) / n_obs
    squares = np.bincount(columns, weights=np.square(normalised.data), minlength=n_features)
    variance = squares / n_obs - mean**2
    keep = np.sort(np.argsort(-variance, kind="stable")[:n_top])
    return normalised[:, keep]


def log_normalised(block: sp.csr_matrix) -> sp.csr_matrix:
    """``log1p`` of each row scaled to 10,000 counts, sharing ``block``'s index arrays.

    Only one new array of the stored values is allocated (the subsample of a large dataset
    is held in float64 next to it).
    """
    lib = np.asarray(block.sum(1)).ravel()
    lib[lib <= 0] = 1.0
    values = np.repeat(1e4 / lib, np.diff(block.indptr))
    np.multiply(values, block.data, out=values)
    np.log1p(values, out=values)
    return sp.csr_matrix((values, block.indices, block.indptr), shape=block.shape, copy=False)


def _cell_embedding(
    blocks: list[sp.csr_matrix], n_components: int, seed: int, n_top_features: int
) -> np.ndarray:
    """Per-modality log-normalised, SVD-reduced profiles, each block scaled to equal weight.

    Each block is reduced on its ``n_top_features`` most variable log-normalised features:
    with thousands of rarely seen features the leading components follow depth and noise
    rather than what sets the cells apart.
    """
    from sklearn.decomposition import TruncatedSVD

    parts = []
    for block in blocks:
        normalised = most_variable(log_normalised(block), n_top_features)
        n_comp = min(n_components, normalised.shape[1] - 1, normalised.shape[0] - 1)
        if n_comp < 1:
            continue
        reduced = TruncatedSVD(n_comp, random_state=seed).fit_transform(normalised)
        scale = np.linalg.norm(reduced, axis=1).mean()
        parts.append(reduced / (scale if scale > 0 else 1.0))
    return np.hstack(parts)


def remove_level_profiles(matrix: sp.csr_matrix, codes: np.ndarray) -> sp.csr_matrix:
    """Scale each covariate level's mean feature frequencies to the overall means.

    Parameters
    ----------
    matrix
        Non-negative ``(N, F)`` counts of one modality.
    codes
        ``(N, C)`` integer level codes of ``C`` categorical covariates, applied in turn.

    Returns
    -------
    A new matrix with the same sparsity: ``x_nf · p_f / p_{s_n f}`` where ``p`` are mean
    depth-normalised frequencies (features absent from a level are left as they are).
    """
    out = matrix.copy()
    for column in np.asarray(codes).reshape(matrix.shape[0], -1).T:
        lib = np.asarray(out.sum(1)).ravel()
        freq = sp.diags(1.0 / np.maximum(lib, 1e-12)) @ out
        overall = np.asarray(freq.mean(0)).ravel()
        levels = np.unique(column)
        factors = np.ones((int(levels.max()) + 1, out.shape[1]))
        for level in levels:
            level_mean = np.asarray(freq[column == level].mean(0)).ravel()
            seen = level_mean > 0
            factors[level, seen] = overall[seen] / level_mean[seen]
        rows = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
        out.data = out.data * factors[column[rows], out.indices]
    return out


def pooled_with_neighbours(X, graph, rows: np.ndarray | None) -> sp.csr_matrix:
    """Each cell's counts plus its neighbours' (``(A + I) X``), for the ``rows`` asked.

    Parameters
    ----------
    X
        ``(N, F)`` matrix (dense or sparse) of all cells.
    graph
        ``(N, N)`` binary cell graph.
    rows
        Cells to return (all when None); only their neighbourhoods are read.
    """
    n_obs = X.shape[0]
    rows = np.arange(n_obs) if rows is None else np.asarray(rows)
    own = sp.csr_matrix((np.ones(len(rows)), (np.arange(len(rows)), rows)),
                        shape=(len(rows), n_obs))
    reach = sp.csr_matrix(graph, dtype=np.float64)[rows] + own  # only the rows asked
    return sp.csr_matrix(times_rows(reach, X), dtype=np.float64)


def clustered_topic_logits(
    X,
    feature_counts: Sequence[int],
    n_topics: int,
    relative_to_mean: Sequence[bool],
    use_modality: Sequence[bool] | None = None,
    covariate_codes: np.ndarray | None = None,
    neighbour_graphs: Sequence | None = None,
    *,
    seed: int = 0,
    max_cells: int = 20000,
    n_components: int = 20,
    n_top_features: int = 1000,
    n_restarts: int = 10,
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
    covariate_codes
        ``(N, C)`` level codes of registered categorical covariates, divided out of every
        block before clustering and profiling (:func:`remove_level_profiles`).
    neighbour_graphs
        Per modality, an ``(N, N)`` cell graph or None: the clustering sees each cell's
        counts pooled with its neighbours' (:func:`pooled_with_neighbours`); the profiles
        use the cells' own counts.
    seed
        Seed of the cell subsample, the SVD and k-means.
    max_cells
        Cells used at most (a random subsample of larger data).
    n_components
        SVD components per modality for the clustering.
    n_top_features
        Most variable (log-normalised) features per modality the SVD reads.
    n_restarts
        k-means restarts (the run of least inertia is kept).
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
    # counts are exact in float32: the sample is read at half the memory, and each block
    # is widened to float64 as it is cut out (the sample is freed once they are)
    matrix = read_rows(X, rows, np.float32)
    codes = None
    if covariate_codes is not None:
        codes = np.asarray(covariate_codes).reshape(n_obs, -1)
        codes = codes if rows is None else codes[rows]

    def corrected(block: sp.csr_matrix) -> sp.csr_matrix:
        return block if codes is None else remove_level_profiles(block, codes)

    blocks = [
        corrected(sp.csr_matrix(matrix[:, sl], dtype=np.float64)) if on else None
        for sl, on in zip(slices, use, strict=True)
    ]
    del matrix
    views = list(blocks)  # what the clustering sees: pooled over neighbours where given
    pooled: dict[int, sp.csr_matrix] = {}  # one product per distinct graph
    for m, graph in enumerate(neighbour_graphs or []):
        if graph is None or views[m] is None:
            continue
        if id(graph) not in pooled:
            pooled[id(graph)] = pooled_with_neighbours(X, graph, rows)
        views[m] = corrected(pooled[id(graph)][:, slices[m]])
    embedding = _cell_embedding(
        [v for v in views if v is not None], n_components, seed, n_top_features
    )
    labels = KMeans(n_topics, n_init=n_restarts, random_state=seed).fit_predict(embedding)
    indicator = sp.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(n_topics, len(labels))
    )
    out: list[np.ndarray | None] = []
    for block, relative in zip(blocks, relative_to_mean, strict=True):
        if block is None:
            out.append(None)
            continue
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
