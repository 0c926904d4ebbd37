"""The napari-spatialdata peer of ``bench_viewer_scale.py``: open the labels, colour every cell.

Run with a python that has napari-spatialdata (it need not have napari-topomics), under
``xvfb-run -a``::

    python benchmarks/_peer_spatialdata.py STORE

Opens the store's ``cells`` labels through napari-spatialdata's own viewer model
(``add_sdata_labels``), then colours every cell by the saved run's dominant topic the way
its "View" widget colours labels by a table column (one ``DirectLabelColormap`` dict entry
per cell), each until drawn. Prints ``peer_*=value`` lines.
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from collections import defaultdict

import numpy as np


def _wait_draw(viewer) -> None:
    from qtpy.QtWidgets import QApplication

    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    seen = []
    canvas.events.draw.connect(lambda e=None: seen.append(1))
    canvas.update()
    end = time.perf_counter() + 120
    while not seen and time.perf_counter() < end:
        QApplication.processEvents()
        time.sleep(0.002)


def main(store: str) -> None:
    warnings.simplefilter("ignore")
    import napari
    import spatialdata as sd
    from matplotlib import colormaps
    from napari.utils import DirectLabelColormap
    from napari_spatialdata._viewer import SpatialDataViewer

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    t0 = time.perf_counter()
    sdata = sd.read_zarr(store)
    model = SpatialDataViewer(viewer, [sdata])
    model.add_sdata_labels(sdata, "cells", "global", False)
    _wait_draw(viewer)
    print(f"peer_open_s={time.perf_counter() - t0:.3f}", flush=True)
    layer = viewer.layers[-1]
    table = sdata.tables["topomics_scale"]
    t0 = time.perf_counter()
    codes = table.obs["dominant_topic"].cat.codes.to_numpy()
    palette = colormaps["tab10"](np.arange(10))
    ids = table.obs["cell_id"].to_numpy()
    color = dict(zip(ids.tolist(), palette[codes % 10].tolist(), strict=True))
    layer.colormap = DirectLabelColormap(color_dict=defaultdict(lambda: np.zeros(4), color))
    _wait_draw(viewer)
    print(f"peer_colour_s={time.perf_counter() - t0:.3f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(f"peer_peak_rss_gb={rss:.3f}", flush=True)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1])
