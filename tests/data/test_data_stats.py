"""Sparse-aware statistics of the registered matrix (spec §2.2, §3.4, §3.6.5, §3.9)."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from napari_topomics.data import (
    _stats,
    block_slices,
    block_stats,
    check_finite,
    feature_background_init,
    library_sizes,
    median_library,
    modality_mask,
    standardise_continuous,
)

COUNTS = [4, 3, 5]


@pytest.fixture
def dense():
    rng = np.random.default_rng(0)
    X = rng.poisson(1.0, size=(30, sum(COUNTS))).astype(np.float32)
    X[rng.random(X.shape) < 0.5] = 0
    X[3] = 0  # a cell with no data at all
    X[5, 4:7] = 0  # a cell missing the second modality
    X[7, 7:] = [-1, 2, -3, 0, 0]  # negatives (e.g. centred data), row sum < 0
    X[8, 7:] = [-1, 0, 0, 0, 0]  # present although its sum is negative
    X[9, 7:] = 0
    return X


def _formats(X):
    return {
        "dense": X,
        "csr": sp.csr_matrix(X),
        "csc": sp.csc_matrix(X),
        "coo": sp.coo_matrix(X),
        "csr_array": sp.csr_array(X),
    }


@pytest.fixture(params=[None, 7])
def chunk(request, monkeypatch):
    """Run each test with the default chunk size and with tiny chunks."""
    if request.param is not None:
        monkeypatch.setattr(_stats, "CHUNK_ENTRIES", request.param)
    return request.param


def test_block_slices():
    assert block_slices([4, 3, 5]) == [slice(0, 4), slice(4, 7), slice(7, 12)]
    with pytest.raises(ValueError):
        block_slices([2, -1])


def test_library_sizes_all_formats(dense, chunk):
    expected = np.stack([np.maximum(dense[:, s], 0).sum(1) for s in block_slices(COUNTS)], axis=1)
    for fmt, X in _formats(dense).items():
        lib = library_sizes(X, COUNTS)
        assert lib.shape == (30, 3) and lib.dtype == np.float64, fmt
        np.testing.assert_allclose(lib, expected, err_msg=fmt)
    assert library_sizes(dense, COUNTS)[7, 2] == 2.0  # negatives clamped


def test_feature_counts_must_match(dense):
    with pytest.raises(ValueError, match="12 columns"):
        library_sizes(dense, [4, 3])


def test_modality_mask_not_row_sum(dense, chunk):
    expected = np.stack([(dense[:, s] != 0).any(1) for s in block_slices(COUNTS)], axis=1)
    for fmt, X in _formats(dense).items():
        np.testing.assert_array_equal(modality_mask(X, COUNTS), expected, err_msg=fmt)
    mask = modality_mask(dense, COUNTS)
    assert not mask[3].any()
    assert not mask[5, 1] and not mask[9, 2]
    # centred data with a negative row sum still counts as present
    assert mask[7, 2] and mask[8, 2]


def test_mask_ignores_explicit_zeros():
    X = sp.csr_matrix((np.array([0.0, 1.0]), np.array([0, 3]), np.array([0, 1, 2])), shape=(2, 4))
    np.testing.assert_array_equal(modality_mask(X, [2, 2]), [[False, False], [False, True]])


def test_block_stats(dense, chunk):
    sl = block_slices(COUNTS)
    for fmt, X in _formats(dense).items():
        s0 = block_stats(X, sl[0])
        assert s0.is_integer and not s0.has_negative and not s0.has_nan, fmt
        s2 = block_stats(X, sl[2])
        assert s2.has_negative and not s2.is_binary, fmt
    binary = (dense > 0).astype(np.float32)
    for fmt, X in _formats(binary).items():
        st = block_stats(X, sl[1])
        assert st.is_binary and st.offending_nonbinary == (), fmt


def test_block_stats_offending_values_and_integers():
    X = np.zeros((40, 3), dtype=np.float32)
    X[:, 0] = np.arange(40)  # 38 distinct non-binary values
    X[0, 1] = 0.5
    X[1, 2] = np.nan
    for fmt, M in _formats(X).items():
        st = block_stats(M, slice(0, 1))
        assert not st.is_binary and st.offending_nonbinary == tuple(float(v) for v in range(2, 12))
        assert st.is_integer, fmt
        assert not block_stats(M, slice(1, 2)).is_integer
        nan_stats = block_stats(M, slice(2, 3))
        assert nan_stats.has_nan and not nan_stats.is_binary, fmt


def test_check_finite_names_modality(dense):
    names = ["rna", "adt", "atac"]
    check_finite(dense, COUNTS, names)
    bad = dense.copy()
    bad[2, 5] = np.nan
    bad[4, 9] = np.inf
    for fmt, X in _formats(bad).items():
        with pytest.raises(ValueError, match="adt") as err:
            check_finite(X, COUNTS, names)
        assert "atac" in str(err.value) and "'rna'" not in str(err.value), fmt


def _bg_reference(X, sl, offset):
    block = np.maximum(X[:, sl].astype(np.float64), 0)
    lib = block.sum(1)
    lbar = np.where(lib > 0, lib, 1.0)
    return np.log((block / lbar[:, None]).mean(0) + offset)


def test_feature_background_init(dense, chunk):
    dense = dense.copy()
    dense[:, 2] = 0  # a never-observed feature
    for sl in block_slices(COUNTS):
        expected = _bg_reference(dense, sl, 1e-15)
        for fmt, X in _formats(dense).items():
            got = feature_background_init(X, sl, 1e-15)
            assert got.dtype == np.float32 and got.shape == (sl.stop - sl.start,)
            np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=fmt)
    never = feature_background_init(dense, slice(0, 4), 1e-15)[2]
    assert never == pytest.approx(np.log(1e-15), rel=1e-5)  # about -34.5


def test_feature_background_empty_cells_count_as_zero():
    X = np.array([[2.0, 2.0], [0.0, 0.0]], dtype=np.float32)
    # cell 0 frequencies (0.5, 0.5), cell 1 empty -> mean 0.25
    np.testing.assert_allclose(feature_background_init(X, slice(0, 2), 0.0), np.log([0.25, 0.25]))


def test_median_library():
    assert median_library(np.array([0.0, 0.0, 4.0, 2.0, 10.0])) == 4.0
    assert median_library(np.zeros(5)) == 1.0
    assert median_library(np.array([])) == 1.0


def test_standardise_continuous():
    vals = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    mean, scale = standardise_continuous(vals)
    np.testing.assert_allclose(mean, [3.0, 5.0])
    np.testing.assert_allclose(scale, [np.sqrt(8 / 3), 1.0])  # population std; 1 where 0
    mean1, _ = standardise_continuous(np.array([1.0, 2.0]))
    assert mean1.shape == (1,)
    with pytest.raises(ValueError, match="pct_mt"):
        standardise_continuous(np.array([[1.0, np.nan]]), keys=["age", "pct_mt"])


def test_sparse_paths_never_densify(monkeypatch):
    """A 200k x 50k CSR (40 GB dense) is handled in bounded memory, without toarray."""
    n, f = 200_000, 50_000
    rng = np.random.default_rng(1)
    nnz = 400_000
    rows = rng.integers(0, n, nnz)
    cols = rng.integers(0, f, nnz)
    X = sp.csr_matrix((rng.integers(1, 5, nnz).astype(np.float32), (rows, cols)), shape=(n, f))
    counts = [20_000, 30_000]

    def boom(*args, **kwargs):
        raise AssertionError("densified")

    for cls in (sp.csr_matrix, sp.csc_matrix, sp.coo_matrix):
        monkeypatch.setattr(cls, "toarray", boom)
        monkeypatch.setattr(cls, "todense", boom)
    sl = block_slices(counts)
    tracemalloc.start()
    try:
        lib = library_sizes(X, counts)
        mask = modality_mask(X, counts)
        st = block_stats(X, sl[1])
        check_finite(X, counts, ["rna", "adt"])
        bg = feature_background_init(X, sl[0], 1e-15, lib=lib[:, 0])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60e6, f"peak {peak / 1e6:.0f} MB"
    assert lib.sum() == pytest.approx(float(X.data.sum()))
    assert mask.shape == (n, 2) and st.is_integer and bg.shape == (20_000,)
