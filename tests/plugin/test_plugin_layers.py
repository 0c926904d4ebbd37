"""Results as layers: colours of known label ids, transparency, features, recolouring, reuse."""

import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._results import TopicResults
from napari_topomics.plugin._reader import sdata_to_layer_data
from napari_topomics.plugin._result_layers import add_result_layers, color_by, restore_layer

pytestmark = pytest.mark.gui


def _add(viewer, layer_data):
    for data, kwargs, layer_type in layer_data:
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)


@pytest.fixture
def demo_viewer(make_napari_viewer, tiny_demo):
    viewer = make_napari_viewer()
    _add(viewer, sdata_to_layer_data(tiny_demo))
    return viewer


def _expected_dominant(results, ids):
    """tab10 colour of each id's argmax topic, computed from the proportions directly."""
    rows = pd.Index(results.instance_ids).get_indexer(ids)
    codes = results.proportions.to_numpy().argmax(axis=1)[rows]
    return colormaps["tab10"](codes)


def _subset(results, keep):
    """The same run restricted to the rows ``keep`` (a boolean mask)."""
    return TopicResults(
        run_name=results.run_name, proportions=results.proportions[keep],
        modality_weights=results.modality_weights[keep], top_features=results.top_features,
        elbo_history=results.elbo_history, provenance=results.provenance,
        region=results.region, region_key=results.region_key,
        instance_key=results.instance_key, instance_ids=results.instance_ids[keep],
        coordinates=results.coordinates[keep],
    )


def test_labels_coloured_by_dominant_topic_with_missing_ids_transparent(
    demo_viewer, tiny_results
):
    labels = demo_viewer.layers["demo_cells"]
    keep = np.ones(len(tiny_results.proportions), bool)
    keep[:5] = False  # cells 1..5 are in the labels image but not in this run
    run = _subset(tiny_results, keep)
    layers = add_result_layers(demo_viewer, run, labels)
    assert layers == [labels]
    ids = run.instance_ids[:20]
    got = np.array([labels.get_color(int(i)) for i in ids])
    np.testing.assert_allclose(got, _expected_dominant(run, ids), atol=1e-6)
    for missing in [*tiny_results.instance_ids[:5], 10_000]:
        assert labels.get_color(int(missing))[3] == 0.0
    assert labels.get_color(0) is None  # background
    # drawing the slice with ids absent from the run does not fail
    demo_viewer.reset_view()
    assert demo_viewer.screenshot(canvas_only=True).shape[2] == 4
    restore_layer(labels)
    assert "topomics_results" not in labels.metadata
    assert labels.get_color(int(ids[0]))[3] > 0  # napari's own colours are back


def test_features_table_has_label_ids_and_every_value(demo_viewer, tiny_results):
    labels = demo_viewer.layers["demo_cells"]
    add_result_layers(demo_viewer, tiny_results, labels)
    features = labels.features
    mods = tiny_results.modality_names
    assert list(features.columns) == [
        "index", *tiny_results.topic_names, "dominant_topic", "topic_entropy",
        *(f"weight_{m}" for m in mods),
    ]
    np.testing.assert_array_equal(features["index"], tiny_results.instance_ids)
    np.testing.assert_allclose(features["topic_1"], tiny_results.proportions["topic_1"])
    np.testing.assert_allclose(
        features[f"weight_{mods[0]}"], tiny_results.modality_weights[mods[0]]
    )
    # hovering a cell shows its values: find a pixel of label 7
    label_image = np.asarray(labels.data)
    y, x = np.argwhere(label_image == 7)[0]
    status = labels.get_status((y, x), world=True)["coordinates"]
    row = list(tiny_results.instance_ids).index(7)
    assert f"topic_0: {tiny_results.proportions['topic_0'].iloc[row]:.3g}" in status
    assert "dominant_topic" in status


def test_recolouring_by_topic_and_weight_never_refits(demo_viewer, tiny_fit, monkeypatch):
    model, results = tiny_fit
    for name in ("train", "get_cell_topic_dist", "get_modality_weights",
                 "get_feature_topic_dist", "get_top_features_per_topic"):
        monkeypatch.setattr(model, name, _forbidden(name))
    labels = demo_viewer.layers["demo_cells"]
    add_result_layers(demo_viewer, results, labels)
    ids = results.instance_ids[:30]

    color_by(labels, "topic_2")
    values = results.proportions["topic_2"].to_numpy()[:30]
    expected = colormaps["viridis"](values / results.proportions["topic_2"].max())
    got = np.array([labels.get_color(int(i)) for i in ids])
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert labels.metadata["topomics_colouring"] == "topic_2"

    mod = results.modality_names[1]
    color_by(labels, f"weight:{mod}")
    w = results.modality_weights[mod].to_numpy()
    expected = colormaps["cividis"]((w[:30] - w.min()) / (w.max() - w.min()))
    got = np.array([labels.get_color(int(i)) for i in ids])
    np.testing.assert_allclose(got, expected, atol=1e-6)

    with pytest.raises(TopomicsInputError, match="topic_9.*dominant_topic"):
        color_by(labels, "topic_9")
    with pytest.raises(TopomicsInputError, match="demo_image"):
        color_by(demo_viewer.layers["demo_image [DAPI]"], "topic_0")


def _forbidden(name):
    def call(*args, **kwargs):
        raise AssertionError(f"recolouring called model.{name}")

    return call


def test_new_layers_are_reused_not_duplicated(demo_viewer, tiny_results):
    source = demo_viewer.layers["demo_cells"]
    first = add_result_layers(demo_viewer, tiny_results, points=True)
    names = [layer.name for layer in demo_viewer.layers]
    assert [layer.name for layer in first] == ["tiny: demo_cells", "tiny: demo_cells centroids"]
    assert first[0].data is source.data  # the label image is shared, not copied
    assert "topomics_results" not in source.metadata  # the user's layer is untouched
    assert demo_viewer.layers.selection.active is first[0]

    second = add_result_layers(demo_viewer, tiny_results, points=True, colouring="topic_0")
    assert [layer.name for layer in demo_viewer.layers] == names
    assert all(a is b for a, b in zip(first, second, strict=True))

    points = second[1]
    np.testing.assert_allclose(points.data, tiny_results.coordinates[["y", "x"]].to_numpy())
    values = tiny_results.proportions["topic_0"].to_numpy()
    expected = colormaps["viridis"](values / values.max())
    np.testing.assert_allclose(points.face_color, expected, atol=1e-6)
    # recolouring the labels recolours the run's centroid points too
    color_by(second[0], "dominant_topic")
    codes = tiny_results.proportions.to_numpy().argmax(axis=1)
    np.testing.assert_allclose(points.face_color, colormaps["tab10"](codes), atol=1e-6)
    assert points.metadata["topomics_colouring"] == "dominant_topic"

    other = TopicResults(**{**vars(tiny_results), "run_name": "other"})
    add_result_layers(demo_viewer, other)
    assert len(demo_viewer.layers) == len(names) + 1  # a different run gets its own layer


def test_run_without_a_labels_layer_falls_back_to_points(make_napari_viewer, tiny_results):
    viewer = make_napari_viewer()
    layers = add_result_layers(viewer, tiny_results)
    assert [type(layer).__name__ for layer in layers] == ["Points"]
    assert len(layers[0].data) == len(tiny_results.proportions)
    assert list(layers[0].features["index"]) == list(tiny_results.instance_ids)


def test_a_run_that_cannot_be_painted_changes_nothing(demo_viewer, tiny_results):
    labels = demo_viewer.layers["demo_cells"]
    plain_points = demo_viewer.add_points(np.array([[5.0, 5.0], [9.0, 9.0]]), name="mine")
    before_colours = np.array(plain_points.face_color, copy=True)
    n_layers = len(demo_viewer.layers)
    with pytest.raises(TopomicsInputError, match="'mine' has no features column 'index'"):
        add_result_layers(demo_viewer, tiny_results, plain_points)
    np.testing.assert_array_equal(plain_points.face_color, before_colours)
    assert "topomics_results" not in plain_points.metadata
    no_ids = TopicResults(**{**vars(tiny_results), "region": None, "instance_ids": None})
    colormap = labels.colormap
    with pytest.raises(TopomicsInputError, match="no instance ids"):
        add_result_layers(demo_viewer, no_ids, labels)
    assert labels.colormap is colormap and "topomics_results" not in labels.metadata
    with pytest.raises(TopomicsInputError, match="Cannot colour run 'tiny' by 'topic_7'"):
        add_result_layers(demo_viewer, tiny_results, labels, colouring="topic_7")
    assert len(demo_viewer.layers) == n_layers and "topomics_results" not in labels.metadata
