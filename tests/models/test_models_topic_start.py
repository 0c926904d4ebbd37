"""Training starts: the k-means topic start (batch-aware) and the automatic global step factor."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from napari_topomics.data import build_spatial_graph
from napari_topomics.data._topic_start import (
    clustered_topic_logits,
    log_normalised,
    most_variable,
    pooled_with_neighbours,
    remove_level_profiles,
)
from napari_topomics.datasets import simulate_tissue
from napari_topomics.models import MultimodalAmortizedLDA
from napari_topomics.models._topic_start import start_topics_from_clusters
from napari_topomics.models._training_plan import TopicTrainingPlan, auto_global_lr_factor

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tissue():
    return simulate_tissue(n_cells=400, n_topics=4, n_genes=120, n_proteins=10, n_peaks=150,
                           seed=3)


def test_clustered_logits_put_each_planted_marker_block_in_one_topic(tissue):
    mdata, truth = tissue
    rna = mdata.mod["rna"]
    (logits,) = clustered_topic_logits(rna.X, [rna.n_vars], 4, [True], seed=0)
    assert logits.shape == (4, rna.n_vars)
    # every planted marker block is highest in a different starting topic
    winners = [int(np.argmax(logits[:, block].mean(1))) for block in truth.markers["rna"]]
    assert sorted(winners) == [0, 1, 2, 3]


def test_clustered_logits_skip_unused_modalities_and_tiny_data(tissue):
    mdata, _ = tissue
    X = mdata.mod["rna"].X
    out = clustered_topic_logits(X, [60, 60], 4, [True, False], [True, False])
    assert out[1] is None and out[0].shape == (4, 60)
    assert np.isfinite(out[0]).all()
    assert clustered_topic_logits(X[:5], [120], 4, [True]) == [None]


def test_log_normalised_scales_rows_to_1e4_and_leaves_the_counts_alone():
    counts = sp.csr_matrix(np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 8.0]]))
    before = counts.copy()
    out = log_normalised(counts).toarray()
    expected = np.log1p(np.array([[2500.0, 7500.0, 0.0], [0.0, 0.0, 0.0], [2000.0, 0.0, 8000.0]]))
    np.testing.assert_allclose(out, expected)
    assert (counts != before).nnz == 0


def test_most_variable_keeps_the_highest_variance_columns_in_order():
    rng = np.random.default_rng(0)
    scales = np.array([0.1, 3.0, 0.5, 2.0, 0.2])
    matrix = sp.csr_matrix(rng.normal(size=(200, 5)) * scales)
    picked = most_variable(matrix, 2).toarray()
    np.testing.assert_array_equal(picked, matrix.toarray()[:, [1, 3]])
    assert most_variable(matrix, 5) is matrix


def _cell_types_in_many_rare_genes(seed: int, n_types: int = 4, n_markers: int = 20):
    """300 cells of 4 types told apart by 80 marker genes among 8,000 rarely seen ones."""
    rng = np.random.default_rng(seed)
    types = rng.integers(n_types, size=300)
    markers = np.full((n_types, n_types * n_markers), 0.3)
    for k in range(n_types):
        markers[k, k * n_markers : (k + 1) * n_markers] = 3.0
    background = np.broadcast_to(rng.lognormal(-1.5, 1.0, size=8000), (300, 8000))
    rate = np.hstack([markers[types], background]) * rng.lognormal(0, 0.5, size=(300, 1))
    return sp.csr_matrix(rng.poisson(rate).astype(float))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clustered_start_finds_cell_types_hidden_among_thousands_of_rare_genes(seed):
    # An SVD of all 8,080 genes follows the rare-gene noise and merges types on most of
    # these seeds; the most variable genes carry the types.
    X = _cell_types_in_many_rare_genes(seed)
    (logits,) = clustered_topic_logits(X, [X.shape[1]], 4, [True], seed=0)
    winners = [int(np.argmax(logits[:, k * 20 : (k + 1) * 20].mean(1))) for k in range(4)]
    assert sorted(winners) == [0, 1, 2, 3]


def test_kmeans_start_is_the_default_and_zero_start_is_kept_on_request(tissue):
    mdata, _ = tissue
    data = {m: mdata.mod[m] for m in ("rna", "protein", "atac")}
    clustered = MultimodalAmortizedLDA.from_data(data, n_topics=4)
    clustered.train(max_epochs=1, enable_progress_bar=False)
    zero = MultimodalAmortizedLDA.from_data(data, n_topics=4)
    before = [g.beta_loc.detach().clone() for g in zero.module.globals]
    zero.train(max_epochs=1, plan_kwargs={"topic_init": "zero"}, enable_progress_bar=False)
    spread = [g.beta_loc.detach().std(0).mean().item() for g in clustered.module.globals]
    moved = [
        (g.beta_loc.detach() - b).abs().max().item()
        for g, b in zip(zero.module.globals, before, strict=True)
    ]
    # one epoch of small steps from zero cannot reach the spread of the clustered start
    assert min(spread) > 0.1
    assert max(moved) < min(spread)
    with pytest.raises(ValueError, match="topic_init"):
        zero.train(max_epochs=1, plan_kwargs={"topic_init": "nmf"})


def test_removing_level_profiles_equalises_each_level_mean_frequency():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=300)
    tilt = np.exp(rng.normal(0, 1, size=(3, 40)))
    counts = rng.poisson(5 * tilt[codes]) * (rng.random((300, 40)) < 0.6)
    matrix = sp.csr_matrix(counts.astype(float))
    corrected = remove_level_profiles(matrix, codes[:, None])
    lib = np.asarray(matrix.sum(1)).ravel()[:, None]
    overall = (matrix.toarray() / lib).mean(0)
    for level in range(3):
        rows = codes == level
        level_mean = (corrected.toarray()[rows] / lib[rows]).mean(0)
        np.testing.assert_allclose(level_mean, overall, rtol=1e-10)
    # the sparsity pattern is kept and the input is untouched
    assert corrected.nnz == matrix.nnz
    np.testing.assert_array_equal(matrix.toarray(), counts)


@pytest.fixture(scope="module")
def batched():
    return simulate_tissue(n_cells=400, n_topics=4, n_genes=100, n_proteins=0, n_peaks=0,
                           n_batches=2, batch_effect=1.0, seed=0)


def _distinct_marker_winners(logits, markers) -> int:
    return len({int(np.argmax(logits[:, block].mean(1))) for block in markers})


def test_clustered_start_divides_out_registered_batches(batched):
    mdata, truth = batched
    rna = mdata.mod["rna"]
    codes = truth.batch[:, None]
    (plain,) = clustered_topic_logits(rna.X, [rna.n_vars], 4, [True], seed=0)
    (aware,) = clustered_topic_logits(rna.X, [rna.n_vars], 4, [True], None, codes, seed=0)
    # uncorrected, clusters follow the batches and some marker blocks share a topic
    assert _distinct_marker_winners(plain, truth.markers["rna"]) < 4
    assert _distinct_marker_winners(aware, truth.markers["rna"]) == 4


def test_auto_global_factor_follows_cells_per_feature_within_bounds():
    assert auto_global_lr_factor(200, 8000) == 1.5
    assert auto_global_lr_factor(200, 2000) == pytest.approx(3.0)
    assert auto_global_lr_factor(500, 1000) == pytest.approx(15.0)
    assert auto_global_lr_factor(1500, 1000) == 30.0
    assert auto_global_lr_factor(10**6, 2000) == 30.0
    assert auto_global_lr_factor(None, 100) == 1.5


def test_each_modality_gets_its_own_global_step(tissue):
    mdata, _ = tissue
    data = {m: mdata.mod[m] for m in ("rna", "protein", "atac")}
    model = MultimodalAmortizedLDA.from_data(data, n_topics=4)
    model.module.n_obs = 60
    plan = TopicTrainingPlan(model.module)
    expected = [auto_global_lr_factor(60, f) for f in model.n_inputs_modalities]
    assert plan.global_lr_factors == expected
    assert len(set(expected)) == 3  # 120 genes, 10 proteins, 150 peaks differ
    # the optimiser steps each modality's globals at its own rate, the encoders at lr
    groups = plan.configure_optimizers().param_groups
    lr = plan.optim_kwargs["lr"]
    assert [g["lr"] for g in groups] == pytest.approx([lr] + [lr * f for f in expected])
    for group, globals_ in zip(groups[1:], model.module.globals, strict=True):
        assert {id(p) for p in group["params"]} == {id(p) for p in globals_.parameters()}
    fixed = TopicTrainingPlan(model.module, global_lr_factor=5.0)
    assert fixed.global_lr_factors == [5.0, 5.0, 5.0]


def test_global_factor_option_is_validated(tissue):
    mdata, _ = tissue
    model = MultimodalAmortizedLDA.from_data(mdata.mod["rna"], n_topics=4)
    with pytest.raises(ValueError, match="global_lr_factor"):
        model.train(max_epochs=1, plan_kwargs={"global_lr_factor": "fast"},
                    enable_progress_bar=False)
    model.train(max_epochs=1, plan_kwargs={"global_lr_factor": "auto"},
                enable_progress_bar=False)
    assert model.is_trained_


def test_pooling_adds_each_cells_neighbours_counts():
    X = sp.csr_matrix(np.arange(12, dtype=float).reshape(4, 3))
    chain = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]]))
    pooled = pooled_with_neighbours(X, chain, np.array([0, 2]))
    dense = X.toarray()
    np.testing.assert_array_equal(pooled.toarray(), [dense[0] + dense[1], dense[1:4].sum(0)])
    assert pooled_with_neighbours(X, chain, None).shape == (4, 3)


@pytest.fixture(scope="module")
def shallow():
    """Low-depth RNA (20 counts per cell) with topics smooth over space."""
    mdata, truth = simulate_tissue(n_cells=800, n_topics=6, n_genes=200, n_proteins=0,
                                   n_peaks=0, rna_depth=20, dirichlet_alpha=20.0, seed=0)
    graph, _ = build_spatial_graph(truth.coords, n_neighbors=6)
    return mdata.mod["rna"], truth, graph


def test_neighbour_pooling_separates_topics_a_single_shallow_cell_cannot(shallow):
    rna, truth, graph = shallow
    args = (rna.X, [rna.n_vars], 6, [True], None, None)
    (alone,) = clustered_topic_logits(*args, seed=0)
    (pooled,) = clustered_topic_logits(*args, [graph], seed=0)
    assert _distinct_marker_winners(alone, truth.markers["rna"]) < 6
    assert _distinct_marker_winners(pooled, truth.markers["rna"]) == 6


def test_spatial_model_starts_from_neighbourhood_clusters(shallow):
    rna, truth, _ = shallow
    adata = rna.copy()
    adata.obsm["spatial"] = truth.coords
    MultimodalAmortizedLDA.setup_anndata(adata, spatial_key="spatial")
    model = MultimodalAmortizedLDA(adata, n_topics=6)
    assert start_topics_from_clusters(model)
    start = model.module.globals[0].beta_loc.detach().numpy()
    assert _distinct_marker_winners(start, truth.markers["rna"]) == 6
