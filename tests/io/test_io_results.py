"""TopicResults: collection from a model, derived values, table layout, round trips, errors."""

# ruff: noqa: F811  (pytest fixtures are imported from _store_fixtures and used as arguments)

from __future__ import annotations

import copy
import dataclasses
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _store_fixtures import (  # noqa: F401  (fixtures)
    N_CELLS,
    N_PROTS,
    RUN,
    read_store,
    results,
    tissue,
    trained,
    write_store,
)

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._results import TopicResults

torch.set_num_threads(1)


def _hand_made(**changes) -> TopicResults:
    """Three cells, two topics, two modalities; one cell sits on a simplex vertex."""
    cells = ["a", "b", "c"]
    fields = dict(
        run_name="hand",
        proportions=pd.DataFrame([[1.0, 0.0], [0.25, 0.75], [0.5, 0.5]], index=cells,
                                 columns=["topic_0", "topic_1"]),
        modality_weights=pd.DataFrame([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], index=cells,
                                      columns=["rna", "protein"]),
        top_features={
            m: pd.DataFrame({"topic": ["topic_0", "topic_1"], "rank": [1, 1],
                             "feature": [f"{m}_x", f"{m}_y"], "score": [0.6, 0.7]})
            for m in ("rna", "protein")
        },
        elbo_history=pd.DataFrame({"elbo_train": [3.0, 2.0]},
                                  index=pd.Index([0, 1], name="epoch")),
        provenance={"seed": np.int64(4), "shape": (2, 3), "missing": None,
                    "values": np.array([1.5, 2.5])},
    )
    fields.update(changes)
    return TopicResults(**fields)


# ---------------------------------------------------------------------- from_model
def test_from_model_collects_what_the_model_reports(trained, results):
    model, _ = trained
    theta = model.get_cell_topic_dist(return_dataframe=True)
    np.testing.assert_array_equal(results.proportions.to_numpy(), theta.to_numpy())
    assert list(results.proportions.index) == list(model.adata.obs_names)
    assert results.topic_names == ["topic_0", "topic_1", "topic_2"] and results.n_topics == 3
    np.testing.assert_allclose(results.proportions.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(
        results.modality_weights.to_numpy(), model.get_modality_weights().to_numpy()
    )
    assert results.modality_names == ["rna", "protein"]
    np.testing.assert_array_equal(
        results.elbo_history["elbo_train"].to_numpy(),
        model.history["elbo_train"]["elbo_train"].to_numpy(),
    )
    assert results.elbo_history.index.name == "epoch"
    assert list(results.elbo_history.index) == [0, 1]


def test_top_features_follow_the_model_ranking_and_scores(trained, results):
    model, _ = trained
    for mod, n_features in (("rna", 5), ("protein", N_PROTS)):  # n_top=5 capped at 4
        frame = results.top_features[mod]
        ranked = model.get_top_features_per_topic(
            mod, n_features=n_features, return_scores=True, ranking="distinctive"
        )
        for topic in results.topic_names:
            rows = frame[frame["topic"] == topic]
            assert list(rows["rank"]) == list(range(1, n_features + 1))
            assert list(rows["feature"]) == [name for name, _ in ranked[topic]]
            np.testing.assert_allclose(
                rows["score"], [score for _, score in ranked[topic]], rtol=1e-6
            )


def test_provenance_is_complete_and_json(trained, results):
    prov = results.provenance
    assert json.loads(json.dumps(prov, allow_nan=False)) == prov
    for key in ("run_name", "date", "seed", "source", "table", "element", "modalities",
                "likelihoods", "n_topics", "n_epochs", "model_params", "device", "versions"):
        assert key in prov, key
    assert prov["run_name"] == RUN and prov["element"] == "cells" and prov["table"] == "table"
    assert prov["n_topics"] == 3 and prov["n_epochs"] == 2 and prov["seed"] == 0
    assert prov["likelihoods"] == dict(zip(trained[0].modality_names, trained[0].likelihoods,
                                           strict=True))
    assert prov["model_params"]["non_kwargs"]["n_topics"] == 3
    assert set(prov["versions"]) == {"napari-topomics", "scvi-tools", "torch", "pyro-ppl",
                                     "spatialdata", "anndata"}
    assert prov["date"].endswith("+00:00")


def test_from_model_refuses_untrained_and_bad_n_top(trained, tissue):
    from _store_fixtures import training_data

    from napari_topomics.models import MultimodalAmortizedLDA

    mdata = training_data(tissue.tables["table"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        untrained = MultimodalAmortizedLDA.from_data(mdata, n_topics=3, n_hidden=8)
    with pytest.raises(TopomicsInputError, match="not been trained"):
        TopicResults.from_model(untrained, run_name="x")
    with pytest.raises(TopomicsInputError, match="n_top"):
        TopicResults.from_model(trained[0], run_name="x", n_top=0)


# ---------------------------------------------------------------------- derived values
def test_dominant_topic_and_entropy():
    r = _hand_made()
    assert list(r.dominant_topic) == ["topic_0", "topic_1", "topic_0"]  # tie -> first
    assert list(r.dominant_topic.cat.categories) == ["topic_0", "topic_1"]
    expected = [0.0, -(0.25 * np.log(0.25) + 0.75 * np.log(0.75)), np.log(2)]
    np.testing.assert_allclose(r.topic_entropy.to_numpy(), expected, rtol=1e-6)


def test_construction_normalises_without_touching_inputs():
    props = pd.DataFrame([[0.4, 0.6]], index=[7], columns=["topic_0", "topic_1"])
    weights = pd.DataFrame([[1.0]], index=[7], columns=["rna"])
    top = {"rna": pd.DataFrame({"topic": ["topic_0", "topic_1"], "rank": [1, 1],
                                "feature": ["g", "h"], "score": [0.5, 0.5]})}
    prov = {"t": (1, np.float32(0.5)), "nan": float("nan")}
    snapshot = copy.deepcopy((props, weights, top, prov))
    r = TopicResults("n", props, weights, top, pd.DataFrame({"elbo_train": [1.0]}), prov)
    pd.testing.assert_frame_equal(props, snapshot[0])
    pd.testing.assert_frame_equal(weights, snapshot[1])
    pd.testing.assert_frame_equal(top["rna"], snapshot[2]["rna"])
    assert prov["t"] == snapshot[3]["t"]
    assert r.proportions.dtypes.unique().tolist() == [np.float32]
    assert list(r.proportions.index) == ["7"]
    assert r.provenance == {"t": [1, 0.5], "nan": "nan"}


# ---------------------------------------------------------------------- table layout
def test_to_table_layout(results):
    from spatialdata.models import TableModel, get_table_keys

    table = results.to_table()
    assert table.shape == (N_CELLS, 3)
    assert table.X.dtype == np.float32 and isinstance(table.X, np.ndarray)
    np.testing.assert_array_equal(table.X, results.proportions.to_numpy())
    assert list(table.var_names) == results.topic_names
    assert list(table.obs_names) == list(results.proportions.index)
    np.testing.assert_array_equal(table.obsm["topic_proportions"], table.X)
    np.testing.assert_array_equal(table.obsm["modality_weights"],
                                  results.modality_weights.to_numpy())
    assert table.obsm["modality_weights"].dtype == np.float32
    np.testing.assert_array_equal(table.obsm["spatial"], results.coordinates.to_numpy())
    obs = table.obs
    assert isinstance(obs["region"].dtype, pd.CategoricalDtype)
    assert set(obs["region"]) == {"cells"}
    np.testing.assert_array_equal(obs["cell_id"].to_numpy(), results.instance_ids)
    assert obs["cell_id"].dtype.kind == "i"
    assert list(obs["dominant_topic"]) == list(results.dominant_topic)
    assert list(obs["dominant_topic"].cat.categories) == results.topic_names
    np.testing.assert_allclose(obs["topic_entropy"], results.topic_entropy)
    for mod in results.modality_names:
        np.testing.assert_array_equal(obs[f"weight_{mod}"], results.modality_weights[mod])
    uns = table.uns["topomics"]
    assert uns["run_name"] == RUN
    assert list(uns["modalities"]) == results.modality_names
    assert list(uns["topic_names"]) == results.topic_names
    top = results.top_features["rna"]
    assert list(uns["top_features"]["rna"]["feature"]) == list(top["feature"])
    assert list(uns["elbo_history"]["epoch"]) == [0, 1]
    assert json.loads(uns["provenance"]) == results.provenance
    assert get_table_keys(table) == ("cells", "region", "cell_id")
    TableModel().validate(table)


def test_round_trip_in_memory_and_through_a_store(results, tissue, tmp_path):
    assert TopicResults.from_table(results.to_table()) == results
    from spatialdata import SpatialData

    sdata = SpatialData(labels={"cells": tissue.labels["cells"]},
                        tables={"topomics_run1": results.to_table()})
    write_store(sdata, tmp_path / "rt.zarr")
    back = read_store(tmp_path / "rt.zarr").tables["topomics_run1"]
    again = TopicResults.from_table(back)
    assert again == results, again.differences(results)
    assert TopicResults.from_table(back, run_name=RUN) == results


def test_round_trip_without_region_keeps_custom_instance_key():
    r = _hand_made(instance_key="label", instance_ids=[5, 6, 9])
    table = r.to_table()
    assert "spatialdata_attrs" not in table.uns and "region" not in table.obs
    assert TopicResults.from_table(table) == r


def test_equality_names_the_differing_fields():
    a = _hand_made()
    b = dataclasses.replace(a, elbo_history=pd.DataFrame({"elbo_train": [3.0, 1.0]}))
    assert a != b and a.differences(b) == ["elbo_history"]
    assert a == _hand_made()


# ---------------------------------------------------------------------- errors
def _bad_rows():
    return pd.DataFrame([[0.9, 0.3], [0.5, 0.5], [0.5, 0.5]], index=list("abc"),
                        columns=["topic_0", "topic_1"])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"run_name": "bad name"}, "bad name"),
        ({"run_name": "_x"}, "_x"),
        ({"proportions": _bad_rows()}, "row 'a' sums to 1.2"),
        ({"modality_weights": pd.DataFrame([[1.0]] * 3, index=list("cba"), columns=["rna"])},
         "not aligned"),
        ({"proportions": pd.DataFrame([[1.0, 0.0]] * 3, index=list("abc"),
                                      columns=["t0", "t1"])}, "topic_0"),
        ({"top_features": {}}, "do not match modality_weights"),
        ({"region": "cells"}, "needs instance_ids"),
        ({"instance_ids": [1, 1, 2]}, "unique"),
        ({"region_key": "dominant_topic"}, "clashes"),
        ({"instance_key": "region"}, "must differ"),
        ({"modality_weights": pd.DataFrame([[1.0]] * 3, index=list("abc"),
                                           columns=["Gene Expression"])}, "Gene Expression"),
        ({"coordinates": np.zeros((2, 2))}, "3 x 2"),
        ({"elbo_history": pd.DataFrame({"loss": [1.0]})}, "elbo_train"),
    ],
)
def test_invalid_results_raise_one_line_errors(changes, match):
    with pytest.raises(TopomicsInputError, match=match) as info:
        _hand_made(**changes)
    assert "\n" not in str(info.value)


def test_from_table_errors(results):
    table = results.to_table()
    with pytest.raises(TopomicsInputError, match="not the requested run 'other'"):
        TopicResults.from_table(table, run_name="other")
    del table.uns["topomics"]
    with pytest.raises(TopomicsInputError, match="not a topomics run"):
        TopicResults.from_table(table)
    with pytest.raises(TopomicsInputError, match="AnnData"):
        TopicResults.from_table({"uns": {}})
