"""The topic sweep on a SpatialData tissue (CLI ``sweep`` and the plugin's Choose topics):
spatial and non-spatial fits on the store's table, and any fitted K as a run on every cell."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_topomics.workflow import FitConfig, parse_topic_range, sweep_outcome, sweep_tissue

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def sdata():
    from napari_topomics.datasets import demo

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return demo(n_cells=200, seed=1)


@pytest.mark.parametrize("spatial", [False, True])
def test_sweep_on_a_store_table_paints_every_cell(sdata, spatial, monkeypatch):
    config = FitConfig(table="table", n_topics=2, n_epochs=3, batch_size=64, threads=1,
                       spatial=spatial)
    table = sdata.tables["table"]
    obsp_before, obs_before = list(table.obsp), list(table.obs.columns)
    sweep, tissue = sweep_tissue(sdata, config, [3, 4], seeds=2)
    assert len(sweep.fit_cells) + len(sweep.heldout_cells) == table.n_obs
    assert set(sweep.fit_cells).isdisjoint(sweep.heldout_cells)
    assert sorted(sweep.frame["K"]) == [3, 3, 4, 4]
    # the demo has coordinates: every fit measures Moran's I over the cell graph
    assert np.isfinite(sweep.frame["morans_i"]).all()
    model = sweep.best_model(4)
    assert model.spatial is spatial and model.adata.n_obs == len(sweep.fit_cells)
    assert list(table.obsp) == obsp_before and list(table.obs.columns) == obs_before

    from napari_topomics.models import MultimodalAmortizedLDA

    def no_training(*args, **kwargs):
        raise AssertionError("sweep_outcome must not train")

    monkeypatch.setattr(MultimodalAmortizedLDA, "train", no_training)
    outcome = sweep_outcome(sweep, tissue, config, 3)
    results = outcome.results
    assert outcome.model is sweep.best_model(3) and results.n_topics == 3
    assert list(results.proportions.index) == list(table.obs_names)
    assert results.modality_weights.shape == (table.n_obs, 3)  # rna, protein, atac
    np.testing.assert_allclose(results.proportions.sum(axis=1), 1.0, rtol=1e-5)
    assert results.spatial_coherence is not None and len(results.spatial_coherence) == 3
    assert results.provenance["seed"] == sweep.best_seed(3)
    assert results.provenance["topic_sweep"]["heldout_cells"] == len(sweep.heldout_cells)
    if not spatial:  # without a graph a fit cell's proportions are its own, as fitted
        own = outcome.model.get_cell_topic_dist(return_dataframe=True)
        np.testing.assert_allclose(results.proportions.loc[own.index], own, atol=1e-4)
    with pytest.raises(ValueError, match=r"n_topics=7.*fitted: \[3, 4\]"):
        sweep_outcome(sweep, tissue, config, 7)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4:8:2", [4, 6, 8]), ("6,4,4", [4, 6]), ("5", [5]), (" 3:4 ", [3, 4])],
)
def test_parse_topic_range(text, expected):
    assert parse_topic_range(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [("8:4", "START <= END"), ("4:8:0", "STEP >= 1"), ("1,4", ">= 2"), ("x", "START:END"),
     (",", "names no number")],
)
def test_parse_topic_range_names_the_option(text, needle):
    from napari_topomics.io import TopomicsInputError

    with pytest.raises(TopomicsInputError, match="--my-option") as info:
        parse_topic_range(text, "--my-option")
    assert needle in str(info.value)
