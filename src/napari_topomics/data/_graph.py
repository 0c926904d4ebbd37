"""Spatial neighbour graphs: building from coordinates, symmetrising, validating (§3.11, §8).

The obsp names follow squidpy's ``spatial_neighbors``: ``spatial_connectivities`` and
``spatial_distances``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "CONNECTIVITIES_KEY",
    "DISTANCES_KEY",
    "build_spatial_graph",
    "symmetrize_graph",
    "validate_graph",
]

CONNECTIVITIES_KEY = "spatial_connectivities"
DISTANCES_KEY = "spatial_distances"
_METHODS = ("knn", "radius", "delaunay")


def _as_coords(coords) -> np.ndarray:
    arr = np.asarray(coords, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"coords must be a 2-D (n_obs, n_dims) array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("coords contain NaN or infinite values")
    return arr


def _edges_from_pattern(rows: np.ndarray, cols: np.ndarray, coords: np.ndarray):
    """Symmetric connectivities and distances from a list of (possibly one-way) edges."""
    n = coords.shape[0]
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    # A ∨ Aᵀ, then one entry per (i, j)
    r = np.concatenate([rows, cols]).astype(np.int64)
    c = np.concatenate([cols, rows]).astype(np.int64)
    if r.size:
        key = np.unique(r * n + c)
        r, c = key // n, key % n
    dist = np.linalg.norm(coords[r] - coords[c], axis=1).astype(np.float32)
    conn = sp.csr_matrix((np.ones(r.size, dtype=np.float32), (r, c)), shape=(n, n))
    # built from explicit (r, c) pairs, so zero distances (duplicate points) stay stored
    dists = sp.csr_matrix((dist, (r, c)), shape=(n, n))
    conn.sort_indices()
    dists.sort_indices()
    return conn, dists


def build_spatial_graph(
    coords,
    method: str = "knn",
    n_neighbors: int = 6,
    radius: float | None = None,
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Build a symmetric spatial neighbour graph from coordinates.

    Parameters
    ----------
    coords
        ``(n_obs, n_dims)`` coordinates (e.g. ``adata.obsm["spatial"]``).
    method
        ``"knn"`` (each cell linked to its ``n_neighbors`` nearest cells, then
        symmetrised), ``"radius"`` (all cells within ``radius``) or ``"delaunay"``
        (edges of the Delaunay triangulation).
    n_neighbors
        Neighbours per cell for ``"knn"`` (capped at ``n_obs - 1``).
    radius
        Distance threshold for ``"radius"`` (required there).

    Returns
    -------
    tuple[scipy.sparse.csr_matrix, scipy.sparse.csr_matrix]
        ``(connectivities, distances)``: symmetric ``(n_obs, n_obs)`` float32 matrices
        without self-loops, with the same sparsity pattern; connectivities are 1 on every
        edge, distances hold the Euclidean edge lengths.
    """
    pts = _as_coords(coords)
    n = pts.shape[0]
    method = str(method).lower()
    if method not in _METHODS:
        raise ValueError(f"method: unknown value {method!r}; allowed values: {list(_METHODS)}")
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return _edges_from_pattern(empty, empty, pts)

    if method == "knn":
        if int(n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
        from sklearn.neighbors import NearestNeighbors

        k = min(int(n_neighbors), n - 1)
        nn = NearestNeighbors(n_neighbors=k + 1).fit(pts)
        _, idx = nn.kneighbors(pts)
        # drop the cell itself (not necessarily in column 0 when points coincide)
        own = idx == np.arange(n)[:, None]
        no_self = ~own.any(axis=1)
        own[no_self, -1] = True  # a row without itself: drop its farthest neighbour
        neigh = idx[~own].reshape(n, k)
        rows = np.repeat(np.arange(n), k)
        return _edges_from_pattern(rows, neigh.ravel(), pts)

    if method == "radius":
        if radius is None or not radius > 0:
            raise ValueError(f"radius must be a positive number for method='radius', got {radius}")
        from sklearn.neighbors import NearestNeighbors

        graph = NearestNeighbors(radius=float(radius)).fit(pts).radius_neighbors_graph(pts)
        coo = graph.tocoo()
        return _edges_from_pattern(coo.row, coo.col, pts)

    # delaunay
    from scipy.spatial import Delaunay, QhullError

    try:
        tri = Delaunay(pts)
    except (QhullError, ValueError) as err:
        raise ValueError(
            f"Delaunay triangulation failed for {n} points in {pts.shape[1]} dimensions "
            f"(degenerate or too few points): {err}"
        ) from err
    simplices = tri.simplices
    d = simplices.shape[1]
    pairs = [(a, b) for a in range(d) for b in range(a + 1, d)]
    rows = np.concatenate([simplices[:, a] for a, _ in pairs])
    cols = np.concatenate([simplices[:, b] for _, b in pairs])
    return _edges_from_pattern(rows, cols, pts)


def symmetrize_graph(A) -> sp.csr_matrix:
    """Return ``A ∨ Aᵀ`` as a binary float32 CSR matrix without self-loops.

    Parameters
    ----------
    A
        Square adjacency matrix (sparse or dense); any non-zero entry is an edge and edge
        weights are ignored.

    Returns
    -------
    scipy.sparse.csr_matrix
    """
    coo = sp.coo_matrix(A)
    if coo.shape[0] != coo.shape[1]:
        raise ValueError(f"an adjacency matrix must be square, got shape {coo.shape}")
    n = coo.shape[0]
    keep = (coo.data != 0) & (coo.row != coo.col)
    r = np.concatenate([coo.row[keep], coo.col[keep]]).astype(np.int64)
    c = np.concatenate([coo.col[keep], coo.row[keep]]).astype(np.int64)
    if r.size:
        key = np.unique(r * n + c)
        r, c = key // n, key % n
    out = sp.csr_matrix((np.ones(r.size, dtype=np.float32), (r, c)), shape=(n, n))
    out.sort_indices()
    return out


def validate_graph(A, n_obs: int, key: str) -> None:
    """Check that a graph is a square ``(n_obs, n_obs)`` matrix.

    Parameters
    ----------
    A
        The adjacency matrix.
    n_obs
        Number of cells of the registered AnnData.
    key
        Name under which the graph was found, used in the message.

    Raises
    ------
    ValueError
        Naming ``key``, the graph's shape and the expected shape.
    """
    shape = getattr(A, "shape", None)
    if shape is None:
        raise ValueError(
            f"Spatial graph {key!r} is not a matrix (got {type(A).__name__}); "
            f"expected shape ({n_obs}, {n_obs})"
        )
    if tuple(shape) != (n_obs, n_obs):
        raise ValueError(
            f"Spatial graph {key!r} has shape {tuple(shape)}, but the registered data has "
            f"{n_obs} cells: expected shape ({n_obs}, {n_obs})"
        )
