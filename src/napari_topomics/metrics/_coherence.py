"""Spatial coherence (Moran's I) and batch mixing of embeddings."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["knn_batch_mixing", "morans_i"]


def morans_i(
    values: np.ndarray, graph: sp.spmatrix | np.ndarray, *, row_standardise: bool = True
) -> float | np.ndarray:
    """Moran's I of one or several variables on a cell graph.

    ``I = (N / S0) · Σ_ij w_ij z_i z_j / Σ_i z_i²`` with ``z`` the centred values and
    ``S0 = Σ_ij w_ij``. About 1 for smooth fields, about ``−1/(N−1)`` (≈ 0) for values
    shuffled over the cells, negative for checkerboards.

    Parameters
    ----------
    values
        ``(N,)`` or ``(N, K)``; each column is scored separately.
    graph
        ``(N, N)`` adjacency (e.g. a kNN connectivity matrix); the diagonal is ignored.
    row_standardise
        If ``True`` (default), each row of the weights is divided by its sum, so every
        cell with neighbours counts equally (cells without neighbours drop out of
        ``S0``). If ``False``, the weights are used as given (binary for a connectivity
        matrix).

    Returns
    -------
    A float for 1-D ``values``, else a ``(K,)`` array; NaN for a constant column.
    """
    vals = np.asarray(values, dtype=np.float64)
    one_d = vals.ndim == 1
    vals = vals[:, None] if one_d else vals
    w = sp.csr_matrix(graph, dtype=np.float64)
    if w.shape != (vals.shape[0], vals.shape[0]):
        raise ValueError(f"graph has shape {w.shape}, expected {(vals.shape[0],) * 2}")
    w.setdiag(0.0)
    w.eliminate_zeros()
    if row_standardise:
        rs = np.asarray(w.sum(axis=1)).ravel()
        w = sp.diags(np.divide(1.0, rs, out=np.zeros_like(rs), where=rs > 0)) @ w
    s0 = w.sum()
    z = vals - vals.mean(axis=0)
    num = np.einsum("ik,ik->k", z, np.asarray(w @ z))
    den = np.einsum("ik,ik->k", z, z)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = vals.shape[0] / s0 * num / den
    out = np.where(den > 0, out, np.nan)
    return float(out[0]) if one_d else out


def knn_batch_mixing(embedding: np.ndarray, batch: np.ndarray, k: int = 15) -> float:
    """How well batches mix among each cell's nearest neighbours in an embedding.

    The observed share of each cell's ``k`` nearest neighbours (Euclidean, the cell
    itself excluded) that come from another batch, averaged over cells, divided by its
    expectation under random labels, the average of ``(N − n_b) / (N − 1)`` for a cell
    of batch ``b``. About 1 when batches are mixed (labels independent of the
    embedding), 0 when every neighbourhood is a single batch.

    Parameters
    ----------
    embedding
        ``(N, D)`` coordinates, e.g. θ.
    batch
        ``(N,)`` labels, at least two distinct values.
    k
        Number of neighbours.
    """
    from sklearn.neighbors import NearestNeighbors

    emb = np.asarray(embedding, dtype=np.float64)
    emb = emb[:, None] if emb.ndim == 1 else emb
    _, codes, sizes = np.unique(np.asarray(batch), return_inverse=True, return_counts=True)
    n = emb.shape[0]
    if sizes.size < 2:
        raise ValueError("knn_batch_mixing needs at least two batches")
    if codes.shape[0] != n:
        raise ValueError(f"batch has {codes.shape[0]} labels for {n} cells")
    k = min(k, n - 1)
    nbrs = NearestNeighbors(n_neighbors=k).fit(emb).kneighbors(return_distance=False)
    observed = (codes[nbrs] != codes[:, None]).mean()
    expected = ((n - sizes[codes]) / (n - 1)).mean()
    return float(observed / expected)
