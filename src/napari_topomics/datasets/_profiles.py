"""Planted topic-feature profiles and a chunked CSR builder for the simulator."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def make_profiles(
    n_topics: int,
    n_features: int,
    n_markers: int,
    marker_fold: float,
    baseline_sigma: float,
    topic_noise: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Topic-feature distributions with disjoint marker blocks.

    Every feature has a shared log-normal baseline (``baseline_sigma`` on the log scale),
    perturbed per topic by log-normal noise of scale ``topic_noise``. Topic ``k`` owns a
    block of ``n_markers`` features, drawn without replacement and disjoint from the
    other topics' blocks, whose weight is multiplied by ``marker_fold``.

    Returns
    -------
    phi
        ``(n_topics, n_features)`` float64, rows sum to 1.
    markers
        ``(n_topics, n_markers)`` int64 feature indices, each row sorted.
    """
    if n_topics * n_markers > n_features:
        raise ValueError(
            f"{n_topics} topics x {n_markers} markers do not fit in {n_features} features"
        )
    base = rng.lognormal(0.0, baseline_sigma, size=n_features)
    phi = base[None, :] * rng.lognormal(0.0, topic_noise, size=(n_topics, n_features))
    chosen = rng.permutation(n_features)[: n_topics * n_markers]
    markers = np.sort(chosen.reshape(n_topics, n_markers), axis=1)
    phi[np.arange(n_topics)[:, None], markers] *= marker_fold
    phi /= phi.sum(axis=1, keepdims=True)
    return phi, markers


def default_n_markers(modality: str, n_features: int, n_topics: int) -> int:
    """Default marker-block size: a quarter of the features (protein: 3/4), at most 50."""
    share = 0.75 if modality == "protein" else 0.25
    return int(max(1, min(50, int(share * n_features) // n_topics)))


def dense_to_csr_parts(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zeros of a dense block as ``(data float32, column indices int32, row counts)``."""
    mask = block != 0
    flat = np.flatnonzero(mask)
    indices = (flat % block.shape[1]).astype(np.int32)
    data = block.reshape(-1)[flat].astype(np.float32)
    return data, indices, mask.sum(axis=1)


class CSRBuilder:
    """Collect rows as CSR pieces and assemble one float32 CSR matrix.

    The output buffers grow in place (``ndarray.resize``, which maps to ``realloc``),
    sized from the density seen so far, so the peak memory stays close to the final
    matrix.
    """

    def __init__(self, n_rows: int, n_cols: int) -> None:
        self.n_rows, self.n_cols = n_rows, n_cols
        self.indptr = np.zeros(n_rows + 1, dtype=np.int64)
        self.data = np.empty(0, dtype=np.float32)
        self.indices = np.empty(0, dtype=np.int32)
        self.nnz = 0
        self.row = 0

    def _reserve(self, need: int, rows_done: int) -> None:
        if need <= self.data.size:
            return
        projected = int(need * self.n_rows / rows_done * 1.05) + 1024
        new = max(need, min(projected, self.n_rows * self.n_cols), int(self.data.size * 1.25))
        self.data.resize(new, refcheck=False)
        self.indices.resize(new, refcheck=False)

    def append(self, data: np.ndarray, indices: np.ndarray, counts: np.ndarray) -> None:
        """Append rows given as non-zero values, their columns and per-row counts."""
        rows, end = counts.shape[0], self.nnz + data.size
        self._reserve(end, self.row + rows)
        self.data[self.nnz : end] = data
        self.indices[self.nnz : end] = indices
        self.indptr[self.row + 1 : self.row + 1 + rows] = self.nnz + np.cumsum(counts)
        self.nnz = end
        self.row += rows

    def build(self) -> sp.csr_matrix:
        """Return the assembled matrix (the builder must not be used afterwards)."""
        if self.row != self.n_rows:
            raise RuntimeError(f"built {self.row} of {self.n_rows} rows")
        self.data.resize(self.nnz, refcheck=False)
        self.indices.resize(self.nnz, refcheck=False)
        indptr = self.indptr
        if self.nnz < np.iinfo(np.int32).max:
            indptr = indptr.astype(np.int32)
        mat = sp.csr_matrix(
            (self.data, self.indices, indptr), shape=(self.n_rows, self.n_cols), copy=False
        )
        mat.has_canonical_format = True
        return mat
