"""A registered matrix read lazily from disk: statistics, row loading, shares (issue 18)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_topomics.data import _stats as stats
from napari_topomics.data._lazy import (
    RowShare,
    contiguous_share,
    is_lazy_matrix,
    load_rows,
    read_rows,
    times_rows,
)
from napari_topomics.data._topic_start import pooled_with_neighbours
from napari_topomics.io import TopomicsInputError, open_lazy
from napari_topomics.models._row_shares import ShareBatchSampler, share_loader

COUNTS = [7, 5]


def _matrix(n_cells=300, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(n_cells, sum(COUNTS), density=0.3, random_state=seed, format="csr")
    X.data = rng.integers(1, 9, X.nnz).astype(np.float32)
    return X.astype(np.float32)


@pytest.fixture
def on_disk(tmp_path):
    X = _matrix()
    path = tmp_path / "cells.h5ad"
    ad.AnnData(X=X, obs=pd.DataFrame(index=[f"c{i}" for i in range(X.shape[0])])).write_h5ad(
        path
    )
    return X, open_lazy(path)


def test_open_lazy_keeps_the_matrix_on_disk_and_reads_the_rest(on_disk, tmp_path):
    X, adata = on_disk
    assert is_lazy_matrix(adata.X) and not is_lazy_matrix(X)
    assert adata.n_obs == X.shape[0] and adata.obs_names[3] == "c3"
    np.testing.assert_array_equal(adata.X[10:20].toarray(), X[10:20].toarray())
    zarr_path = tmp_path / "cells.zarr"
    ad.read_h5ad(tmp_path / "cells.h5ad").write_zarr(zarr_path)
    assert is_lazy_matrix(open_lazy(zarr_path).X)


def test_open_lazy_names_what_is_wrong(tmp_path):
    with pytest.raises(TopomicsInputError, match="does not exist"):
        open_lazy(tmp_path / "missing.h5ad")
    (tmp_path / "notes.txt").write_text("not an AnnData")
    with pytest.raises(TopomicsInputError, match="not an .h5ad"):
        open_lazy(tmp_path / "notes.txt")


def test_statistics_of_a_lazy_matrix_equal_the_in_memory_ones(on_disk, monkeypatch):
    X, adata = on_disk
    monkeypatch.setattr(stats, "CHUNK_ENTRIES", 97)  # many row chunks
    lazy = adata.X
    np.testing.assert_allclose(stats.library_sizes(lazy, COUNTS), stats.library_sizes(X, COUNTS))
    np.testing.assert_array_equal(stats.modality_mask(lazy, COUNTS),
                                  stats.modality_mask(X, COUNTS))
    for sl in stats.block_slices(COUNTS):
        np.testing.assert_allclose(stats.feature_background_init(lazy, sl, 1e-6),
                                   stats.feature_background_init(X, sl, 1e-6), rtol=1e-6)
        assert stats.block_stats(lazy, sl) == stats.block_stats(X, sl)


def test_non_finite_values_in_a_lazy_matrix_are_named(tmp_path):
    X = _matrix()
    X.data[5] = np.nan
    path = tmp_path / "bad.h5ad"
    ad.AnnData(X=X).write_h5ad(path)
    with pytest.raises(ValueError, match="modality 'rna': 1 NaN"):
        stats.check_finite(open_lazy(path).X, COUNTS, ["rna", "protein"])


def test_load_rows_holds_only_the_rows_asked_at_full_shape(on_disk):
    X, adata = on_disk
    rows = np.r_[0:40, 100:130, 7, 250]  # runs and scattered rows, unsorted
    held = load_rows(adata.X, rows)
    assert held.shape == X.shape
    keep = np.zeros(X.shape[0], bool)
    keep[rows] = True
    np.testing.assert_array_equal(held[keep].toarray(), X[keep].toarray())
    assert held[~keep].nnz == 0
    assert held.nnz == X[keep].nnz
    dense = load_rows(X.toarray(), rows)
    np.testing.assert_array_equal(dense.toarray(), held.toarray())


def test_read_rows_keeps_the_order_asked(on_disk):
    X, adata = on_disk
    rows = np.array([9, 3, 3, 200, 0])
    np.testing.assert_array_equal(read_rows(adata.X, rows).toarray(), X[rows].toarray())


def test_pooled_neighbourhoods_of_a_lazy_matrix_equal_the_in_memory_ones(on_disk):
    X, adata = on_disk
    graph = sp.random(X.shape[0], X.shape[0], density=0.02, random_state=1, format="csr")
    graph.data[:] = 1
    rows = np.array([5, 17, 120])
    np.testing.assert_allclose(pooled_with_neighbours(adata.X, graph, rows).toarray(),
                               pooled_with_neighbours(X, graph, rows).toarray())


def test_shares_tile_the_cells():
    edges = [contiguous_share(10, r, 3) for r in range(3)]
    assert edges == [(0, 3), (3, 7), (7, 10)]
    assert RowShare.shares(7, 2) == [(0, 4), (4, 7)]
    share = RowShare(1, 2, 5, 10, np.arange(4, 10))
    assert share.owns(np.array([4, 5, 9])).tolist() == [False, True, True]
    with pytest.raises(ValueError, match="rank 2"):
        contiguous_share(10, 2, 2)


def test_times_rows_reads_only_what_the_weights_touch(on_disk, monkeypatch):
    from napari_topomics.data import _lazy

    X, adata = on_disk
    weights = sp.csr_matrix(([1.0, 2.0], ([0, 1], [3, 250])), shape=(2, X.shape[0]))
    asked = []
    real = _lazy.read_rows
    monkeypatch.setattr(_lazy, "read_rows", lambda M, rows, dtype: asked.append(rows) or
                        real(M, rows, dtype))
    np.testing.assert_allclose(times_rows(weights, adata.X).toarray(),
                               (weights @ X).toarray())
    assert [list(r) for r in asked] == [[3, 250]]


def test_a_process_given_another_rank_than_it_loaded_fails_clearly():
    from types import SimpleNamespace

    splitter = SimpleNamespace(trainer=SimpleNamespace(global_rank=1))
    with pytest.raises(RuntimeError, match="rows of rank 0 but Lightning made it rank 1"):
        share_loader(splitter, np.arange(10), RowShare(0, 2, 0, 5, np.arange(5)), True, 4)


def test_share_sampler_reshuffles_within_its_share_and_keeps_the_count():
    sampler = ShareBatchSampler(np.arange(20, 45), n_cells=22, batch_size=8, shuffle=True)
    first = np.concatenate(list(sampler))
    sampler.set_epoch(1)
    second = np.concatenate(list(sampler))
    assert len(sampler) == 3 and first.size == second.size == 22
    assert set(first) <= set(range(20, 45)) and len(set(first)) == 22
    assert not np.array_equal(first, second)
    still = ShareBatchSampler(np.arange(5), n_cells=5, batch_size=2, shuffle=False)
    assert [list(b) for b in still] == [[0, 1], [2, 3], [4]]
