"""A registered matrix that stays on disk, and the rows one training process holds (issue 18).

A model can be built on an AnnData whose ``X`` is anndata's lazily read CSR dataset (an
``.h5ad`` or ``.zarr`` matrix, :func:`napari_topomics.io.open_lazy`): the constructor's
statistics read it in row chunks, and inference reads it batch by batch. Training needs fast
random access to its minibatch rows, so each training process loads **only the rows it
trains on** into memory, once per ``train`` call: every row in a single process, a
contiguous ``1/world`` share of the cells per rank under DDP (plus, for a spatial model, the
neighbours its cells' sampled subgraphs reach). The loaded matrix keeps the full ``(N, F)``
shape with the other rows empty, so global cell indices, the registry and the graph are
unchanged; its cost is the held rows' entries plus one ``N + 1`` index array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: Rows read from disk at once while loading a share.
LOAD_CHUNK_ROWS = 8192


def is_sparse_dataset(X) -> bool:
    """Whether ``X`` is anndata's on-disk (lazily read) sparse matrix."""
    try:
        from anndata.abc import CSCDataset, CSRDataset
    except ImportError:  # pragma: no cover - anndata < 0.11
        return False
    return isinstance(X, CSRDataset | CSCDataset)


def is_lazy_matrix(X) -> bool:
    """Whether ``X`` is read from disk on access (sparse dataset, h5py or zarr array)."""
    if is_sparse_dataset(X):
        return True
    module = type(X).__module__.split(".")[0]
    return module in ("h5py", "zarr", "dask")


def require_csr_dataset(X) -> None:
    """Raise ``TypeError`` for an on-disk CSC matrix, whose rows cannot be read in chunks."""
    if X.format != "csr":
        raise TypeError(
            "The registered matrix is an on-disk CSC matrix, whose cells cannot be read in "
            "chunks. Write it as CSR (adata.X = adata.X.tocsr() before writing) or load it "
            "into memory."
        )


def dataset_indptr(X) -> np.ndarray:
    """The row pointer of an on-disk CSR dataset, in memory (``N + 1`` integers)."""
    require_csr_dataset(X)
    return np.asarray(X.group["indptr"][...], dtype=np.int64)


def contiguous_share(n_obs: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of rank ``rank`` among ``world_size`` near-equal blocks."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    edges = np.linspace(0, n_obs, world_size + 1).round().astype(np.int64)
    return int(edges[rank]), int(edges[rank + 1])


def read_rows(X, rows: np.ndarray | None = None, dtype=np.float64) -> sp.csr_matrix:
    """``X[rows]`` (all rows when None) as an in-memory CSR matrix, in the order asked.

    For a lazily read matrix the rows are read once, sorted, and reordered in memory.
    """
    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
    if not is_lazy_matrix(X):
        return sp.csr_matrix(X[rows], dtype=dtype)
    order = np.unique(rows)
    if order.size == 0:
        return sp.csr_matrix((0, X.shape[1]), dtype=dtype)
    return _read_chunk(X, order, dtype)[np.searchsorted(order, rows)]


def times_rows(weights: sp.csr_matrix, X, dtype=np.float64):
    """``weights @ X``; of a lazily read ``X`` only the rows ``weights`` touches are read."""
    if not is_lazy_matrix(X):
        return weights @ X
    touched = np.unique(weights.indices)
    return weights[:, touched] @ read_rows(X, touched, dtype)


def _stored_per_row(X) -> np.ndarray | None:
    """Stored entries of every row, known without reading the values (None when dense)."""
    if is_sparse_dataset(X):
        return np.diff(dataset_indptr(X))
    if sp.issparse(X) and X.format == "csr":
        return np.diff(X.indptr)
    return None


def _read_chunk(X, chunk: np.ndarray, dtype) -> sp.csr_matrix:
    if chunk[-1] - chunk[0] + 1 == chunk.size:  # a run: one slice
        part = X[int(chunk[0]) : int(chunk[-1]) + 1]
    else:
        part = X[chunk]
    if not sp.issparse(part):
        part = np.asarray(part)  # h5py, zarr or dask rows
    part = sp.csr_matrix(part, dtype=dtype)
    part.sort_indices()
    return part


def load_rows(X, rows: np.ndarray, dtype=np.float32) -> sp.csr_matrix:
    """The ``(N, F)`` CSR matrix holding ``X``'s ``rows`` and no other entries.

    Reads the rows in chunks of at most :data:`LOAD_CHUNK_ROWS` (runs of consecutive rows
    as slices) into arrays allocated once from the row pointer, so the peak is the result
    plus one chunk. Works for on-disk CSR datasets, in-memory sparse matrices and dense
    array-likes.
    """
    rows = np.unique(np.asarray(rows, dtype=np.int64))
    n_obs, n_vars = X.shape
    per_row = _stored_per_row(X)
    chunks = [rows[a : a + LOAD_CHUNK_ROWS] for a in range(0, rows.size, LOAD_CHUNK_ROWS)]
    if per_row is None:  # dense input: sizes are known only once read
        parts = [_read_chunk(X, c, dtype) for c in chunks]
        per_row = np.zeros(n_obs, dtype=np.int64)
        for c, part in zip(chunks, parts, strict=True):
            per_row[c] = np.diff(part.indptr)
    else:
        parts = None
    lengths = np.zeros(n_obs, dtype=np.int64)
    lengths[rows] = per_row[rows]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=dtype)
    for i, chunk in enumerate(chunks):
        part = parts[i] if parts is not None else _read_chunk(X, chunk, dtype)
        lo, hi = indptr[chunk[0]], indptr[chunk[-1] + 1]
        if part.nnz != hi - lo:
            raise ValueError("The matrix changed on disk while its rows were being read.")
        indices[lo:hi] = part.indices
        data[lo:hi] = part.data
        if parts is not None:
            parts[i] = None
    return sp.csr_matrix((data, indices, indptr), shape=(n_obs, n_vars))


@dataclass(frozen=True)
class RowShare:
    """The cells one training process trains on, and the rows it holds in memory.

    Attributes
    ----------
    rank, world_size
        This process among all of the fit's processes.
    start, stop
        Its training share: the cells ``[start, stop)``.
    held
        Sorted rows it loads: the share plus, for a spatial model, its cells' neighbours.
    """

    rank: int
    world_size: int
    start: int
    stop: int
    held: np.ndarray

    def owns(self, cells: np.ndarray) -> np.ndarray:
        """Boolean mask of the ``cells`` in this process's training share."""
        cells = np.asarray(cells)
        return (cells >= self.start) & (cells < self.stop)

    @staticmethod
    def shares(n_obs: int, world_size: int) -> list[tuple[int, int]]:
        """Every rank's ``[start, stop)``."""
        return [contiguous_share(n_obs, r, world_size) for r in range(world_size)]
