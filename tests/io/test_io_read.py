"""detect_source / read_tissue: SpatialData stores, the real Space Ranger folder, vendor stubs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._read import SOURCES, detect_source, read_tissue

VISIUM = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "visium_mouse_brain_seurat"
)


def _touch(root: Path, *names: str) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root


@pytest.fixture
def sentinel_reader(monkeypatch):
    """Replace spatialdata_io readers by a recorder; returns (calls, install)."""
    import spatialdata_io

    calls: list[tuple[str, Path, dict]] = []

    def install(name: str, result=None, error: Exception | None = None):
        def reader(path, **kwargs):
            calls.append((name, Path(path), kwargs))
            if error is not None:
                raise error
            return result if result is not None else f"sdata from {name}"

        monkeypatch.setattr(spatialdata_io, name, reader)

    return calls, install


# --- detection ------------------------------------------------------------------------------


def test_detects_a_spatialdata_store(tissue_store, unchanged):
    unchanged(tissue_store)
    assert detect_source(tissue_store) == "spatialdata"
    assert detect_source(str(tissue_store)) == "spatialdata"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["experiment.xenium", "cell_feature_matrix.h5"], "xenium"),
        (["feature_slice.h5", "binned_outputs/square_008um/x.txt"], "visium_hd"),
        (["sample1_feature_slice.h5"], "visium_hd"),
        (["spatial/tissue_positions.csv", "filtered_feature_bc_matrix.h5"], "visium"),
        (["spatial/tissue_positions_list.csv", "lib1_filtered_feature_bc_matrix.h5"], "visium"),
        (["images/micron_to_mosaic_pixel_transform.csv", "cell_by_gene.csv"], "merscope"),
        (
            [
                "run_exprMat_file.csv",
                "run_metadata_file.csv",
                "run_fov_positions_file.csv",
            ],
            "cosmx",
        ),
    ],
)
def test_detects_vendor_folders_by_signature_files(tmp_path, files, expected):
    assert detect_source(_touch(tmp_path, *files)) == expected
    assert expected in SOURCES


@pytest.mark.parametrize(
    "files",
    [
        [],  # empty folder
        ["spatial/tissue_positions.csv"],  # Visium positions without the counts file
        ["filtered_feature_bc_matrix.h5"],  # counts without positions
        ["run_exprMat_file.csv"],  # CosMx counts without metadata / FOV files
        ["notes.txt", "data.h5ad"],
    ],
)
def test_unrecognised_folder_names_path_and_accepted_kinds(tmp_path, files):
    _touch(tmp_path, *files)
    with pytest.raises(TopomicsInputError) as info:
        detect_source(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(tmp_path) in msg
    for signature in ("SpatialData", "experiment.xenium", "tissue_positions", "feature_slice"):
        assert signature in msg


def test_missing_path_and_file_are_named(tmp_path):
    missing = tmp_path / "nope.zarr"
    with pytest.raises(TopomicsInputError, match="does not exist") as info:
        detect_source(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(TopomicsInputError, match="does not exist"):
        read_tissue(missing)
    a_file = _touch(tmp_path, "table.h5ad") / "table.h5ad"
    with pytest.raises(TopomicsInputError, match="Not a folder") as info:
        detect_source(a_file)
    assert str(a_file) in str(info.value)


def test_zarr_group_that_is_not_spatialdata(tmp_path, kit):
    path = tmp_path / "table.zarr"
    kit.counts_table().write_zarr(path)
    with pytest.raises(TopomicsInputError, match="not a SpatialData store") as info:
        detect_source(path)
    assert str(path) in str(info.value)


# --- SpatialData stores ---------------------------------------------------------------------


def test_store_round_trip_reads_the_written_tissue(tissue_store, unchanged, kit):
    unchanged(tissue_store)
    sdata = read_tissue(tissue_store)
    original = kit.make_tissue()
    table, expected = sdata.tables["table"], original.tables["table"]
    assert list(table.obs_names) == list(expected.obs_names)
    np.testing.assert_array_equal(table.X.toarray(), expected.X.toarray())
    np.testing.assert_array_equal(table.obs["cell_id"], expected.obs["cell_id"])
    np.testing.assert_array_equal(np.asarray(sdata.labels["cells"]), kit.label_image())
    assert set(sdata.coordinate_systems) == {"global", "micron"}


def test_store_read_with_vendor_spatialdata_and_reader_kwargs(tissue_store, unchanged):
    unchanged(tissue_store)
    sdata = read_tissue(tissue_store, vendor="spatialdata", selection=("tables",))
    assert list(sdata.tables) == ["table"]
    assert len(sdata.labels) == 0


def test_unknown_vendor_lists_choices(tissue_store, unchanged):
    unchanged(tissue_store)
    with pytest.raises(TopomicsInputError, match="Unknown vendor 'visum'") as info:
        read_tissue(tissue_store, vendor="visum")
    for name in SOURCES:
        assert name in str(info.value)


# --- the real Space Ranger folder -----------------------------------------------------------


def _visium_folder() -> Path:
    if not VISIUM.is_dir():
        pytest.skip(f"shared data folder absent: {VISIUM}")
    return VISIUM


def test_real_visium_folder_reads_spots_genes_and_positions(unchanged):
    folder = unchanged(_visium_folder())
    listing_before = sorted(p.name for p in folder.rglob("*"))
    assert detect_source(folder) == "visium"
    sdata = read_tissue(folder)
    # the folder's file names have no "<id>_" prefix: the elements are named after the folder
    element = folder.name
    table = sdata.tables["table"]
    assert table.shape == (2695, 100)  # README: 2,695 spots x 100 genes
    assert float(table.X.sum()) == 132231  # README: total UMI count
    assert table.uns["spatialdata_attrs"]["region"] == element
    circles = sdata.shapes[element]
    assert len(circles) == 2695
    # spot centres are the full-resolution pixel positions of the positions file
    positions = pd.read_csv(
        folder / "spatial" / "tissue_positions_list.csv", header=None, index_col=0
    )
    positions.columns = ["in_tissue", "array_row", "array_col", "pxl_row", "pxl_col"]
    spot_of_row = table.obs["spot_id"].to_numpy()
    centres = circles.geometry.get_coordinates().loc[spot_of_row]
    expected = positions.loc[table.obs_names]
    np.testing.assert_allclose(centres["x"].to_numpy(), expected["pxl_col"].to_numpy())
    np.testing.assert_allclose(centres["y"].to_numpy(), expected["pxl_row"].to_numpy())
    assert np.isfinite(centres.to_numpy()).all()
    assert (expected["in_tissue"] == 1).all()
    assert sorted(p.name for p in folder.rglob("*")) == listing_before


def test_visium_dataset_id_from_folder_name_or_prefix(tmp_path, sentinel_reader):
    calls, install = sentinel_reader
    install("visium")
    plain = _touch(
        tmp_path / "my sample (1)", "spatial/tissue_positions.csv", "filtered_feature_bc_matrix.h5"
    )
    assert read_tissue(plain) == "sdata from visium"
    assert calls[-1][2]["dataset_id"] == "my_sample_1"
    read_tissue(plain, dataset_id="brain")
    assert calls[-1][2]["dataset_id"] == "brain"
    prefixed = _touch(
        tmp_path / "p", "spatial/tissue_positions.csv", "lib7_filtered_feature_bc_matrix.h5"
    )
    read_tissue(prefixed)
    assert "dataset_id" not in calls[-1][2]  # the reader takes "lib7" from the file name


def test_visium_with_several_prefixed_count_files_asks_for_dataset_id(tmp_path, sentinel_reader):
    calls, install = sentinel_reader
    install("visium")
    folder = _touch(
        tmp_path,
        "spatial/tissue_positions.csv",
        "a_filtered_feature_bc_matrix.h5",
        "b_filtered_feature_bc_matrix.h5",
    )
    with pytest.raises(TopomicsInputError, match="dataset_id") as info:
        read_tissue(folder)
    assert "a_filtered_feature_bc_matrix.h5" in str(info.value)
    assert calls == []


# --- other vendors (no real data here): the right spatialdata-io reader is called -----------


def test_xenium_folder_calls_the_xenium_reader(tmp_path, sentinel_reader):
    calls, install = sentinel_reader
    for name in SOURCES[1:]:
        install(name)
    folder = _touch(tmp_path, "experiment.xenium")
    out = read_tissue(folder, cells_as_circles=True)
    assert out == "sdata from xenium"
    assert calls == [("xenium", folder, {"cells_as_circles": True})]


def test_visium_hd_reader_gets_explicit_segmentation_default(tmp_path, sentinel_reader):
    calls, install = sentinel_reader
    install("visium_hd")
    folder = _touch(tmp_path, "feature_slice.h5")
    read_tissue(folder)
    assert calls[-1][2] == {"load_segmentations_only": False}
    read_tissue(folder, load_segmentations_only=True, bin_size=8)
    assert calls[-1][2] == {"load_segmentations_only": True, "bin_size": 8}


def test_forced_vendor_skips_detection(tmp_path, sentinel_reader):
    calls, install = sentinel_reader
    install("merscope")
    assert read_tissue(tmp_path, vendor="merscope") == "sdata from merscope"
    assert calls[-1][0] == "merscope"


def test_reader_failure_becomes_one_line_input_error(tmp_path, sentinel_reader, unchanged):
    calls, install = sentinel_reader
    install("xenium", error=ValueError("cells.parquet is missing\nsecond line of detail"))
    folder = unchanged(_touch(tmp_path, "experiment.xenium"))
    with pytest.raises(TopomicsInputError) as info:
        read_tissue(folder)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(folder) in msg and "xenium" in msg and "cells.parquet is missing" in msg
    assert isinstance(info.value.__cause__, ValueError)
