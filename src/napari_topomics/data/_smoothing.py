"""Precomputed graph smoothing for ``spatial_mode="sgc"`` (spec §3.11.3).

The features of one modality are ``[X̂, ÂX̂, …, Â^L X̂]`` with
``Â = D^{-1/2}(A + I)D^{-1/2}`` and ``D = diag(deg(A) + 2)`` (the published normalisation,
kept on purpose), then ``log(1 + ·)`` for count and binary modalities. Sparse input stays
sparse: nothing here densifies the whole matrix.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._graph import symmetrize_graph
from ._stats import library_sizes, median_library

__all__ = ["library_median", "normalized_adjacency", "sgc_features"]


def normalized_adjacency(graph) -> sp.csr_matrix:
    """Return ``Â = D^{-1/2}(A + I)D^{-1/2}`` with ``D = diag(deg(A) + 2)``.

    Parameters
    ----------
    graph
        Square adjacency matrix (sparse or dense); it is symmetrised (``A ∨ Aᵀ``), made
        binary and its self-loops are dropped before ``I`` is added.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(N, N)`` float64 with sorted indices. ``deg(A) + 2`` (not ``+ 1``) is the
        published normalisation and is kept on purpose; an isolated node gets ``1/2``.
    """
    A = symmetrize_graph(graph).astype(np.float64)
    n = A.shape[0]
    deg = np.diff(A.indptr).astype(np.float64)
    inv_sqrt = 1.0 / np.sqrt(deg + 2.0)
    d = sp.diags(inv_sqrt)
    out = (d @ (A + sp.identity(n, dtype=np.float64, format="csr")) @ d).tocsr()
    out.sort_indices()
    return out


def library_median(block) -> float:
    """Median library size ``ℓ = Σ_f max(x_f, 0)`` over rows with ``ℓ > 0`` (1 if none).

    Parameters
    ----------
    block
        One modality's ``(N, F)`` matrix, sparse or dense.

    Returns
    -------
    float
        The ``med`` of §3.11.3, saved with the model and reused for query data.
    """
    _check_block(block)
    return median_library(library_sizes(block, [block.shape[1]])[:, 0])


def _check_block(block) -> None:
    shape = getattr(block, "shape", None)
    if shape is None or len(shape) != 2:
        raise ValueError(f"block must be a 2-D (N, F) matrix, got shape {shape}")


def _check_scale(scale) -> float | None:
    if scale is None:
        return None
    value = float(scale)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"scale must be a positive finite number or None, got {scale!r}")
    return value


def _row_scale(lib: np.ndarray, med: float) -> np.ndarray:
    """``med / ℓ`` per row; 0 where ``ℓ = 0`` so those rows stay 0."""
    out = np.zeros(lib.shape, dtype=np.float64)
    pos = lib > 0
    out[pos] = med / lib[pos]
    return out


def sgc_features(
    block, graph, n_layers: int, scale: float | None, is_count: bool
) -> sp.csr_matrix | np.ndarray:
    """SGC features ``[X̂, ÂX̂, …, Â^L X̂]`` of one modality (§3.11.3).

    Parameters
    ----------
    block
        One modality's ``(N, F)`` matrix, scipy sparse (any format) or dense.
    graph
        ``(N, N)`` adjacency matrix of the modality's graph.
    n_layers
        ``L`` (``sgc_n_layers``), ``>= 0``.
    scale
        ``med`` for the count normalisation; ``None`` uses :func:`library_median` of
        ``block`` (pass the saved training value for query data). Ignored when
        ``is_count`` is False.
    is_count
        True for count and binary modalities: values are clamped at 0,
        ``X̂ = x · med / ℓ`` row-wise (rows with ``ℓ = 0`` stay 0) and ``log1p`` is
        applied to the result. False (Gaussian): ``X̂ = x`` and no ``log1p``.

    Returns
    -------
    scipy.sparse.csr_matrix or np.ndarray
        ``(N, F·(L+1))`` float32: CSR for sparse input, an ndarray for dense input.
    """
    _check_block(block)
    n = int(block.shape[0])
    gshape = getattr(graph, "shape", None)
    if gshape is None or tuple(gshape) != (n, n):
        raise ValueError(
            f"graph must have shape ({n}, {n}) to match the block's {n} rows, got {gshape}"
        )
    if isinstance(n_layers, bool) or int(n_layers) != n_layers or int(n_layers) < 0:
        raise ValueError(f"sgc_n_layers must be an integer >= 0, got {n_layers!r}")
    n_layers = int(n_layers)
    med = _check_scale(scale)
    a_hat = normalized_adjacency(graph)

    if sp.issparse(block):
        x = sp.csr_matrix(block, dtype=np.float64, copy=True)
        if is_count:
            np.maximum(x.data, 0, out=x.data)
            lib = np.asarray(x.sum(axis=1), dtype=np.float64).ravel()
            if med is None:
                med = median_library(lib)
            x.data *= np.repeat(_row_scale(lib, med), np.diff(x.indptr))
            x.eliminate_zeros()
        feats = [x.astype(np.float32)]
        cur = x
        for _ in range(n_layers):
            cur = (a_hat @ cur).tocsr()
            feats.append(cur.astype(np.float32))
        out = sp.hstack(feats, format="csr", dtype=np.float32)
        if is_count:
            np.log1p(out.data, out=out.data)
        out.eliminate_zeros()
        out.sort_indices()
        return out

    x = np.array(block, dtype=np.float64)
    if is_count:
        np.maximum(x, 0, out=x)
        lib = x.sum(axis=1)
        if med is None:
            med = median_library(lib)
        x *= _row_scale(lib, med)[:, None]
    out = np.empty((n, x.shape[1] * (n_layers + 1)), dtype=np.float32)
    f = x.shape[1]
    out[:, :f] = x
    cur = x
    for layer in range(1, n_layers + 1):
        cur = a_hat @ cur
        out[:, layer * f : (layer + 1) * f] = cur
    if is_count:
        np.log1p(out, out=out)
    return out
