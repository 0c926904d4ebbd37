"""Helpers of the fit-widget tests (``test_plugin_fit_*.py``): a tiny demo tissue in a viewer."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import torch  # before anything imports Qt

torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@functools.lru_cache(maxsize=2)
def demo_sdata(n_cells: int = 120, seed: int = 0):
    """The demo tissue (cached: the plugin must never modify it, which the tests check)."""
    from napari_topomics.datasets import demo

    return demo(seed=seed, n_cells=n_cells)


def add_tissue(viewer, sdata=None, source: str | None = None, images: bool = False):
    """Add the tissue's layers as the plugin's reader would; returns the labels layer."""
    from napari_topomics.plugin._reader import sdata_to_layer_data

    sdata = demo_sdata() if sdata is None else sdata
    added = []
    for data, kwargs, layer_type in sdata_to_layer_data(sdata, source=source):
        if images or layer_type != "image":
            added += viewer._add_layer_from_data(data, kwargs, layer_type)
    return next(ly for ly in added if type(ly).__name__ == "Labels")


def make_widget(viewer, values_path):
    """A docked Topic model widget remembering its values in ``values_path``."""
    from napari_topomics.plugin._fit_widget import TopicModelWidget

    widget = TopicModelWidget(viewer, values_path=values_path)
    viewer.window.add_dock_widget(widget, name="Topic model")
    return widget


def quick(widget, epochs: int = 3, topics: int = 3, batch_size: int = 64) -> None:
    """Small, fast options."""
    widget.form.n_epochs.setValue(epochs)
    widget.form.n_topics.setValue(topics)
    widget.form.batch_size.setValue(batch_size)


def wait_done(qtbot, widget, timeout: float = 60.0) -> float:
    """Wait for the widget's run to end; returns the seconds waited."""
    start = time.perf_counter()
    qtbot.waitUntil(lambda: widget.job is None, timeout=int(timeout * 1000))
    return time.perf_counter() - start


def label_ids(layer) -> np.ndarray:
    ids = np.unique(np.asarray(layer.data))
    return ids[ids != 0]
