"""Covariates (spec §3.5, §3.9, §8) and prediction on new data (spec §5.2)."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest

from napari_topomics.models import MultimodalAmortizedLDA

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*var_names are intersecting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*not created by muon/mudata:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*has not been trained:UserWarning"),
]

CAT_KEYS = ["batch", "donor"]
CONT_KEYS = ["pct_mt"]


def _with_covariates(helpers, seed=0, n_cells=None):
    mods, _ = helpers.modalities(seed=seed, **({} if n_cells is None else {"n_cells": n_cells}))
    n = mods["rna"].n_obs
    rng = np.random.default_rng(seed + 100)
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical(np.where(np.arange(n) % 2 == 0, "b1", "b2")),
            "donor": pd.Categorical(np.array(["d1", "d2", "d3"])[np.arange(n) % 3]),
            "pct_mt": rng.normal(5.0, 2.0, n),
        },
        index=mods["rna"].obs_names,
    )
    mdata = md.MuData(mods)
    for col in obs:
        mdata.obs[col] = obs[col]
    return mdata


@pytest.fixture(scope="module")
def cov_model(helpers):
    mdata = _with_covariates(helpers)
    model = MultimodalAmortizedLDA.from_data(
        mdata, layers={"rna": "counts"}, categorical_covariate_keys=CAT_KEYS,
        continuous_covariate_keys=CONT_KEYS, **helpers.small,
    )
    model.train(max_epochs=2, batch_size=64, enable_progress_bar=False, lr=1e-2)
    return model, mdata


def test_covariates_registered(cov_model):
    model, _ = cov_model
    assert model.n_cats_per_cov == [2, 3]
    assert model.n_continuous_cov == 1
    assert model.is_trained
    hist = model.history["elbo_train"].to_numpy(dtype=float)
    assert np.all(np.isfinite(hist))
    for key in ("elbo_train", "elbo_validation"):
        assert np.all(np.isfinite(model.history[key].to_numpy(dtype=float)))


def test_covariate_queries_finite(cov_model):
    model, _ = cov_model
    assert np.isfinite(model.get_perplexity()) and model.get_perplexity() >= 1
    assert np.isfinite(model.get_elbo())
    ll = model.get_likelihood_per_modality()
    assert all(np.isfinite(v) for v in ll.values())


def test_predict_on_training_cells_matches(cov_model, helpers):
    """Predicting a subset as new data uses the stored standardisation and real codes."""
    model, _ = cov_model
    full = model.get_cell_topic_dist(n_samples=None, return_dataframe=True)
    sub_md = _with_covariates(helpers)
    keep = sub_md.obs_names[::3]
    query = sub_md[keep].copy()
    pred = model.predict(query)
    assert isinstance(pred, pd.DataFrame)
    assert list(pred.index) == list(keep)
    assert list(pred.columns) == [f"topic_{k}" for k in range(helpers.n_topics)]
    np.testing.assert_allclose(pred.sum(1), 1.0, atol=1e-5)
    default = model.get_cell_topic_dist(return_dataframe=True)
    np.testing.assert_allclose(pred.to_numpy(), default.loc[keep].to_numpy(), atol=1e-2)
    # the plug-in values on the registered copy of those cells agree exactly
    registered_rows = model.get_cell_topic_dist(
        indices=np.arange(0, helpers.n_cells, 3), n_samples=None
    )
    np.testing.assert_allclose(registered_rows, full.loc[keep].to_numpy(), atol=1e-6)


def test_predict_on_new_cells(cov_model, helpers):
    model, _ = cov_model
    new = _with_covariates(helpers, seed=5, n_cells=40)
    new.obs_names = [f"new_{i}" for i in range(new.n_obs)]
    for m in new.mod.values():
        m.obs_names = list(new.obs_names)
    pred = model.predict(new)
    assert pred.shape == (40, helpers.n_topics)
    assert list(pred.index) == list(new.obs_names)
    np.testing.assert_allclose(pred.sum(1), 1.0, atol=1e-5)


def test_unseen_level_raises(cov_model, helpers):
    model, _ = cov_model
    query = _with_covariates(helpers)
    batch = query.obs["batch"].astype(str).to_numpy()
    batch[0] = "b9"
    query.obs["batch"] = pd.Categorical(batch)
    with pytest.raises(ValueError, match="b9") as err:
        model.predict(query)
    assert "batch" in str(err.value)


def test_covariates_reach_encoders(cov_model):
    """Changing one cell's covariates changes its Θ and nothing else (§3.9, §6.1 item 3)."""
    model, _ = cov_model
    base = model.adata.copy()
    reference = model.get_cell_topic_dist(adata=base, n_samples=None)
    np.testing.assert_allclose(reference, model.get_cell_topic_dist(n_samples=None), atol=1e-6)

    changed = model.adata.copy()
    batch = changed.obs["batch"].astype(str).to_numpy()
    batch[0] = "b2" if batch[0] == "b1" else "b1"
    changed.obs["batch"] = pd.Categorical(batch, categories=["b1", "b2"])
    theta = model.get_cell_topic_dist(adata=changed, n_samples=None)
    assert np.abs(theta[0] - reference[0]).max() > 1e-4
    np.testing.assert_allclose(theta[1:], reference[1:], atol=1e-6)

    cont = model.adata.copy()
    cont.obs.loc[cont.obs_names[1], "pct_mt"] = cont.obs["pct_mt"].iloc[1] + 10.0
    theta = model.get_cell_topic_dist(adata=cont, n_samples=None)
    assert np.abs(theta[1] - reference[1]).max() > 1e-4
    np.testing.assert_allclose(np.delete(theta, 1, 0), np.delete(reference, 1, 0), atol=1e-6)


def test_covariates_not_encoded_when_disabled(helpers):
    mdata = _with_covariates(helpers)
    model = MultimodalAmortizedLDA.from_data(
        mdata, layers={"rna": "counts"}, categorical_covariate_keys=CAT_KEYS,
        continuous_covariate_keys=CONT_KEYS, encode_covariates=False, **helpers.small,
    )
    helpers.perturb(model)
    reference = model.get_cell_topic_dist(n_samples=None)
    changed = model.adata.copy()
    changed.obs["batch"] = pd.Categorical(["b1"] * changed.n_obs, categories=["b1", "b2"])
    changed.obs["pct_mt"] = 0.0
    np.testing.assert_allclose(
        model.get_cell_topic_dist(adata=changed, n_samples=None), reference, atol=1e-6
    )
    # the decoder effects still exist: the (seeded) ELBO changes with the covariates
    assert model.get_elbo(adata=changed) != pytest.approx(model.get_elbo(), rel=1e-9)


def test_covariate_save_load(cov_model, tmp_path):
    model, _ = cov_model
    reference = model.get_cell_topic_dist(n_samples=None)
    model.save(str(tmp_path / "cov"), save_anndata=True)
    loaded = MultimodalAmortizedLDA.load(str(tmp_path / "cov"))
    assert loaded.n_cats_per_cov == [2, 3] and loaded.n_continuous_cov == 1
    np.testing.assert_allclose(loaded.get_cell_topic_dist(n_samples=None), reference, atol=1e-6)


def test_predict_single_anndata(helpers):
    adata = helpers.rna()
    model = MultimodalAmortizedLDA.from_data(adata, layers="counts", **helpers.small)
    helpers.perturb(model)
    new = helpers.rna(seed=3, n_cells=25)
    new.obs_names = [f"q{i}" for i in range(25)]
    x_before = new.X.copy()
    pred = model.predict(new)
    assert pred.shape == (25, helpers.n_topics)
    assert list(pred.index) == list(new.obs_names)
    np.testing.assert_allclose(pred.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(new.X, x_before)
    # the registered layer (counts), not X, is what gets encoded
    same = helpers.rna()
    same.obs_names = [f"s{i}" for i in range(same.n_obs)]
    np.testing.assert_allclose(
        model.predict(same).to_numpy(), model.get_cell_topic_dist(), atol=1e-2
    )
    # missing features raise
    with pytest.raises(ValueError, match="features"):
        model.predict(new[:, :10].copy())


def test_predict_dict_input(cov_model, helpers):
    model, _ = cov_model
    mdata = _with_covariates(helpers)
    mods = {k: mdata.mod[k].copy() for k in ("rna", "protein", "atac")}
    for k in mods:
        for col in ("batch", "donor", "pct_mt"):
            mods[k].obs[col] = mdata.obs[col].to_numpy()
    pred = model.predict(mods)
    np.testing.assert_allclose(
        pred.to_numpy(), model.get_cell_topic_dist(return_dataframe=True).to_numpy(),
        atol=1e-2,
    )


def test_unseen_level_in_get_cell_topic_dist(cov_model):
    model, _ = cov_model
    query = model.adata.copy()
    donor = query.obs["donor"].astype(str).to_numpy()
    donor[3] = "d7"
    query.obs["donor"] = pd.Categorical(donor)
    with pytest.raises(ValueError, match="d7"):
        model.get_cell_topic_dist(adata=query, n_samples=None)


def test_single_anndata_covariates(helpers):
    adata = helpers.rna()
    adata.obs["batch"] = np.where(np.arange(adata.n_obs) < 60, "x", "y")
    model = MultimodalAmortizedLDA.from_data(
        adata, layers="counts", categorical_covariate_keys=["batch"], n_topics=3, n_hidden=8
    )
    assert model.n_cats_per_cov == [2]
    assert model.n_continuous_cov == 0
    model.train(max_epochs=1, batch_size=64, enable_progress_bar=False)
    assert np.isfinite(model.get_perplexity())


def test_predict_pre_concatenated_anndata(helpers):
    mods, _ = helpers.modalities()
    X = np.hstack([mods["rna"].layers["counts"], mods["protein"].X, mods["atac"].X.toarray()])
    adata = ad.AnnData(X.copy(), obs=mods["rna"].obs.copy())
    model = MultimodalAmortizedLDA.from_data(
        adata, modalities=["rna", "protein", "atac"],
        n_inputs_modalities=list(helpers.n_features), n_topics=3, n_hidden=8,
    )
    helpers.perturb(model)
    query = ad.AnnData(X[:20].copy())
    query.obs_names = [f"q{i}" for i in range(20)]
    pred = model.predict(query)
    assert list(pred.index) == list(query.obs_names)
    np.testing.assert_allclose(pred.to_numpy(), model.get_cell_topic_dist()[:20], atol=1e-2)


def test_predict_spatialdata_table(helpers):
    spatialdata = pytest.importorskip("spatialdata")
    model = MultimodalAmortizedLDA.from_data(helpers.rna(), layers="counts", n_topics=3,
                                             n_hidden=8)
    helpers.perturb(model)
    query = helpers.rna(seed=2, n_cells=30)
    query.obs_names = [f"q{i}" for i in range(30)]
    pred = model.predict(spatialdata.SpatialData(tables={"table": query}))
    assert pred.shape == (30, 3)
    assert list(pred.index) == list(query.obs_names)
    direct = model.predict(query.copy())
    np.testing.assert_allclose(pred.to_numpy(), direct.to_numpy(), atol=1e-6)
