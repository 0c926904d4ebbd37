"""write_run / list_runs / read_run / load_run_model / delete_run on SpatialData stores."""

# ruff: noqa: F811  (pytest fixtures are imported from _store_fixtures and used as arguments)

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from _store_fixtures import (  # noqa: F401  (fixtures)
    RUN,
    SHARED_DATA,
    assert_elements_equal,
    consolidated,
    file_hashes,
    other_results,
    read_store,
    results,
    run_template,
    store,
    store_template,
    store_with_run,
    tiny_sdata,
    tissue,
    trained,
    write_store,
    zarr_reconsolidated,
)

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._results import TopicResults
from napari_topomics.io._store import (
    delete_run,
    list_runs,
    load_run_model,
    read_run,
    write_run,
)

torch.set_num_threads(1)


def _snapshot(path):
    return file_hashes(path, skip_root_meta=False)


# ---------------------------------------------------------------------- write and read
def test_write_run_adds_only_the_run(store, tissue, results, trained, tmp_path):
    before = file_hashes(store)
    meta_before = consolidated(store)
    assert write_run(store, results, model=trained[0]) == "topomics_run1"

    after = file_hashes(store)
    assert {k: after[k] for k in before} == before  # every old file byte-identical
    added = sorted(set(after) - set(before))
    assert all(k.startswith(("tables/topomics_run1/", "topomics_models/run1/")) for k in added)
    assert "topomics_models/run1/model.pt" in added
    meta_after = consolidated(store)
    assert {k: meta_after[k] for k in meta_before} == meta_before
    assert all(k.startswith("tables/topomics_run1") for k in set(meta_after) - set(meta_before))
    # our root metadata is what Zarr itself would consolidate for the new store
    assert meta_after == zarr_reconsolidated(store, tmp_path)
    assert not (store / ".topomics_staging").exists()

    sdata = read_store(store)  # no errors, no warnings
    assert_elements_equal(sdata, tissue)
    assert list_runs(store) == [RUN] and list_runs(sdata) == [RUN]
    assert read_run(store, RUN) == results
    assert read_run(sdata, RUN) == results


def test_plain_spatialdata_and_anndata_read_the_run(store, results):
    import anndata as ad
    from spatialdata import get_values
    from spatialdata.models import TableModel, get_table_keys

    write_run(store, results)
    sdata = read_store(store)
    table = sdata.tables["topomics_run1"]
    assert get_table_keys(table) == ("cells", "region", "cell_id")
    TableModel().validate(table)
    assert list(table.var_names) == results.topic_names
    np.testing.assert_array_equal(np.asarray(table.X), results.proportions.to_numpy())
    np.testing.assert_array_equal(table.obsm["modality_weights"],
                                  results.modality_weights.to_numpy())
    assert list(table.obs["dominant_topic"]) == list(results.dominant_topic)
    assert "topomics" in table.uns
    # napari-spatialdata colours an element by a table column or a var name like this
    values = get_values("topic_1", sdata=sdata, element_name="cells",
                        table_name="topomics_run1")
    np.testing.assert_array_equal(values["topic_1"].to_numpy(),
                                  results.proportions["topic_1"].to_numpy())
    plain = ad.read_zarr(store / "tables" / "topomics_run1")
    assert TopicResults.from_table(plain) == results


def test_model_is_saved_beside_and_loads(store_with_run, trained):
    store, (model, _) = store_with_run, trained
    with pytest.raises(TopomicsInputError, match="pass data="):
        load_run_model(store, RUN)
    from _store_fixtures import training_data

    fresh = training_data(read_store(store).tables["table"])  # never set up
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_run_model(store, RUN, data=fresh)
    assert "_flattened_ann_data" not in fresh.uns  # the caller's MuData is not modified
    np.testing.assert_allclose(loaded.get_cell_topic_dist(n_samples=None),
                               model.get_cell_topic_dist(n_samples=None), atol=1e-6)


def test_model_with_its_data_loads_alone(store, results, trained):
    write_run(store, results, model=trained[0], save_model_data=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_run_model(store, RUN)
    assert loaded.modality_names == trained[0].modality_names


def test_run_without_model_has_no_model_folder(store, results):
    write_run(store, results)
    assert not (store / "topomics_models").exists()
    with pytest.raises(TopomicsInputError, match="no saved model"):
        load_run_model(store, RUN, data=None)


# ---------------------------------------------------------------------- overwrite
def test_same_run_needs_overwrite(store_with_run, results, tissue):
    store = store_with_run
    snapshot = _snapshot(store)
    new = other_results(results)
    with pytest.raises(TopomicsInputError, match=r"'run1' already exists.*overwrite=True"):
        write_run(store, new)
    assert _snapshot(store) == snapshot

    before = file_hashes(store)
    write_run(store, new, overwrite=True)  # no model: the old run's model goes too
    assert read_run(store, RUN) == new
    assert not (store / "topomics_models").exists()
    after = file_hashes(store)
    untouched = {k: v for k, v in before.items() if not k.startswith(("tables/topomics_run1",
                                                                       "topomics_models"))}
    assert {k: after[k] for k in untouched} == untouched
    assert_elements_equal(read_store(store), tissue)


def test_foreign_table_is_never_overwritten(store, results, tissue):
    sdata = read_store(store)
    sdata.tables["topomics_run1"] = tissue.tables["table"].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata.write_element("topomics_run1")
    snapshot = _snapshot(store)
    for overwrite in (False, True):
        with pytest.raises(TopomicsInputError, match="not a topomics run"):
            write_run(store, results, overwrite=overwrite)
    with pytest.raises(TopomicsInputError, match="not a topomics run"):
        delete_run(store, RUN)
    assert _snapshot(store) == snapshot
    assert list_runs(store) == []
    junk = store / "tables" / "topomics_junk"  # a stray folder, not even a Zarr group
    junk.mkdir()
    (junk / "notes.txt").write_text("mine")
    import dataclasses

    with pytest.raises(TopomicsInputError, match="'topomics_junk'.*not a topomics run"):
        write_run(store, dataclasses.replace(results, run_name="junk"), overwrite=True)
    assert (junk / "notes.txt").read_text() == "mine"


# ---------------------------------------------------------------------- bad input
def test_bad_store_paths(tmp_path, results):
    not_store = tmp_path / "plain"
    not_store.mkdir()
    (not_store / "file.txt").write_text("x")
    import anndata as ad

    ad.AnnData(np.ones((2, 2), np.float32)).write_zarr(tmp_path / "table.zarr")
    cases = [
        (tmp_path / "missing.zarr", "does not exist"),
        (not_store, "not a SpatialData Zarr store"),
        (not_store / "file.txt", "not a SpatialData Zarr store"),
        (tmp_path / "table.zarr", "not a SpatialData Zarr store"),
        (12, "must be the path"),
    ]
    for path, match in cases:
        snapshot = _snapshot(tmp_path)
        for call in (lambda p: write_run(p, results), list_runs, lambda p: read_run(p, RUN),
                     lambda p: delete_run(p, RUN)):
            with pytest.raises(TopomicsInputError, match=match) as info:
                call(path)
            assert "\n" not in str(info.value)
        assert _snapshot(tmp_path) == snapshot


def test_bad_run_inputs_leave_the_store_unchanged(store, results):
    import dataclasses

    snapshot = _snapshot(store)
    bad = [
        (lambda: write_run(store, dataclasses.replace(results, region="nuclei")),
         r"'nuclei' is not in store.*\['cells', 'spots', 'transcripts'\]"),
        (lambda: write_run(store, dataclasses.replace(results, region=None)),
         "results.region is None"),
        (lambda: write_run(store, results.to_table()), "must be a TopicResults"),
        (lambda: read_run(store, "bad name"), "Invalid run name"),
        (lambda: delete_run(store, "../x"), "Invalid run name"),
        (lambda: read_run(store, "nope"), r"No run 'nope'; available runs: \[\]"),
        (lambda: delete_run(store, "nope"), "does not exist"),
        (lambda: load_run_model(store, "nope"), "No run 'nope'"),
    ]
    for call, match in bad:
        with pytest.raises(TopomicsInputError, match=match) as info:
            call()
        assert "\n" not in str(info.value)
    assert _snapshot(store) == snapshot


# ---------------------------------------------------------------------- delete and listing
def test_delete_restores_the_store_exactly(store_template, store_with_run, results):
    store, snapshot = store_with_run, _snapshot(store_template)
    write_run(store, other_results(results, "run2"))
    assert list_runs(store) == ["run1", "run2"]
    delete_run(store, "run2")
    assert list_runs(store) == ["run1"] and read_run(store, "run1") == results
    delete_run(store, "run1")
    assert _snapshot(store) == snapshot  # root zarr.json included, byte for byte
    with pytest.raises(TopomicsInputError, match=r"available runs: \[\]"):
        read_run(store, "run1")


def test_store_without_tables_and_unconsolidated_store(tmp_path, results, tissue):
    for name, sdata, kwargs in (("no_tables", tiny_sdata(with_table=False), {}),
                                ("unconsolidated", tissue, {"consolidate_metadata": False})):
        path = write_store(sdata, tmp_path / f"{name}.zarr", **kwargs)
        snapshot = _snapshot(path)
        write_run(path, results)
        back = read_store(path)
        assert read_run(back, RUN) == results, name
        assert_elements_equal(back, sdata)
        if name == "no_tables":
            assert consolidated(path) == zarr_reconsolidated(path, tmp_path)
        delete_run(path, RUN)
        assert _snapshot(path) == snapshot, name


def test_zarr_v2_store(tmp_path, results, tissue):
    from spatialdata import read_zarr
    from spatialdata._io.format import SpatialDataContainerFormatV01

    path = write_store(tissue, tmp_path / "v2.zarr",
                       sdata_formats=SpatialDataContainerFormatV01())
    before = file_hashes(path)
    write_run(path, results)
    assert (path / "tables" / "topomics_run1" / ".zgroup").is_file()
    after = file_hashes(path)
    assert {k: after[k] for k in before} == before
    assert consolidated(path) == zarr_reconsolidated(path, tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not stored in the most current format")
        back = read_zarr(path)
    assert read_run(back, RUN) == results == read_run(path, RUN)


def test_model_folder_is_invisible_to_spatialdata(store_with_run, tissue):
    """``topomics_models/`` survives spatialdata's own writes and re-consolidation."""
    store = store_with_run
    sdata = read_store(store)
    sdata.tables["extra"] = tissue.tables["table"].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata.write_element("extra")  # re-consolidates the whole store
    meta = consolidated(store)
    assert not any("topomics_models" in k for k in meta)
    again = read_store(store)
    assert sorted(again.tables) == ["extra", "table", "topomics_run1"]
    assert (store / "topomics_models" / RUN / "model.pt").is_file()


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="shared data folder not present")
def test_real_visium_store_annotating_spot_shapes(tmp_path):
    """A Space Ranger folder read by spatialdata-io: the run annotates the spot circles."""
    import spatialdata_io

    from napari_topomics.io._results_check import json_safe

    src = SHARED_DATA / "visium_mouse_brain_seurat"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata = spatialdata_io.visium(src, dataset_id="mouse_brain")
    table = sdata.tables["table"]
    region = str(table.uns["spatialdata_attrs"]["region"])
    path = write_store(sdata, tmp_path / "visium.zarr")
    counts = np.asarray(table.X.sum(1)).ravel() + 1.0
    theta = np.stack([counts, counts.max() - counts + 1.0], 1)  # depth-driven two "topics"
    theta /= theta.sum(1, keepdims=True)
    cells = table.obs_names
    r = TopicResults(
        run_name="depth", proportions=pd.DataFrame(theta, index=cells,
                                                   columns=["topic_0", "topic_1"]),
        modality_weights=pd.DataFrame(np.ones((len(cells), 1)), index=cells, columns=["rna"]),
        top_features={"rna": pd.DataFrame({"topic": ["topic_0", "topic_1"], "rank": [1, 1],
                                           "feature": list(table.var_names[:2]),
                                           "score": [1.0, 1.0]})},
        elbo_history=pd.DataFrame({"elbo_train": [1.0]}), provenance=json_safe({"src": src}),
        region=region, instance_key="spot_id",
        instance_ids=table.obs[table.uns["spatialdata_attrs"]["instance_key"]].to_numpy(),
    )
    before = file_hashes(path)
    write_run(path, r)
    after = file_hashes(path)
    assert {k: after[k] for k in before} == before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spatialdata import read_zarr

        back = read_zarr(path)
    assert read_run(back, "depth") == r
    assert back.tables["topomics_depth"].uns["spatialdata_attrs"]["region"] == region
