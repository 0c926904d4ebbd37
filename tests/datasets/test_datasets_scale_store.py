"""The whole-slide-sized store generator (issue 19), on a small store."""

from __future__ import annotations

import warnings

import numpy as np

from napari_topomics.datasets._scale_store import label_block, scale_grid, write_scale_store


def test_scale_store_has_every_cell_on_every_level_and_a_readable_run(tmp_path):
    import spatialdata as sd

    from napari_topomics.io import list_runs, read_run

    n = 4_000  # 64 x 63 tiles of 16 px: two levels
    store = write_scale_store(tmp_path / "s.zarr", n, tile=16, n_topics=5, seed=3)
    assert store.shape == tuple(t * 16 for t in scale_grid(n))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata = sd.read_zarr(store.path)
    labels = sdata["cells"]
    levels = [labels[k]["image"].data for k in sorted(labels.children)]
    assert len(levels) >= 2 and all(lv.dtype == np.uint32 for lv in levels)
    finest = np.asarray(levels[0])
    assert set(np.unique(finest)) == set(range(n + 1))  # cells 1..n and background
    for level in levels[1:]:  # coarse levels sample cell centres: no empty pyramid
        coarse = np.asarray(level)
        assert len(np.unique(coarse)) > 0.9 * n
    table = sdata.tables["table"]
    assert table.n_obs == n and (table.obs["cell_id"].to_numpy() == np.arange(1, n + 1)).all()
    assert list_runs(store.path) == ["scale"]
    results = read_run(store.path, "scale")
    assert results.n_topics == 5 and len(results.proportions) == n
    np.testing.assert_allclose(results.proportions.sum(axis=1), 1.0, atol=1e-5)
    # each cell's centroid lies inside its own label
    xy = results.coordinates[["x", "y"]].to_numpy().astype(int)
    assert (finest[xy[:, 1], xy[:, 0]] == results.instance_ids).mean() > 0.99


def test_label_block_matches_the_finest_level_at_any_chunking():
    from napari_topomics.datasets._scale_store import _cell_shapes

    n, tile = 300, 8
    shapes = _cell_shapes(n, tile, 0)
    rows, cols = scale_grid(n)
    whole = label_block(0, rows * tile, 0, cols * tile, n_cells=n, tile=tile, shapes=shapes)
    part = label_block(16, 40, 8, 33, n_cells=n, tile=tile, shapes=shapes)
    np.testing.assert_array_equal(part, whole[16:40, 8:33])
    coarse = label_block(0, rows * tile, 0, cols * tile, n_cells=n, tile=tile, shapes=shapes,
                         step=4)
    np.testing.assert_array_equal(coarse, whole[2::4, 2::4])
