"""The plugin at whole-slide scale: 10⁵ and 10⁶ cells opened, painted and recoloured.

For each cell count a SpatialData store is written (``datasets._scale_store``: multiscale
stain and labels built chunk by chunk, a sparse table, a saved run with synthesised
proportions), then a fresh process drives a real, shown napari viewer (run under
``xvfb-run -a``) with the legend and cell-readout docks:

1. ``open``: :func:`open_store` (elements only) until the layers are drawn;
2. ``paint``: :func:`paint_saved_run` (read the saved run, colour it by dominant topic)
   until drawn;
3. ``recolour_*``: dominant topic → a topic's proportion → a modality weight → dominant
   topic, each through the legend's picker (a thread worker for big runs) until drawn;
4. ``hover``: napari's status for 50 cursor positions; ``click``: the readout of 20
   clicked cells (timed per action, ms);
5. ``points``: a centroid points layer where the plugin allows one (else the refusal).

Every step also reports the p99 and max lateness of a 5 ms ``QTimer`` (how long napari
could not react). Peak RSS is compared with 2 × (finest label level + tables) bytes.
Every figure is printed as ``name=value``; ``recolour_s_max`` is the worst recolour of
the largest store. ``--peer`` times napari-spatialdata's own opening of the store where
it is installed (``--peer-python``, e.g. a separate venv).

    xvfb-run -a python benchmarks/bench_viewer_scale.py [--cells 100000,1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", default="100000,1000000", help="comma-separated cell counts")
    p.add_argument("--dir", help="folder for the stores (default: a temporary one)")
    p.add_argument("--screenshot", help="save a screenshot of the largest store's view here")
    p.add_argument("--peer-python", help="python with napari-spatialdata for the peer step")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-screenshot", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------------- child (viewer)
def _child(store: str, screenshot: str | None) -> dict[str, float]:
    import napari
    import torch  # noqa: F401  (before Qt)

    from _viewer_steps import Drawn, Probe, peak_rss_bytes, process, step, table_bytes, wait_for
    from napari_topomics.io._errors import TopomicsInputError
    from napari_topomics.plugin._cell_readout import CellReadoutWidget
    from napari_topomics.plugin._legend import TopicLegendWidget
    from napari_topomics.plugin._open import open_store, paint_saved_run
    from napari_topomics.plugin._result_layers import add_result_layers, layer_results

    out: dict[str, float] = {}
    if os.environ.get("TOPOMICS_BENCH_ASYNC") == "1":
        from napari.settings import get_settings

        get_settings().experimental.async_ = True  # napari slices in its own threads
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    legend = TopicLegendWidget(viewer)
    readout = CellReadoutWidget(viewer)
    viewer.window.add_dock_widget(legend, name="Topic colours", area="right")
    viewer.window.add_dock_widget(readout, name="Cell readout", area="right")
    process(1.0)
    probe, drawn = Probe(), Drawn(viewer)
    with step("idle", probe, out):
        process(2.0)

    box: dict = {}
    with step("open", probe, out):
        open_store(viewer, store, runs=False, on_done=lambda ly: box.update(open=ly),
                   on_error=lambda e: box.update(error=e))
        wait_for(lambda: "open" in box or "error" in box, 300)
        if "error" in box:
            raise box["error"]
        drawn.wait_next()
    labels_el = next(ly for ly in viewer.layers if type(ly).__name__ == "Labels")
    sdata = labels_el.metadata["sdata"]
    finest = labels_el.data[0] if labels_el.multiscale else labels_el.data
    bound = 2 * (int(np.prod(finest.shape)) * finest.dtype.itemsize
                 + sum(table_bytes(t) for t in sdata.tables.values()))

    with step("paint", probe, out):
        paint_saved_run(viewer, store, "scale", on_done=lambda ly: box.update(paint=ly),
                        on_error=lambda e: box.update(error=e))
        wait_for(lambda: "paint" in box or "error" in box, 300)
        if "error" in box:
            raise box["error"]
        drawn.wait_next()
    layer = box["paint"][0]
    viewer.layers.selection.active = layer
    process(0.5)
    data_before = layer.data
    results = layer_results(layer)
    n = len(results.proportions)

    worst = 0.0
    for name, what in (("recolour_topic", "topic_3"), ("recolour_weight", "weight:rna"),
                       ("recolour_dominant", "dominant_topic")):
        with step(name, probe, out):
            legend.colour_by.setCurrentIndex(legend.colour_by.findData(what))
            wait_for(lambda w=what: layer.metadata.get("topomics_colouring") == w, 120)
            drawn.wait_next()
        worst = max(worst, out[f"{name}_s"])
    out["recolour_s_max"] = worst
    out["recolour_same_layer"] = float(layer in viewer.layers and layer.data is data_before)

    rng = np.random.default_rng(0)
    shape = np.asarray(finest.shape, dtype=np.float64)
    hover_ms, click_ms = [], []
    with step("hover", probe, out):
        for _ in range(50):
            pos = tuple(rng.uniform(0, 1, 2) * shape)
            t0 = time.perf_counter()
            viewer.cursor.position = pos
            layer.get_status(pos, world=True)
            hover_ms.append((time.perf_counter() - t0) * 1000)
            process(0.01)
    out["hover_ms_p50"] = float(np.median(hover_ms))
    out["hover_ms_max"] = float(np.max(hover_ms))

    class _Click:
        type = "mouse_press"
        view_direction = None
        dims_displayed = (0, 1)

        def __init__(self, position):
            self.position = position

    with step("click", probe, out):
        clicked = 0
        for _ in range(20):
            row = int(rng.integers(0, n))
            x, y = results.coordinates.iloc[row][["x", "y"]]
            t0 = time.perf_counter()
            readout._on_click(viewer, _Click((float(y), float(x))))
            process(0.0)
            click_ms.append((time.perf_counter() - t0) * 1000)
            clicked += readout.cell is not None
            process(0.02)
    out["click_ms_p50"] = float(np.median(click_ms))
    out["click_ms_p99"] = float(np.percentile(click_ms, 99))
    out["click_hits"] = float(clicked)

    try:
        with step("points", probe, out):
            add_result_layers(viewer, results, layer, points=True)
            drawn.wait_next()
        out["points_refused"] = 0.0
        with step("points_recolour", probe, out):  # labels and points recoloured together
            legend.colour_by.setCurrentIndex(legend.colour_by.findData("topic_1"))
            wait_for(lambda: layer.metadata.get("topomics_colouring") == "topic_1", 120)
            drawn.wait_next()
    except TopomicsInputError as err:
        out["points_refused"] = 1.0
        print(f"# points refused: {err}", flush=True)
    if screenshot:
        viewer.layers.selection.active = layer
        process(1.0)
        viewer.screenshot(screenshot, canvas_only=False, flash=False)
    out["n_cells"] = float(n)
    out["peak_rss_gb"] = peak_rss_bytes() / 1e9
    out["rss_bound_gb"] = bound / 1e9
    out["rss_within_bound"] = float(peak_rss_bytes() <= bound)
    viewer.close()
    return out


# ---------------------------------------------------------------------- peer
def _peer(python: str, store: str) -> dict[str, str]:
    try:
        proc = subprocess.run([python, str(HERE / "_peer_spatialdata.py"), store],
                              capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"peer_error": type(err).__name__}
    figures = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if proc.returncode != 0:
        figures["peer_error"] = proc.stderr.strip().splitlines()[-1][:160] if proc.stderr else "?"
    return figures


# ---------------------------------------------------------------------- parent
def main(argv=None) -> None:
    args = _args(argv)
    if args.child:
        figures = _child(args.child, args.child_screenshot)
        print("FIGURES " + json.dumps(figures), flush=True)
        return
    from napari_topomics.datasets._scale_store import write_scale_store

    counts = [int(c) for c in args.cells.split(",")]
    folder = Path(args.dir or tempfile.mkdtemp(prefix="topomics_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"# load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs", flush=True)
    for count in counts:
        store = folder / f"scale_{count}.zarr"
        tag = f"{count:.0e}".replace("+0", "").replace("+", "")
        if not store.exists():
            t0 = time.perf_counter()
            write_scale_store(store, count)
            print(f"{tag}_store_write_s={time.perf_counter() - t0:.2f}", flush=True)
        cmd = [sys.executable, __file__, "--child", str(store)]
        if args.screenshot and count == max(counts):
            cmd += ["--child-screenshot", args.screenshot]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FIGURES ")), None)
        for ln in proc.stdout.splitlines():
            if ln.startswith("#"):
                print(ln, flush=True)
        if line is None:
            print(f"{tag}_error={proc.returncode}", flush=True)
            print(proc.stderr[-3000:], file=sys.stderr)
            continue
        figures = json.loads(line.removeprefix("FIGURES "))
        for name, value in figures.items():
            if name == "recolour_s_max" and count == max(counts):
                print(f"recolour_s_max={value:.3f}")
            print(f"{tag}_{name}={value:.3f}" if isinstance(value, float) else
                  f"{tag}_{name}={value}", flush=True)
        if args.peer_python:
            for name, value in _peer(args.peer_python, str(store)).items():
                print(f"{tag}_{name}={value}", flush=True)


if __name__ == "__main__":
    main()
