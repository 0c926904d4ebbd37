"""The plugin on a 10⁵-cell store: opened off the GUI thread, painted with a lookup-table
colormap, recoloured without rebuilding the layer (issue 19).

The store is written once (``datasets._scale_store``, 8-pixel tiles to keep it quick); the
colours checked are the ones napari sends to the GPU for the displayed slice.
"""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from napari_topomics.io._errors import TopomicsInputError

N_CELLS = 100_000


@pytest.fixture(scope="module")
def scale_store(tmp_path_factory):
    """A 10⁵-cell store with the saved run ``scale`` (8 topics)."""
    from napari_topomics.datasets._scale_store import write_scale_store

    return write_scale_store(tmp_path_factory.mktemp("scale") / "scale.zarr", N_CELLS, tile=8)


@pytest.fixture
def opened(make_napari_viewer, qtbot, scale_store):
    """(viewer, run layer, legend) after :func:`open_store` with the saved run painted."""
    from napari_topomics.plugin._legend import TopicLegendWidget
    from napari_topomics.plugin._open import open_store

    viewer = make_napari_viewer(show=True)
    legend = TopicLegendWidget(viewer)
    viewer.window.add_dock_widget(legend)
    box = {}
    worker = open_store(viewer, scale_store.path, on_done=lambda ly: box.update(layers=ly),
                        on_error=lambda e: box.update(error=e))
    assert worker is not None  # read and built in a thread worker
    qtbot.waitUntil(lambda: "layers" in box or "error" in box, timeout=60_000)
    assert "error" not in box, box.get("error")
    layer = viewer.layers["scale: cells"]
    viewer.layers.selection.active = layer
    qtbot.wait(50)
    return viewer, layer, legend


def _cell_pixels(store, rows: np.ndarray, level: int) -> np.ndarray:
    """(y, x) at ``level`` of each cell's centre (cells sit one per tile)."""
    from napari_topomics.datasets._scale_store import _cell_shapes, scale_grid

    _, cols = scale_grid(store.n_cells)
    shapes = _cell_shapes(store.n_cells, store.tile, 0)
    y = (rows // cols) * store.tile + shapes[rows, 0]
    x = (rows % cols) * store.tile + shapes[rows, 1]
    return np.column_stack([y, x]).astype(np.int64) // 2**level


def _shown_colours(layer, store, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label ids and the RGBA the GPU texture gives the sampled cells' centre pixels."""
    level = layer.data_level
    corner = np.asarray(layer.corner_pixels[0], dtype=np.int64)
    yx = _cell_pixels(store, rows, level) - corner
    raw = np.asarray(layer._slice.image.raw)
    view = np.asarray(layer._slice.image.view)
    inside = (yx >= 0).all(1) & (yx[:, 0] < raw.shape[0]) & (yx[:, 1] < raw.shape[1])
    yx = yx[inside]
    ids = raw[yx[:, 0], yx[:, 1]]
    texture = layer.colormap._values_mapping_to_minimum_values_set()[1]
    shown = np.array([texture[int(v)] for v in view[yx[:, 0], yx[:, 1]]])
    return ids, shown


def test_open_paints_every_sampled_cell_its_dominant_topic(opened, scale_store):
    viewer, layer, legend = opened
    from napari_topomics.plugin._colouring import topic_palette
    from napari_topomics.plugin._lut_colormap import LutLabelColormap

    assert [ly.name for ly in viewer.layers] == ["stain", "cells", "scale: cells"]
    assert layer.multiscale and len(layer.data) > 1  # lazy levels, none densified
    assert not viewer.layers["cells"].visible
    assert isinstance(layer.colormap, LutLabelColormap)
    assert len(layer.colormap._values_mapping_to_minimum_values_set()[1]) == 9  # 8 + clear
    results = layer.metadata["topomics_results"]
    rows = np.random.default_rng(0).choice(N_CELLS, 300, replace=False)
    ids, shown = _shown_colours(layer, scale_store, rows)
    assert len(ids) > 250 and (ids > 0).all()
    expected = topic_palette(8)[np.argmax(results.proportions.to_numpy()[ids - 1], axis=1)]
    np.testing.assert_allclose(shown, expected, atol=1e-6)
    np.testing.assert_allclose(np.array([layer.get_color(int(i)) for i in ids]), expected,
                               atol=1e-6)
    assert layer.get_color(0) is None and layer.colormap.map(N_CELLS + 5)[3] == 0
    # the legend names the 8 topics with their colours
    assert len(legend.entries()) == 8 and legend.entries()[0].startswith("topic_0: Gene_")
    assert legend.colour_by.currentData() == "dominant_topic"


def test_recolour_keeps_the_layer_and_its_data(opened, scale_store, qtbot):
    viewer, layer, legend = opened
    results = layer.metadata["topomics_results"]
    levels = list(layer.data)
    n_layers = len(viewer.layers)
    rows = np.random.default_rng(1).choice(N_CELLS, 300, replace=False)
    for what, cmap in (("topic_3", "viridis"), ("weight:protein", "cividis")):
        legend.colour_by.setCurrentIndex(legend.colour_by.findData(what))
        assert legend._worker is not None  # 10⁵ cells: coloured in a thread worker
        qtbot.waitUntil(lambda w=what: layer.metadata["topomics_colouring"] == w,
                        timeout=20_000)
        qtbot.wait(20)
        assert viewer.layers["scale: cells"] is layer and len(viewer.layers) == n_layers
        assert all(a is b for a, b in zip(layer.data, levels, strict=True))
        ids, shown = _shown_colours(layer, scale_store, rows)
        if what == "topic_3":
            values = results.proportions["topic_3"].to_numpy()
            scaled = values[ids - 1] / values.max()
            assert "topic_3 proportion: 0 to" in legend.entries()[0]
        else:
            values = results.modality_weights["protein"].to_numpy()
            scaled = (values[ids - 1] - values.min()) / (values.max() - values.min())
            assert "(cividis)" in legend.entries()[0]
        np.testing.assert_allclose(shown, colormaps[cmap](scaled), atol=1e-6)

    # a recolouring asked for later wins, even over a worker that finishes after it
    from napari_topomics.plugin._result_layers import color_by

    done = []
    worker = color_by(layer, "topic_1", background=True)
    worker.finished.connect(lambda: done.append(1))
    color_by(layer, "topic_5")
    qtbot.waitUntil(lambda: bool(done), timeout=20_000)
    qtbot.wait(20)
    assert layer.metadata["topomics_colouring"] == "topic_5"
    assert legend.colour_by.currentData() == "topic_5"


def test_saved_run_painted_on_open_elements_and_points_refused_above_limit(
    make_napari_viewer, qtbot, scale_store
):
    from napari_topomics.plugin import _result_layers
    from napari_topomics.plugin._open import open_store, paint_saved_run

    viewer = make_napari_viewer()
    layers = open_store(viewer, scale_store.path, runs=False, background=False)
    assert [ly.name for ly in layers] == ["stain", "cells"]
    box = {}
    paint_saved_run(viewer, scale_store.path, "scale", on_done=lambda ly: box.update(ly=ly))
    qtbot.waitUntil(lambda: "ly" in box, timeout=30_000)
    layer = box["ly"][0]
    assert layer.name == "scale: cells" and not viewer.layers["cells"].visible
    assert layer.data[0] is viewer.layers["cells"].data[0]  # drawn from the same levels
    assert _result_layers.MAX_POINTS < N_CELLS
    with pytest.raises(TopomicsInputError, match="100,000 cells.*labels layer"):
        _result_layers.add_result_layers(viewer, layer.metadata["topomics_results"], layer,
                                         points=True)
    assert len(viewer.layers) == 3  # refused before anything changed


def test_readout_bars_follow_each_clicked_cell(opened, scale_store, qtbot):
    viewer, layer, _ = opened
    from napari_topomics.plugin._cell_readout import CellReadoutWidget

    readout = CellReadoutWidget(viewer)
    viewer.window.add_dock_widget(readout)
    results = layer.metadata["topomics_results"]
    for cell_id in (12_345, 99_000):  # the second one redraws only the bars (blit)
        cell = readout.show_cell(cell_id)
        qtbot.wait(50)
        row = results.proportions.iloc[cell_id - 1]
        assert cell["dominant_topic"] == row.idxmax()
        topic_ax, weight_ax = readout.canvas.figure.axes
        widths = [bar.get_width() for bar in topic_ax.patches][::-1]
        np.testing.assert_allclose(widths, row.to_numpy(), rtol=1e-6)
        weights = [bar.get_width() for bar in weight_ax.patches][::-1]
        np.testing.assert_allclose(weights, results.modality_weights.iloc[cell_id - 1],
                                   rtol=1e-6)
    assert readout.show_cell(N_CELLS + 1) is None


def test_lut_colormap_maps_large_and_negative_ids():
    from napari_topomics.plugin._lut_colormap import MAX_LUT_ID, LutLabelColormap

    palette = np.array([[1, 0, 0, 1], [0, 0, 1, 1]], dtype=np.float32)
    ids = np.array([3, -7, MAX_LUT_ID * 4])
    cmap = LutLabelColormap.from_codes(ids, np.array([0, 1, 1]), palette)
    got = cmap.map(np.array([3, -7, MAX_LUT_ID * 4, 5, 0]))
    np.testing.assert_allclose(got[:3], palette[[0, 1, 1]])
    assert (got[3:, 3] == 0).all()  # unknown ids and background are transparent
    dense = LutLabelColormap.from_codes(np.array([1, 2]), np.array([1, -1]), palette)
    np.testing.assert_allclose(dense.map(np.array([1, 2, 99], dtype=np.uint32))[:, 3],
                               [1, 0, 0])
    assert dense._data_to_texture(np.array([1, 2], dtype=np.uint32)).dtype == np.uint8
