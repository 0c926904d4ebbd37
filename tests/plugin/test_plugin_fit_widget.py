"""The "Topic model" widget in a real viewer: defaults, remembered values, preferences, and
Run disabled with a message saying why for each bad choice."""

from __future__ import annotations

import numpy as np
import pytest
from _plugin_fit_support import add_tissue, demo_sdata, make_widget

from napari_topomics.plugin import _settings as settings
from napari_topomics.workflow import available_devices

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.SETTINGS_DIR_ENV, str(tmp_path / "cfg"))


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _combo_items(combo) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def test_defaults_on_the_demo_tissue(viewer, tmp_path):
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    form = widget.form
    assert widget.current_layer() is labels
    assert (form.table.currentText(), form.counts_layer.currentText()) == ("table", "X")
    assert _combo_items(form.device) == ["auto", *available_devices()]
    assert form.device.currentText() == "auto"
    values = widget.values()
    assert (values["n_topics"], values["n_epochs"], values["seed"], values["threads"]) == (
        10, 100, 0, 1)
    assert values["spatial"] is False and values["run_name"] == "topomics"
    assert not form.advanced.isExpanded()
    rows = form.rows
    assert list(rows) == ["rna", "protein", "atac"]
    assert [rows[m].likelihood.currentText() for m in rows] == [
        "auto (gamma_poisson)", "auto (multinomial)", "auto (bernoulli)"]
    assert all(rows[m].check.isChecked() for m in rows)
    assert widget.problem is None and widget.run_button.isEnabled()
    assert not widget.stop_button.isEnabled() and not widget.save_button.isEnabled()
    n = demo_sdata().tables["table"].n_obs
    assert widget.status.text().startswith(f"Ready: 10 topics on {n} cells")


def test_values_persist_between_sessions(viewer, tmp_path):
    add_tissue(viewer)
    path = tmp_path / "v.json"
    first = make_widget(viewer, path)
    form = first.form
    form.n_topics.setValue(7)
    form.n_epochs.setValue(42)
    form.seed.setValue(11)
    form.run_name.setText("second_try")
    form.batch_size.setValue(256)
    form.weight_mode.setCurrentText("equal")
    form.rows["atac"].check.setChecked(False)
    form.rows["protein"].likelihood.setCurrentText("gamma_poisson")
    first.save_values()
    saved = settings.load_values(path)
    assert saved["n_topics"] == 7 and saved["modalities_off"] == ["atac"]

    second = make_widget(viewer, path)
    values = second.values()
    assert (values["n_topics"], values["n_epochs"], values["seed"]) == (7, 42, 11)
    assert (values["run_name"], values["batch_size"], values["weight_mode"]) == (
        "second_try", 256, "equal")
    assert values["modalities"] == ["rna", "protein"]
    assert values["likelihoods"]["protein"] == "gamma_poisson"
    assert second.form.rows["protein"].likelihood.currentText() == "gamma_poisson"


def test_remembered_device_missing_here_falls_back_to_auto(viewer, tmp_path):
    missing = [d for d in ("cuda", "mps") if d not in available_devices()]
    if not missing:
        pytest.skip("every device is available on this machine")
    path = tmp_path / "v.json"
    settings.save_values({"device": missing[0], "n_topics": 5}, path)
    add_tissue(viewer)
    widget = make_widget(viewer, path)
    assert widget.values()["device"] == "auto" and widget.values()["n_topics"] == 5


def test_preferences_set_device_and_threads(viewer, tmp_path, plugin_settings, npe2pm):
    from napari.settings import get_plugin_settings
    from npe2 import PluginManifest

    npe2pm.register(PluginManifest.from_distribution("napari-topomics"))
    prefs = get_plugin_settings("napari-topomics").fitting
    prefs.default_device = "cpu"
    prefs.torch_threads = 2
    add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    assert (widget.values()["device"], widget.values()["threads"]) == ("cpu", 2)
    prefs.torch_threads = 3  # changed in napari's Preferences while the widget is open
    assert widget.values()["threads"] == 3


def _expect_disabled(widget, *phrases: str) -> None:
    assert not widget.run_button.isEnabled()
    for phrase in phrases:
        assert phrase in widget.status.text(), widget.status.text()
    assert "\n" not in widget.status.text()


def test_no_layer_then_a_layer_without_table(viewer, tmp_path):
    widget = make_widget(viewer, tmp_path / "v.json")
    _expect_disabled(widget, "No labels or points layer")
    viewer.add_labels(np.zeros((8, 8), dtype=np.uint32), name="hand drawn")
    _expect_disabled(widget, "Layer 'hand drawn' has no table")
    labels = add_tissue(viewer)
    widget.form.layer.setCurrentText(labels.name)
    assert widget.run_button.isEnabled(), widget.status.text()
    labels.name = "cells renamed"
    assert widget.form.layer.currentText() == "cells renamed"
    assert widget.current_layer() is labels


def test_ids_not_matching(viewer, tmp_path):
    labels = add_tissue(viewer)
    shifted = np.asarray(labels.data).copy()
    shifted[shifted > 0] += 10_000
    viewer.add_labels(shifted, name="other segmentation", metadata=dict(labels.metadata))
    widget = make_widget(viewer, tmp_path / "v.json")
    widget.form.layer.setCurrentText("other segmentation")
    n = demo_sdata().tables["table"].n_obs
    _expect_disabled(widget, f"{n} of {n} ids of table 'table'", "'other segmentation'")
    widget.form.layer.setCurrentText(labels.name)
    assert widget.run_button.isEnabled()


def test_bad_options_disable_run_with_a_reason(viewer, tmp_path):
    add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    form = widget.form
    for row in form.rows.values():
        row.check.setChecked(False)
    _expect_disabled(widget, "No modality chosen", "'rna', 'protein', 'atac'")
    form.rows["protein"].check.setChecked(True)
    assert widget.run_button.isEnabled()

    form.rows["protein"].likelihood.setCurrentText("bernoulli")
    _expect_disabled(widget, "'bernoulli' needs 0/1 values", "'protein'")
    form.rows["protein"].likelihood.setCurrentText("multinomial")
    assert widget.run_button.isEnabled()

    form.spatial.setChecked(True)
    form.spatial_options.graph.setCurrentIndex(form.spatial_options.graph.findData("radius"))
    _expect_disabled(widget, "radius neighbour graph needs a radius")
    widget.run()  # refused: nothing starts
    assert widget.job is None and widget.worker is None
    form.spatial.setChecked(False)
    assert widget.run_button.isEnabled()  # graph options only matter for a spatial fit

    form.run_name.setText("no spaces please")
    _expect_disabled(widget, "Invalid run name 'no spaces please'")
    form.run_name.setText("ok-name")
    assert widget.run_button.isEnabled()
