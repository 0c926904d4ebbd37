"""Spatial model (spec §3.11, §7 "Spatial"): graph encoders, sampling, queries, save/load."""

from __future__ import annotations

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from napari_topomics.data import CONNECTIVITIES_KEY, GRAPH_KEY
from napari_topomics.metrics import morans_i
from napari_topomics.models import MultimodalAmortizedLDA
from napari_topomics.module._graph_encoders import GraphEncoder, SGCEncoder
from napari_topomics.module._networks import ModalityEncoder

pytest.importorskip("torch_geometric")
torch.set_num_threads(1)

TRAIN = {"max_epochs": 2, "batch_size": 32, "enable_progress_bar": False}


def _grid_coords(n: int) -> np.ndarray:
    side = int(np.ceil(np.sqrt(n)))
    return np.stack([np.arange(n) % side, np.arange(n) // side], 1).astype(float)


def _rna(helpers, seed: int = 0):
    adata = helpers.rna(seed)
    adata.obsm["spatial"] = _grid_coords(adata.n_obs)
    return adata


def _model(helpers, seed: int = 0, train: bool = True, **kwargs):
    adata = _rna(helpers, seed)
    MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", spatial_key="spatial")
    model = MultimodalAmortizedLDA(adata, **{**helpers.small, **kwargs})
    if train:
        model.train(**TRAIN)
    return model


def _theta(model, **kwargs):
    return model.get_cell_topic_dist(n_samples=None, **kwargs)


# ---------------------------------------------------------------------- construction
def test_graph_makes_the_model_spatial_and_builds_only_graph_encoders(helpers):
    gcn = _model(helpers, train=False)
    assert gcn.spatial is True
    assert all(isinstance(e, GraphEncoder) for e in gcn.module.encoders)
    assert not any(isinstance(m, ModalityEncoder) for m in gcn.module.modules())
    assert "spatial gcn" in gcn.summary_string
    sgc = _model(helpers, train=False, spatial_mode="simplified")
    assert all(isinstance(e, SGCEncoder) for e in sgc.module.encoders)
    plain = MultimodalAmortizedLDA.from_data(helpers.rna(), layers="counts", **helpers.small)
    assert plain.spatial is False
    assert not any(isinstance(m, GraphEncoder | SGCEncoder) for m in plain.module.modules())


def test_graph_options_shape_the_encoder(helpers):
    model = _model(
        helpers, train=False, gcn_n_layers=2, gcn_hidden_dims=[8, 6], gcn_n_pre_layers=1,
        gcn_alpha_init=0.25, gcn_use_learned_alpha=False, gcn_fan_out=[3, 2],
    )
    enc = model.module.encoders[0]
    assert len(enc.convs) == 2 and enc.pre is not None
    # GATv2: 4 heads of max(1, h // 4) each, concatenated
    assert [n.num_features for n in enc.norms] == [8, 4]
    assert enc.project is not None  # 4 != n_hidden
    assert enc.alpha.item() == pytest.approx(0.25)
    assert "alpha_logit" not in dict(enc.named_parameters())
    learned = _model(helpers, train=False, gcn_conv_type="GCNConv")
    assert "alpha_logit" in dict(learned.module.encoders[0].named_parameters())
    assert learned.module.encoders[0].alpha.item() == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"gcn_fan_out": [5, 5]}, ["gcn_fan_out", "1"]),
        ({"gcn_n_layers": 2, "gcn_hidden_dims": [8]}, ["gcn_hidden_dims", "2"]),
        ({"gcn_sampling": "full"}, ["gcn_sampling", "full", "approx"]),
        ({"gcn_conv_type": "SAGEConv"}, ["gcn_conv_type", "SAGEConv", "GATv2Conv"]),
    ],
)
def test_bad_graph_options_name_the_parameter(helpers, kwargs, words):
    adata = _rna(helpers)
    MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", spatial_key="spatial")
    with pytest.raises(ValueError) as err:
        MultimodalAmortizedLDA(adata, **helpers.small, **kwargs)
    for word in words:
        assert word in str(err.value)


def test_graph_errors_name_the_key(helpers):
    adata = helpers.rna()
    adata.obsp["small"] = sp.identity(helpers.n_cells, format="csr")[:, :]
    with pytest.raises(KeyError, match="missing_key"):
        MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", spatial_key="missing_key")
    other = helpers.rna()
    MultimodalAmortizedLDA.setup_anndata(other, layer="counts")
    other.uns[GRAPH_KEY] = {"adjacency": sp.random(5, 5, density=0.5, format="csr"), "key": "g"}
    with pytest.raises(ValueError, match=r"'_spatial_graph'.*\(5, 5\)"):
        MultimodalAmortizedLDA(other, **helpers.small)


# ---------------------------------------------------------------------- training and inference
@pytest.mark.parametrize(
    "kwargs", [{}, {"gcn_conv_type": "GCNConv"}, {"spatial_mode": "sgc", "sgc_n_layers": 2}]
)
def test_spatial_modes_train_and_give_valid_proportions(helpers, kwargs):
    model = _model(helpers, **kwargs)
    elbo = model.history["elbo_train"].to_numpy(dtype=float).ravel()
    assert np.isfinite(elbo).all()
    theta = _theta(model)
    assert theta.shape == (helpers.n_cells, helpers.n_topics)
    np.testing.assert_allclose(theta.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(theta, _theta(model))  # repeatable, approx sampling included
    assert np.isfinite(list(model.get_perplexity_per_modality().values())).all()


@pytest.mark.parametrize("conv", ["GATv2Conv", "GCNConv"])
def test_exact_sampling_matches_a_full_graph_pass(helpers, conv):
    model = _model(helpers, gcn_sampling="exact", gcn_n_layers=2, gcn_conv_type=conv)
    full = _theta(model, batch_size=helpers.n_cells)  # every cell a seed: the whole graph
    for batch_size in (7, 50):
        np.testing.assert_allclose(_theta(model, batch_size=batch_size), full, atol=1e-5)
    subset = np.arange(10, 60, 3)
    np.testing.assert_allclose(_theta(model, indices=subset), full[subset], atol=1e-5)


def test_conv_first_gives_the_same_function_in_eval_mode(helpers):
    model = _model(helpers, gcn_sampling="exact")
    before = _theta(model)
    for enc in model.module.encoders:
        enc.conv_first = True
    np.testing.assert_allclose(_theta(model), before, atol=1e-6)


def test_isolated_cells_fall_back_to_their_own_features(helpers):
    adata = helpers.rna()
    coords = _grid_coords(helpers.n_cells)
    coords[:5] += 1000.0 * np.arange(1, 6)[:, None]  # five far-away cells
    adata.obsm["spatial"] = coords
    graph, _ = __import__("napari_topomics.data", fromlist=["x"]).build_spatial_graph(
        coords, method="radius", radius=1.5
    )
    adata.obsp[CONNECTIVITIES_KEY] = graph
    assert (np.diff(graph.indptr)[:5] == 0).all()
    for mode in ("gcn", "sgc"):
        MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", spatial_key=CONNECTIVITIES_KEY)
        model = MultimodalAmortizedLDA(adata, spatial_mode=mode, **helpers.small)
        model.train(**TRAIN)
        theta = _theta(model)
        assert np.isfinite(theta).all()
        np.testing.assert_allclose(theta.sum(1), 1.0, atol=1e-5)


def test_asymmetric_graph_is_symmetrised(helpers, caplog):
    adata = helpers.rna()
    n = helpers.n_cells
    one_way = sp.csr_matrix((np.ones(n - 1), (np.arange(n - 1), np.arange(1, n))), shape=(n, n))
    adata.obsp["chain"] = one_way
    MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", spatial_key="chain")
    with caplog.at_level("INFO"):
        model = MultimodalAmortizedLDA(adata, **helpers.small)
    assert "not symmetric" in caplog.text and "chain" in caplog.text
    degree = model.module.graph_source.samplers[0].degree
    assert degree[0] == 1 and degree[n - 1] == 1 and (degree[1:-1] == 2).all()
    assert adata.obsp["chain"].nnz == n - 1  # the user's graph is untouched


# ---------------------------------------------------------------------- new data
def test_query_uses_its_own_features_and_graph(helpers):
    model = _model(helpers)
    query = _rna(helpers, seed=3)
    MultimodalAmortizedLDA.setup_anndata(query, layer="counts", spatial_key="spatial")
    theta_q = _theta(model, adata=query)
    assert theta_q.shape == (query.n_obs, helpers.n_topics)
    np.testing.assert_array_equal(theta_q, _theta(model, adata=query))
    assert not np.allclose(theta_q, _theta(model))  # not the training cells' result
    perturbed = query.copy()
    perturbed.layers["counts"] = perturbed.layers["counts"][::-1].copy()
    MultimodalAmortizedLDA.setup_anndata(perturbed, layer="counts", spatial_key="spatial")
    assert not np.allclose(_theta(model, adata=perturbed), theta_q)
    # predict sets new data up with the model's graph key (coordinates here)
    fresh = _rna(helpers, seed=3)
    pred = model.predict(fresh)
    assert isinstance(pred, pd.DataFrame) and pred.shape == (fresh.n_obs, helpers.n_topics)


def test_query_without_a_graph_raises(helpers):
    model = _model(helpers)
    query = helpers.rna(seed=4)
    MultimodalAmortizedLDA.setup_anndata(query, layer="counts")
    with pytest.raises(ValueError, match="own cell graph"):
        model.get_cell_topic_dist(adata=query)


def test_shared_graph_is_sampled_once_and_per_modality_graphs_fall_back(helpers):
    mods, _ = helpers.modalities()
    coords = _grid_coords(helpers.n_cells)
    mdata = md.MuData(mods)
    mdata.obsm["spatial"] = coords
    model = MultimodalAmortizedLDA.from_data(
        mdata, layers={"rna": "counts"}, spatial_keys="spatial", **helpers.small
    )
    source = model.module.graph_source
    assert len(source.samplers) == 1 and source.graphs.assignment == (0, 0, 0)
    mods, _ = helpers.modalities()
    mods["rna"].obsp["near"] = sp.csr_matrix(
        (np.ones(helpers.n_cells - 1), (np.arange(1, helpers.n_cells), np.arange(
            helpers.n_cells - 1))), shape=(helpers.n_cells,) * 2,
    )
    mods["atac"].obsm["spatial"] = coords
    per_mod = MultimodalAmortizedLDA.from_data(
        md.MuData(mods), layers={"rna": "counts"},
        spatial_keys={"rna": "near", "atac": "spatial"}, **helpers.small,
    )
    graphs = per_mod.module.graph_source.graphs
    assert len(graphs.adjacency) == 2
    # protein has no graph: it uses the graph of the first modality that has one (rna)
    assert graphs.assignment == (0, 0, 1)
    per_mod.train(**TRAIN)
    assert np.isfinite(_theta(per_mod)).all()


# ---------------------------------------------------------------------- save and load
@pytest.mark.parametrize("mode", ["gcn", "sgc"])
def test_save_load_round_trip(helpers, tmp_path, mode):
    model = _model(helpers, spatial_mode=mode)
    state = model.module.state_dict()
    assert all(v.numel() < 10_000 for v in state.values())  # no smoothed features or caches
    if mode == "sgc":
        assert "sgc_scale" in state
    model.save(tmp_path / "m", save_anndata=True)
    loaded = MultimodalAmortizedLDA.load(tmp_path / "m")
    assert loaded.spatial
    np.testing.assert_allclose(_theta(loaded), _theta(model), atol=1e-6)
    np.testing.assert_allclose(
        loaded.get_modality_weights().to_numpy(), model.get_modality_weights().to_numpy(),
        atol=1e-6,
    )
    loaded.train(**TRAIN)
    model.train(**TRAIN)
    assert np.isfinite(_theta(loaded)).all() and np.isfinite(_theta(model)).all()


# ---------------------------------------------------------------------- coherence
def test_spatial_coherence_is_morans_i_of_the_topics(helpers):
    model = _model(helpers)
    coherence = model.get_spatial_coherence(n_samples=None)
    assert list(coherence.index) == [f"topic_{k}" for k in range(helpers.n_topics)]
    graph = model.module.graph_source.graphs.adjacency[0]
    expected = morans_i(_theta(model), graph)
    np.testing.assert_allclose(coherence.to_numpy(), expected)
    # any graph: a matrix, an obsp key or coordinates
    plain = MultimodalAmortizedLDA.from_data(helpers.rna(), layers="counts", **helpers.small)
    plain.train(**TRAIN)
    with pytest.raises(ValueError, match="No cell graph"):
        plain.get_spatial_coherence()
    plain.adata.obsm["xy"] = _grid_coords(helpers.n_cells)
    by_coords = plain.get_spatial_coherence(graph="xy")
    assert by_coords.shape == (helpers.n_topics,) and np.isfinite(by_coords).all()
    with pytest.raises(ValueError, match="wrong_key"):
        plain.get_spatial_coherence(graph="wrong_key")


# ---------------------------------------------------------------------- neighbourhood term
def test_neighbourhood_term_shapes_training_not_the_reported_elbo(helpers):
    model = _model(helpers, train=False, spatial_mode="sgc")
    elbo = model.get_elbo()
    model.module.neighbour_weight = 50.0
    assert model.get_elbo() == pytest.approx(elbo, rel=1e-6)  # §5.3: the cells' own data
    sums = model.module.graph_source.neighbour_counts(torch.arange(5), torch.device("cpu"))
    (summed, degree), = sums
    graph = model.module.graph_source.graphs.adjacency[0]
    X = model.module.graph_source.X
    expected = graph[:5] @ (X.toarray() if sp.issparse(X) else X)
    np.testing.assert_allclose(summed.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(degree.numpy(), np.diff(graph.indptr)[:5])
    with pytest.raises(ValueError, match="neighbour_likelihood_weight"):
        model.train(**TRAIN, plan_kwargs={"neighbour_likelihood_weight": -1.0})


@pytest.mark.parametrize("mode", ["gcn", "sgc"])
def test_covariates_and_extra_features_reach_the_spatial_encoders(helpers, mode):
    adata = _rna(helpers)
    rng = np.random.default_rng(0)
    adata.obs["batch"] = pd.Categorical(rng.choice(["a", "b", "c"], helpers.n_cells))
    adata.obs["site"] = pd.Categorical(rng.choice(["x", "y"], helpers.n_cells))
    adata.obsm["emb"] = rng.normal(size=(helpers.n_cells, 3)).astype(np.float32)
    MultimodalAmortizedLDA.setup_anndata(
        adata, layer="counts", spatial_key="spatial",
        categorical_covariate_keys=["batch", "site"], encoder_extra_obsm_key="emb",
    )
    model = MultimodalAmortizedLDA(adata, spatial_mode=mode, **helpers.small)
    if mode == "sgc":
        norm = model.module.encoders[0].mean_norm
        assert norm.running_mean.shape == (3, helpers.n_topics)  # one per level of "batch"
    model.train(**TRAIN)
    theta = _theta(model)
    changed = adata.copy()
    changed.obs["site"] = pd.Categorical(
        np.where(changed.obs["site"] == "x", "y", "x"), categories=["x", "y"]
    )
    assert not np.allclose(_theta(model, adata=changed), theta)  # covariates are encoded
    moved = adata.copy()
    moved.obsm["emb"] = moved.obsm["emb"] + 3.0
    assert not np.allclose(_theta(model, adata=moved), theta)  # extra features are encoded


def test_level_batch_norm_normalises_each_level_on_its_own():
    from napari_topomics.module._graph_encoders import LevelBatchNorm

    norm = LevelBatchNorm(2, 3)
    x = torch.cat([torch.randn(50, 2) * 5 + 10, torch.randn(50, 2) * 0.1 - 4])
    level = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    out = norm(x, level)
    for lv in (0, 1):
        part = out[level == lv]
        np.testing.assert_allclose(part.mean(0).detach().numpy(), 0.0, atol=1e-4)
        np.testing.assert_allclose(part.std(0, unbiased=False).detach().numpy(), 1.0, atol=1e-2)
    assert torch.equal(norm.running_mean[2], torch.zeros(2))  # level 2 absent: untouched
    assert (norm.running_mean[0] > 0.5).all() and (norm.running_mean[1] < -0.3).all()


def test_squidpy_graphs_are_used_as_they_are(helpers):
    squidpy = pytest.importorskip("squidpy")
    adata = _rna(helpers)
    squidpy.gr.spatial_neighbors(adata, coord_type="generic", n_neighs=5)
    made = adata.obsp[CONNECTIVITIES_KEY].copy()
    MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", spatial_key=CONNECTIVITIES_KEY)
    model = MultimodalAmortizedLDA(adata, **helpers.small)
    used = model.module.graph_source.graphs.adjacency[0]
    symmetric = ((made + made.T) > 0).astype(np.float32)
    symmetric.setdiag(0)
    symmetric.eliminate_zeros()
    assert (used != symmetric).nnz == 0
    assert (adata.obsp[CONNECTIVITIES_KEY] != made).nnz == 0  # untouched
