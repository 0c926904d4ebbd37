"""Opt-in training options: the k-means topic start and the automatic global step factor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_topomics.data._topic_start import clustered_topic_logits
from napari_topomics.datasets import simulate_tissue
from napari_topomics.models import MultimodalAmortizedLDA
from napari_topomics.models._training_plan import auto_global_lr_factor

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


def test_kmeans_start_sets_distinct_topics_only_when_asked(tissue):
    mdata, _ = tissue
    data = {m: mdata.mod[m] for m in ("rna", "protein", "atac")}
    model = MultimodalAmortizedLDA.from_data(data, n_topics=4)
    model.train(max_epochs=1, plan_kwargs={"topic_init": "zero"}, enable_progress_bar=False)
    zero_started = MultimodalAmortizedLDA.from_data(data, n_topics=4)
    clustered = MultimodalAmortizedLDA.from_data(data, n_topics=4)
    clustered.train(max_epochs=1, plan_kwargs={"topic_init": "kmeans"},
                    enable_progress_bar=False)
    spread = [g.beta_loc.detach().std(0).mean().item() for g in clustered.module.globals]
    untouched = [g.beta_loc.detach().abs().max().item() for g in zero_started.module.globals]
    assert min(spread) > 0.1 and max(untouched) == 0.0
    with pytest.raises(ValueError, match="topic_init"):
        model.train(max_epochs=1, plan_kwargs={"topic_init": "nmf"})


def test_auto_global_factor_grows_with_cells_within_bounds():
    assert auto_global_lr_factor(200) == 3.0
    assert auto_global_lr_factor(1500) == pytest.approx(10.0)
    assert auto_global_lr_factor(10**6) == 30.0
    assert auto_global_lr_factor(None) == 3.0


def test_global_factor_option_is_validated(tissue):
    mdata, _ = tissue
    model = MultimodalAmortizedLDA.from_data(mdata.mod["rna"], n_topics=4)
    with pytest.raises(ValueError, match="global_lr_factor"):
        model.train(max_epochs=1, plan_kwargs={"global_lr_factor": "fast"},
                    enable_progress_bar=False)
    model.train(max_epochs=1, plan_kwargs={"global_lr_factor": "auto"},
                enable_progress_bar=False)
    assert model.is_trained_

