"""Table discovery, the annotated element and cell coordinates on hand-built SpatialData."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
from spatialdata.models import PointsModel, ShapesModel, TableModel
from spatialdata.transformations import Identity

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._read import read_tissue
from napari_topomics.io._tables import (
    AnnotatedElement,
    annotated_element,
    cell_coordinates,
    list_tables,
    resolve_table,
)


def _table(n: int, region, ids, region_key: str = "region", instance_key: str = "cell_id", **uns):
    regions = [region] * n if isinstance(region, str) else list(region)
    obs = pd.DataFrame(
        {region_key: pd.Categorical(regions), instance_key: np.asarray(ids)},
        index=[f"r{i}" for i in range(n)],
    )
    table = ad.AnnData(np.ones((n, 2), dtype=np.float32), obs=obs)
    table.uns.update(uns)
    return TableModel.parse(
        table,
        region=sorted(set(regions)) if len(set(regions)) > 1 else regions[0],
        region_key=region_key,
        instance_key=instance_key,
    )


def _circles(xy: np.ndarray, index) -> object:
    from geopandas import GeoDataFrame
    from shapely import Point

    gdf = GeoDataFrame(
        {"radius": np.ones(len(xy))},
        geometry=[Point(x, y) for x, y in xy],
        index=pd.Index(index),
    )
    return ShapesModel.parse(gdf, transformations={"global": Identity()})


def _label_centres(kit) -> dict[int, tuple[float, float]]:
    """Expected centroid (x, y) of each label id: the mean pixel centre (pixel i spans i..i+1)."""
    labels = kit.label_image()
    out = {}
    for cell in kit.CELL_IDS:
        rows, cols = np.nonzero(labels == cell)
        out[int(cell)] = (cols.mean() + 0.5, rows.mean() + 0.5)
    return out


# --- list_tables / resolve_table ------------------------------------------------------------


def test_list_tables_summarises_blocks_layers_elements_and_runs(tissue, kit):
    tissue.tables["topomics_run1"] = _table(3, "cells", kit.CELL_IDS[:3], topomics={"run": 1})
    tissue.tables["free"] = TableModel.parse(ad.AnnData(np.zeros((2, 5), dtype=np.float32)))
    infos = {t.name: t for t in list_tables(tissue)}
    main = infos["table"]
    assert (main.n_obs, main.n_vars) == (kit.CELL_IDS.size, kit.N_RNA + kit.N_PROT + kit.N_ATAC)
    assert main.elements == ("cells",)
    assert set(main.layers) == {"counts", "lognorm"}
    assert main.modalities == ("rna", "protein", "atac")
    assert main.modality_key == "feature_types"
    assert not main.is_run
    assert infos["topomics_run1"].is_run
    assert infos["free"].elements == () and infos["free"].modalities == ()


def test_resolve_table_picks_the_single_non_run_table(tissue, kit):
    assert resolve_table(tissue) == "table"
    tissue.tables["topomics_a"] = _table(3, "cells", kit.CELL_IDS[:3], topomics={})
    assert resolve_table(tissue) == "table"
    assert resolve_table(tissue, "topomics_a") == "topomics_a"


def test_resolve_table_errors_list_the_choices(tissue, kit):
    tissue.tables["other"] = _table(3, "cells", kit.CELL_IDS[:3])
    with pytest.raises(TopomicsInputError, match="Several tables") as info:
        resolve_table(tissue)
    assert "'table'" in str(info.value) and "'other'" in str(info.value)
    with pytest.raises(TopomicsInputError, match="Table 'tabel' not found") as info:
        resolve_table(tissue, "tabel")
    assert "'table'" in str(info.value) and "'other'" in str(info.value)

    only_runs = sd.SpatialData(tables={"topomics_x": _table(2, "cells", [1, 2], topomics={})})
    with pytest.raises(TopomicsInputError, match="napari-topomics run"):
        resolve_table(only_runs)
    with pytest.raises(TopomicsInputError, match="has no table"):
        resolve_table(sd.SpatialData(labels=dict(tissue.labels)))


def test_store_errors_leave_the_store_unchanged(tissue_store, unchanged):
    unchanged(tissue_store)
    sdata = read_tissue(tissue_store)
    with pytest.raises(TopomicsInputError, match="not found"):
        resolve_table(sdata, "missing")
    with pytest.raises(TopomicsInputError, match="does not annotate element 'nuclei'"):
        annotated_element(sdata, "table", "nuclei")
    with pytest.raises(TopomicsInputError, match="coordinate system 'pixels'") as info:
        cell_coordinates(sdata, "table", coordinate_system="pixels")
    assert "'global'" in str(info.value) and "'micron'" in str(info.value)
    assert str(tissue_store) in _error(resolve_table, sdata, "missing")


def _error(func, *args, **kwargs) -> str:
    with pytest.raises(TopomicsInputError) as info:
        func(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --- annotated_element ----------------------------------------------------------------------


def test_annotated_element_of_labels_and_shapes(tissue, kit):
    assert annotated_element(tissue, "table") == AnnotatedElement(
        "cells", "labels", "region", "cell_id"
    )
    tissue.shapes["spots"] = _circles(np.array([[1.0, 2.0], [3.0, 4.0]]), [10, 11])
    tissue.tables["spot_table"] = _table(2, "spots", [10, 11], instance_key="spot")
    element = annotated_element(tissue, "spot_table")
    assert (element.name, element.kind, element.instance_key) == ("spots", "shapes", "spot")


def test_annotated_element_errors(tissue, kit):
    tissue.tables["plain"] = TableModel.parse(ad.AnnData(np.zeros((2, 2), dtype=np.float32)))
    assert "annotates no spatial element" in _error(annotated_element, tissue, "plain")

    tissue.shapes["spots"] = _circles(np.array([[1.0, 2.0], [3.0, 4.0]]), [1, 2])
    ids = list(kit.CELL_IDS[:2]) + [1, 2]
    tissue.tables["both"] = _table(4, ["cells", "cells", "spots", "spots"], ids)
    msg = _error(annotated_element, tissue, "both")
    assert "several elements" in msg and "'cells'" in msg and "'spots'" in msg
    assert annotated_element(tissue, "both", "spots").kind == "shapes"
    msg = _error(annotated_element, tissue, "both", "nuclei")
    assert "'nuclei'" in msg and "'cells'" in msg

    tissue.tables["ghost_table"] = _table(2, "ghost", [1, 2])
    msg = _error(annotated_element, tissue, "ghost_table")
    assert "'ghost'" in msg and "'cells'" in msg and "'spots'" in msg


def test_image_element_is_refused(tissue):
    from spatialdata.models import Image2DModel

    tissue.images["he"] = Image2DModel.parse(np.zeros((1, 4, 4)), dims=("c", "y", "x"))
    tissue.tables["on_image"] = _table(2, "he", [1, 2])
    assert "is an image" in _error(annotated_element, tissue, "on_image")


# --- cell_coordinates -----------------------------------------------------------------------


def test_label_centroids_follow_the_table_order(tissue, kit):
    table = tissue.tables["table"]
    before = table.copy()
    coords = cell_coordinates(tissue, "table")
    assert list(coords.columns) == ["x", "y"]
    assert list(coords.index) == list(table.obs_names)
    centres = _label_centres(kit)
    expected = np.array([centres[int(i)] for i in table.obs["cell_id"]])
    np.testing.assert_allclose(coords.to_numpy(), expected)
    # the table is untouched
    pd.testing.assert_frame_equal(table.obs, before.obs)
    assert table.uns.keys() == before.uns.keys()


def test_coordinates_in_another_coordinate_system(tissue, kit):
    global_xy = cell_coordinates(tissue, "table", coordinate_system="global")
    micron_xy = cell_coordinates(tissue, "table", coordinate_system="micron")
    np.testing.assert_allclose(micron_xy.to_numpy(), global_xy.to_numpy() * kit.MICRON_SCALE)
    msg = _error(cell_coordinates, tissue, "table", coordinate_system="um")
    assert "'um'" in msg and "'global'" in msg and "'micron'" in msg


def test_circle_and_point_positions(tissue):
    xy = np.array([[5.0, 1.0], [2.5, 7.0], [9.0, 3.0]])
    tissue.shapes["spots"] = _circles(xy, ["s0", "s1", "s2"])
    tissue.tables["spot_table"] = _table(3, "spots", ["s2", "s0", "s1"])
    coords = cell_coordinates(tissue, "spot_table")
    np.testing.assert_allclose(coords.to_numpy(), xy[[2, 0, 1]])

    points = PointsModel.parse(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}))
    tissue.points["beads"] = points
    tissue.tables["bead_table"] = _table(3, "beads", [1, 2, 0])
    coords = cell_coordinates(tissue, "bead_table")
    np.testing.assert_allclose(coords.to_numpy(), xy[[1, 2, 0]])


def test_instance_ids_missing_from_the_element(tissue, kit):
    ids = np.concatenate([kit.CELL_IDS[:3], [100, 101]])
    tissue.tables["stale"] = _table(5, "cells", ids)
    msg = _error(cell_coordinates, tissue, "stale")
    assert "2 of 5 instance ids" in msg and "100" in msg and "'cells'" in msg


def test_repeated_instance_ids_are_refused(tissue, kit):
    # TableModel.parse refuses repeated ids, but a table edited afterwards can have them
    tissue.tables["dup"] = _table(4, "cells", kit.CELL_IDS[:4])
    tissue.tables["dup"].obs.loc["r3", "cell_id"] = kit.CELL_IDS[0]
    msg = _error(cell_coordinates, tissue, "dup")
    assert "repeating an instance id" in msg and str(kit.CELL_IDS[0]) in msg
