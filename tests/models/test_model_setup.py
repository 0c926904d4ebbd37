"""Every setup path builds the same registered matrix and a working model (spec §4, §7)."""

from __future__ import annotations

import copy
import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from napari_topomics.models import MultimodalAmortizedLDA

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*var_names are intersecting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*not created by muon/mudata:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*has not been trained:UserWarning"),
]


def _registered_matrix(model) -> np.ndarray:
    X = model.adata_manager.get_from_registry("X")
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def _snapshot(adatas: dict) -> dict:
    out = {}
    for name, a in adatas.items():
        out[f"{name}:X"] = copy.deepcopy(a.X)
        out.update({f"{name}:layer:{k}": copy.deepcopy(v) for k, v in a.layers.items()})
        out.update({f"{name}:obsp:{k}": copy.deepcopy(v) for k, v in a.obsp.items()})
    return out


def _assert_unchanged(adatas: dict, snap: dict) -> None:
    now = _snapshot(adatas)
    assert sorted(now) == sorted(snap)
    for key, before in snap.items():
        after = now[key]
        assert sp.issparse(after) == sp.issparse(before), key
        a = after.toarray() if sp.issparse(after) else np.asarray(after)
        b = before.toarray() if sp.issparse(before) else np.asarray(before)
        assert a.dtype == b.dtype, key
        np.testing.assert_array_equal(a, b, err_msg=key)


def _expected_matrix(mods) -> np.ndarray:
    blocks = [mods["rna"].layers["counts"], mods["protein"].X, mods["atac"].X]
    return np.hstack([b.toarray() if sp.issparse(b) else np.asarray(b) for b in blocks])


# ---------------------------------------------------------------------- single AnnData
@pytest.mark.parametrize(
    "setup",
    [
        lambda a: MultimodalAmortizedLDA.setup_anndata(a, layer="counts"),
        lambda a: MultimodalAmortizedLDA.setup_anndata(a, layers="counts"),
        lambda a: MultimodalAmortizedLDA.setup_anndata(a, layers={"rna": "counts"}),
        lambda a: MultimodalAmortizedLDA.setup_data(a, layers="counts"),
    ],
    ids=["old_layer", "new_layers", "layers_dict", "setup_data"],
)
def test_anndata_setup_spellings(helpers, setup):
    adata = helpers.rna()
    snap = _snapshot({"rna": adata})
    out = setup(adata)
    assert out is adata
    model = MultimodalAmortizedLDA(adata, n_topics=3, n_hidden=8)
    np.testing.assert_array_equal(_registered_matrix(model), adata.layers["counts"])
    assert model.modality_names == ["rna"]
    assert model.n_inputs_modalities == [helpers.n_features[0]]
    assert model.likelihoods == ["gamma_poisson"]
    assert adata.uns["_modality_setup"]["modality_names"] == ["rna"]
    np.testing.assert_array_equal(adata.obs["_indices"].to_numpy(), np.arange(adata.n_obs))
    theta = model.get_cell_topic_dist(n_samples=None)
    assert theta.shape == (adata.n_obs, 3)
    _assert_unchanged({"rna": adata}, snap)


def test_anndata_x_without_layer_and_named_modality(helpers):
    adata = helpers.rna()
    adata.X = adata.layers["counts"].copy()
    MultimodalAmortizedLDA.setup_anndata(adata, modalities=["ADT"])
    model = MultimodalAmortizedLDA(adata, n_topics=3, n_hidden=8)
    assert model.modality_names == ["ADT"]  # kept verbatim
    assert model.likelihoods == ["multinomial"]  # protein kind
    np.testing.assert_array_equal(_registered_matrix(model), adata.X)
    assert model.get_feature_topic_dist("protein", n_samples=None).shape == (30, 3)


def test_anndata_uppercase_rna_gets_nb(helpers):
    adata = helpers.rna()
    model = MultimodalAmortizedLDA.from_data(adata, modalities="RNA", layers="counts",
                                             n_topics=3, n_hidden=8)
    assert model.modality_names == ["RNA"]
    assert model.likelihoods == ["gamma_poisson"]


def test_from_data_pre_concatenated_anndata(helpers):
    mods, _ = helpers.modalities()
    X = _expected_matrix(mods)
    adata = ad.AnnData(X.copy(), obs=mods["rna"].obs.copy())
    model = MultimodalAmortizedLDA.from_data(
        adata, modalities=["rna", "protein", "atac"], n_inputs_modalities=list(helpers.n_features),
        n_topics=3, n_hidden=8,
    )
    assert model.modality_names == ["rna", "protein", "atac"]
    assert model.n_inputs_modalities == list(helpers.n_features)
    assert model.likelihoods == ["gamma_poisson", "multinomial", "bernoulli"]
    meta = model.adata.uns["_modality_setup"]
    assert list(meta["modality_names"]) == ["rna", "protein", "atac"]
    assert list(meta["feature_counts"]) == list(helpers.n_features)
    np.testing.assert_array_equal(_registered_matrix(model), X)


# ---------------------------------------------------------------------- multi-modality paths
def _mudata_paths():
    layers = {"rna": "counts"}
    return {
        "setup_mudata": lambda d: MultimodalAmortizedLDA(
            MultimodalAmortizedLDA.setup_mudata(d["mdata"], layers=layers)[0]
            .uns["_flattened_ann_data"], n_topics=3, n_hidden=8),
        "setup_mudata_old": lambda d: MultimodalAmortizedLDA(
            MultimodalAmortizedLDA.setup_mudata(
                d["mdata"], modality_order=["rna", "protein", "atac"], layer_dict=layers
            )[0].uns["_flattened_ann_data"], n_topics=3, n_hidden=8),
        "setup_data_mudata": lambda d: MultimodalAmortizedLDA(
            MultimodalAmortizedLDA.setup_data(d["mdata"], layers=layers)[0],
            n_topics=3, n_hidden=8),
        "from_data_mudata": lambda d: MultimodalAmortizedLDA.from_data(
            d["mdata"], layers=layers, n_topics=3, n_hidden=8),
        "from_mudata": lambda d: MultimodalAmortizedLDA.from_mudata(
            d["mdata"], layer_dict=layers, n_topics=3, n_hidden=8),
        "setup_adata_dict": lambda d: MultimodalAmortizedLDA(
            MultimodalAmortizedLDA.setup_adata_dict(d["mods"], layers=layers),
            n_topics=3, n_hidden=8),
        "from_data_dict": lambda d: MultimodalAmortizedLDA.from_data(
            d["mods"], layers=layers, n_topics=3, n_hidden=8),
    }


@pytest.mark.parametrize("path", list(_mudata_paths()))
def test_multimodal_setup_paths_agree(helpers, path):
    mods, _ = helpers.modalities()
    mdata = md.MuData({k: v.copy() for k, v in mods.items()})
    snap = _snapshot(mods)
    snap_mu = _snapshot(dict(mdata.mod))
    model = _mudata_paths()[path]({"mdata": mdata, "mods": mods})
    expected = _expected_matrix(helpers.modalities()[0])
    np.testing.assert_array_equal(_registered_matrix(model), expected)
    assert model.modality_names == ["rna", "protein", "atac"]
    assert model.n_inputs_modalities == list(helpers.n_features)
    assert model.likelihoods == ["gamma_poisson", "multinomial", "bernoulli"]
    assert list(model.adata.obs_names) == list(mods["rna"].obs_names)
    assert list(model.adata.var["modality"]) == (
        ["rna"] * 30 + ["protein"] * 8 + ["atac"] * 24
    )
    meta = model.adata.uns["_modality_setup"]
    assert list(meta["modality_names"]) == ["rna", "protein", "atac"]
    assert [int(v) for v in meta["feature_counts"]] == list(helpers.n_features)
    theta = model.get_cell_topic_dist(n_samples=None)
    assert theta.shape == (helpers.n_cells, 3)
    _assert_unchanged(mods, snap)
    _assert_unchanged(dict(mdata.mod), snap_mu)


def test_mudata_subset_and_order(helpers):
    mdata = helpers.mudata()
    model = MultimodalAmortizedLDA.from_data(
        mdata, modalities=["atac", "rna"], layers={"rna": "counts"}, n_topics=3, n_hidden=8
    )
    mods, _ = helpers.modalities()
    expected = np.hstack([mods["atac"].X.toarray(), mods["rna"].layers["counts"]])
    np.testing.assert_array_equal(_registered_matrix(model), expected)
    assert model.modality_names == ["atac", "rna"]
    assert model.likelihoods == ["bernoulli", "gamma_poisson"]


def test_mudata_old_and_new_names_merge_with_warning(helpers):
    mdata = helpers.mudata()
    with pytest.warns(UserWarning, match="modality_order"):
        _, names, counts = MultimodalAmortizedLDA.setup_mudata(
            mdata, modality_order=["rna", "atac"], modalities=["rna", "protein"]
        )
    assert names == ["rna", "protein"] and counts == [30, 8]  # the new name wins
    meta = mdata.uns["_multimodal_setup"]
    assert list(meta["modality_order"]) == ["rna", "protein"]
    assert [int(c) for c in meta["feat_counts"]] == [30, 8]
    assert meta["setup_method"] == "separate_modalities"


def test_covariate_found_in_modality_obs(helpers):
    mods, _ = helpers.modalities()
    mods["protein"].obs["donor"] = np.where(np.arange(helpers.n_cells) % 2, "x", "y")
    mdata = md.MuData(mods)
    model = MultimodalAmortizedLDA.from_data(
        mdata, layers={"rna": "counts"}, categorical_covariate_keys=["donor"], n_topics=3,
        n_hidden=8,
    )
    assert model.n_cats_per_cov == [2]
    np.testing.assert_array_equal(
        model.adata.obs["donor"].astype(str).to_numpy(), mods["protein"].obs["donor"].to_numpy()
    )


def test_mudata_cell_order_alignment(helpers):
    mods, _ = helpers.modalities()
    shuffled = mods["protein"][np.random.default_rng(0).permutation(helpers.n_cells)].copy()
    mdata = md.MuData({"rna": mods["rna"], "protein": shuffled, "atac": mods["atac"]})
    model = MultimodalAmortizedLDA.from_data(mdata, layers={"rna": "counts"}, n_topics=3,
                                             n_hidden=8)
    X = _registered_matrix(model)
    order = model.adata.obs_names
    np.testing.assert_array_equal(X[:, 30:38], mods["protein"][order].X)
    np.testing.assert_array_equal(X[:, :30], mods["rna"][order].layers["counts"])


def test_partial_modality_gives_zero_block(helpers, trained_model):
    X = _registered_matrix(trained_model)
    missing = trained_model.adata.obs_names.isin([f"cell_{i}" for i in range(20)])
    assert (X[missing, 30:38] == 0).all()
    assert (X[~missing, 30:38].sum(1) > 0).all()


def test_inferred_likelihoods_are_logged(helpers, caplog):
    with caplog.at_level(logging.INFO, logger="napari_topomics"):
        MultimodalAmortizedLDA.from_data(helpers.mudata(), layers={"rna": "counts"},
                                         n_topics=3, n_hidden=8)
    text = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert "gamma_poisson" in text and "bernoulli" in text


def test_chromatin_counts_inferred_multinomial(helpers):
    mods, _ = helpers.modalities()
    mods["atac"].X = mods["atac"].X * 2.0  # counts, not binary
    model = MultimodalAmortizedLDA.from_data(md.MuData(mods), layers={"rna": "counts"},
                                             n_topics=3, n_hidden=8)
    assert model.likelihoods == ["gamma_poisson", "multinomial", "multinomial"]


def test_default_names_without_matching_metadata(helpers):
    mods, _ = helpers.modalities()
    X = _expected_matrix(mods)
    adata = ad.AnnData(X, obs=mods["rna"].obs.copy())
    MultimodalAmortizedLDA.setup_anndata(adata)  # metadata lists one modality
    model = MultimodalAmortizedLDA(adata, list(helpers.n_features),
                                   ["multinomial"] * 3, n_topics=3, n_hidden=8)
    assert model.modality_names == ["0", "1", "2"]
    assert model.get_feature_topic_dist("1", n_samples=None).shape == (8, 3)
    assert model.get_feature_topic_dist(1, n_samples=None).shape == (8, 3)


def test_encoder_scale_none_uses_median_library(helpers):
    """``encoder_scale_factor=None`` equals passing the median library size of the cells."""
    import scvi

    adata = helpers.rna()
    lib = adata.layers["counts"].sum(1)
    median = float(np.median(lib[lib > 0]))
    thetas = []
    for factor in (None, median, 1e6):
        scvi.settings.seed = 0
        model = MultimodalAmortizedLDA.from_data(adata.copy(), layers="counts", n_topics=3,
                                                 n_hidden=8, encoder_scale_factor=factor)
        assert model.encoder_scale_factor == factor
        thetas.append(model.get_cell_topic_dist(n_samples=None))
    np.testing.assert_allclose(thetas[0], thetas[1], atol=1e-6)
    assert not np.allclose(thetas[0], thetas[2], atol=1e-4)


def test_explicit_arguments_override_metadata(helpers):
    mdata = helpers.mudata()
    model = MultimodalAmortizedLDA.from_data(
        mdata, layers={"rna": "counts"}, likelihoods=["nb", "multinomial", "multinomial"],
        modality_names=["genes", "adt", "peaks"], n_topics=3, n_hidden=8,
    )
    assert model.likelihoods == ["nb", "multinomial", "multinomial"]
    assert model.modality_names == ["genes", "adt", "peaks"]
    assert model.modalities == model.modality_names


# ---------------------------------------------------------------------- SpatialData
@pytest.mark.parametrize("layers", ["counts", {"rna": "counts"}])
def test_spatialdata_table(helpers, layers):
    spatialdata = pytest.importorskip("spatialdata")
    adata = helpers.rna()
    sdata = spatialdata.SpatialData(tables={"table": adata})
    table = sdata.tables["table"]
    snap = _snapshot({"table": table})
    registered = MultimodalAmortizedLDA.setup_data(sdata, layers=layers)
    assert registered is table  # used as is, no copy
    assert "_spatialdata_setup" in registered.uns
    model = MultimodalAmortizedLDA(registered, n_topics=3, n_hidden=8)
    np.testing.assert_array_equal(_registered_matrix(model), table.layers["counts"])
    assert model.modality_names == ["rna"]
    model.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    assert model.get_cell_topic_dist(n_samples=None).shape == (helpers.n_cells, 3)
    _assert_unchanged({"table": table}, snap)
    via_from = MultimodalAmortizedLDA.from_data(
        spatialdata.SpatialData(tables={"table": helpers.rna()}), layers=layers, n_topics=3,
        n_hidden=8,
    )
    np.testing.assert_array_equal(_registered_matrix(via_from), table.layers["counts"])


# ---------------------------------------------------------------------- user data untouched
def test_user_data_unchanged_by_setup_training_and_queries(helpers):
    mods, _ = helpers.modalities()
    rng = np.random.default_rng(0)
    graph = sp.random(helpers.n_cells, helpers.n_cells, density=0.02, random_state=0,
                      format="csr")
    mods["rna"].obsp["knn"] = graph
    mods["rna"].obsm["extra"] = rng.normal(size=(helpers.n_cells, 2)).astype(np.float32)
    mdata = md.MuData(mods)
    snap = _snapshot(dict(mdata.mod))
    x_dtype = mdata.mod["rna"].X.dtype
    model = MultimodalAmortizedLDA.from_data(mdata, layers={"rna": "counts"}, n_topics=3,
                                             n_hidden=8)
    model.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    model.get_cell_topic_dist(n_samples=20)
    model.get_likelihood_per_modality()
    model.get_modality_weights()
    _assert_unchanged(dict(mdata.mod), snap)
    assert mdata.mod["rna"].X.dtype == x_dtype
    # the log1p X was not overwritten by the counts layer
    assert not np.allclose(mdata.mod["rna"].X, mdata.mod["rna"].layers["counts"])


def test_extra_encoder_features_forwarded(helpers):
    mods, _ = helpers.modalities()
    mods_md = md.MuData(mods)
    mods_md.obsm["emb"] = np.random.default_rng(0).normal(size=(helpers.n_cells, 3)).astype(
        np.float32
    )
    model = MultimodalAmortizedLDA.from_data(
        mods_md, layers={"rna": "counts"}, encoder_extra_obsm_key="emb", n_topics=3,
        n_hidden=8,
    )
    assert model.n_extra_encoder_features == 3
    before = model.get_cell_topic_dist(n_samples=None)
    query = model.adata.copy()
    query.obsm["emb"] = query.obsm["emb"] + 5.0
    after = model.get_cell_topic_dist(adata=query, n_samples=None)
    assert not np.allclose(before, after, atol=1e-4)  # the encoders read the extras
    model2 = MultimodalAmortizedLDA.from_mudata(
        _with_obsm(helpers),
        layer_dict={"rna": "counts"}, encoder_extra_obsm_key="emb", n_topics=3, n_hidden=8,
    )
    assert model2.n_extra_encoder_features == 3


def _with_obsm(helpers):
    mdata = md.MuData(helpers.modalities()[0])
    mdata.obsm["emb"] = np.zeros((helpers.n_cells, 3), dtype=np.float32)
    return mdata


def test_query_anndata_without_indices_column(trained_model):
    """A plain AnnData with the registered features can be queried (registry transfer)."""
    reg = trained_model.adata
    query = ad.AnnData(
        reg.X.copy() if not sp.issparse(reg.X) else reg.X.copy(),
        obs=pd.DataFrame(index=[f"q{i}" for i in range(reg.n_obs)]),
        var=reg.var[[]].copy(),
    )
    theta = trained_model.get_cell_topic_dist(adata=query, n_samples=None,
                                              return_dataframe=True)
    assert list(theta.index) == list(query.obs_names)
    np.testing.assert_allclose(
        theta.to_numpy(), trained_model.get_cell_topic_dist(n_samples=None), atol=1e-6
    )


def test_shared_feature_names_are_prefixed_only_when_concatenated(helpers):
    mods, _ = helpers.modalities()
    mods["protein"].var_names = ["gene_0"] + [f"prot_{i}" for i in range(1, 8)]
    model = MultimodalAmortizedLDA.from_data(mods, layers={"rna": "counts"}, n_topics=3,
                                             n_hidden=8)
    assert model.adata.var_names.is_unique
    assert "protein:gene_0" in model.adata.var_names
    per_modality = model.get_feature_topic_dist("protein", n_samples=None)
    assert per_modality.index[0] == "gene_0"  # the user's name
    assert model.get_feature_topic_dist(n_samples=None, as_dict=True)[1].index[0] == "gene_0"
    stacked = model.get_feature_topic_dist(n_samples=None)
    assert stacked.index.is_unique and "protein:gene_0" in stacked.index
    assert model.get_feature_topic_dist("rna", n_samples=None).index[0] == "gene_0"
    top = model.get_top_features_per_topic("protein", n_features=8)
    assert "gene_0" in top["topic_0"]


# ---------------------------------------------------------------------- legacy utilities
def test_check_input_variants(untrained_model, helpers):
    model = untrained_model
    names_before = list(model.modality_names)
    mods, _ = helpers.modalities()
    model.check_input(md.MuData(mods))
    assert list(model.data_dict) == ["rna", "protein", "atac"]
    model.check_input(mods)
    assert list(model.data_dict) == ["rna", "protein", "atac"]
    model.check_input([mods["rna"], mods["atac"]], modalities=["RNA", "ATAC"])
    assert list(model.data_dict) == ["RNA", "ATAC"]
    with pytest.warns(UserWarning, match="rna"):
        model.check_input(mods["protein"])
    assert list(model.data_dict) == ["rna"]
    with pytest.raises(ValueError):
        model.check_input([mods["rna"], mods["atac"]], modalities=["rna"])
    with pytest.raises(TypeError):
        model.check_input(np.zeros((3, 3)))
    model.check_input({"RNA": mods["rna"], "adt": mods["protein"], "harmony": mods["atac"]})
    model.check_modalities_names()
    assert list(model.data_dict) == ["rna", "protein", "harmony"]
    model.data_dict = {"rna": mods["rna"].X, "genes": mods["rna"].X}
    with pytest.raises(ValueError, match="genes"):
        model.check_modalities_names()
    model.data_dict = {}
    with pytest.raises(ValueError):
        model.check_modalities_names()
    model.data_dict = {3: mods["rna"].X}
    with pytest.raises(ValueError):
        model.check_modalities_names()
    assert model.modality_names == names_before  # never renames the fitted model's names


def test_likelihood_list_may_leave_entries_to_inference():
    from napari_topomics.datasets import simulate_tissue

    mdata, _ = simulate_tissue(n_cells=120, n_topics=3, n_genes=40, n_proteins=6, n_peaks=50)
    data = {m: mdata.mod[m] for m in ("rna", "protein", "atac")}
    model = MultimodalAmortizedLDA.from_data(data, n_topics=3, likelihoods=[None, "nb", None])
    assert model.likelihoods == ["gamma_poisson", "nb", "bernoulli"]
