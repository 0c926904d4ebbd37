"""Training from the "Topic model" widget in a real viewer: a full run, Stop, a failed run,
a second run, and saving the run into a store."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from _plugin_fit_support import add_tissue, demo_sdata, make_widget, quick, wait_done
from qtpy.QtCore import Qt

from napari_topomics.plugin import _settings as settings
from napari_topomics.plugin._save import MODEL_KEY, write_run_to_store

pytestmark = pytest.mark.gui
RESULTS = "topomics_results"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.SETTINGS_DIR_ENV, str(tmp_path / "cfg"))


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _snapshot(sdata) -> tuple:
    table = sdata.tables["table"]
    return (sorted(sdata.tables), table.shape, float(table.X.sum()), list(table.obs.columns),
            sorted(table.uns), list(table.obsm), getattr(sdata, "path", None))


def _progress_descs() -> list[str]:
    from napari.utils import progress

    return [p.desc for p in progress._all_instances]


def test_full_run_paints_the_cells(viewer, qtbot, tmp_path):
    sdata = demo_sdata()
    before = _snapshot(sdata)
    labels = add_tissue(viewer)
    n_layers = len(viewer.layers)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=3, topics=3)
    values = []
    widget.progress_bar.valueChanged.connect(values.append)

    qtbot.mouseClick(widget.run_button, Qt.MouseButton.LeftButton)
    assert widget.job is not None
    assert not widget.run_button.isEnabled() and widget.stop_button.isEnabled()
    assert not widget.form.isEnabled() and not widget.save_button.isEnabled()
    # not in napari's activity dock: its spinner would repaint the window while training
    assert not any(d.startswith("Topic model") for d in _progress_descs())
    wait_done(qtbot, widget)

    assert widget.result.ok, widget.message.text()
    assert values and values == sorted(values) and widget.progress_bar.value() == 1000
    assert "-ELBO/cell" in widget.readout.text() and widget.curve.batch
    assert widget.message.text().startswith("Done: run 'topomics', 3 topics on")
    assert widget.run_button.isEnabled() and not widget.stop_button.isEnabled()
    assert widget.save_button.isEnabled() and widget.form.isEnabled()
    assert not any(d.startswith("Topic model") for d in _progress_descs())

    assert len(viewer.layers) == n_layers  # painted in place, no new layer
    results = labels.metadata[RESULTS]
    table = sdata.tables["table"]
    assert results.n_topics == 3 and results.region == "demo_cells"
    assert list(results.proportions.index) == list(table.obs_names)
    np.testing.assert_allclose(results.proportions.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(results.instance_ids, table.obs["cell_id"].to_numpy())
    assert set(labels.features["index"]) == set(table.obs["cell_id"])
    assert labels.metadata[MODEL_KEY].n_topics == 3
    assert _snapshot(sdata) == before  # the user's data is untouched


def test_second_run_reuses_the_layers(viewer, qtbot, tmp_path):
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=2, topics=3)
    widget.run()
    wait_done(qtbot, widget)
    first = labels.metadata[RESULTS]
    names = [ly.name for ly in viewer.layers]
    widget.form.seed.setValue(1)
    widget.form.points.setChecked(True)
    widget.run()
    wait_done(qtbot, widget)
    second = labels.metadata[RESULTS]
    assert second is not first
    assert not np.allclose(second.proportions.to_numpy(), first.proportions.to_numpy())
    added = [ly.name for ly in viewer.layers if ly.name not in names]
    assert len(added) == 1 and "centroids" in added[0]  # only the points asked for
    widget.run()  # third run: nothing new at all
    wait_done(qtbot, widget)
    assert [ly.name for ly in viewer.layers] == names + added


def test_stop_mid_run_changes_nothing(viewer, qtbot, tmp_path):
    labels = add_tissue(viewer)
    colormap = labels.colormap
    metadata = dict(labels.metadata)
    n_layers = len(viewer.layers)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=2000, topics=3, batch_size=16)
    widget.run()
    job = widget.job
    qtbot.waitUntil(lambda: widget.progress_bar.value() > 0, timeout=60_000)
    assert widget.job is job
    qtbot.mouseClick(widget.stop_button, Qt.MouseButton.LeftButton)
    assert not widget.stop_button.isEnabled()
    assert widget.message.text().startswith("Stopping")
    assert wait_done(qtbot, widget, timeout=30) < 10

    assert job.stop_polls == 1  # training ended at the first minibatch after Stop
    assert widget.result.stopped and widget.result.outcome.stopped
    assert job.last_event.step < job.last_event.n_steps
    assert "nothing was changed" in widget.message.text()
    assert len(viewer.layers) == n_layers and labels.colormap is colormap
    assert dict(labels.metadata) == metadata and RESULTS not in labels.metadata
    assert widget.run_button.isEnabled() and not widget.save_button.isEnabled()
    assert not any(d.startswith("Topic model") for d in _progress_descs())


def test_worker_quit_stops_training(viewer, qtbot, tmp_path):
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=2000, topics=3, batch_size=16)
    widget.run()  # napari quitting asks every worker to quit
    job = widget.job
    qtbot.waitUntil(lambda: widget.progress_bar.value() > 0, timeout=60_000)
    widget.worker.quit()
    assert wait_done(qtbot, widget, timeout=30) < 10
    assert job.stop_requested  # the training thread stops at its next minibatch
    qtbot.waitUntil(lambda: job.stop_polls == 1, timeout=10_000)
    assert widget.message.text() == "Training was cancelled; nothing was changed."
    assert RESULTS not in labels.metadata and widget.run_button.isEnabled()


def test_failed_run_is_a_message_not_a_traceback(viewer, qtbot, tmp_path, monkeypatch):
    from napari.utils.notifications import notification_manager

    import napari_topomics.workflow as workflow

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory\ndetails")

    monkeypatch.setattr(workflow, "fit_tissue", broken)
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    errors = []
    notification_manager.notification_ready.connect(errors.append)
    widget.run()
    wait_done(qtbot, widget)
    expected = "Training failed: RuntimeError: CUDA error: out of memory"
    assert widget.message.text() == expected
    assert [n.message for n in errors] == [expected]
    assert not hasattr(errors[0], "exception")  # a plain notification: no traceback button
    assert RESULTS not in labels.metadata and widget.run_button.isEnabled()


def _store(tmp_path):
    from spatialdata import SpatialData

    sdata = demo_sdata()
    path = tmp_path / "tissue.zarr"
    SpatialData(labels={"demo_cells": sdata["demo_cells"]}, tables=dict(sdata.tables)).write(path)
    return path


def test_save_to_store_asks_before_replacing(viewer, qtbot, tmp_path, monkeypatch):
    from napari_topomics.io._store import list_runs, read_run
    from napari_topomics.plugin._reader import read_layers

    store = _store(tmp_path)
    for data, kwargs, layer_type in read_layers(str(store)):
        viewer._add_layer_from_data(data, kwargs, layer_type)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=2, topics=3)
    widget.run()
    wait_done(qtbot, widget)
    assert widget.save() == "topomics_topomics"
    saved = widget.saved["results"]
    assert list_runs(store) == ["topomics"]
    back = read_run(store, "topomics")
    np.testing.assert_allclose(back.proportions.to_numpy(), saved.proportions.to_numpy(),
                               rtol=1e-6)
    assert widget.message.text().startswith("Saved run 'topomics' as table 'topomics_topomics'")

    asked = []
    monkeypatch.setattr(widget, "_ask_overwrite", lambda run, where: asked.append(run) or False)
    assert widget.save() is None and asked == ["topomics"]
    assert widget.message.text().startswith("Not saved")
    monkeypatch.setattr(widget, "_ask_overwrite", lambda run, where: True)
    assert widget.save() == "topomics_topomics"

    labels = next(ly for ly in viewer.layers if RESULTS in ly.metadata)
    with pytest.raises(Exception, match="already exists"):  # the writer never replaces
        write_run_to_store(str(store), labels.data, labels.as_layer_data_tuple()[1])

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(store) in str(p)
                        else real_access(p, mode))
    assert widget.save() is None
    assert "is not writable" in widget.message.text()


def test_save_demo_without_store_writes_a_new_one(viewer, qtbot, tmp_path, monkeypatch):
    import spatialdata

    sdata = demo_sdata()
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=2, topics=3)
    widget.form.run_name.setText("demo-run")
    widget.run()
    wait_done(qtbot, widget)
    target = tmp_path / "new.zarr"
    monkeypatch.setattr(widget, "_ask_new_store", lambda: str(target))
    assert widget.save() == "topomics_demo-run"
    back = spatialdata.read_zarr(target)
    assert sorted(back.tables) == ["table", "topomics_demo-run"]
    assert "demo_cells" in back.labels and getattr(sdata, "path", None) is None

    # napari's File > Save Selected Layers with the plugin's npe2 writer does the same
    via_writer = tmp_path / "writer.zarr"
    viewer.layers.selection = {labels}
    written = viewer.layers.save(str(via_writer), selected=True, plugin="napari-topomics")
    assert written == [str(via_writer)]
    back = spatialdata.read_zarr(via_writer)
    assert sorted(back.tables) == ["table", "topomics_demo-run"]
    np.testing.assert_allclose(back.tables["topomics_demo-run"].X,
                               widget.saved["results"].proportions.to_numpy(), rtol=1e-6)


def test_training_repaints_the_window_only_with_progress(make_napari_viewer, qtbot, tmp_path):
    """While training, the shown window repaints only when progress arrives.

    Every repaint of napari's main window runs with the GIL held (software GL under Xvfb
    takes ~9 ms), so a spinner animating at ~30 frames/s slowed the fit itself ~2x.
    """
    from qtpy.QtCore import QEvent, QObject

    viewer = make_napari_viewer(show=True)
    add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=5000, topics=3, batch_size=16)
    counts = {"updates": 0, "events": 0}

    class CountUpdates(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.UpdateRequest:
                counts["updates"] += 1
            return False

    window = viewer.window._qt_window
    widget.run()
    qtbot.waitUntil(lambda: widget.progress_bar.value() > 0, timeout=60_000)
    widget.worker.yielded.connect(lambda _ev: counts.__setitem__("events", counts["events"] + 1))
    counter = CountUpdates()
    window.installEventFilter(counter)
    start = time.perf_counter()
    qtbot.wait(4000)
    window.removeEventFilter(counter)
    seconds = time.perf_counter() - start
    widget.stop()
    wait_done(qtbot, widget, timeout=30)
    assert counts["events"] >= 2  # progress did arrive meanwhile
    per_second = counts["updates"] / seconds
    assert per_second <= 4 / widget.progress_interval, counts  # a spinner: ~30/s
    assert counts["updates"] <= 4 * counts["events"] + 2, counts
