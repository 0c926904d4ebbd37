"""Screenshots of the key views from a shown viewer, checked for the colours they must show.

By default the pictures go to a temporary folder and use the tiny 2-epoch run. To refresh
the README's pictures (a better trained run, a few minutes)::

    TOPOMICS_SCREENSHOTS=docs/images xvfb-run -a python -m pytest -p no:cacheprovider \
        tests/plugin/test_plugin_screenshots.py
"""

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps

from napari_topomics.plugin._reader import sdata_to_layer_data
from napari_topomics.plugin._result_layers import add_result_layers, color_by

pytestmark = pytest.mark.gui
OUT_ENV = "TOPOMICS_SCREENSHOTS"


def _docs_run():
    """A 6-topic run trained long enough to recover the demo's planted domains."""
    import scvi

    from napari_topomics.datasets import demo
    from napari_topomics.io._inputs import load_tissue_input
    from napari_topomics.io._results import TopicResults
    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = 3  # a seed whose run uses all six topics
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata = demo(n_cells=1500, seed=0)
        tissue = load_tissue_input(sdata, "table")
        model = MultimodalAmortizedLDA.from_data(tissue.data, n_topics=6)
        model.train(max_epochs=150, batch_size=256, enable_progress_bar=False,
                    enable_model_summary=False, enable_checkpointing=False)
    results = TopicResults.from_model(
        model, run_name="demo", n_top=10, region=tissue.element.name,
        region_key=tissue.element.region_key, instance_key=tissue.element.instance_key,
        instance_ids=tissue.instance_ids, coordinates=tissue.coordinates, table=tissue.table,
    )
    return sdata, results


@pytest.fixture
def shots(tmp_path, tiny_demo, tiny_fit):
    out = os.environ.get(OUT_ENV)
    if out:
        return Path(out), *_docs_run()
    return tmp_path, tiny_demo, tiny_fit[1]


def _settle(viewer, qtbot):
    """Let Qt lay out new docks, then fit the tissue to the canvas left for it."""
    qtbot.wait(300)
    viewer.reset_view()
    qtbot.wait(100)


def test_screenshots_of_topic_maps_legend_and_inspector(make_napari_viewer, qtbot, shots):
    out, sdata, results = shots
    out.mkdir(parents=True, exist_ok=True)
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 1000)
    for data, kwargs, layer_type in sdata_to_layer_data(sdata):
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    for name in ("demo_image [membrane]", "demo_cells"):
        viewer.layers[name].visible = False
    viewer.layers[2].visible = False  # the marker stain channel
    labels, _ = add_result_layers(viewer, results, points=True)
    viewer.layers[-1].visible = False  # centroid points would hide the cells
    viewer.layers.selection.active = labels
    legend_dock, legend = viewer.window.add_plugin_dock_widget("napari-topomics", "Topic colours")
    _settle(viewer, qtbot)

    paths = {}
    paths["dominant"] = out / "plugin_dominant_topic.png"
    shot = viewer.screenshot(str(paths["dominant"]), canvas_only=False)
    palette = (colormaps["tab10"](np.arange(results.n_topics))[:, :3] * 255).round()
    shown = np.unique(results.dominant_topic.cat.codes)
    # each dominant topic's colour is painted (blended 0.9 over the DAPI stain)
    canvas = viewer.screenshot(canvas_only=True)
    for code in shown:
        near = np.abs(canvas[..., :3].astype(int) - palette[code]).max(axis=-1)
        assert (near <= 40).any(), f"topic_{code} colour missing from the canvas"
    assert shot.shape[0] >= 600 and shot.shape[1] >= 900

    topic = results.proportions.max().idxmax()  # the most pronounced topic
    color_by(labels, topic)
    _settle(viewer, qtbot)
    paths["topic"] = out / "plugin_topic_map.png"
    viewer.screenshot(str(paths["topic"]), canvas_only=False)
    assert legend.entries()[0].startswith(f"{topic} proportion")

    mod = results.modality_names[1]
    color_by(labels, f"weight:{mod}")
    _settle(viewer, qtbot)
    paths["weight"] = out / "plugin_modality_weight.png"
    viewer.screenshot(str(paths["weight"]), canvas_only=False)
    assert legend.entries()[0].startswith(f"{mod} weight")

    color_by(labels, "dominant_topic")
    readout_dock, readout = viewer.window.add_plugin_dock_widget("napari-topomics", "Cell readout")
    cell = int(results.instance_ids[len(results.instance_ids) // 2])
    readout.show_cell(cell)
    _settle(viewer, qtbot)
    paths["readout"] = out / "plugin_cell_readout.png"
    viewer.screenshot(str(paths["readout"]), canvas_only=False)
    assert readout.cell["instance_id"] == cell

    for dock in (legend_dock, readout_dock):
        viewer.window.remove_dock_widget(dock)
    _, inspector = viewer.window.add_plugin_dock_widget("napari-topomics", "Topic inspector")
    _, elbo = viewer.window.add_plugin_dock_widget("napari-topomics", "Training curve")
    inspector.topic.setCurrentText(topic)
    _settle(viewer, qtbot)
    paths["inspector"] = out / "plugin_inspector.png"
    viewer.screenshot(str(paths["inspector"]), canvas_only=False)
    assert len(inspector.canvas.figure.axes[0].patches) == min(10, len(
        results.top_features[inspector.modality.currentText()].query("topic == @topic")))
    assert elbo.curves()["elbo_train"][0] == list(results.elbo_history.index)
    for path in paths.values():
        assert path.stat().st_size > 10_000, path
