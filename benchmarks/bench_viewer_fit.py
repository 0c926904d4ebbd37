"""Training inside the viewer against the same fit headless (issue 19, item 3).

The demo tissue (1,500 cells by default) is fitted with the options the *Topic model*
widget builds from its form (``build_config``: same topics, epochs, batch size, threads,
seed), first headless (``workflow.fit_tissue`` on the main thread, no event loop), then
through the widget in a real, shown viewer (its worker thread, progress bar, ELBO curve).
One short headless fit first imports and warms everything, so neither timed fit pays it.
Run under ``xvfb-run -a`` on a headless machine::

    xvfb-run -a python benchmarks/bench_viewer_fit.py [--cells 1500 --epochs 150]

The two fits alternate ``--repeats`` times (3 by default) so that drift of the machine
hits both alike. Prints the medians ``headless_s=``, ``viewer_s=`` (Run pressed → results
painted) and ``viewer_over_headless=`` (median of the per-pair ratios; target ≤ 1.2); then
one more, untimed run through the widget with a 5 ms timer on the event loop prints
``train_p99_late_ms=`` and ``train_max_late_ms=`` (how late napari could react meanwhile).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch  # (before Qt)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, quiet  # noqa: E402
from _viewer_steps import Probe  # noqa: E402


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=1500)
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3,
                   help="alternating headless/viewer pairs (the median ratio is printed)")
    p.add_argument("--switch-interval", type=float, default=-1.0,
                   help="the widget's thread switch interval in s (default: the widget's own; "
                        "0 keeps Python's)")
    p.add_argument("--progress-interval", type=float, default=None,
                   help="the widget's progress interval in s (default: the widget's own)")
    return p.parse_args()


def main() -> None:
    args = _args()
    quiet()
    import napari
    from qtpy.QtCore import QTimer

    from napari_topomics.datasets import demo
    from napari_topomics.plugin._fit_options import build_config
    from napari_topomics.plugin._fit_widget import TopicModelWidget
    from napari_topomics.plugin._reader import sdata_to_layer_data
    from napari_topomics.workflow import fit_tissue

    sdata = demo(n_cells=args.cells)
    viewer = napari.Viewer(show=True, title="bench_viewer_fit")
    for data, kwargs, layer_type in sdata_to_layer_data(sdata):
        viewer._add_layer_from_data(data, kwargs, layer_type)
    tmp = tempfile.TemporaryDirectory(prefix="bench_viewer_fit_")
    widget = TopicModelWidget(viewer, values_path=os.path.join(tmp.name, "v.json"))
    viewer.window.add_dock_widget(widget, name="Topic model")
    widget.form.n_epochs.setValue(args.epochs)
    widget.form.threads.setValue(args.threads)
    if args.switch_interval >= 0:
        widget.switch_interval = args.switch_interval or None
    if args.progress_interval is not None:
        widget.progress_interval = args.progress_interval
    if widget.problem:
        raise SystemExit(f"the widget refuses to run: {widget.problem}")
    config = build_config(widget.form.values(), widget.source)

    threads = torch.get_num_threads()

    def headless(cfg=config) -> float:
        torch.set_num_threads(cfg.threads or threads)
        begin = time.perf_counter()
        fit_tissue(widget.source.sdata, cfg)
        torch.set_num_threads(threads)
        return time.perf_counter() - begin

    headless(dataclasses.replace(config, n_epochs=2))  # warm-up: imports, first compiles
    times: dict[str, list[float]] = {"headless": [], "viewer": []}
    state: dict = {}  # "start": time Run was pressed; "probing", "failed": flags; "late_ms"
    done = widget._on_done

    def timed_done(result) -> None:
        done(result)
        if result.outcome is None or result.stopped:
            state["failed"] = True
            QTimer.singleShot(300, viewer.close)
            return
        if state.get("probing"):  # the extra, untimed run that measured the event loop
            state["late_ms"] = probe.stop()
            QTimer.singleShot(300, viewer.close)
            return
        times["viewer"].append(time.perf_counter() - state["start"])
        if len(times["viewer"]) < args.repeats:
            QTimer.singleShot(500, next_pair)
        else:
            QTimer.singleShot(500, probed_run)

    widget._on_done = timed_done  # run() hands this to the worker

    def next_pair() -> None:
        times["headless"].append(headless())  # on the GUI thread: the loop is idle meanwhile
        state["start"] = time.perf_counter()
        widget.run()

    probe = Probe()

    def probed_run() -> None:  # the probe's own ticks cost the GIL: kept out of the timing
        state["probing"] = True
        probe.start()
        widget.run()

    QTimer.singleShot(1000, next_pair)
    napari.run()
    if state.get("failed") or len(times["viewer"]) < args.repeats:
        raise SystemExit("the widget's fit did not finish")
    print(f"# bench_viewer_fit: {args.cells} cells, {config.n_topics} topics, "
          f"{config.n_epochs} epochs, batch {config.batch_size}, {config.threads} thread(s); "
          f"switch interval {widget.switch_interval}, progress interval "
          f"{widget.progress_interval}; {args.repeats} alternating pairs; {machine()}; "
          f"load {os.getloadavg()[0]:.2f}")
    pairs = list(zip(times["headless"], times["viewer"], strict=True))
    ratios = [v / h for h, v in pairs]
    print("# per pair (headless s, viewer s, ratio): "
          + ", ".join(f"({h:.1f}, {v:.1f}, {v / h:.2f})" for h, v in pairs))
    print(f"headless_s={statistics.median(times['headless']):.2f}")
    print(f"viewer_s={statistics.median(times['viewer']):.2f}")
    print(f"viewer_over_headless={statistics.median(ratios):.3f}")
    late = state["late_ms"]
    print(f"train_p99_late_ms={np.percentile(late, 99):.1f}")
    print(f"train_max_late_ms={late.max():.1f}")


if __name__ == "__main__":
    main()
