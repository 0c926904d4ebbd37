"""SGC smoothed features and the normalised adjacency (spec §3.11.3)."""

import numpy as np
import pytest
import scipy.sparse as sp

from napari_topomics.data import library_median, normalized_adjacency, sgc_features


def _tiny_graph():
    """Five nodes: a path 0-1-2 given one-way and weighted, a self-loop on 3, node 4 isolated."""
    return sp.coo_matrix(([3.0, 0.5, 2.0], ([0, 2, 3], [1, 1, 3])), shape=(5, 5))


def _tiny_counts():
    return np.array(
        [
            [1.0, 0.0, 3.0],
            [0.0, 0.0, 0.0],  # zero library
            [2.0, 2.0, 0.0],
            [0.0, 5.0, 1.0],
            [4.0, 0.0, 0.0],  # isolated node
        ]
    )


def _dense_a_hat():
    """Â = D^{-1/2}(A + I)D^{-1/2}, D = deg + 2, written out by hand for _tiny_graph."""
    A = np.zeros((5, 5))
    for i, j in [(0, 1), (1, 2)]:
        A[i, j] = A[j, i] = 1.0
    d = A.sum(axis=1) + 2.0
    return (A + np.eye(5)) / np.sqrt(np.outer(d, d))


def _reference(x, n_layers, med, is_count):
    a_hat = _dense_a_hat()
    if is_count:
        lib = x.sum(axis=1)
        xh = np.divide(x * med, lib[:, None], out=np.zeros_like(x), where=lib[:, None] > 0)
    else:
        xh = x
    feats, cur = [xh], xh
    for _ in range(n_layers):
        cur = a_hat @ cur
        feats.append(cur)
    out = np.hstack(feats)
    return np.log1p(out) if is_count else out


def test_normalized_adjacency_matches_hand_formula():
    a_hat = normalized_adjacency(_tiny_graph())
    assert sp.isspmatrix_csr(a_hat)
    np.testing.assert_allclose(a_hat.toarray(), _dense_a_hat(), rtol=1e-12)
    # isolated node: (0 + 1) / (0 + 2); dense input gives the same matrix
    assert a_hat[4, 4] == pytest.approx(0.5)
    np.testing.assert_allclose(
        normalized_adjacency(_tiny_graph().toarray()).toarray(), _dense_a_hat()
    )


def test_library_median_rule():
    x = _tiny_counts()
    # libraries 4, 0, 4, 6, 4 -> median over positive ones = 4
    assert library_median(x) == pytest.approx(4.0)
    assert library_median(sp.csr_matrix(x)) == pytest.approx(4.0)
    assert library_median(np.array([[1.0, 2.0], [0.0, 0.0], [5.0, 5.0]])) == pytest.approx(6.5)
    assert library_median(np.zeros((3, 2))) == 1.0
    # negative values are clamped at 0 in the library size
    assert library_median(np.array([[3.0, -10.0]])) == pytest.approx(3.0)


@pytest.mark.parametrize("n_layers", [0, 1, 3])
def test_count_features_match_dense_reference(n_layers):
    x = _tiny_counts()
    med = library_median(x)
    ref = _reference(x, n_layers, med, is_count=True)
    dense = sgc_features(x, _tiny_graph(), n_layers, None, True)
    sparse = sgc_features(sp.csr_matrix(x), _tiny_graph(), n_layers, None, True)
    assert isinstance(dense, np.ndarray) and dense.dtype == np.float32
    assert sp.isspmatrix_csr(sparse) and sparse.dtype == np.float32
    assert dense.shape == sparse.shape == (5, 3 * (n_layers + 1))
    np.testing.assert_allclose(dense, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sparse.toarray(), ref, rtol=1e-6, atol=1e-7)


def test_explicit_scale_is_used():
    x = _tiny_counts()
    out = sgc_features(x, _tiny_graph(), 1, 10.0, True)
    np.testing.assert_allclose(out, _reference(x, 1, 10.0, True), rtol=1e-6)
    default = sgc_features(x, _tiny_graph(), 1, None, True)
    assert not np.allclose(out, default)  # the median (4) was not used
    with pytest.raises(ValueError, match="scale"):
        sgc_features(x, _tiny_graph(), 1, 0.0, True)
    with pytest.raises(ValueError, match="scale"):
        sgc_features(x, _tiny_graph(), 1, float("nan"), True)


def test_zero_library_rows_stay_zero_and_isolated_nodes():
    x = _tiny_counts()
    x[4] = 0.0  # the isolated node now has no counts either
    for block in (x, sp.csr_matrix(x)):
        out = sgc_features(block, _tiny_graph(), 2, None, True)
        out = out.toarray() if sp.issparse(out) else out
        assert np.all(np.isfinite(out))
        np.testing.assert_array_equal(out[1, :3], 0.0)  # X̂ of the ℓ = 0 row
        np.testing.assert_array_equal(out[4], 0.0)  # no counts and no neighbours
    # an isolated node with counts: Â^l X̂ = X̂ / 2^l
    x = _tiny_counts()
    med = library_median(x)
    xh4 = x[4] * med / x[4].sum()
    out = sgc_features(x, _tiny_graph(), 2, None, True)
    np.testing.assert_allclose(out[4], np.log1p(np.concatenate([xh4, xh4 / 2, xh4 / 4])), rtol=1e-6)


def test_gaussian_path_has_no_log_and_keeps_negatives():
    x = np.random.default_rng(0).normal(size=(5, 4))
    ref = _reference(x, 2, None, is_count=False)
    dense = sgc_features(x, _tiny_graph(), 2, None, False)
    sparse = sgc_features(sp.csr_matrix(x), _tiny_graph(), 2, None, False)
    np.testing.assert_allclose(dense, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse.toarray(), ref, rtol=1e-5, atol=1e-6)
    assert (dense < 0).any()
    # the first block is x itself (no scaling, no log)
    np.testing.assert_allclose(dense[:, :4], x, rtol=1e-6)


def test_sparse_input_stays_sparse():
    rng = np.random.default_rng(1)
    n, f = 400, 50
    x = sp.random(
        n, f, density=0.02, format="csc", random_state=2, data_rvs=lambda k: rng.integers(1, 5, k)
    )
    graph = sp.random(n, n, density=0.005, format="coo", random_state=3)
    out = sgc_features(x, graph, 2, None, True)
    assert sp.isspmatrix_csr(out) and out.dtype == np.float32
    assert out.shape == (n, 3 * f)
    assert out.nnz < 0.5 * n * 3 * f  # no densification
    np.testing.assert_array_equal(out.data > 0, True)  # log1p of positives, zeros dropped
    # the first block is log1p(X̂): zero exactly where x is zero
    np.testing.assert_array_equal((out[:, :f] != 0).toarray(), (x != 0).toarray())
    dense = sgc_features(x.toarray(), graph, 2, None, True)
    np.testing.assert_allclose(out.toarray(), dense, rtol=1e-5, atol=1e-6)


def test_bad_input_raises():
    x = _tiny_counts()
    with pytest.raises(ValueError, match=r"graph must have shape \(5, 5\)"):
        sgc_features(x, sp.eye(4), 1, None, True)
    with pytest.raises(ValueError, match="sgc_n_layers"):
        sgc_features(x, _tiny_graph(), -1, None, True)
    with pytest.raises(ValueError, match="sgc_n_layers"):
        sgc_features(x, _tiny_graph(), 1.5, None, True)
    with pytest.raises(ValueError, match="2-D"):
        sgc_features(np.ones(5), _tiny_graph(), 1, None, True)
