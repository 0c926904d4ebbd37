"""A shown viewer with the Topic model widget after a run renders real pixels.

With ``TOPOMICS_SCREENSHOTS=1`` the screenshot (of a larger tissue trained longer) is
written to ``docs/images/plugin_widget.png`` for the README; otherwise to ``tmp_path``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _plugin_fit_support import add_tissue, demo_sdata, make_widget, quick, wait_done

from napari_topomics.plugin import _settings as settings

pytestmark = pytest.mark.gui
DOCS = Path(__file__).resolve().parents[2] / "docs" / "images"


def test_widget_screenshot(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv(settings.SETTINGS_DIR_ENV, str(tmp_path / "cfg"))
    for_docs = os.environ.get("TOPOMICS_SCREENSHOTS") == "1"
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1500, 980)
    labels = add_tissue(viewer, demo_sdata(n_cells=1500 if for_docs else 120), images=True)
    labels.opacity = 0.9
    widget = make_widget(viewer, tmp_path / "v.json")
    quick(widget, epochs=150 if for_docs else 3, topics=6, batch_size=256)
    widget.form.advanced.expand(animate=False)
    widget.run()
    wait_done(qtbot, widget, timeout=900)
    assert widget.result.ok, widget.message.text()
    viewer.reset_view()
    qtbot.wait(200)

    target = DOCS / "plugin_widget.png" if for_docs else tmp_path / "plugin_widget.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    image = viewer.screenshot(str(target), canvas_only=False)
    assert target.is_file() and image.shape[0] >= 600 and image.shape[1] >= 1000
    dock = widget.grab().toImage()
    assert dock.width() > 300 and dock.height() > 400
    assert image[..., :3].std() > 20  # real pixels, not a blank window
