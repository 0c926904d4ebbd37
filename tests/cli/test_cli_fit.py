"""``napari-topomics fit``: fits a store, writes the run safely, and refuses bad input."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pytest
from conftest import error_lines, tree_hashes

from napari_topomics.cli import main

FAST = ["--epochs", "2", "--topics", "3", "--quiet", "--threads", "1"]


def run_table(store, name="topomics"):
    import spatialdata

    return spatialdata.read_zarr(store).tables[f"topomics_{name}"]


def test_fit_writes_a_run_and_keeps_everything_else(demo_store, capsys):
    before = tree_hashes(demo_store)
    assert main(["fit", str(demo_store), *FAST]) == 0
    out = capsys.readouterr().out
    assert "Wrote run 'topomics'" in out
    for modality in ("rna", "protein", "atac"):
        assert f"Top {modality} features per topic:" in out
    # a plain run reports its coherence over the default 6-NN graph too
    assert re.search(r"^Spatial coherence \(mean Moran's I over a 6-NN graph\): -?[0-9.]+$",
                     out, flags=re.M)
    after = tree_hashes(demo_store)
    changed = {k for k in before if after.get(k) != before[k]}
    # only the root metadata may change (it lists the new table)
    assert all("/" not in k for k in changed), changed
    table = run_table(demo_store)
    assert list(table.var_names) == ["topic_0", "topic_1", "topic_2"]
    np.testing.assert_allclose(np.asarray(table.X).sum(1), 1.0, atol=1e-4)
    assert set(table.obsm["modality_weights"].shape) == {table.n_obs, 3}


def test_fit_same_run_needs_overwrite(demo_store, capsys):
    assert main(["fit", str(demo_store), *FAST]) == 0
    first = np.asarray(run_table(demo_store).X).copy()
    hashes = tree_hashes(demo_store)
    capsys.readouterr()
    assert main(["fit", str(demo_store), *FAST, "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1
    assert "--overwrite" in error_lines(err)[0]
    assert tree_hashes(demo_store) == hashes
    assert main(["fit", str(demo_store), *FAST, "--seed", "5", "--overwrite"]) == 0
    assert not np.allclose(np.asarray(run_table(demo_store).X), first)


def test_fit_likelihood_and_modalities_options(demo_store):
    args = ["fit", str(demo_store), *FAST, "--modalities", "rna,protein",
            "--likelihood", "protein=nb", "--run-name", "two"]
    assert main(args) == 0
    table = run_table(demo_store, "two")
    import json

    provenance = json.loads(table.uns["topomics"]["provenance"])
    assert provenance["modalities"] == ["rna", "protein"]
    assert provenance["likelihoods"]["protein"] in ("nb", "gamma_poisson")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--table", "nope"], "nope"),
        (["--modalities", "rna,lipids"], "lipids"),
        (["--likelihood", "rna=poissonish"], "poissonish"),
        (["--likelihood", "rna"], "MODALITY=VALUE"),
        (["--run-name", "bad name!"], "bad name!"),
        (["--topics", "1"], "n_topics"),
        (["--spatial", "--neighbors", "0"], "n_neighbors"),
        (["--layer", "rna=missing_layer"], "missing_layer"),
    ],
)
def test_fit_bad_options_one_line_error_and_store_unchanged(demo_store, capsys, extra, needle):
    before = tree_hashes(demo_store)
    assert main(["fit", str(demo_store), *FAST, *extra]) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1, err
    assert needle in error_lines(err)[0]
    assert "Traceback" not in err
    assert tree_hashes(demo_store) == before


def test_fit_bad_paths(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.zarr"), *FAST]) == 2
    assert "missing.zarr" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    assert main(["fit", str(tmp_path / "plain"), *FAST]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "plain" in lines[0]


def test_fit_store_without_table(tmp_path, capsys, demo_store_template):
    import spatialdata

    sdata = spatialdata.read_zarr(demo_store_template)
    bare = spatialdata.SpatialData(labels={"cells": sdata.labels["demo_cells"]})
    bare.write(tmp_path / "bare.zarr")
    before = tree_hashes(tmp_path / "bare.zarr")
    assert main(["fit", str(tmp_path / "bare.zarr"), *FAST]) == 2
    assert "table" in capsys.readouterr().err.lower()
    assert tree_hashes(tmp_path / "bare.zarr") == before


def test_fit_non_count_data_with_count_likelihood(tmp_path, capsys, demo_store_template):
    import spatialdata

    sdata = spatialdata.read_zarr(demo_store_template)
    table = sdata.tables["table"].copy()
    table.X = table.X.astype(np.float32) * 0.37
    sdata.tables["table"] = table
    store = tmp_path / "scaled.zarr"
    sdata.write(store)
    assert main(["fit", str(store), *FAST, "--likelihood", "protein=multinomial"]) == 2
    err = capsys.readouterr().err
    assert "protein" in err or "rna" in err


def test_fit_visium_folder_end_to_end(visium_folder, tmp_path, capsys):
    before = tree_hashes(visium_folder)
    out = tmp_path / "visium.zarr"
    report = tmp_path / "report"
    assert main(["fit", str(visium_folder), *FAST, "--output", str(out),
                 "--report", str(report)]) == 0
    assert tree_hashes(visium_folder) == before
    table = run_table(out)
    assert table.n_obs > 2000
    assert (report / "index.html").is_file()
    assert any(p.suffix == ".png" for p in report.iterdir())
    assert isinstance(table, ad.AnnData)
