"""Spatial fits from the command line: options, the coherence line, the run, report and info."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import error_lines, tree_hashes

from napari_topomics.cli import main
from napari_topomics.cli._main import build_parser

FAST = ["--epochs", "2", "--topics", "3", "--quiet", "--threads", "1"]


def test_spatial_fit_writes_a_run_that_says_how_it_was_fitted(demo_store, tmp_path, capsys):
    import spatialdata

    from napari_topomics.io._store import read_run

    report = tmp_path / "report"
    assert main(["fit", str(demo_store), *FAST, "--spatial", "--neighbors", "4",
                 "--run-name", "sp", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    line = re.search(r"^Spatial coherence \(mean Moran's I over a 4-NN graph\): (-?[0-9.]+)$",
                     out, flags=re.M)
    assert line is not None, out

    results = read_run(spatialdata.read_zarr(demo_store), "sp")
    prov = results.provenance
    assert prov["spatial"] is True and prov["spatial_mode"] == "gcn"
    assert prov["graph"] == "knn" and prov["n_neighbors"] == 4 and prov["graph_edges"] > 0
    coherence = results.spatial_coherence
    assert list(coherence.index) == ["topic_0", "topic_1", "topic_2"]
    assert np.isfinite(coherence).all() and (np.abs(coherence) <= 1.5).all()
    assert float(line.group(1)) == pytest.approx(coherence.mean(), abs=0.006)
    # reloads identically, and plain spatialdata sees the values in the run table's var
    assert read_run(spatialdata.read_zarr(demo_store), "sp") == results
    table = spatialdata.read_zarr(demo_store).tables["topomics_sp"]
    np.testing.assert_array_equal(table.var["morans_i"].to_numpy(), coherence.to_numpy())

    html_text = (report / "index.html").read_text(encoding="utf-8")
    section = html_text[html_text.index("<h2>Spatial coherence</h2>"):]
    for topic, value in coherence.items():
        assert f"<tr><th>{topic}</th><td>{value:.3f}</td></tr>" in section
    assert f"<tr><th>mean</th><td>{coherence.mean():.3f}</td></tr>" in section
    assert (report / "spatial_coherence.png").is_file()

    assert main(["info", str(demo_store)]) == 0
    info = capsys.readouterr().out
    assert f"spatial gcn model; mean Moran's I {coherence.mean():.2f} over a 4-NN graph" in info

    # a spatial model is saved with its data (graph included), so it reloads as it was
    from napari_topomics.io import load_run_model

    model = load_run_model(demo_store, "sp")
    assert model.spatial and model.module.config.spatial_mode == "gcn"
    theta = model.get_cell_topic_dist(n_samples=None)
    assert theta.shape == (model.adata.n_obs, 3)


def test_radius_graph_without_radius_fails_before_anything_is_written(demo_store, capsys):
    before = tree_hashes(demo_store)
    assert main(["fit", str(demo_store), *FAST, "--spatial", "--graph", "radius"]) == 2
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and "radius" in lines[0], err
    assert "Traceback" not in err
    assert tree_hashes(demo_store) == before


def test_sgc_on_a_radius_graph(demo_store, capsys):
    assert main(["fit", str(demo_store), *FAST, "--spatial", "--spatial-mode", "sgc",
                 "--graph", "radius", "--radius", "30", "--run-name", "rad"]) == 0
    out = capsys.readouterr().out
    assert "Spatial coherence (mean Moran's I over a radius-30 graph): " in out
    import spatialdata

    from napari_topomics.io._store import read_run

    prov = read_run(spatialdata.read_zarr(demo_store), "rad").provenance
    assert (prov["spatial_mode"], prov["graph"], prov["radius"]) == ("sgc", "radius", 30.0)
    assert prov["n_neighbors"] is None


def test_help_describes_the_spatial_options():
    text = build_parser()._subparsers._group_actions[0].choices["fit"].format_help()
    flat = " ".join(text.split())
    for needle in ("--spatial-mode {gcn,sgc}", "--graph {knn,radius,delaunay}",
                   "--neighbors N", "--radius R", "required with --graph radius",
                   "Moran's I"):
        assert needle in flat, needle


@pytest.mark.parametrize("extra", [["--spatial-mode", "gat"], ["--graph", "voronoi"]])
def test_unknown_choices_are_usage_errors(demo_store, capsys, extra):
    with pytest.raises(SystemExit) as stop:
        main(["fit", str(demo_store), *FAST, *extra])
    assert stop.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
