"""The "Choose topics" section of the Topic model widget, in a real viewer: a sweep draws its
curves, recommends a K and sets the Topics box; a fitted K paints without training; Stop keeps
the fits finished so far; a bad range is refused naming the box."""

from __future__ import annotations

import numpy as np
import pytest
from _plugin_fit_support import add_tissue, demo_sdata, make_widget, quick
from qtpy.QtCore import Qt

from napari_topomics.plugin import _settings as settings

pytestmark = pytest.mark.gui
RESULTS = "topomics_results"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.SETTINGS_DIR_ENV, str(tmp_path / "cfg"))


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _sweep_widget(viewer, tmp_path, topics: str, epochs: int = 3):
    labels = add_tissue(viewer)
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=epochs, topics=7)
    section = widget.sweep_section
    widget.choose_topics.expand(animate=False)
    section.topics.setText(topics)
    section.seeds.setValue(2)
    section.processes.setValue(1)
    return labels, widget, section


def _wait(qtbot, section, timeout: float = 90.0) -> None:
    qtbot.waitUntil(lambda: not section.busy, timeout=int(timeout * 1000))


def test_sweep_recommends_sets_topics_and_paints_without_training(
    viewer, qtbot, tmp_path, monkeypatch
):
    labels, widget, section = _sweep_widget(viewer, tmp_path, "2:3")
    assert section.sweep_button.isEnabled() and not section.paint_button.isEnabled()
    assert section.canvas.isHidden()

    qtbot.mouseClick(section.sweep_button, Qt.MouseButton.LeftButton)
    assert section.busy and not widget.run_button.isEnabled()
    assert section.stop_button.isEnabled() and not section.sweep_button.isEnabled()
    _wait(qtbot, section)

    run = section.run
    assert run is not None and not run.stopped
    assert sorted(zip(run.sweep.frame["K"], run.sweep.frame["seed"], strict=True)) == [
        (2, 0), (2, 1), (3, 0), (3, 1)]
    k = run.sweep.recommended
    assert k in (2, 3)
    assert widget.form.n_topics.value() == k  # the Topics box follows the recommendation
    assert f"Recommended: {k} topics. Why: " in section.recommendation.text()
    assert "stability" in section.recommendation.text()
    assert [section.fitted.itemText(i) for i in range(section.fitted.count())] == ["2", "3"]
    assert section.fitted.currentText() == str(k)
    assert section.progress_bar.value() == 1000
    assert not section.canvas.isHidden()
    ppl, stab = section.canvas.figure.axes
    assert list(stab.lines[0].get_xdata()) == [2, 3]  # the stability curve over K
    marked = [ln for ln in stab.lines if list(ln.get_xdata()) == [k, k]]
    assert marked, "the recommended K is marked"
    assert widget.run_button.isEnabled() and section.paint_button.isEnabled()
    assert RESULTS not in labels.metadata  # a sweep paints nothing by itself

    from napari_topomics.models import MultimodalAmortizedLDA

    def no_training(*args, **kwargs):
        raise AssertionError("painting a fitted K must not train")

    monkeypatch.setattr(MultimodalAmortizedLDA, "train", no_training)
    other = 5 - k  # the K that was not recommended
    section.fitted.setCurrentText(str(other))
    qtbot.mouseClick(section.paint_button, Qt.MouseButton.LeftButton)
    _wait(qtbot, section)

    results = labels.metadata[RESULTS]
    table = demo_sdata().tables["table"]
    assert results.n_topics == other
    assert list(results.proportions.index) == list(table.obs_names)  # held-out cells too
    np.testing.assert_allclose(results.proportions.sum(axis=1), 1.0, rtol=1e-5)
    model = run.sweep.best_model(other)
    own = model.get_cell_topic_dist(return_dataframe=True)  # the fit cells, as fitted
    np.testing.assert_allclose(results.proportions.loc[own.index].to_numpy(), own.to_numpy(),
                               atol=1e-4)
    assert results.provenance["topic_sweep"]["recommended"] == k
    assert widget.saved is not None and widget.save_button.isEnabled()
    assert "Done: run" in widget.message.text()


def test_stop_keeps_finished_fits(viewer, qtbot, tmp_path):
    labels, widget, section = _sweep_widget(viewer, tmp_path, "2,3,4,5", epochs=40)
    section.start()
    qtbot.waitUntil(lambda: section.progress_bar.value() > 0, timeout=90_000)
    qtbot.mouseClick(section.stop_button, Qt.MouseButton.LeftButton)
    assert not section.stop_button.isEnabled()
    assert "Stopping" in section.message.text()
    _wait(qtbot, section, timeout=60)

    run = section.run
    assert run.stopped
    finished = len(run.sweep.frame)
    assert 1 <= finished < 8
    assert section.fitted.count() == run.sweep.frame["K"].nunique() >= 1
    assert section.message.text().startswith(f"Stopped: kept {finished} fits")
    assert RESULTS not in labels.metadata
    assert widget.run_button.isEnabled() and section.sweep_button.isEnabled()


@pytest.mark.parametrize(
    ("text", "needle"),
    [("1:4", ">= 2"), ("6:3", "START <= END"), ("four", "START:END"), ("3,500", "cells")],
)
def test_bad_range_is_refused_naming_the_box(viewer, tmp_path, text, needle):
    _, widget, section = _sweep_widget(viewer, tmp_path, text)
    assert not section.sweep_button.isEnabled()
    assert "Topics to try" in section.message.text() and needle in section.message.text()
    assert widget.run_button.isEnabled()  # the fit itself is unaffected
    section.start()
    assert not section.busy


def test_choose_topics_screenshot(make_napari_viewer, qtbot, tmp_path):
    """The section after a sweep, in a shown viewer (``TOPOMICS_SCREENSHOTS=1``: a larger
    tissue and sweep, written to ``docs/images/plugin_choose_topics.png``)."""
    import os
    from pathlib import Path

    for_docs = os.environ.get("TOPOMICS_SCREENSHOTS") == "1"
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 1100)
    add_tissue(viewer, demo_sdata(n_cells=1500 if for_docs else 120))
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=60 if for_docs else 3, topics=10, batch_size=128)
    section = widget.sweep_section
    widget.choose_topics.expand(animate=False)
    section.topics.setText("3:9" if for_docs else "2:3")
    section.processes.setValue(2 if for_docs else 1)
    section.start()
    _wait(qtbot, section, timeout=1800 if for_docs else 90)
    assert section.run is not None and not section.run.stopped
    qtbot.wait(300)
    docs = Path(__file__).resolve().parents[2] / "docs" / "images"
    target = docs / "plugin_choose_topics.png" if for_docs else tmp_path / "choose.png"
    image = widget.grab().toImage()
    assert image.save(str(target)) and target.stat().st_size > 10_000
    assert widget.form.n_topics.value() == section.run.sweep.recommended
