"""The docks: legend/colorbar, topic inspector, click-a-cell readout and ELBO curve."""

import numpy as np
import pytest
from matplotlib import colormaps
from napari.utils._test_utils import read_only_mouse_event
from napari.utils.interactions import mouse_press_callbacks

from napari_topomics.plugin._cell_readout import CellReadoutWidget
from napari_topomics.plugin._elbo_curve import ElboCurveWidget
from napari_topomics.plugin._inspector import TopicInspectorWidget
from napari_topomics.plugin._legend import TopicLegendWidget
from napari_topomics.plugin._reader import sdata_to_layer_data
from napari_topomics.plugin._result_layers import add_result_layers, color_by

pytestmark = pytest.mark.gui


@pytest.fixture
def painted(make_napari_viewer, tiny_demo, tiny_results):
    """A viewer with the demo labels painted by the tiny run (and its centroid points)."""
    viewer = make_napari_viewer()
    for data, kwargs, layer_type in sdata_to_layer_data(tiny_demo):
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    layers = add_result_layers(viewer, tiny_results, viewer.layers["demo_cells"], points=True)
    return viewer, layers[0], layers[1]


def _top3(results, modality, topic):
    frame = results.top_features[modality]
    rows = frame[frame["topic"] == topic].sort_values("rank")
    return ", ".join(rows["feature"].head(3))


def _icon_rgb(item):
    image = item.icon().pixmap(8, 8).toImage()
    colour = image.pixelColor(4, 4)
    return np.array([colour.red(), colour.green(), colour.blue()]) / 255


def test_legend_names_topics_and_follows_the_colouring(painted, tiny_results):
    viewer, labels, points = painted
    viewer.layers.selection.active = labels
    legend = TopicLegendWidget(viewer)
    mod = tiny_results.modality_names[0]
    assert legend.entries() == [
        f"{t}: {_top3(tiny_results, mod, t)}" for t in tiny_results.topic_names
    ]
    palette = colormaps["tab10"](np.arange(tiny_results.n_topics))[:, :3]
    swatches = [_icon_rgb(legend.entries_list.item(i)) for i in range(tiny_results.n_topics)]
    np.testing.assert_allclose(swatches, palette, atol=1 / 255)

    other = tiny_results.modality_names[1]
    legend.name_by.setCurrentText(other)
    assert legend.entries()[2] == f"topic_2: {_top3(tiny_results, other, 'topic_2')}"

    # picking a topic in the dock recolours the layer (and its linked points)
    legend.colour_by.setCurrentIndex(legend.colour_by.findData("topic_1"))
    assert labels.metadata["topomics_colouring"] == "topic_1"
    assert points.metadata["topomics_colouring"] == "topic_1"
    top = tiny_results.proportions["topic_1"].max()
    assert legend.entries() == [f"topic_1 proportion: 0 to {top:.3g} (viridis)"]
    assert legend.vmax_label.text() == f"{top:.3g}"
    assert not legend.colorbar.pixmap().isNull()

    # recolouring from code (another dock, a script) updates the legend
    w = tiny_results.modality_weights[mod]
    color_by(labels, f"weight:{mod}")
    assert legend.colour_by.currentData() == f"weight:{mod}"
    assert legend.entries() == [f"{mod} weight: {w.min():.3g} to {w.max():.3g} (cividis)"]

    viewer.layers.remove(points)
    viewer.layers.remove(labels)
    assert legend.entries() == [] and "No topic model run" in legend.title.text()


def test_inspector_shows_top_features_of_the_chosen_topic(painted, tiny_results):
    viewer, labels, _ = painted
    inspector = TopicInspectorWidget(viewer)
    color_by(labels, "topic_2")  # colouring by a topic selects it
    assert inspector.topic.currentText() == "topic_2"
    inspector.modality.setCurrentText("protein")
    inspector.n_top.setValue(4)
    shown = inspector.shown_features()
    frame = tiny_results.top_features["protein"]
    expected = frame[frame["topic"] == "topic_2"].sort_values("rank").head(4)
    assert list(shown["feature"]) == list(expected["feature"])
    ax = inspector.canvas.figure.axes[0]
    bars = ax.patches
    assert len(bars) == 4
    widths = sorted(bar.get_width() for bar in bars)
    np.testing.assert_allclose(widths, sorted(expected["score"]), rtol=1e-6)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(expected["feature"])[::-1]
    color_by(labels, "weight:atac")
    assert inspector.modality.currentText() == "atac"


def test_clicking_a_cell_reads_its_topic_mix(painted, tiny_results):
    viewer, labels, _ = painted
    viewer.layers.selection.active = labels
    readout = CellReadoutWidget(viewer)
    label_image = np.asarray(labels.data)
    cell = 17
    y, x = np.argwhere(label_image == cell)[0]
    mouse_press_callbacks(viewer, read_only_mouse_event(type="mouse_press", position=(y, x)))
    row = list(tiny_results.instance_ids).index(cell)
    assert readout.cell["instance_id"] == cell
    assert readout.cell["obs_name"] == tiny_results.proportions.index[row]
    np.testing.assert_allclose(list(readout.cell["proportions"].values()),
                               tiny_results.proportions.iloc[row].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(list(readout.cell["modality_weights"].values()),
                               tiny_results.modality_weights.iloc[row].to_numpy(), rtol=1e-6)
    assert tiny_results.proportions.index[row] in readout.text.text()
    topic_ax, weight_ax = readout.canvas.figure.axes
    assert len(topic_ax.patches) == tiny_results.n_topics
    assert len(weight_ax.patches) == len(tiny_results.modality_names)

    # a click on the background keeps the last cell; an id the run lacks says so
    y0, x0 = np.argwhere(label_image == 0)[0]
    mouse_press_callbacks(viewer, read_only_mouse_event(type="mouse_press", position=(y0, x0)))
    assert readout.cell["instance_id"] == cell
    assert readout.show_cell(99_999) is None
    assert "99999 is not in run 'tiny'" in readout.text.text()


def test_elbo_curve_draws_the_training_history(painted, tiny_results):
    viewer, _, _ = painted
    dock = ElboCurveWidget(viewer)
    history = tiny_results.elbo_history
    epochs, values = dock.curves()["elbo_train"]
    assert epochs == list(history.index)
    np.testing.assert_allclose(values, history["elbo_train"])
    lines = dock.canvas.figure.axes[0].get_lines()
    assert len(lines) == history.shape[1]
    np.testing.assert_allclose(lines[0].get_ydata(), history["elbo_train"])
    assert f"{len(history)} epochs" in dock.message.text()


def test_docks_open_through_the_plugin_manifest(painted):
    viewer, _, _ = painted
    titles = {"Topic colours": TopicLegendWidget, "Topic inspector": TopicInspectorWidget,
              "Cell readout": CellReadoutWidget, "Training curve": ElboCurveWidget}
    for title, widget_cls in titles.items():
        _, widget = viewer.window.add_plugin_dock_widget("napari-topomics", title)
        assert isinstance(widget, widget_cls)
        assert widget.results is not None  # it found the painted run
