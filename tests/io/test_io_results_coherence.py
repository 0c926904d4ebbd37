"""TopicResults.spatial_coherence: validation, table round trip, and runs written without it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._results import TopicResults
from napari_topomics.io._results_spatial import coherence_line, graph_label, mean_coherence

TOPICS = ["topic_0", "topic_1", "topic_2"]


def _results(**changes) -> TopicResults:
    """Four cells, three topics, one modality."""
    cells = ["a", "b", "c", "d"]
    props = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]])
    fields = dict(
        run_name="coh",
        proportions=pd.DataFrame(props, index=cells, columns=TOPICS),
        modality_weights=pd.DataFrame({"rna": np.ones(4)}, index=cells),
        top_features={"rna": pd.DataFrame({
            "topic": TOPICS, "rank": [1, 1, 1], "feature": ["g1", "g2", "g3"],
            "score": [0.5, 0.4, 0.3],
        })},
        elbo_history=pd.DataFrame({"elbo_train": [3.0, 2.0]},
                                  index=pd.Index([0, 1], name="epoch")),
        provenance={"spatial": True, "spatial_mode": "gcn", "graph": "knn", "n_neighbors": 6},
    )
    fields.update(changes)
    return TopicResults(**fields)


def test_coherence_series_is_normalised_to_topic_order():
    given = pd.Series([0.3, np.nan, 0.1], index=["topic_2", "topic_0", "topic_1"])
    res = _results(spatial_coherence=given)
    assert list(res.spatial_coherence.index) == TOPICS
    assert res.spatial_coherence.name == "morans_i"
    assert res.spatial_coherence.dtype == np.float64
    assert np.isnan(res.spatial_coherence["topic_0"])
    assert res.spatial_coherence["topic_2"] == 0.3
    from_list = _results(spatial_coherence=[np.nan, 0.1, 0.3])
    assert from_list == res
    assert _results(spatial_coherence=[0.0, 0.1, 0.3]).differences(res) == ["spatial_coherence"]
    assert _results().differences(res) == ["spatial_coherence"]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ([0.1, 0.2], "one value per topic"),
        (pd.Series([0.1, 0.2, 0.3], index=["topic_0", "topic_1", "topic_9"]), "topic_9"),
        ([0.1, np.inf, 0.3], "infinite"),
        (["high", "low", "mid"], "numbers"),
    ],
)
def test_bad_coherence_is_refused_in_one_line(value, needle):
    with pytest.raises(TopomicsInputError) as err:
        _results(spatial_coherence=value)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_table_round_trip_keeps_coherence_in_uns_and_var():
    res = _results(spatial_coherence=[0.42, np.nan, -0.05])
    table = res.to_table()
    np.testing.assert_array_equal(table.uns["topomics"]["spatial_coherence"], [0.42, np.nan, -0.05])
    assert list(table.var_names) == TOPICS
    np.testing.assert_array_equal(table.var["morans_i"].to_numpy(), [0.42, np.nan, -0.05])
    back = TopicResults.from_table(table)
    assert back == res, back.differences(res)
    assert json.loads(table.uns["topomics"]["provenance"])["graph"] == "knn"


def test_round_trip_through_a_zarr_file(tmp_path):
    import anndata as ad

    res = _results(spatial_coherence=[0.42, 0.11, np.nan])
    res.to_table().write_zarr(tmp_path / "run.zarr")
    back = TopicResults.from_table(ad.read_zarr(tmp_path / "run.zarr"))
    assert back == res, back.differences(res)


def test_old_tables_without_coherence_still_load():
    old = _results(provenance={"seed": 1})  # what earlier versions wrote: no graph, no values
    table = old.to_table()
    assert "spatial_coherence" not in table.uns["topomics"]
    assert "morans_i" not in table.var
    back = TopicResults.from_table(table)
    assert back.spatial_coherence is None
    assert back == old
    assert coherence_line(back) == "Spatial coherence: not measured for this run."
    assert graph_label(back.provenance) is None


def test_var_column_alone_is_enough():
    table = _results(spatial_coherence=[0.5, 0.25, 0.0]).to_table()
    del table.uns["topomics"]["spatial_coherence"]
    back = TopicResults.from_table(table)
    np.testing.assert_array_equal(back.spatial_coherence.to_numpy(), [0.5, 0.25, 0.0])


@pytest.mark.parametrize(
    ("provenance", "label"),
    [
        ({"graph": "knn", "n_neighbors": 4}, "4-NN graph"),
        ({"graph": "radius", "radius": 25.0}, "radius-25 graph"),
        ({"graph": "radius", "radius": 2.5}, "radius-2.5 graph"),
        ({"graph": "delaunay"}, "Delaunay graph"),
    ],
)
def test_graph_label_and_coherence_line(provenance, label):
    res = _results(provenance=provenance, spatial_coherence=[0.5, np.nan, 0.2])
    assert graph_label(res.provenance) == label
    assert mean_coherence(res.spatial_coherence) == pytest.approx(0.35)
    assert coherence_line(res) == f"Spatial coherence (mean Moran's I over a {label}): 0.35"


def test_coherence_line_when_every_topic_is_undefined():
    res = _results(spatial_coherence=[np.nan] * 3)
    assert mean_coherence(res.spatial_coherence) is None
    assert "undefined" in coherence_line(res)
