"""A shown viewer after a spatial fit: the Topic model widget with its spatial options and
the Topic inspector listing each topic's Moran's I render real pixels.

With ``TOPOMICS_SCREENSHOTS=1`` the screenshot (of a larger tissue trained longer) is
written to ``docs/images/plugin_spatial.png`` for the docs; otherwise to ``tmp_path``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from _plugin_fit_support import add_tissue, demo_sdata, make_widget, quick, wait_done
from qtpy.QtCore import Qt

from napari_topomics.plugin import _settings as settings

pytestmark = pytest.mark.gui
DOCS = Path(__file__).resolve().parents[2] / "docs" / "images"


def test_spatial_widget_screenshot(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_topomics.plugin._inspector import TopicInspectorWidget

    monkeypatch.setenv(settings.SETTINGS_DIR_ENV, str(tmp_path / "cfg"))
    for_docs = os.environ.get("TOPOMICS_SCREENSHOTS") == "1"
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1050)
    labels = add_tissue(viewer, demo_sdata(n_cells=1000 if for_docs else 120), images=True)
    labels.opacity = 0.9
    widget = make_widget(viewer, tmp_path / "v.json")
    inspector = TopicInspectorWidget(viewer)
    qt_viewer, window = viewer.window._qt_viewer, viewer.window._qt_window
    qt_viewer.dockLayerControls.hide()  # room for the inspector on the left
    dock = viewer.window.add_dock_widget(inspector, name="Topic inspector", area="left")
    quick(widget, epochs=60 if for_docs else 2, topics=6, batch_size=128)
    widget.form.spatial.setChecked(True)
    widget.form.spatial_options.n_neighbors.setValue(8)
    widget.run()
    wait_done(qtbot, widget, timeout=900)
    assert widget.result.ok, widget.message.text()
    window.resizeDocks([qt_viewer.dockLayerList, dock], [150, 850], Qt.Orientation.Vertical)
    window.resizeDocks([dock], [340], Qt.Orientation.Horizontal)
    qtbot.wait(100)
    viewer.reset_view()
    qtbot.wait(300)

    options = widget.form.spatial_options
    assert options.isVisible() and options.options.isEnabled()
    assert inspector.coherence.isVisible() and len(inspector.coherence.rows()) == 6
    target = DOCS / "plugin_spatial.png" if for_docs else tmp_path / "plugin_spatial.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    image = viewer.screenshot(str(target), canvas_only=False)
    assert target.is_file() and image.shape[0] >= 600 and image.shape[1] >= 1000
    assert image[..., :3].std() > 20  # real pixels, not a blank window
    panel = inspector.coherence.grab().toImage()
    assert panel.width() > 100 and panel.height() > 80
    assert np.isfinite(labels.metadata["topomics_results"].spatial_coherence).any()
