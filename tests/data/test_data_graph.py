"""Spatial graphs from coordinates, symmetrisation and validation (spec §3.11, §4.1, §8)."""

import numpy as np
import pytest
import scipy.sparse as sp

from napari_topomics.data import build_spatial_graph, symmetrize_graph, validate_graph


def _grid(n_side=6):
    xy = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side)), -1).reshape(-1, 2)
    return xy.astype(float)


def _check_symmetric_no_loops(conn, dist, n):
    assert sp.isspmatrix_csr(conn) and sp.isspmatrix_csr(dist)
    assert conn.shape == dist.shape == (n, n)
    assert conn.dtype == np.float32
    assert (conn != conn.T).nnz == 0
    assert conn.diagonal().sum() == 0
    assert np.all(conn.data == 1)
    # same pattern in both matrices
    assert dist.nnz == conn.nnz
    np.testing.assert_array_equal(dist.indices, conn.indices)
    np.testing.assert_array_equal(dist.indptr, conn.indptr)


def test_knn_graph():
    rng = np.random.default_rng(0)
    coords = rng.random((50, 2))
    conn, dist = build_spatial_graph(coords, n_neighbors=6)
    _check_symmetric_no_loops(conn, dist, 50)
    degree = np.diff(conn.indptr)
    assert degree.min() >= 6  # each cell keeps its 6 nearest (symmetrised: maybe more)
    # distances are the Euclidean edge lengths
    coo = dist.tocoo()
    np.testing.assert_allclose(
        coo.data, np.linalg.norm(coords[coo.row] - coords[coo.col], axis=1), rtol=1e-6
    )
    # the 6 nearest neighbours of cell 0 are linked
    d0 = np.linalg.norm(coords - coords[0], axis=1)
    nearest = np.argsort(d0)[1:7]
    assert set(nearest) <= set(conn[0].indices)


def test_knn_duplicate_points_and_small_n():
    coords = np.zeros((4, 2))  # all points coincide
    conn, dist = build_spatial_graph(coords, n_neighbors=6)  # k capped at n - 1
    _check_symmetric_no_loops(conn, dist, 4)
    assert conn.nnz == 12  # complete graph, zero distances kept as edges
    conn1, _ = build_spatial_graph(np.zeros((1, 2)))
    assert conn1.shape == (1, 1) and conn1.nnz == 0


def test_radius_graph():
    coords = _grid(5)
    conn, dist = build_spatial_graph(coords, method="radius", radius=1.01)
    _check_symmetric_no_loops(conn, dist, 25)
    np.testing.assert_allclose(dist.data, 1.0)
    assert np.diff(conn.indptr).max() == 4 and np.diff(conn.indptr).min() == 2
    with pytest.raises(ValueError, match="radius"):
        build_spatial_graph(coords, method="radius")


def test_delaunay_graph():
    rng = np.random.default_rng(1)
    coords = rng.random((40, 2))
    conn, dist = build_spatial_graph(coords, method="delaunay")
    _check_symmetric_no_loops(conn, dist, 40)
    # planar triangulation: at most 3n - 6 undirected edges
    assert conn.nnz // 2 <= 3 * 40 - 6
    with pytest.raises(ValueError, match="Delaunay"):
        build_spatial_graph(np.zeros((5, 2)), method="delaunay")


def test_bad_arguments():
    with pytest.raises(ValueError, match="'voronoi'"):
        build_spatial_graph(_grid(), method="voronoi")
    with pytest.raises(ValueError, match="NaN"):
        build_spatial_graph(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="n_neighbors"):
        build_spatial_graph(_grid(), n_neighbors=0)


def test_symmetrize_graph():
    A = sp.csr_matrix(
        np.array([[1.0, 0.3, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 5.0]], dtype=np.float64)
    )
    S = symmetrize_graph(A)
    expected = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(S.toarray(), expected)
    assert S.dtype == np.float32 and sp.isspmatrix_csr(S)
    np.testing.assert_array_equal(symmetrize_graph(A.toarray()).toarray(), expected)
    # explicit zeros are not edges
    Z = sp.csr_matrix((np.array([0.0]), (np.array([0]), np.array([1]))), shape=(2, 2))
    assert symmetrize_graph(Z).nnz == 0
    with pytest.raises(ValueError, match="square"):
        symmetrize_graph(sp.csr_matrix((2, 3)))


def test_validate_graph():
    validate_graph(sp.csr_matrix((4, 4)), 4, "spatial_connectivities")
    with pytest.raises(ValueError, match="my_graph") as err:
        validate_graph(sp.csr_matrix((3, 3)), 4, "my_graph")
    assert "(3, 3)" in str(err.value) and "(4, 4)" in str(err.value)
