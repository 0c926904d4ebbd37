"""The bundled demo tissue as SpatialData: contract, determinism, geometry, zarr round trip."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp

spatialdata = pytest.importorskip("spatialdata")

from napari_topomics.datasets import demo  # noqa: E402
from napari_topomics.datasets._demo_raster import PX_PER_UNIT  # noqa: E402


@pytest.fixture(scope="module")
def sdata():
    return demo(seed=0, n_cells=600)


def test_demo_matches_the_contract(sdata):
    from spatialdata.models import Image2DModel, Labels2DModel, TableModel, get_table_keys

    image, labels, table = sdata.images["demo_image"], sdata.labels["demo_cells"], sdata["table"]
    Image2DModel().validate(image)
    Labels2DModel().validate(labels)
    TableModel().validate(table)
    assert image.dims == ("c", "y", "x")
    assert list(image.coords["c"].values[:2]) == ["DAPI", "membrane"]
    stain = table.uns["demo"]["stain_channel"]
    assert image.coords["c"].values[2] == stain and stain in table.var_names
    assert labels.dtype == np.uint32 and labels.shape == image.shape[1:]
    assert get_table_keys(table) == ("demo_cells", "region", "cell_id")
    for element in (image, labels):
        assert set(spatialdata.transformations.get_transformation(element, get_all=True)) == {
            "global"
        }

    assert table.n_obs == 600
    assert sp.issparse(table.X) and table.X.format == "csr" and table.X.dtype == np.float32
    counts = table.X.data
    assert np.all(counts == np.rint(counts)) and counts.min() >= 0
    kinds = table.var["feature_types"].value_counts().to_dict()
    assert kinds == {"Gene Expression": 300, "Antibody Capture": 20, "Peaks": 400}
    assert table.var_names.is_unique
    assert table.var_names[0] == "Gene_0001" and table.var_names[300] == "CD_01"
    assert table.var_names[320].startswith("chr1:")
    theta = table.obsm["theta_true"]
    assert theta.shape == (600, 6) and np.allclose(theta.sum(axis=1), 1, atol=1e-5)
    assert table.obs["domain"].nunique() == 6


def test_label_ids_are_the_table_instances(sdata):
    labels = np.asarray(sdata.labels["demo_cells"])
    ids = sdata["table"].obs["cell_id"].to_numpy()
    assert np.array_equal(ids, np.arange(1, 601))
    present = np.unique(labels)
    assert present[0] == 0  # there is background
    assert np.array_equal(present[1:], ids)  # every cell is drawn, nothing else
    assert 0.05 < (labels == 0).mean() < 0.5


def test_label_centroids_sit_on_the_cell_centres(sdata):
    cents = spatialdata.get_centroids(sdata.labels["demo_cells"]).compute()
    table = sdata["table"]
    centres = table.obsm["spatial"][cents.index.to_numpy() - 1]
    dist = np.linalg.norm(cents[["x", "y"]].to_numpy() - centres, axis=1)
    assert np.median(dist) < 1.5
    assert dist.max() < 0.35 * PX_PER_UNIT  # well inside the cell, never a neighbour's


def test_stain_channel_follows_its_planted_topic(sdata):
    image = np.asarray(sdata.images["demo_image"]).astype(float)
    labels = np.asarray(sdata.labels["demo_cells"]).ravel()
    table = sdata["table"]
    k = table.uns["demo"]["stain_topic"]
    inside = labels > 0
    per_cell = np.bincount(labels[inside], weights=image[2].ravel()[inside])[1:]
    per_cell /= np.bincount(labels[inside])[1:]
    r = np.corrcoef(per_cell, table.obsm["theta_true"][:, k])[0, 1]
    assert r > 0.8
    other = np.corrcoef(per_cell, table.obsm["theta_true"][:, (k + 1) % 6])[0, 1]
    assert other < 0.5


def test_demo_is_deterministic_and_seeded():
    a, b, c = demo(seed=3, n_cells=300), demo(seed=3, n_cells=300), demo(seed=4, n_cells=300)
    for key in ("demo_image", "demo_cells"):
        elem = "images" if key == "demo_image" else "labels"
        assert np.array_equal(getattr(a, elem)[key].values, getattr(b, elem)[key].values)
    ta, tb = a["table"], b["table"]
    assert (ta.X != tb.X).nnz == 0
    assert np.array_equal(ta.obsm["theta_true"], tb.obsm["theta_true"])
    assert ta.var_names.equals(tb.var_names) and ta.obs_names.equals(tb.obs_names)
    assert not np.array_equal(a.labels["demo_cells"].values, c.labels["demo_cells"].values)
    assert (ta.X != c["table"].X).nnz > 0


def test_default_demo_is_fast():
    start = time.perf_counter()
    sdata = demo()
    elapsed = time.perf_counter() - start
    assert sdata["table"].n_obs == 2000
    assert max(sdata.labels["demo_cells"].shape) <= 800
    assert elapsed < 5.0


def test_too_few_cells_is_refused():
    with pytest.raises(ValueError, match="n_cells"):
        demo(n_cells=3)


def test_demo_round_trips_through_zarr(sdata, tmp_path):
    path = tmp_path / "demo.zarr"
    sdata.write(path)
    back = spatialdata.read_zarr(path)
    assert np.array_equal(back.images["demo_image"].values, sdata.images["demo_image"].values)
    assert list(back.images["demo_image"].coords["c"].values) == list(
        sdata.images["demo_image"].coords["c"].values
    )
    assert np.array_equal(back.labels["demo_cells"].values, sdata.labels["demo_cells"].values)
    t0, t1 = sdata["table"], back["table"]
    assert (sp.csr_matrix(t1.X) != t0.X).nnz == 0
    assert t1.obs_names.equals(t0.obs_names) and t1.var_names.equals(t0.var_names)
    assert list(t1.var["feature_types"]) == list(t0.var["feature_types"])
    assert np.array_equal(t1.obs["cell_id"].to_numpy(), t0.obs["cell_id"].to_numpy())
    assert np.array_equal(t1.obsm["theta_true"], t0.obsm["theta_true"])
    assert np.array_equal(t1.obsm["spatial"], t0.obsm["spatial"])
    assert t1.uns["spatialdata_attrs"]["region"] == "demo_cells"
