"""Every documented error names the offending item (spec §2.2, §4, §5, §7 "Errors")."""

from __future__ import annotations

import copy

import anndata as ad
import mudata as md
import numpy as np
import pytest
import scipy.sparse as sp

from napari_topomics.models import MultimodalAmortizedLDA

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*var_names are intersecting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*not created by muon/mudata:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*has not been trained:UserWarning"),
]


@pytest.fixture
def registered(helpers):
    """A set-up MuData's registered AnnData (rna counts, protein counts, binary atac)."""
    mdata = helpers.mudata()
    MultimodalAmortizedLDA.setup_mudata(mdata, layers={"rna": "counts"})
    return mdata.uns["_flattened_ann_data"]


def _snapshot(adata: ad.AnnData) -> dict:
    out = {"X": copy.deepcopy(adata.X)}
    out.update({f"layer:{k}": copy.deepcopy(v) for k, v in adata.layers.items()})
    out.update({f"obsp:{k}": copy.deepcopy(v) for k, v in adata.obsp.items()})
    return out


def _assert_same(adata: ad.AnnData, snap: dict) -> None:
    now = _snapshot(adata)
    assert sorted(now) == sorted(snap)
    for key, value in snap.items():
        a, b = now[key], value
        a = a.toarray() if sp.issparse(a) else np.asarray(a)
        b = b.toarray() if sp.issparse(b) else np.asarray(b)
        np.testing.assert_array_equal(a, b, err_msg=key)


# ---------------------------------------------------------------------- option values
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"likelihoods": ["gamma_poisson", "poisson", "bernoulli"]}, ["poisson"]),
        ({"weight_mode": "per_cell"}, ["weight_mode", "per_cell", "universal"]),
        ({"aggregation_type": "max"}, ["aggregation_type", "max", "attention"]),
        ({"topic_feature_prior_type": "dirichlet"}, ["topic_feature_prior_type", "dirichlet"]),
        ({"gcn_conv_type": "SAGEConv"}, ["gcn_conv_type", "SAGEConv", "GCNConv"]),
        ({"gcn_sampling": "random"}, ["gcn_sampling", "random", "exact"]),
        ({"spatial_mode": "graph"}, ["spatial_mode", "graph", "sgc"]),
        ({"likelihood_weight_mode": "inverse"}, ["likelihood_weight_mode", "inverse"]),
        ({"likelihood_weight_ref": "min"}, ["likelihood_weight_ref", "min"]),
        ({"n_topics": 1}, ["n_topics", "1"]),
        ({"n_hidden": 0}, ["n_hidden"]),
        ({"cell_topic_prior": -0.5}, ["cell_topic_prior", "-0.5"]),
        ({"cell_topic_prior": [0.1, 0.2, 0.3]}, ["cell_topic_prior", "3"]),
        ({"cell_topic_prior": [0.1, 0.2, 0.3, 0.0]}, ["cell_topic_prior"]),
        ({"topic_feature_prior": [0.1, 0.2]}, ["topic_feature_prior", "2"]),
        ({"topic_feature_prior": 0.0}, ["topic_feature_prior"]),
        ({"dispersion_rna": 0.0}, ["dispersion_rna"]),
        ({"gcn_alpha_init": 1.5}, ["gcn_alpha_init", "1.5"]),
        ({"gcn_n_layers": 0}, ["gcn_n_layers"]),
        ({"entropy_weight": -1.0}, ["entropy_weight"]),
        ({"topic_variance_weight": -1.0}, ["topic_variance_weight"]),
        ({"kl_weight": -0.1}, ["kl_weight"]),
        ({"bg_offset": -1.0}, ["bg_offset"]),
        ({"att_dim": 0}, ["att_dim"]),
        ({"sgc_n_layers": 0}, ["sgc_n_layers"]),
        ({"encoder_scale_factor": 0.0}, ["encoder_scale_factor"]),
        ({"encoder_scale_factor": float("nan")}, ["encoder_scale_factor"]),
        ({"gcn_hidden_dims": [16, 16]}, ["gcn_hidden_dims", "2"]),
        ({"gcn_n_layers": 2, "gcn_hidden_dims": [16]}, ["gcn_hidden_dims", "1"]),
        ({"gcn_fan_out": [5, 5, 5]}, ["gcn_fan_out", "3"]),
        ({"gcn_n_layers": 2, "gcn_fan_out": [4]}, ["gcn_fan_out"]),
        ({"modality_names": ["a", "b"]}, ["modality_names", "2"]),
        ({"modality_names": ["a", "a", "b"]}, ["modality_names", "unique"]),
        ({"likelihoods": ["multinomial", "multinomial"]}, ["likelihoods", "2"]),
        ({"n_inputs_modalities": [30, 32]}, ["likelihoods"]),
    ],
)
def test_invalid_option_raises_value_error(registered, kwargs, words):
    snap = _snapshot(registered)
    if "n_inputs_modalities" in kwargs:
        kwargs = {**kwargs, "likelihoods": ["multinomial"] * 3}
    with pytest.raises(ValueError) as err:
        MultimodalAmortizedLDA(registered, n_topics=kwargs.pop("n_topics", 4), **kwargs)
    message = str(err.value)
    for word in words:
        assert word in message, (word, message)
    _assert_same(registered, snap)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"n_topics": "5"}, "n_topics"),
        ({"n_topics": 4.0}, "n_topics"),
        ({"weight_mode": 3}, "weight_mode"),
        ({"use_feature_background": "yes"}, "use_feature_background"),
        ({"cell_topic_prior": "flat"}, "cell_topic_prior"),
        ({"likelihoods": "multinomial"}, "likelihoods"),
    ],
)
def test_wrong_type_raises_type_error(registered, kwargs, word):
    with pytest.raises(TypeError, match=word):
        MultimodalAmortizedLDA(registered, **kwargs)


def test_likelihood_case_and_alias_accepted(registered):
    model = MultimodalAmortizedLDA(
        registered, likelihoods=["NB", "Multinomial", "BERNOULLI"], n_topics=3, n_hidden=8
    )
    assert model.likelihoods == ["NB", "Multinomial", "BERNOULLI"]
    assert model.module.config.has_background(0)  # the "nb" alias keeps the background


def test_integer_cell_topic_prior_accepted(registered):
    model = MultimodalAmortizedLDA(registered, n_topics=3, n_hidden=8, cell_topic_prior=1)
    mu = model.module.theta_prior_mu
    assert mu.dtype.is_floating_point
    np.testing.assert_allclose(mu.cpu().numpy(), 0.0, atol=1e-6)


def test_options_validated_before_registration(helpers):
    """Argument checks come first, even on an AnnData that is not registered at all."""
    adata = helpers.rna()
    with pytest.raises(ValueError, match="weight_mode"):
        MultimodalAmortizedLDA(adata, [30], ["multinomial"], weight_mode="bad")


def test_feature_sum_mismatch(registered):
    with pytest.raises(ValueError, match=r"got 61\).*\(62\)"):
        MultimodalAmortizedLDA(registered, n_inputs_modalities=[30, 8, 23])
    with pytest.raises(ValueError, match="n_inputs_modalities"):
        MultimodalAmortizedLDA(registered, n_inputs_modalities=[30, 8, 24, 0],
                               likelihoods=["multinomial"] * 4)


# ---------------------------------------------------------------------- data content
def test_non_binary_bernoulli_names_modality_and_values(registered):
    snap = _snapshot(registered)
    with pytest.raises(ValueError, match="protein") as err:
        MultimodalAmortizedLDA(
            registered, likelihoods=["gamma_poisson", "bernoulli", "bernoulli"], n_topics=3
        )
    assert "bernoulli" in str(err.value).lower()
    listed = str(err.value)
    assert any(str(v) in listed for v in (2, 3, 4, 5, 6, "2.0", "3.0"))
    _assert_same(registered, snap)


def test_negative_counts_raise(helpers):
    mods, _ = helpers.modalities()
    mods["protein"].X[3, 2] = -1.0
    mdata = md.MuData(mods)
    MultimodalAmortizedLDA.setup_mudata(mdata, layers={"rna": "counts"})
    flat = mdata.uns["_flattened_ann_data"]
    snap = _snapshot(flat)
    for likelihood in ("multinomial", "gamma_poisson", "nb"):
        with pytest.raises(ValueError, match="protein"):
            MultimodalAmortizedLDA(flat, likelihoods=["gamma_poisson", likelihood, "bernoulli"])
    # inference never silently picks a count likelihood for negative data
    with pytest.raises(ValueError, match="likelihoods"):
        MultimodalAmortizedLDA(flat)
    # Gaussian is fine
    model = MultimodalAmortizedLDA(
        flat, likelihoods=["gamma_poisson", "gaussian", "bernoulli"], n_topics=3, n_hidden=8
    )
    assert model.likelihoods[1] == "gaussian"
    _assert_same(flat, snap)


def test_nan_names_modality(helpers):
    mods, _ = helpers.modalities()
    mods["atac"].X = mods["atac"].X.toarray()
    mods["atac"].X[5, 1] = np.nan
    mdata = md.MuData(mods)
    MultimodalAmortizedLDA.setup_mudata(mdata, layers={"rna": "counts"})
    flat = mdata.uns["_flattened_ann_data"]
    for liks in (None, ["gamma_poisson", "multinomial", "gaussian"]):
        with pytest.raises(ValueError, match="atac"):
            MultimodalAmortizedLDA(flat, likelihoods=liks)


def test_non_integer_counts_warn_once_naming_modality(helpers):
    mods, _ = helpers.modalities()
    mods["protein"].X = mods["protein"].X + 0.5
    mdata = md.MuData(mods)
    MultimodalAmortizedLDA.setup_mudata(mdata, layers={"rna": "counts"})
    flat = mdata.uns["_flattened_ann_data"]
    with pytest.warns(UserWarning, match="protein") as record:
        MultimodalAmortizedLDA(
            flat, likelihoods=["gamma_poisson", "multinomial", "bernoulli"], n_topics=3
        )
    assert sum("protein" in str(w.message) for w in record) == 1
    assert not any("'rna'" in str(w.message) for w in record)


# ---------------------------------------------------------------------- setup errors
def test_missing_layer(helpers):
    adata = helpers.rna()
    snap = _snapshot(adata)
    with pytest.raises(KeyError, match="nope") as err:
        MultimodalAmortizedLDA.setup_anndata(adata, layer="nope")
    assert "counts" in str(err.value)  # lists the available layers
    with pytest.raises(KeyError, match="nope"):
        MultimodalAmortizedLDA.setup_anndata(adata, layers="nope")
    with pytest.raises(KeyError, match="nope"):
        MultimodalAmortizedLDA.from_data(adata, layers="nope")
    _assert_same(adata, snap)


def test_both_spellings_raise(helpers):
    adata = helpers.rna()
    with pytest.raises(ValueError, match="layer"):
        MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", layers="counts")
    with pytest.raises(ValueError, match="modalities"):
        MultimodalAmortizedLDA.setup_anndata(adata, modalities=["rna", "protein"])


def test_missing_obsp_key(helpers):
    adata = helpers.rna()
    with pytest.raises(KeyError, match="no_graph"):
        MultimodalAmortizedLDA.setup_anndata(adata, layer="counts", spatial_key="no_graph")


def test_missing_table():
    spatialdata = pytest.importorskip("spatialdata")
    adata = ad.AnnData(np.ones((4, 3), dtype=np.float32))
    sdata = spatialdata.SpatialData(tables={"table": adata})
    with pytest.raises(KeyError, match="cells") as err:
        MultimodalAmortizedLDA.setup_data(sdata, table_key="cells")
    assert "table" in str(err.value)


def test_missing_modality(helpers):
    mdata = helpers.mudata()
    with pytest.raises(ValueError, match="'spliced' not found") as err:
        MultimodalAmortizedLDA.setup_mudata(mdata, modalities=["rna", "spliced"])
    assert "atac" in str(err.value)  # lists what is available
    with pytest.raises(ValueError, match="spliced"):
        MultimodalAmortizedLDA.from_data(helpers.mudata(), modalities=["spliced"])
    with pytest.raises(ValueError, match="spliced"):
        MultimodalAmortizedLDA.setup_data(helpers.mudata(), modality_order=["spliced"])


def test_unknown_covariate_key(helpers):
    mdata = helpers.mudata()
    with pytest.raises(KeyError, match="donor"):
        MultimodalAmortizedLDA.setup_data(mdata, categorical_covariate_keys=["donor"])
    with pytest.raises(KeyError, match="pct_mt"):
        MultimodalAmortizedLDA.setup_data(
            helpers.rna(), layers="counts", continuous_covariate_keys=["pct_mt"]
        )


def test_registry_covariate_removed_from_obs(helpers):
    adata = helpers.rna()
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) % 2 == 0, "a", "b")
    MultimodalAmortizedLDA.setup_anndata(adata, layer="counts",
                                         categorical_covariate_keys=["batch"])
    del adata.obs["batch"]
    with pytest.raises(ValueError, match="batch"):
        MultimodalAmortizedLDA(adata, n_topics=3)


@pytest.mark.parametrize(
    "data", [np.zeros((3, 3)), [1, 2, 3], "adata", {"rna": np.zeros((3, 3))}]
)
def test_unsupported_input_type(data):
    with pytest.raises(TypeError, match="Unsupported data type|AnnData"):
        MultimodalAmortizedLDA.setup_data(data)


def test_unsupported_input_type_message():
    with pytest.raises(TypeError, match="Unsupported data type: .*ndarray.*Supported types"):
        MultimodalAmortizedLDA.setup_data(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="Unsupported data type"):
        MultimodalAmortizedLDA.from_data(np.zeros((3, 3)))


def test_mudata_before_setup(helpers):
    mdata = helpers.mudata()
    with pytest.raises(ValueError, match="setup_data"):
        MultimodalAmortizedLDA(mdata)


def test_anndata_without_setup(helpers):
    with pytest.raises(ValueError, match="setup"):
        MultimodalAmortizedLDA(helpers.rna(), n_topics=3)


def test_mudata_after_setup_is_accepted(helpers):
    mdata = helpers.mudata()
    MultimodalAmortizedLDA.setup_mudata(mdata, layers={"rna": "counts"})
    model = MultimodalAmortizedLDA(mdata, n_topics=3, n_hidden=8)
    assert model.adata is mdata.uns["_flattened_ann_data"]
    assert model.modality_names == ["rna", "protein", "atac"]


# ---------------------------------------------------------------------- getters
@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.get_feature_topic_dist("spliced"),
        lambda m: m.get_top_features_per_topic("spliced"),
        lambda m: m.get_topic_diversity("spliced"),
        lambda m: m.get_learned_dispersion("spliced"),
        lambda m: m.cross_modality_score("spliced", "rna"),
        lambda m: m.cross_modality_score("rna", "spliced"),
    ],
)
def test_unknown_modality_in_getters(untrained_model, call):
    with pytest.raises(ValueError, match="spliced") as err:
        call(untrained_model)
    assert "rna" in str(err.value)


def test_dispersion_of_non_nb_modality(untrained_model):
    with pytest.raises(ValueError, match="protein"):
        untrained_model.get_learned_dispersion("protein")
    out = untrained_model.get_learned_dispersion()
    assert list(out) == ["rna"]
    np.testing.assert_allclose(out["rna"], [1.0])


def test_ambiguous_kind(helpers):
    mods, _ = helpers.modalities()
    rna2 = mods["rna"].copy()
    rna2.var_names = [f"tx_{i}" for i in range(rna2.n_vars)]
    model = MultimodalAmortizedLDA.from_data(
        {"RNA": mods["rna"], "genes": rna2}, layers={"RNA": "counts", "genes": "counts"},
        n_topics=3, n_hidden=8,
    )
    assert model.likelihoods == ["gamma_poisson", "gamma_poisson"]
    assert model.get_feature_topic_dist("genes", n_samples=None).index[0] == "tx_0"
    assert model.get_feature_topic_dist("RNA", n_samples=None).index[0] == "gene_0"
    with pytest.raises(ValueError, match="RNA") as err:
        model.get_feature_topic_dist("transcripts")
    assert "genes" in str(err.value)


def test_cross_modality_score_too_large(untrained_model, monkeypatch):
    import napari_topomics.models._topics as topics

    monkeypatch.setattr(topics, "MAX_CROSS_ENTRIES", 100)
    with pytest.raises(ValueError, match="features_a"):
        untrained_model.cross_modality_score("rna", "atac")
    # a subset below the limit works
    out = untrained_model.cross_modality_score(
        "rna", "atac", features_a=["gene_0", "gene_1"], features_b=["peak_0", "peak_3"]
    )
    assert out.shape == (2, 2)


def test_cross_modality_score_gaussian_and_single_modality(helpers):
    mods, _ = helpers.modalities()
    model = MultimodalAmortizedLDA.from_data(
        {"rna": mods["rna"], "emb": ad.AnnData(
            np.random.default_rng(0).normal(size=(helpers.n_cells, 5)).astype(np.float32),
            obs=mods["rna"].obs.copy())},
        layers={"rna": "counts"}, likelihoods=["gamma_poisson", "gaussian"], n_topics=3,
        n_hidden=8,
    )
    with pytest.raises(ValueError, match="emb"):
        model.cross_modality_score("rna", "emb")
    single = MultimodalAmortizedLDA.from_data(helpers.rna(), layers="counts", n_topics=3,
                                              n_hidden=8)
    with pytest.raises(ValueError, match="modalit"):
        single.cross_modality_score("rna", "rna")


def test_bad_n_samples(untrained_model):
    with pytest.raises(ValueError, match="n_samples"):
        untrained_model.get_cell_topic_dist(n_samples=0)
    with pytest.raises(ValueError, match="n_samples"):
        untrained_model.get_feature_topic_dist(n_samples=-3)


def test_likelihood_weights_bad_format(untrained_model):
    with pytest.raises(ValueError, match="json"):
        untrained_model.get_likelihood_weights(return_format="json")
