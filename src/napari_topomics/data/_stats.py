"""Sparse-aware statistics of the registered matrix (spec §2.2, §3.4, §3.6.5, §3.9).

Every function here reads the registered matrix ``X`` in bounded pieces and never densifies
it as a whole. Supported inputs: scipy CSR/CSC matrices or arrays (other sparse formats are
converted to CSR, which does not densify), anndata's on-disk CSR datasets (an ``.h5ad`` or
``.zarr`` matrix read lazily, see :mod:`~napari_topomics.data._lazy`), whose rows are read
in chunks, and dense array-likes that support row slicing (numpy arrays, h5py datasets,
...), which are processed in row chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ._lazy import dataset_indptr, is_sparse_dataset, require_csr_dataset

__all__ = [
    "BlockStats",
    "block_slices",
    "block_stats",
    "check_finite",
    "feature_background_init",
    "library_sizes",
    "median_library",
    "modality_mask",
    "standardise_continuous",
]

#: Maximum number of matrix entries handled at once (stored entries for sparse input).
CHUNK_ENTRIES = 1 << 22
_MAX_OFFENDING = 10


def block_slices(feature_counts: Sequence[int]) -> list[slice]:
    """Return the column slice of each modality block.

    Parameters
    ----------
    feature_counts
        Number of features of each modality, in column order.

    Returns
    -------
    list[slice]
        ``slice(start, stop)`` per modality.
    """
    counts = [int(c) for c in feature_counts]
    if any(c < 0 for c in counts):
        raise ValueError(f"feature counts must be non-negative, got {counts}")
    edges = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _is_sparse(X) -> bool:
    """Whether ``X`` is sparse in memory or an on-disk CSR dataset."""
    return sp.issparse(X) or is_sparse_dataset(X)


def _prepare(X):
    """Return ``X`` as CSR/CSC when sparse, unchanged otherwise (on-disk CSR stays lazy)."""
    if is_sparse_dataset(X):
        require_csr_dataset(X)
        return X
    if sp.issparse(X):
        if X.format in ("csr", "csc"):
            return X
        return X.tocsr()
    if not hasattr(X, "shape") or len(X.shape) != 2:
        raise TypeError(f"Expected a 2-D matrix, got {type(X).__name__}")
    return X


def _check_counts(X, feature_counts: Sequence[int]) -> list[slice]:
    slices = block_slices(feature_counts)
    total = slices[-1].stop if slices else 0
    if total != X.shape[1]:
        raise ValueError(
            f"feature counts {list(feature_counts)} sum to {total}, but the registered matrix "
            f"has {X.shape[1]} columns"
        )
    return slices


def _row_chunks(indptr: np.ndarray, n_rows: int) -> Iterator[tuple[int, int]]:
    """Split CSR rows into ranges holding at most ``CHUNK_ENTRIES`` entries (>= 1 row)."""
    start = 0
    while start < n_rows:
        target = indptr[start] + CHUNK_ENTRIES
        stop = int(np.searchsorted(indptr, target, side="right")) - 1
        stop = min(max(stop, start + 1), n_rows)
        yield start, stop
        start = stop


def _iter_sparse_block(X, sl: slice) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(rows, local_cols, values)`` of the stored entries of a column block."""
    if X.format == "csr":
        on_disk = is_sparse_dataset(X)
        indptr = dataset_indptr(X) if on_disk else X.indptr
        for start, stop in _row_chunks(indptr, X.shape[0]):
            if on_disk:  # one read of the chunk's rows
                part = X[start:stop]
                idx, data = part.indices, part.data
            else:
                lo, hi = indptr[start], indptr[stop]
                idx, data = X.indices[lo:hi], X.data[lo:hi]
            keep = (idx >= sl.start) & (idx < sl.stop)
            rows = np.repeat(np.arange(start, stop), np.diff(indptr[start : stop + 1]))
            yield rows[keep], idx[keep] - sl.start, data[keep]
    else:  # csc: the block is one contiguous range of stored entries
        indptr = X.indptr[sl.start : sl.stop + 1]
        lo, hi = int(indptr[0]), int(indptr[-1])
        for a in range(lo, hi, CHUNK_ENTRIES):
            b = min(a + CHUNK_ENTRIES, hi)
            cols = np.searchsorted(indptr, np.arange(a, b), side="right") - 1
            yield X.indices[a:b], cols, X.data[a:b]


def _iter_dense_rows(X, sl: slice | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, chunk)`` row chunks of a dense matrix (optionally one block)."""
    n_rows, n_cols = X.shape
    width = n_cols if sl is None else max(sl.stop - sl.start, 1)
    step = max(1, CHUNK_ENTRIES // max(width, 1))
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        chunk = X[start:stop] if sl is None else X[start:stop, sl]
        yield start, stop, np.asarray(chunk)


def _block_row_sums(X, sl: slice, transform) -> np.ndarray:
    """Per-row sum of ``transform(values)`` over one column block, as float64."""
    out = np.zeros(X.shape[0], dtype=np.float64)
    if _is_sparse(X):
        for rows, _, vals in _iter_sparse_block(X, sl):
            out += np.bincount(rows, weights=transform(vals), minlength=X.shape[0])
    else:
        for start, stop, chunk in _iter_dense_rows(X, sl):
            out[start:stop] = transform(chunk).sum(axis=1, dtype=np.float64)
    return out


def _clamp(v: np.ndarray) -> np.ndarray:
    return np.maximum(v, 0).astype(np.float64, copy=False)


def _nonzero(v: np.ndarray) -> np.ndarray:
    return (v != 0).astype(np.float64)


def library_sizes(X, feature_counts: Sequence[int]) -> np.ndarray:
    """Library size of every cell in every modality, ``Σ_f max(x_nf, 0)``.

    Parameters
    ----------
    X
        Registered matrix, ``(N, F)``.
    feature_counts
        Feature count of each modality block.

    Returns
    -------
    np.ndarray
        ``(N, M)`` float64.
    """
    X = _prepare(X)
    slices = _check_counts(X, feature_counts)
    out = np.zeros((X.shape[0], len(slices)), dtype=np.float64)
    for m, sl in enumerate(slices):
        out[:, m] = _block_row_sums(X, sl, _clamp)
    return out


def modality_mask(X, feature_counts: Sequence[int]) -> np.ndarray:
    """Presence mask: True where the cell's block has at least one non-zero entry (§3.6.5).

    Parameters
    ----------
    X
        Registered matrix, ``(N, F)``.
    feature_counts
        Feature count of each modality block.

    Returns
    -------
    np.ndarray
        ``(N, M)`` bool. Negative values count as present (this is not "row sum > 0").
    """
    X = _prepare(X)
    slices = _check_counts(X, feature_counts)
    out = np.zeros((X.shape[0], len(slices)), dtype=bool)
    for m, sl in enumerate(slices):
        out[:, m] = _block_row_sums(X, sl, _nonzero) > 0
    return out


@dataclass
class BlockStats:
    """Value statistics of one modality block.

    Attributes
    ----------
    has_nan, has_inf
        Whether the block holds NaN / infinite values.
    has_negative
        Whether any finite value is < 0.
    is_binary
        Whether every value is 0 or 1.
    is_integer
        Whether every finite value is integral.
    offending_nonbinary
        Up to 10 distinct values other than 0 and 1, sorted.
    """

    has_nan: bool = False
    has_negative: bool = False
    is_binary: bool = True
    is_integer: bool = True
    offending_nonbinary: tuple[float, ...] = field(default_factory=tuple)
    has_inf: bool = False


def block_stats(X, sl: slice) -> BlockStats:
    """Compute :class:`BlockStats` for the columns ``sl`` of ``X``.

    Parameters
    ----------
    X
        Registered matrix, ``(N, F)``.
    sl
        Column slice of the block (see :func:`block_slices`).

    Returns
    -------
    BlockStats
    """
    X = _prepare(X)
    stats = BlockStats()
    offending: list[np.ndarray] = []
    n_offending = 0
    if _is_sparse(X):
        values = (vals for _, _, vals in _iter_sparse_block(X, sl))
    else:
        values = (chunk.ravel() for _, _, chunk in _iter_dense_rows(X, sl))
    for v in values:
        if v.size == 0:
            continue
        finite_mask = np.isfinite(v)
        if not finite_mask.all():
            stats.has_nan |= bool(np.isnan(v).any())
            stats.has_inf |= bool(np.isinf(v).any())
            finite = v[finite_mask]
        else:
            finite = v
        if not stats.has_negative and (finite < 0).any():
            stats.has_negative = True
        if stats.is_integer and not (finite == np.round(finite)).all():
            stats.is_integer = False
        bad = (v != 0) & (v != 1)
        if bad.any():
            stats.is_binary = False
            if n_offending < _MAX_OFFENDING:
                uniq = np.unique(v[bad])[:_MAX_OFFENDING]
                offending.append(uniq)
                n_offending = np.unique(np.concatenate(offending)).size
    if offending:
        uniq = np.unique(np.concatenate(offending))[:_MAX_OFFENDING]
        stats.offending_nonbinary = tuple(float(x) for x in uniq)
    return stats


def check_finite(X, feature_counts: Sequence[int], modality_names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming every modality whose block holds NaN or inf (§3.6.5).

    Parameters
    ----------
    X
        Registered matrix, ``(N, F)``.
    feature_counts
        Feature count of each modality block.
    modality_names
        Name of each modality, used in the message.
    """
    X = _prepare(X)
    slices = _check_counts(X, feature_counts)
    if len(modality_names) != len(slices):
        raise ValueError(
            f"{len(modality_names)} modality names given for {len(slices)} feature blocks"
        )
    problems = []
    for name, sl in zip(modality_names, slices, strict=True):
        n_nan = n_inf = 0
        if _is_sparse(X):
            chunks = (vals for _, _, vals in _iter_sparse_block(X, sl))
        else:
            chunks = (chunk for _, _, chunk in _iter_dense_rows(X, sl))
        for v in chunks:
            n_nan += int(np.isnan(v).sum())
            n_inf += int(np.isinf(v).sum())
        if n_nan or n_inf:
            problems.append(f"modality {name!r}: {n_nan} NaN and {n_inf} infinite values")
    if problems:
        raise ValueError(
            "The registered data contains non-finite values ("
            + "; ".join(problems)
            + "). Remove or impute them before building the model."
        )


def feature_background_init(
    X, sl: slice, bg_offset: float, lib: np.ndarray | None = None
) -> np.ndarray:
    """Empirical feature background of one block (§3.4).

    ``b⁰_f = log( (1/N) Σ_n max(x_nf, 0) / ℓ̄_n + bg_offset )`` with ``ℓ̄_n = ℓ_n`` if
    ``ℓ_n > 0`` else 1, so empty cells count as zeros.

    Parameters
    ----------
    X
        Registered matrix, ``(N, F)``.
    sl
        Column slice of the block.
    bg_offset
        Pseudo-frequency added before the log (``>= 0``).
    lib
        Optional precomputed library sizes of this block, ``(N,)``.

    Returns
    -------
    np.ndarray
        ``(F_m,)`` float32. A never-observed feature gets ``log(bg_offset)``.
    """
    X = _prepare(X)
    n_obs = X.shape[0]
    if n_obs == 0:
        raise ValueError("Cannot initialise the feature background from zero cells")
    n_feat = sl.stop - sl.start
    if lib is None:
        lib = _block_row_sums(X, sl, _clamp)
    lbar = np.where(lib > 0, lib, 1.0)
    acc = np.zeros(n_feat, dtype=np.float64)
    if _is_sparse(X):
        for rows, cols, vals in _iter_sparse_block(X, sl):
            acc += np.bincount(cols, weights=_clamp(vals) / lbar[rows], minlength=n_feat)
    else:
        for start, stop, chunk in _iter_dense_rows(X, sl):
            acc += (_clamp(chunk) / lbar[start:stop, None]).sum(axis=0)
    with np.errstate(divide="ignore"):
        return np.log(acc / n_obs + bg_offset).astype(np.float32)


def median_library(lib_col: np.ndarray) -> float:
    """Median library size over cells with ``ℓ > 0``; 1.0 when there are none (§3.9)."""
    lib = np.asarray(lib_col, dtype=np.float64).ravel()
    pos = lib[lib > 0]
    return float(np.median(pos)) if pos.size else 1.0


def standardise_continuous(
    values, keys: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale used to standardise continuous covariates (§3.5).

    Parameters
    ----------
    values
        ``(N, J)`` covariate values (a 1-D array is one covariate).
    keys
        Names of the ``J`` covariates, used in error messages.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``(mean, scale)``, each ``(J,)`` float64; the scale is the population standard
        deviation, replaced by 1 where it is 0.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"continuous covariates must be 2-D (N, J), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("cannot standardise continuous covariates of zero cells")
    bad = ~np.isfinite(arr).all(axis=0)
    if bad.any():
        names = list(keys) if keys is not None else [str(j) for j in range(arr.shape[1])]
        raise ValueError(
            "Continuous covariates contain NaN or infinite values: "
            f"{[names[j] for j in np.flatnonzero(bad)]}"
        )
    mean = arr.mean(axis=0)
    scale = arr.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale
