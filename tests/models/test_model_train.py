"""train(), fit(), history, the KL schedule and the model summary (spec §3.12, §5.1, §5.12)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_topomics.models import MultimodalAmortizedLDA

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*var_names are intersecting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*not created by muon/mudata:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*has not been trained:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*modules? in eval mode:UserWarning"),
]

QUIET = {"enable_progress_bar": False}


def _spy_plan(model):
    """Record the plan's optimiser settings and the optimiser Lightning receives."""
    base = model._training_plan_cls
    record: dict = {}

    class Spy(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            record["plan"] = self

        def configure_optimizers(self):
            out = super().configure_optimizers()
            record["optimizer"] = out["optimizer"] if isinstance(out, dict) else out
            return out

    model._training_plan_cls = Spy
    return record


def _spy_kl(model):
    """Record (training flag, kl_weight argument) of every call of the Pyro model."""
    calls: list = []
    original = model.module.model

    def spy(*args, **kwargs):
        calls.append((model.module.training, kwargs.get("kl_weight")))
        return original(*args, **kwargs)

    model.module.model = spy
    return calls


def test_history_metrics(build_model):
    model = build_model(partial=True, train=False)
    # early stopping monitors elbo_validation, which must exist from the first epoch
    model.train(max_epochs=2, batch_size=64, early_stopping=True, **QUIET)
    hist = model.history
    for key in ("elbo_train", "elbo_validation", "elbo_val", "kl_weight"):
        assert key in hist, key
        assert len(hist[key]) == 2, key
        assert np.all(np.isfinite(hist[key].to_numpy(dtype=float))), key
    np.testing.assert_allclose(hist["elbo_val"].to_numpy(dtype=float),
                               hist["elbo_validation"].to_numpy(dtype=float))
    for key in ("entropy_mean_val", "topic_variance_mean_val"):  # both weights are > 0
        assert key in hist and len(hist[key]) == 2, key
    train = hist["elbo_train"].to_numpy(dtype=float)
    val = hist["elbo_validation"].to_numpy(dtype=float)
    # both are per-cell losses on the same scale (not inflated by N_train / N_val)
    assert np.all(train > 0) and np.all(val > 0)
    assert 0.3 < val[-1] / train[-1] < 3.0
    # per cell: far below the summed loss over all cells
    assert train[-1] < 10_000
    assert model.is_trained
    assert len(model.train_indices) + len(model.validation_indices) == model.adata.n_obs
    assert len(model.validation_indices) == pytest.approx(0.1 * model.adata.n_obs, abs=2)


def test_train_positional_arguments(build_model):
    model = build_model(partial=False, train=False)
    # max_epochs, accelerator, device, train_size, validation_size, shuffle_set_split,
    # batch_size
    model.train(1, "cpu", "auto", 0.5, None, True, 32, **QUIET)
    assert len(model.history["elbo_train"]) == 1
    assert len(model.train_indices) == model.adata.n_obs // 2
    with pytest.raises(TypeError, match="max_epochs"):
        model.train(2, max_epochs=3, **QUIET)


def test_validation_size_and_train_size_one(build_model):
    model = build_model(partial=False, train=False)
    model.train(max_epochs=1, batch_size=64, train_size=0.7, validation_size=0.2, **QUIET)
    n = model.adata.n_obs
    assert len(model.train_indices) == pytest.approx(0.7 * n, abs=1)
    assert len(model.validation_indices) == pytest.approx(0.2 * n, abs=1)
    assert len(model.test_indices) == pytest.approx(0.1 * n, abs=1)


def test_full_batch_training(build_model):
    model = build_model(partial=True, train=False)
    before = model.get_cell_topic_dist(n_samples=None)
    model.train(max_epochs=2, batch_size=None, train_size=1.0, **QUIET)
    assert model.is_trained and len(model.history["elbo_train"]) == 2
    after = model.get_cell_topic_dist(n_samples=None)
    assert np.all(np.isfinite(after)) and not np.allclose(before, after, atol=1e-5)


@pytest.mark.parametrize("global_dispersion", [True, False])
def test_learned_dispersion_reports_size(build_model, global_dispersion):
    model = build_model(partial=False, train=False, learnable_dispersion=True,
                        global_dispersion=global_dispersion)
    size = model.get_learned_dispersion("rna")
    assert size.shape == ((1,) if global_dispersion else (30,))
    # q(d) = LogNormal(0, 0.1) at initialisation: E[1/d²] = exp(2 · 0.1²)
    np.testing.assert_allclose(size, np.exp(2 * 0.1**2), rtol=1e-5)
    fixed = build_model(partial=False, train=False, dispersion_rna=2.5)
    np.testing.assert_allclose(fixed.get_learned_dispersion("rna"), [2.5])
    assert fixed.get_learned_dispersion()["rna"].shape == (1,)


def test_lr_merges_into_optim_kwargs(build_model):
    model = build_model(partial=False, train=False)
    record = _spy_plan(model)
    model.train(max_epochs=1, batch_size=64, lr=0.02,
                plan_kwargs={"optim_kwargs": {"weight_decay": 0.05}}, **QUIET)
    kwargs = record["plan"].optim_kwargs
    assert kwargs["lr"] == pytest.approx(0.02)
    assert kwargs["weight_decay"] == pytest.approx(0.05)
    groups = record["optimizer"].param_groups
    assert groups[0]["lr"] == pytest.approx(0.02)
    assert all(g["weight_decay"] == pytest.approx(0.05) for g in groups)


def test_default_optimiser_settings(build_model):
    model = build_model(partial=False, train=False)
    record = _spy_plan(model)
    model.train(max_epochs=1, batch_size=64, **QUIET)
    assert record["plan"].optim_kwargs["lr"] == pytest.approx(1e-3)
    groups = record["optimizer"].param_groups
    assert groups[0]["lr"] == pytest.approx(1e-3)
    assert all(g["weight_decay"] == 0.0 for g in groups)  # §3.12: no weight decay


def _schedule(e, n_epochs, kl_weight, fraction, minimum):
    if fraction <= 0:
        return kl_weight
    n_warm = max(1, int(np.floor(fraction * n_epochs)))
    return minimum + (kl_weight - minimum) * e / n_warm if e < n_warm else kl_weight


@pytest.mark.parametrize(
    ("kl_weight", "plan_kwargs", "epochs"),
    [
        (1.0, {}, 2),
        (2.0, {"kl_warmup_fraction": 0.5, "kl_warmup_min": 0.1}, 4),
        (0.5, {"kl_warmup_fraction": 0.0}, 2),
    ],
    ids=["default", "custom", "no_warmup"],
)
def test_kl_schedule_logged_and_applied(build_model, kl_weight, plan_kwargs, epochs):
    model = build_model(partial=False, train=False, kl_weight=kl_weight)
    calls = _spy_kl(model)
    model.train(max_epochs=epochs, batch_size=64, train_size=1.0, plan_kwargs=plan_kwargs,
                **QUIET)
    fraction = plan_kwargs.get("kl_warmup_fraction", 0.25)
    minimum = plan_kwargs.get("kl_warmup_min", 0.01)
    expected = [_schedule(e, epochs, kl_weight, fraction, minimum) for e in range(epochs)]
    np.testing.assert_allclose(model.history["kl_weight"].to_numpy(dtype=float).ravel(),
                               expected, rtol=1e-6)
    # every training step passes the epoch's β_KL to the model: 3 steps per epoch
    applied = [kl for training, kl in calls if training and kl is not None]
    assert len(applied) >= 3 * epochs
    per_epoch = np.array(applied[-3 * epochs:]).reshape(epochs, 3)
    np.testing.assert_allclose(per_epoch, np.repeat(np.array(expected)[:, None], 3, 1),
                               rtol=1e-6)
    assert model.module.current_kl_weight == pytest.approx(kl_weight)


def test_second_train_call_uses_training_mode(build_model):
    model = build_model(partial=False, train=False)
    model.train(max_epochs=1, batch_size=64, train_size=1.0, **QUIET)
    calls = _spy_kl(model)
    model.train(max_epochs=1, batch_size=64, train_size=1.0, **QUIET)
    assert calls and all(training for training, _ in calls)


def test_train_clears_cache_and_restores_kl(build_model):
    model = build_model(partial=False, train=False)
    model.get_modality_weights()
    assert len(model._metric_cache) > 0
    model.train(max_epochs=1, batch_size=64, **QUIET)
    assert len(model._metric_cache) == 0


def test_fit_returns_self_and_rejects_other_data(helpers):
    mdata = helpers.mudata()
    model = MultimodalAmortizedLDA.from_data(mdata, layers={"rna": "counts"}, n_topics=3,
                                             n_hidden=8)
    assert model.fit(max_epochs=1, batch_size=64, train_size=1.0, **QUIET) is model
    assert model.is_trained and len(model.history["elbo_train"]) == 1
    # the data checks, with train() stubbed out (it is tested above)
    calls = []
    model.train = lambda **kwargs: calls.append(kwargs)
    assert model.fit(model.adata, max_epochs=2) is model
    assert model.fit(mdata, max_epochs=3) is model  # the source container
    assert [c["max_epochs"] for c in calls] == [2, 3]
    with pytest.raises(ValueError, match="from_data"):
        model.fit(helpers.mudata(), max_epochs=1)
    with pytest.raises(ValueError, match="new model"):
        model.fit(model.adata.copy(), max_epochs=1)
    assert len(calls) == 2


def test_summary_and_attributes(untrained_model):
    model = untrained_model
    text = model.summary_string + repr(model)
    for word in ("MultimodalAmortizedLDA", "4 topics", "rna", "protein", "atac", "30", "8",
                 "24", "gamma_poisson", "multinomial", "bernoulli", "logistic_normal",
                 "moe"):
        assert word in text, word
    assert model.n_topics == 4
    assert model.n_modalities == 3
    assert model.n_inputs_modalities == [30, 8, 24]
    assert model.modalities == model.modality_names == ["rna", "protein", "atac"]
    assert model.gcn_conv_type == "GATv2Conv" and isinstance(model.gcn_conv_type, str)
    assert model.n_cats_per_cov is None and model.n_continuous_cov == 0
    assert model.n_extra_encoder_features == 0
    assert model.spatial is False
    assert model.weight_mode == "cell" and model.aggregation_type == "moe"
    assert model.entropy_weight == 0.01 and model.topic_variance_weight == 1.0
    assert model.get_entropy_weight() == 0.01
    assert model.get_topic_variance_weight() == 1.0
    w = model.get_likelihood_weights()
    assert list(w.columns) == ["rna", "protein", "atac"] and w.shape == (1, 3)
    np.testing.assert_allclose(w.to_numpy(), 1.0)


def test_summary_mentions_options(build_model):
    model = build_model(partial=False, train=False, aggregation_type="attention",
                        topic_feature_prior_type="horseshoe")
    assert "horseshoe" in model.summary_string
    assert "attention" in model.summary_string


@pytest.mark.parametrize(
    ("mode", "ref", "expected"),
    [
        ("inverse_features", "mean", [62 / 3 / 30, 62 / 3 / 8, 62 / 3 / 24]),
        ("sqrt_inverse_features", "max", np.sqrt([30 / 30, 30 / 8, 30 / 24])),
        ("inverse_features", "median", [24 / 30, 24 / 8, 24 / 24]),
    ],
)
def test_likelihood_weights(build_model, mode, ref, expected):
    model = build_model(partial=False, train=False, likelihood_weight_mode=mode,
                        likelihood_weight_ref=ref)
    got = model.get_likelihood_weights(return_format="dict")
    np.testing.assert_allclose(list(got.values()), expected, rtol=1e-6)
    assert list(got) == ["rna", "protein", "atac"]


def test_last_regulariser_statistics(build_model):
    model = build_model(partial=False, train=False)
    assert model.get_last_entropy() is None and model.get_last_topic_variance() is None
    model.train(max_epochs=1, batch_size=64, train_size=1.0, **QUIET)
    ent, var = model.get_last_entropy(), model.get_last_topic_variance()
    assert ent is not None and 0 <= ent <= np.log(4) + 1e-6
    assert var is not None and var >= 0
    off = build_model(partial=False, train=False, entropy_weight=0.0, topic_variance_weight=0.0)
    off.get_elbo()  # runs the guide
    assert off.get_last_entropy() is None and off.get_last_topic_variance() is None


def test_not_implemented_methods(untrained_model):
    with pytest.raises(NotImplementedError):
        untrained_model.get_normalized_expression()
    with pytest.raises(NotImplementedError):
        untrained_model.differential_abundance()


def test_untrained_warning(untrained_model):
    with pytest.warns(UserWarning, match="trained"):
        untrained_model.get_cell_topic_dist(n_samples=None)
