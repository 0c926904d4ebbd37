"""``napari-topomics report`` and ``info``: figures for a run, and what a store holds."""

from __future__ import annotations

import pytest
from conftest import error_lines

from napari_topomics.cli import main

FAST = ["--epochs", "2", "--topics", "3", "--quiet", "--threads", "1"]


@pytest.fixture
def fitted_store(demo_store):
    assert main(["fit", str(demo_store), *FAST, "--run-name", "first"]) == 0
    return demo_store


def test_report_writes_figures_and_index(fitted_store, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(fitted_store), "--run", "first", "--out", str(out)]) == 0
    index = (out / "index.html").read_text()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"topic_maps.png", "dominant_topic.png", "modality_weights.png", "elbo.png"} <= set(pngs)
    assert all(name in index for name in pngs)
    assert str(out / "index.html") in capsys.readouterr().out


def test_report_picks_the_only_run_and_asks_when_several(fitted_store, tmp_path, capsys):
    assert main(["report", str(fitted_store), "--out", str(tmp_path / "a")]) == 0
    assert main(["fit", str(fitted_store), *FAST, "--run-name", "second"]) == 0
    capsys.readouterr()
    assert main(["report", str(fitted_store), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "first" in err and "second" in err and "--run" in err
    assert main(["report", str(fitted_store), "--run", "third"]) == 2
    assert "third" in capsys.readouterr().err


def test_info_lists_elements_tables_modalities_and_runs(fitted_store, capsys):
    assert main(["info", str(fitted_store)]) == 0
    out = capsys.readouterr().out
    for needle in ("demo_image", "demo_cells", "table", "300 cells", "rna", "protein",
                   "atac", "first", "3 topics"):
        assert needle in out, needle


def test_info_on_a_vendor_folder(visium_folder, capsys):
    assert main(["info", str(visium_folder)]) == 0
    out = capsys.readouterr().out
    assert "visium" in out.lower()
    assert "(none)" in out  # no topic runs in a raw folder


def test_info_bad_path(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing")]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "nothing" in lines[0]


def test_info_describes_every_element_kind_and_pyramids(tmp_path, capsys):
    from spatialdata.datasets import blobs

    blobs().write(tmp_path / "blobs.zarr")
    assert main(["info", str(tmp_path / "blobs.zarr")]) == 0
    out = capsys.readouterr().out
    assert "blobs_multiscale_image: c=3 × y=512 × x=512, 3 scales" in out
    assert "blobs_labels: y=512 × x=512" in out
    assert "blobs_points: 200 points" in out
    assert "blobs_polygons: 5 shapes" in out
