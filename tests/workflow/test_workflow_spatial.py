"""Spatial options of the fitting job: validation, the cell graph, spatial fits, coherence."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from napari_topomics.data import build_spatial_graph
from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.metrics import morans_i
from napari_topomics.workflow import FitConfig, fit_tissue
from napari_topomics.workflow._spatial import (
    MODEL_GRAPH_KEY,
    build_cell_graph,
    measure_coherence,
    require_graph,
)

torch.set_num_threads(1)

FAST = dict(n_topics=3, n_epochs=2, batch_size=128, threads=1, device="cpu")


@pytest.fixture(scope="module")
def tissue_sdata():
    from napari_topomics.datasets import demo

    return demo(seed=2, n_cells=300)


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (dict(spatial_mode="gat"), "spatial_mode"),
        (dict(graph="voronoi"), "graph"),
        (dict(n_neighbors=0), "n_neighbors"),
        (dict(n_neighbors=2.5), "n_neighbors"),
        (dict(n_neighbors=True), "n_neighbors"),
        (dict(graph="radius"), "radius"),
        (dict(graph="radius", radius=0.0), "radius"),
        (dict(graph="radius", radius=-3.0), "radius"),
        (dict(graph="radius", radius=float("nan")), "radius"),
    ],
)
def test_bad_spatial_options_are_refused_in_one_line(changes, needle):
    with pytest.raises(TopomicsInputError) as err:
        FitConfig(**changes).validate()
    message = str(err.value)
    assert needle in message and "\n" not in message
    assert repr(next(iter(changes.values()))) in message or "radius=None" in message


@pytest.mark.parametrize(
    "changes",
    [
        dict(spatial=True),
        dict(spatial=True, spatial_mode="sgc", graph="delaunay"),
        dict(spatial=True, graph="radius", radius=12.5),
        dict(graph="knn", n_neighbors=1, radius=-1.0),  # radius only matters for "radius"
    ],
)
def test_good_spatial_options_pass(changes):
    FitConfig(**changes).validate()


# ---------------------------------------------------------------------- the graph
def _grid(n: int) -> pd.DataFrame:
    idx = np.arange(n)
    return pd.DataFrame({"x": idx % 5 * 10.0, "y": idx // 5 * 10.0},
                        index=[f"c{i}" for i in idx])


def test_cell_graph_follows_the_options_and_is_described():
    coords = _grid(25)
    knn = build_cell_graph(coords, FitConfig(n_neighbors=4), "global")
    expected, _ = build_spatial_graph(coords.to_numpy(), "knn", n_neighbors=4)
    assert (knn.connectivities != expected).nnz == 0
    assert knn.provenance == {
        "spatial": False, "spatial_mode": None, "graph": "knn", "n_neighbors": 4,
        "radius": None, "coordinate_system": "global", "graph_edges": expected.nnz // 2,
        "graph_isolated_cells": 0,
    }
    radius = build_cell_graph(coords, FitConfig(spatial=True, graph="radius", radius=10.5))
    # on a 10-unit grid, a radius of 10.5 links the 4-neighbourhood: 2 * 5 * 4 edges
    assert radius.provenance["graph_edges"] == 40
    assert radius.provenance["spatial_mode"] == "gcn" and radius.provenance["n_neighbors"] is None
    tiny = build_cell_graph(coords, FitConfig(graph="radius", radius=1.0))
    assert tiny.provenance["graph_edges"] == 0 and tiny.provenance["graph_isolated_cells"] == 25


def test_one_cell_or_collinear_cells_do_not_crash():
    stub = SimpleNamespace(n_topics=3)  # no model call is needed without edges
    one = build_cell_graph(_grid(1), FitConfig())
    assert one.connectivities.shape == (1, 1) and one.provenance["graph_edges"] == 0
    values = measure_coherence(stub, one)
    assert list(values.index) == ["topic_0", "topic_1", "topic_2"] and values.isna().all()

    line = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 0.0, 0.0, 0.0]})
    flat = build_cell_graph(line, FitConfig(graph="delaunay"))
    assert flat.connectivities is None
    assert "delaunay" in flat.problem and "\n" not in flat.problem
    assert measure_coherence(stub, flat) is None
    with pytest.raises(TopomicsInputError, match="needs a cell graph"):
        require_graph(flat)


# ---------------------------------------------------------------------- fitting
def test_plain_fit_reports_coherence_over_the_chosen_graph(tissue_sdata):
    table_before = tissue_sdata.tables["table"]
    obsp_before = set(table_before.obsp.keys())
    outcome = fit_tissue(tissue_sdata, FitConfig(**FAST, n_neighbors=5))
    res = outcome.results
    assert outcome.model.spatial is False
    assert res.provenance["spatial"] is False and res.provenance["spatial_mode"] is None
    assert res.provenance["graph"] == "knn" and res.provenance["n_neighbors"] == 5
    assert list(res.spatial_coherence.index) == res.topic_names
    assert np.isfinite(res.spatial_coherence).all()
    # the stored value is Moran's I of the stored proportions over the graph of the centroids
    graph, _ = build_spatial_graph(res.coordinates.to_numpy(), "knn", n_neighbors=5)
    np.testing.assert_allclose(
        res.spatial_coherence.to_numpy(), morans_i(res.proportions.to_numpy(), graph),
        rtol=1e-4, atol=1e-5,
    )
    assert MODEL_GRAPH_KEY not in outcome.tissue.data.obsp
    assert set(tissue_sdata.tables["table"].obsp.keys()) == obsp_before


def test_spatial_sgc_fit_on_a_delaunay_graph(tissue_sdata):
    config = FitConfig(**FAST, spatial=True, spatial_mode="sgc", graph="delaunay")
    outcome = fit_tissue(tissue_sdata, config)
    res = outcome.results
    assert outcome.model.spatial is True
    assert res.provenance["spatial"] is True and res.provenance["spatial_mode"] == "sgc"
    assert res.provenance["graph"] == "delaunay" and res.provenance["graph_edges"] > 300
    # the model's graph is the one built from the centroids, on the model input only
    graph, _ = build_spatial_graph(res.coordinates.to_numpy(), "delaunay")
    assert (outcome.tissue.data.obsp[MODEL_GRAPH_KEY] != graph).nnz == 0
    assert MODEL_GRAPH_KEY not in tissue_sdata.tables["table"].obsp
    assert np.isfinite(res.spatial_coherence).all()
    np.testing.assert_allclose(
        res.spatial_coherence.to_numpy(), morans_i(res.proportions.to_numpy(), graph),
        rtol=1e-4, atol=1e-5,
    )
