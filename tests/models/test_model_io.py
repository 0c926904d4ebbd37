"""Save/load round trips, independent instances and the metric cache (spec §5.10, §5.11)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_topomics.models import MultimodalAmortizedLDA

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*var_names are intersecting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*not created by muon/mudata:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*has not been trained:UserWarning"),
]

ONE_EPOCH = {"max_epochs": 1, "batch_size": 64, "enable_progress_bar": False}
# no validation loop: fewer steps where only parameter movement matters
STEPS_ONLY = {**ONE_EPOCH, "train_size": 1.0}


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module.named_parameters()}


def _changed(before: dict, after: dict) -> list[str]:
    return [k for k in before if not torch.equal(before[k], after[k])]


def _queries(model, default_theta: bool = True) -> dict:
    out = {"theta": model.get_cell_topic_dist()} if default_theta else {}
    return out | {
        "theta_plugin": model.get_cell_topic_dist(n_samples=None),
        "theta_mc": model.get_cell_topic_dist(n_samples=200, batch_size=50),
        "phi": model.get_feature_topic_dist(n_samples=200).to_numpy(),
        "phi_plugin_bg": model.get_feature_topic_dist(
            n_samples=None, include_background=True
        ).to_numpy(),
        "weights": model.get_modality_weights().to_numpy(),
        "likelihood_weights": model.get_likelihood_weights().to_numpy(),
        "dispersion": model.get_learned_dispersion("rna"),
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"aggregation_type": "attention", "learnable_dispersion": True,
         "likelihood_weight_mode": "inverse_features", "encoder_scale_factor": None},
    ],
    ids=["default", "attention_learned"],
)
def test_save_load_round_trip(build_model, helpers, tmp_path, kwargs):
    model = build_model(partial=True, train=False, **kwargs)
    helpers.perturb(model)
    default_theta = not kwargs
    reference = _queries(model, default_theta)
    model.save(str(tmp_path / "m"), save_anndata=True)

    loaded = MultimodalAmortizedLDA.load(str(tmp_path / "m"))
    assert loaded.modality_names == model.modality_names
    assert loaded.likelihoods == model.likelihoods
    assert loaded.n_topics == model.n_topics
    assert len(loaded._metric_cache) == 0  # a loaded model starts with an empty cache
    again = _queries(loaded, default_theta)
    for key, value in reference.items():
        np.testing.assert_allclose(again[key], value, atol=1e-6, err_msg=key)
    assert list(loaded.get_modality_weights().index) == list(model.adata.obs_names)

    with_adata = MultimodalAmortizedLDA.load(str(tmp_path / "m"), adata=model.adata)
    for key, value in _queries(with_adata, default_theta=False).items():
        np.testing.assert_allclose(value, reference[key], atol=1e-6, err_msg=key)


def test_original_and_loaded_models_keep_training(build_model, tmp_path):
    model = build_model(partial=True, train=False)
    model.train(**ONE_EPOCH)
    model.save(str(tmp_path / "m"), save_anndata=True)
    loaded = MultimodalAmortizedLDA.load(str(tmp_path / "m"))
    assert loaded.is_trained
    np.testing.assert_allclose(loaded.get_cell_topic_dist(n_samples=None),
                               model.get_cell_topic_dist(n_samples=None), atol=1e-6)

    # both the original and the loaded model keep training, each on its own parameters
    orig_before, loaded_before = _params(model), _params(loaded)
    model.train(**STEPS_ONLY)
    loaded_mid = _params(loaded)
    assert not _changed(loaded_before, loaded_mid)  # untouched while the original trains
    orig_after = _params(model)
    assert len(_changed(orig_before, orig_after)) > len(orig_before) // 2
    loaded.train(**STEPS_ONLY)
    assert len(_changed(loaded_before, _params(loaded))) > len(loaded_before) // 2
    assert not _changed(orig_after, _params(model))
    assert np.isfinite(loaded.get_elbo())


def test_load_with_mudata(build_model, helpers, tmp_path):
    model = build_model(partial=False, train=False)
    helpers.perturb(model)
    reference = model.get_cell_topic_dist(n_samples=None)
    model.save(str(tmp_path / "m"))
    mdata = helpers.mudata()
    MultimodalAmortizedLDA.setup_mudata(mdata, layers={"rna": "counts"})
    loaded = MultimodalAmortizedLDA.load(str(tmp_path / "m"), adata=mdata)
    np.testing.assert_allclose(loaded.get_cell_topic_dist(n_samples=None), reference, atol=1e-6)


def test_load_with_fresh_unregistered_anndata(build_model, helpers, tmp_path):
    """scvi's load re-runs the recorded setup on a saved (flattened) AnnData copy."""
    model = build_model(partial=False, train=False)
    helpers.perturb(model)
    reference = model.get_cell_topic_dist(n_samples=None)
    model.save(str(tmp_path / "m"), save_anndata=True)
    import anndata as ad

    saved = ad.read_h5ad(tmp_path / "m" / "adata.h5ad")
    for key in ("_scvi_uuid", "_scvi_manager_uuid"):
        saved.uns.pop(key, None)
    loaded = MultimodalAmortizedLDA.load(str(tmp_path / "m"), adata=saved)
    np.testing.assert_allclose(loaded.get_cell_topic_dist(n_samples=None), reference, atol=1e-6)


def test_two_models_train_independently(build_model):
    a = build_model(partial=False, train=False)
    b = build_model(partial=False, train=False)
    a0, b0 = _params(a), _params(b)
    for key in a0:  # same seed, same data: identical starting points
        torch.testing.assert_close(a0[key], b0[key])
    a.train(**STEPS_ONLY)
    a1 = _params(a)
    assert not _changed(b0, _params(b))
    assert len(_changed(a0, a1)) > len(a0) // 2
    b.train(**STEPS_ONLY)
    b1 = _params(b)
    assert not _changed(a1, _params(a))
    assert len(_changed(b0, b1)) > len(b0) // 2
    a.train(**STEPS_ONLY)
    assert not _changed(b1, _params(b))
    assert _changed(a1, _params(a))


# ---------------------------------------------------------------------- cache
def test_cache_keyed_by_arguments(build_model):
    model = build_model(partial=True, train=False)
    idx = np.array([4, 0, 9])
    sub = model.get_modality_weights(indices=idx)
    full = model.get_modality_weights()
    assert sub.shape == (3, 3) and full.shape == (model.adata.n_obs, 3)
    np.testing.assert_allclose(full.to_numpy()[idx], sub.to_numpy(), atol=1e-6)
    other = model.get_modality_weights(indices=np.array([1, 2]))
    assert other.shape == (2, 3)
    assert list(other.index) == list(model.adata.obs_names[[1, 2]])
    # a subset's likelihood is not returned for the full data, and vice versa
    ll_sub = model.get_likelihood_per_modality(indices=idx)
    ll_full = model.get_likelihood_per_modality()
    assert all(ll_full[k] < ll_sub[k] for k in ll_full)
    assert model.get_perplexity(indices=idx) != model.get_perplexity()
    ent_sub = model.get_entropy(indices=idx)
    ent_full = model.get_entropy()
    theta = model.get_cell_topic_dist().astype(np.float64)
    expected = -(theta * np.log(np.maximum(theta, 1e-8))).sum(1)
    assert ent_full == pytest.approx(expected.mean(), rel=1e-5)
    assert ent_sub == pytest.approx(expected[idx].mean(), rel=1e-4)
    # query AnnData vs registered data
    query = model.adata[idx].copy()
    w_query = model.get_modality_weights(adata=query)
    assert w_query.shape == (3, 3)
    np.testing.assert_allclose(w_query.to_numpy(), full.to_numpy()[idx], atol=1e-6)


def test_cache_invalidated_by_train(build_model):
    model = build_model(partial=True, train=False)

    def results():
        return {
            "theta": model.get_cell_topic_dist(),
            "phi": model.get_feature_topic_dist(n_samples=None).to_numpy(),
            "weights": model.get_modality_weights().to_numpy(),
            "entropy": model.get_entropy(),
            "perplexity": model.get_perplexity(),
            "ll": model.get_likelihood_per_modality()["rna"],
            "top": model.get_top_features_per_topic("rna", return_scores=True)["topic_0"][0][1],
        }

    before = results()
    model.train(**ONE_EPOCH, lr=1e-2)
    after = results()
    for key in before:
        assert not np.allclose(before[key], after[key], rtol=0, atol=1e-7), key


def test_cache_returns_copies(untrained_model):
    model = untrained_model
    theta = model.get_cell_topic_dist()
    reference = theta.copy()
    theta[:] = -1
    np.testing.assert_array_equal(model.get_cell_topic_dist(), reference)
    frame = model.get_feature_topic_dist("rna")
    ref_frame = frame.copy()
    frame.iloc[:, :] = 7.0
    np.testing.assert_array_equal(model.get_feature_topic_dist("rna").to_numpy(),
                                  ref_frame.to_numpy())
    weights = model.get_modality_weights(return_format="dict")
    ref_w = {k: v.copy() for k, v in weights.items()}
    weights["rna"][:] = 5.0
    np.testing.assert_array_equal(model.get_modality_weights(return_format="dict")["rna"],
                                  ref_w["rna"])
    weights_df = model.get_modality_weights()
    weights_df.iloc[:, :] = 9.0
    np.testing.assert_array_equal(model.get_modality_weights().to_numpy(),
                                  np.column_stack(list(ref_w.values())))
    ll = model.get_likelihood_per_modality()
    ll["rna"] = 0.0
    assert model.get_likelihood_per_modality()["rna"] != 0.0
    top = model.get_top_features_per_topic("rna", n_features=3)
    top["topic_0"].append("junk")
    assert "junk" not in model.get_top_features_per_topic("rna", n_features=3)["topic_0"]


def test_clear_metric_cache(build_model, helpers):
    model = build_model(partial=True, train=False)
    theta = model.get_cell_topic_dist()
    phi = model.get_feature_topic_dist(n_samples=100).to_numpy()
    helpers.perturb(model)  # change parameters behind the cache's back
    np.testing.assert_array_equal(model.get_cell_topic_dist(), theta)  # still cached
    model.clear_metric_cache()
    assert len(model._metric_cache) == 0
    assert not np.allclose(model.get_cell_topic_dist(), theta, atol=1e-6)
    assert not np.allclose(model.get_feature_topic_dist(n_samples=100).to_numpy(), phi,
                           atol=1e-6)


def test_load_checkpoint_without_likelihood_weights(build_model, tmp_path):
    model = build_model(partial=False, train=False, likelihood_weight_mode="inverse_features")
    expected = model.get_likelihood_weights().to_numpy()
    path = tmp_path / "old"
    model.save(str(path), save_anndata=True)
    state = torch.load(path / "model.pt", weights_only=False)
    state["model_state_dict"].pop("likelihood_weights")
    torch.save(state, path / "model.pt")
    loaded = MultimodalAmortizedLDA.load(str(path))
    np.testing.assert_allclose(loaded.get_likelihood_weights().to_numpy(), expected, rtol=1e-6)
