"""``sweep_topics``: the recommended K, the held-out split, reuse of fits, stop and bad input.

One simulated tissue with 4 planted topics (one dominant topic per domain, 500 cells, RNA
and 60 proteins) is swept over K = 3, 4, 5 with two seeds once for the module. Observed on
data seeds 0 / 1 / 2 (K = 3, 4, 5, 6): stability 0.997 / 0.995 / 0.997 at K = 3,
0.996 / 0.995 / 0.995 at K = 4 and 0.92-0.94 at K = 5, so K = 4 is recommended on each.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from napari_topomics.datasets import simulate_family
from napari_topomics.models import MultimodalAmortizedLDA, TopicSweep, sweep_topics
from napari_topomics.models._sweep_data import split_kwargs

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

TRUE_K = 4
KS = (3, 4, 5)
FIT = {"max_epochs": 100, "batch_size": 64, "likelihoods": ["nb", "multinomial"]}
QUICK = {"max_epochs": 5, "batch_size": 64, "likelihoods": ["nb", "multinomial"]}


@pytest.fixture(scope="module")
def tissue():
    torch.set_num_threads(1)
    mdata, _ = simulate_family(
        "one_topic", n_cells=500, n_topics=TRUE_K, n_genes=100, n_proteins=60, n_peaks=0,
        protein_likelihood="multinomial", seed=0,
    )
    return mdata


@pytest.fixture(scope="module")
def swept(tissue):
    calls: list[tuple[int, int]] = []
    sweep = sweep_topics(tissue, KS, seeds=2, progress=lambda d, n: calls.append((d, n)), **FIT)
    return sweep, calls


def test_recommends_the_planted_number_of_topics(swept):
    sweep, _ = swept
    assert sweep.recommended == TRUE_K
    per_k = sweep.summary()["stability"]
    # the extra topic of K = 5 splits a planted one differently on each seed
    assert per_k[TRUE_K] >= sweep.stability_threshold
    assert per_k[TRUE_K] - per_k[TRUE_K + 1] > 0.03
    assert sweep.summary()["recommended"].sum() == 1


def test_frame_has_one_row_per_k_and_seed(swept, tissue):
    sweep, calls = swept
    frame = sweep.to_frame()
    assert isinstance(sweep, TopicSweep)
    assert len(frame) == len(KS) * 2
    assert sorted(zip(frame["K"], frame["seed"], strict=True)) == [(k, s) for k in KS
                                                                   for s in (0, 1)]
    expected = {"K", "seed", "perplexity", "perplexity_rna", "perplexity_protein",
                "stability", "stability_min", "redundancy", "diversity", "topics_used",
                "morans_i", "fit_seconds"}
    assert expected <= set(frame.columns)
    numeric = frame[sorted(expected - {"K", "seed"})].to_numpy(dtype=float)
    assert np.isfinite(numeric).all()
    assert frame["stability_min"].le(frame["stability"] + 1e-12).all()
    assert frame[["diversity", "topics_used"]].stack().between(0, 1).all()
    # the planted topics are distinct: no two of a fit correlate up to the true K
    assert frame.loc[frame["K"] <= TRUE_K, "redundancy"].lt(0.5).all()
    assert frame["redundancy"].between(-1, 1).all()
    # the simulated tissue has coordinates, and its topics fill domains
    assert frame["morans_i"].gt(0.2).all()
    assert calls == [(i, len(frame)) for i in range(1, len(frame) + 1)]
    assert frame is not sweep.frame  # to_frame hands out a copy


def test_heldout_cells_are_never_fitted(swept, tissue):
    sweep, _ = swept
    fit, held = set(sweep.fit_cells), set(sweep.heldout_cells)
    assert not fit & held
    assert fit | held == set(tissue.obs_names)
    assert len(held) == 100  # holdout=0.2 of 500
    for k in KS:
        model = sweep.best_model(k)
        assert set(model.adata.obs_names) == fit
    # the frame's perplexity is the model's on exactly the held-out cells
    model = sweep.best_model(TRUE_K)
    held_data = tissue[tissue.obs_names.isin(sweep.heldout_cells)].copy()
    query = model._prepare_query(held_data)
    row = sweep.frame.query("K == @TRUE_K").sort_values("perplexity").iloc[0]
    assert model.get_perplexity(adata=query) == pytest.approx(row["perplexity"], rel=1e-6)
    assert model.get_perplexity() != pytest.approx(row["perplexity"], rel=1e-4)


def test_best_model_reuses_the_fit(swept, monkeypatch):
    sweep, _ = swept

    def no_training(*args, **kwargs):
        raise AssertionError("best_model trained again")

    monkeypatch.setattr(MultimodalAmortizedLDA, "train", no_training)
    model = sweep.best_model(5)
    assert model.n_topics == 5 and model.is_trained_
    assert len(model.history["elbo_train"]) == FIT["max_epochs"]
    assert sweep.best_model(5) is model
    assert sweep.best_model().n_topics == sweep.recommended
    rows = sweep.frame[sweep.frame["K"] == 5]
    best_seed = int(rows.sort_values("perplexity").iloc[0]["seed"])
    assert sweep._records[(5, best_seed)].get_model() is model
    with pytest.raises(ValueError, match="n_topics=7"):
        sweep.best_model(7)


def test_plot_marks_the_recommended_k(swept):
    sweep, _ = swept
    fig = sweep.plot()
    axes = fig.axes
    assert len(axes) == 4
    for ax in axes:
        verticals = [line for line in ax.get_lines()
                     if np.ptp(np.asarray(line.get_xdata(), dtype=float)) == 0]
        assert any(float(line.get_xdata()[0]) == TRUE_K for line in verticals)
    assert f"recommended K = {TRUE_K}" in fig.texts[0].get_text()


def test_plot_title_fits_the_figure(swept):
    """The rule spelled out in the title is wrapped, not cut off at the figure's edges."""
    sweep, _ = swept
    fig = sweep.plot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    title = fig.texts[0].get_window_extent(renderer)
    page = fig.bbox
    assert title.x0 >= page.x0 and title.x1 <= page.x1
    text = " ".join(fig.texts[0].get_text().split())
    assert sweep.reason in text and sweep.rule in text  # wrapped, nothing dropped


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"n_topics": ()}, "n_topics is empty"),
        ({"n_topics": "4:8"}, "n_topics"),
        ({"n_topics": (1, 4)}, "at least 2"),
        ({"n_topics": (4, 2.5)}, "integers"),
        ({"n_topics": (4, 500)}, "smaller than the number of cells"),
        ({"seeds": 0}, "seeds must be at least 1"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"holdout": 1.5}, "holdout"),
        ({"n_topics": (4,), "stability_threshold": "high"}, "stability_threshold"),
        ({"n_topics": (4,), "redundancy_limit": float("nan")}, "redundancy_limit"),
    ],
)
def test_bad_input_names_the_option(tissue, monkeypatch, options, needle):
    monkeypatch.setattr(MultimodalAmortizedLDA, "train", lambda *a, **k: pytest.fail("fit"))
    kwargs = {"n_topics": (3, 4), **options}
    with pytest.raises(ValueError, match=needle) as info:
        sweep_topics(tissue, **kwargs, **QUICK)
    assert "\n" not in str(info.value)


def test_kwargs_are_routed_by_signature():
    setup, train = split_kwargs({
        "modalities": ["rna"], "likelihoods": ["nb"], "n_hidden": 16, "spatial_keys": "xy",
        "max_epochs": 3, "batch_size": 32, "plan_kwargs": {"lr": 1e-2},
        "enable_progress_bar": True,
    })
    assert set(setup) == {"modalities", "likelihoods", "n_hidden", "spatial_keys"}
    assert set(train) == {"max_epochs", "batch_size", "plan_kwargs", "enable_progress_bar"}
    with pytest.raises(ValueError, match="n_topics"):
        split_kwargs({"n_topics": 4})


def test_stop_keeps_the_finished_fits(tissue):
    done: list[int] = []
    sweep = sweep_topics(tissue, (3, 4), seeds=2, progress=lambda d, n: done.append(d),
                         should_stop=lambda: len(done) >= 2, **QUICK)
    assert sweep.stopped
    assert list(zip(sweep.frame["K"], sweep.frame["seed"], strict=True)) == [(3, 0), (3, 1)]
    assert sweep.recommended == 3
    assert sweep.best_model(3).is_trained_

    # a stop during training drops the fit in progress and keeps the earlier ones
    polls_after_first = {"n": 0}

    def stop_in_second_fit() -> bool:
        if done:
            polls_after_first["n"] += 1  # 1: the check before fit 2, then its minibatches
        return polls_after_first["n"] > 3

    done.clear()
    sweep = sweep_topics(tissue, (3, 4), seeds=2, progress=lambda d, n: done.append(d),
                         should_stop=stop_in_second_fit, **QUICK)
    assert sweep.stopped and len(sweep.frame) == 1
    assert repr(sweep).endswith("stopped)")


def test_worker_processes_give_the_same_fits(tissue):
    sequential = sweep_topics(tissue, (3, 4), seeds=1, **QUICK)
    parallel = sweep_topics(tissue, (3, 4), seeds=1, n_jobs=2, **QUICK)
    columns = ["K", "seed", "perplexity", "diversity", "topics_used", "morans_i"]
    pd.testing.assert_frame_equal(
        parallel.frame[columns], sequential.frame[columns], rtol=1e-4
    )
    model = parallel.best_model(4)
    assert model.n_topics == 4 and model.is_trained_
    assert set(model.adata.obs_names) == set(parallel.fit_cells)


def test_holdout_split_is_seeded_and_dicts_keep_their_own_cells(tissue):
    from napari_topomics.models._sweep_data import cell_names, holdout_split, subset_cells

    names = cell_names(tissue)
    fit, held = holdout_split(names, 0.2, seed=0)
    again_fit, again_held = holdout_split(names, 0.2, seed=0)
    assert list(held) == list(again_held) and list(fit) == list(again_fit)
    assert set(holdout_split(names, 0.2, seed=1)[1]) != set(held)
    # a dict whose protein modality lacks 50 cells: each modality keeps its own share
    data = {"rna": tissue.mod["rna"], "protein": tissue.mod["protein"][50:]}
    assert list(cell_names(data)) == list(tissue.mod["rna"].obs_names)
    part = subset_cells(data, held)
    assert set(part["rna"].obs_names) == set(held)
    assert set(part["protein"].obs_names) == set(held) - set(tissue.mod["rna"].obs_names[:50])


def _sweep_with_stability(per_k: dict[int, float], threshold: float = 0.95,
                          redundancy: dict[int, float] | None = None,
                          limit: float | None = None):
    """A TopicSweep whose frame holds two restarts of each K with the given stability
    (and redundancy, distinct topics by default; ``limit``: the redundancy veto)."""
    sweep = TopicSweep([], list(per_k), [0, 1], pd.Index([]), pd.Index([]),
                       stability_threshold=threshold, redundancy_limit=limit)
    redundancy = redundancy or {}
    sweep.frame = pd.DataFrame([{"K": k, "seed": s, "stability": v, "perplexity": 1.0,
                                 "redundancy": redundancy.get(k, -0.2)}
                                for k, v in per_k.items() for s in (0, 1)])
    return sweep


def test_recommendation_is_the_largest_stable_k():
    sweep = _sweep_with_stability({4: 0.99, 5: 0.97, 6: 0.96, 7: 0.90, 8: 0.91})
    assert sweep.recommended == 6
    assert sweep.reason.startswith("K = 6 is the largest K whose topics are stable")
    assert "0.960 >= 0.95" in sweep.reason and "weak" not in sweep.reason


def test_without_a_stable_k_the_recommendation_is_the_k_before_the_largest_drop():
    # evenly mixed tissue: merged topics (K=4) are the most stable, but the stability falls
    # most after the true K
    sweep = _sweep_with_stability({4: 0.92, 5: 0.86, 6: 0.87, 7: 0.70, 8: 0.72})
    assert sweep.recommended == 6
    assert "falls the most" in sweep.rule
    # the reason says the choice is the fallback, and the figures behind it
    assert sweep.reason.startswith("no K reached stability 0.95 (best 0.920 at K = 4)")
    assert "weak" in sweep.reason and "falls to 0.700 at K = 7" in sweep.reason
    # never falling: the largest K, and the reason says so (not "the largest fall")
    rising = _sweep_with_stability({4: 0.80, 6: 0.85, 8: 0.90})
    assert rising.recommended == 8
    assert "never falls" in rising.reason and "largest fall" not in rising.reason


def test_without_two_seeds_there_is_no_recommendation_and_the_reason_says_why():
    sweep = _sweep_with_stability({4: 0.9, 6: 0.9})
    sweep.frame["stability"] = np.nan  # one seed per K: stability not measured
    assert sweep.recommended is None
    assert "not measured" in sweep.reason


def test_a_stable_k_with_a_split_topic_is_passed_over_and_the_reason_names_it():
    # K = 7 splits one topic the same way on both seeds: stable, but two topics duplicate
    redundancy = {5: -0.15, 6: -0.10, 7: 0.85, 8: 0.80}
    stabilities = {5: 0.98, 6: 0.98, 7: 0.97, 8: 0.90}
    # by default the redundancy is shown but does not decide
    default = _sweep_with_stability(stabilities, redundancy=redundancy)
    assert default.redundancy_limit is None
    assert default.recommended == 7 and "distinct" not in default.rule
    assert "near duplicates" not in default.reason
    sweep = _sweep_with_stability(stabilities, redundancy=redundancy, limit=0.5)
    assert sweep.recommended == 6
    assert sweep.reason.startswith("K = 6 is the largest K whose topics are stable")
    assert "K = 7 is stable too" in sweep.reason and "0.85 >= 0.5" in sweep.reason
    assert "distinct" in sweep.rule
    # the veto follows the limit: a lenient one keeps K = 7
    sweep.redundancy_limit = 0.9
    assert sweep.recommended == 7 and "stable too" not in sweep.reason
    # when every stable K is redundant the fallback decides, and says it is weak
    split = _sweep_with_stability({4: 0.97, 5: 0.96, 6: 0.80},
                                  redundancy={4: 0.7, 5: 0.8, 6: 0.9}, limit=0.5)
    assert split.recommended == 5 and "weak" in split.reason
    assert "with distinct topics" in split.reason


def test_redundancy_is_high_for_a_split_topic_and_low_for_distinct_ones():
    from napari_topomics.models._sweep_metrics import topic_redundancy

    rng = np.random.default_rng(0)
    n_features, k = 300, 6
    profiles = np.zeros((n_features, k))
    for t in range(k):  # each topic raises its own 20 marker features
        profiles[t * 20:(t + 1) * 20, t] = 2.0
    noisy = profiles + rng.normal(0, 0.2, profiles.shape)
    distinct = noisy - noisy.mean(1, keepdims=True)
    assert topic_redundancy(distinct) < 0
    # split topic 0 into two halves that share its markers (as an over-fitted K does)
    split = np.column_stack([profiles, profiles[:, 0]]) + rng.normal(0, 0.2, (n_features, k + 1))
    split -= split.mean(1, keepdims=True)
    assert topic_redundancy(split) > 0.8
    assert np.isnan(topic_redundancy(distinct[:, :1]))
