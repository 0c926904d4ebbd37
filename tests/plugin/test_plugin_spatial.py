"""Spatial fitting from the "Topic model" widget and the spatial coherence in the docks:
graph controls enabled by the Spatial check box, a radius graph refused without a radius,
the values mapped to FitConfig and remembered, a spatial fit run to the end, and each
topic's Moran's I shown by the inspector (hidden for runs without it)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _plugin_fit_support import add_tissue, demo_sdata, make_widget, quick, wait_done
from qtpy.QtCore import Qt

from napari_topomics.plugin import _settings as settings
from napari_topomics.plugin._fit_options import build_config, source_from_layer

pytestmark = pytest.mark.gui
RESULTS = "topomics_results"
N_CELLS = 300


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.SETTINGS_DIR_ENV, str(tmp_path / "cfg"))


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _pick(combo, value) -> None:
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)


def _items(combo) -> list[tuple[str, str]]:
    return [(combo.itemData(i), combo.itemText(i)) for i in range(combo.count())]


def _row_shown(options, field) -> bool:
    return options.rows.isRowVisible(field)


def test_spatial_enables_the_graph_controls_and_keeps_run(viewer, tmp_path):
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    form, opts = widget.form, widget.form.spatial_options
    assert not form.spatial.isChecked() and not opts.options.isEnabled()
    assert [v for v, _ in _items(opts.spatial_mode)] == ["gcn", "sgc"]
    assert dict(_items(opts.spatial_mode))["gcn"] == "Graph attention (GCN)"
    assert [v for v, _ in _items(opts.graph)] == ["knn", "radius", "delaunay"]
    assert opts.n_neighbors.value() == 6
    for control in (form.spatial, opts.spatial_mode, opts.graph, opts.n_neighbors, opts.radius):
        assert control.toolTip()

    form.spatial.setChecked(True)
    assert opts.options.isEnabled()
    assert widget.run_button.isEnabled(), widget.status.text()
    assert _row_shown(opts, opts.n_neighbors) and not _row_shown(opts, opts.radius)
    _pick(opts.spatial_mode, "sgc")
    opts.n_neighbors.setValue(9)
    values = widget.values()
    assert (values["spatial"], values["spatial_mode"], values["graph"]) == (True, "sgc", "knn")
    assert values["n_neighbors"] == 9 and values["radius"] is None
    config = build_config(values, source_from_layer(labels))
    assert (config.spatial, config.spatial_mode, config.graph) == (True, "sgc", "knn")
    assert (config.n_neighbors, config.radius) == (9, None)
    config.validate()

    _pick(opts.graph, "delaunay")  # neither a count nor a radius to choose
    assert not _row_shown(opts, opts.n_neighbors) and not _row_shown(opts, opts.radius)
    assert widget.run_button.isEnabled()
    assert build_config(widget.values(), source_from_layer(labels)).graph == "delaunay"
    form.spatial.setChecked(False)
    assert not opts.options.isEnabled() and widget.run_button.isEnabled()
    assert build_config(widget.values(), source_from_layer(labels)).spatial is False


def test_radius_graph_needs_a_positive_radius(viewer, tmp_path):
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    form, opts = widget.form, widget.form.spatial_options
    form.spatial.setChecked(True)
    _pick(opts.graph, "radius")
    assert _row_shown(opts, opts.radius) and not _row_shown(opts, opts.n_neighbors)
    assert not widget.run_button.isEnabled()
    assert "radius neighbour graph needs a radius" in widget.status.text()
    widget.run()  # refused: nothing starts
    assert widget.job is None

    for text, phrase in (("-2", "greater than 0; got -2"), ("0", "greater than 0; got 0"),
                         ("far", "Radius 'far' is not a number")):
        opts.radius.setText(text)
        assert not widget.run_button.isEnabled() and phrase in widget.status.text(), text
    opts.radius.setText(" 2.5 ")
    assert widget.run_button.isEnabled(), widget.status.text()
    config = build_config(widget.values(), source_from_layer(labels))
    assert (config.graph, config.radius) == ("radius", 2.5)
    opts.radius.setText("")
    assert not widget.run_button.isEnabled()
    form.spatial.setChecked(False)  # a plain fit ignores the graph options
    assert widget.run_button.isEnabled()


def test_spatial_values_are_remembered(viewer, tmp_path):
    add_tissue(viewer)
    path = tmp_path / "v.json"
    first = make_widget(viewer, path)
    opts = first.form.spatial_options
    first.form.spatial.setChecked(True)
    _pick(opts.spatial_mode, "sgc")
    _pick(opts.graph, "radius")
    opts.radius.setText("3.5")
    first.save_values()
    saved = settings.load_values(path)
    assert (saved["spatial"], saved["spatial_mode"], saved["graph"], saved["radius"]) == (
        True, "sgc", "radius", 3.5)

    second = make_widget(viewer, path)
    values = second.values()
    assert (values["spatial"], values["spatial_mode"], values["graph"]) == (True, "sgc", "radius")
    assert values["radius"] == 3.5 and second.form.spatial_options.options.isEnabled()
    assert second.run_button.isEnabled(), second.status.text()


def _spatial_run(viewer, qtbot, tmp_path):
    """(labels, widget, inspector) after a 2-epoch spatial (GCN, kNN) fit on 300 demo
    cells; the inspector was opened before the run."""
    from napari_topomics.plugin._inspector import TopicInspectorWidget

    labels = add_tissue(viewer, demo_sdata(n_cells=N_CELLS))
    widget = make_widget(viewer, tmp_path / "v.json")
    inspector = TopicInspectorWidget(viewer)
    assert inspector.results is None and inspector.coherence.isHidden()
    quick(widget, epochs=2, topics=3)
    widget.form.spatial.setChecked(True)
    assert widget.run_button.isEnabled(), widget.status.text()
    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.job is not None
    wait_done(qtbot, widget, timeout=120)
    return labels, widget, inspector


def test_spatial_fit_paints_and_the_inspector_shows_morans_i(viewer, qtbot, tmp_path):
    from napari_topomics.plugin._legend import TopicLegendWidget
    from napari_topomics.plugin._result_layers import color_by

    labels, widget, inspector = _spatial_run(viewer, qtbot, tmp_path)
    assert widget.result.ok, widget.message.text()
    assert widget.message.text().startswith("Done: run 'topomics', 3 topics on")
    assert widget.progress_bar.value() == 1000
    results = labels.metadata[RESULTS]
    table = demo_sdata(n_cells=N_CELLS).tables["table"]
    assert results.n_topics == 3 and list(results.proportions.index) == list(table.obs_names)
    np.testing.assert_allclose(results.proportions.sum(axis=1), 1.0, rtol=1e-5)
    assert results.provenance["spatial"] is True
    assert (results.provenance["spatial_mode"], results.provenance["graph"]) == ("gcn", "knn")
    coherence = results.spatial_coherence
    assert list(coherence.index) == results.topic_names
    assert np.isfinite(coherence.to_numpy()).all()

    assert inspector.results is results  # a run painted in place on the active layer
    panel = inspector.coherence
    assert not panel.isHidden()
    assert panel.title() == "Spatial coherence (Moran's I)"
    assert panel.rows() == [(t, f"{coherence[t]:.3f}") for t in results.topic_names]
    assert f"Mean over 3 topics: {coherence.mean():.3f}" in panel.mean.text()
    assert "spatial model (gcn) · 6-nearest-neighbour graph" in panel.mean.text()

    color_by(labels, "topic_2")  # the shown topic's row is selected, its value in the title
    rows = {i.row() for i in panel.table.selectedIndexes()}
    assert rows == {2}
    title = inspector.canvas.figure.axes[0].get_title()
    assert f"Moran's I {coherence['topic_2']:.2f}" in title
    panel.table.cellClicked.emit(1, 0)  # clicking a row picks that topic
    assert inspector.topic.currentText() == "topic_1"

    color_by(labels, "dominant_topic")
    legend = TopicLegendWidget(viewer)
    tips = [legend.entries_list.item(i).toolTip() for i in range(results.n_topics)]
    assert tips == [f"Spatial coherence (Moran's I): {coherence[t]:.3f}"
                    for t in results.topic_names]


def test_inspector_hides_the_coherence_of_runs_without_it(viewer, tiny_demo, tiny_results):
    from napari_topomics.plugin._inspector import TopicInspectorWidget
    from napari_topomics.plugin._reader import sdata_to_layer_data
    from napari_topomics.plugin._result_layers import add_result_layers

    for data, kwargs, layer_type in sdata_to_layer_data(tiny_demo):
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)
    plain = dataclasses.replace(tiny_results, spatial_coherence=None)
    labels = add_result_layers(viewer, plain, viewer.layers["demo_cells"])[0]
    inspector = TopicInspectorWidget(viewer)
    assert inspector.results is plain and inspector.coherence.isHidden()
    assert inspector.coherence.rows() == []
    assert "Moran's I" not in inspector.canvas.figure.axes[0].get_title()

    values = [0.5, np.nan, -0.1, 0.2]
    with_values = dataclasses.replace(tiny_results, spatial_coherence=values)
    add_result_layers(viewer, with_values, labels)
    assert inspector.results is with_values and not inspector.coherence.isHidden()
    assert [v for _, v in inspector.coherence.rows()] == ["0.500", "n/a", "-0.100", "0.200"]
    assert f"{np.nanmean(values):.3f}" in inspector.coherence.mean.text()
