"""Does napari stay responsive while the topic model trains from the "Topic model" widget?

A real viewer (shown; run under ``xvfb-run -a`` on a headless machine) holds the demo
tissue (stain image + cell labels + table) and the docked widget. A 5 ms ``QTimer``
probes the Qt event loop: its lateness (time between two ticks minus 5 ms) is how long
napari could not react to the user. Phases, in napari's own event loop:

1. idle;
2. idle while the camera pans every 40 ms (the canvas repaints all along, as when a user
   keeps panning: this is napari's own painting cost);
3. a first training run through the widget's worker (it also imports scvi/Lightning:
   "cold"), then a second one ("warm");
4. a third run while panning.

Painting the results on the GUI thread when a run ends is one task, timed on its own (not
in the phases). Figures vary with what else the machine runs: the load average is shown.

    xvfb-run -a python benchmarks/bench_responsiveness.py [--cells 2000 --epochs 10]

Target: p99 lateness < 50 ms while training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch  # before Qt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import quiet  # noqa: E402

PROBE_MS = 5


def _percentiles(lateness_s: list[float]) -> dict[str, float]:
    if not lateness_s:
        return {"n": 0, "p50": np.nan, "p95": np.nan, "p99": np.nan, "max": np.nan}
    ms = np.asarray(lateness_s) * 1000
    return {"n": int(ms.size), "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99)),
            "max": float(ms.max())}


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=2000, help="demo tissue cells")
    p.add_argument("--epochs", type=int, default=10, help="training epochs per run")
    p.add_argument("--topics", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads while training")
    p.add_argument("--idle-s", type=float, default=5.0, help="seconds of each idle phase")
    p.add_argument("--pan-ms", type=int, default=40, help="camera pan period while panning")
    p.add_argument("--switch-interval", type=float, default=None,
                   help="Python switch interval while training (s); default: the widget's")
    p.add_argument("--progress-interval", type=float, default=None,
                   help="seconds between progress updates; default: the widget's")
    p.add_argument("--nice", type=int, default=None,
                   help="niceness of the training thread; default: the widget's")
    p.add_argument("--json", help="also write the figures to this JSON file")
    return p.parse_args()


class Bench:
    """Runs the phases from Qt timers and signals, inside napari's event loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        import napari
        from qtpy.QtCore import Qt, QTimer

        from napari_topomics.datasets import demo
        from napari_topomics.plugin._fit_widget import TopicModelWidget
        from napari_topomics.plugin._reader import sdata_to_layer_data

        self.args = args
        self.viewer = napari.Viewer(show=True, title="bench_responsiveness")
        for data, kwargs, layer_type in sdata_to_layer_data(demo(n_cells=args.cells)):
            self.viewer._add_layer_from_data(data, kwargs, layer_type)
        self._tmp = tempfile.TemporaryDirectory(prefix="bench_resp_")
        self.widget = TopicModelWidget(self.viewer,
                                       values_path=os.path.join(self._tmp.name, "v.json"))
        self.viewer.window.add_dock_widget(self.widget, name="Topic model")
        form = self.widget.form
        form.n_epochs.setValue(args.epochs)
        form.n_topics.setValue(args.topics)
        form.batch_size.setValue(args.batch_size)
        form.threads.setValue(args.threads)
        if args.switch_interval is not None:
            self.widget.switch_interval = args.switch_interval
        if args.nice is not None:
            self.widget.nice = args.nice
        if args.progress_interval is not None:
            self.widget.progress_interval = args.progress_interval
        if self.widget.problem:
            raise SystemExit(f"the widget refuses to run: {self.widget.problem}")
        self._done = self.widget._on_done
        self.widget._on_done = self._timed_done  # run() hands this to the worker

        self.center = np.asarray(self.viewer.camera.center, dtype=float)
        self.lateness: dict[str, list[float]] = {}
        self.phase: str | None = None
        self.last_tick: float | None = None
        self.runs: list[dict] = []
        self.failure: str | None = None
        self.schedule = [("idle", False, args.idle_s), ("idle + panning", True, args.idle_s),
                         ("training (cold)", False, None), ("training", False, None),
                         ("training + panning", True, None)]

        self.probe = QTimer()
        self.probe.setTimerType(Qt.TimerType.PreciseTimer)
        self.probe.setInterval(PROBE_MS)
        self.probe.timeout.connect(self._tick)
        self.pan = QTimer()
        self.pan.setInterval(args.pan_ms)
        self.pan.timeout.connect(self._pan)
        self.poll = QTimer()
        self.poll.setInterval(20)
        self.poll.timeout.connect(self._poll)

    # ------------------------------------------------------------------ probes
    def _tick(self) -> None:
        now = time.perf_counter()
        if self.phase is not None and self.last_tick is not None:
            late = max(0.0, now - self.last_tick - PROBE_MS / 1000)
            self.lateness.setdefault(self.phase, []).append(late)
        self.last_tick = now

    def _pan(self) -> None:
        angle = time.perf_counter() * 2.0
        offset = 20.0 * np.array([0.0, np.sin(angle), np.cos(angle)])[-len(self.center):]
        self.viewer.camera.center = tuple(self.center + offset)

    def _enter(self, phase: str | None, panning: bool = False) -> None:
        self.phase, self.last_tick = phase, None
        if panning:
            self.pan.start()
        else:
            self.pan.stop()

    # ------------------------------------------------------------------ schedule
    def start(self) -> None:
        from qtpy.QtCore import QTimer

        self.probe.start()
        QTimer.singleShot(1000, self._next)  # let the first paint settle

    def _next(self) -> None:
        from qtpy.QtCore import QTimer
        from qtpy.QtWidgets import QApplication

        if not self.schedule or self.failure:
            self._enter(None)
            QApplication.instance().quit()
            return
        phase, panning, seconds = self.schedule.pop(0)
        self._enter(phase, panning)
        if seconds is not None:
            QTimer.singleShot(int(seconds * 1000), self._next)
            return
        self.run_start = time.perf_counter()
        self.widget.run()
        self.job = self.widget.job
        self.poll.start()

    def _timed_done(self, result) -> None:
        phase = self.phase
        self._enter(None)  # painting the results is one GUI-thread task, timed on its own
        start = time.perf_counter()
        self._done(result)
        event = self.job.last_event
        self.runs.append({
            "phase": phase, "run_s": round(start - self.run_start, 2),
            "paint_results_ms": round((time.perf_counter() - start) * 1000, 1),
            "minibatches": event.step if event else 0,
            "train_s": round(event.elapsed_s, 2) if event else None,
        })
        if result.outcome is None:
            self.failure = result.message

    def _poll(self) -> None:
        from qtpy.QtCore import QTimer

        if self.widget.job is None:
            self.poll.stop()
            QTimer.singleShot(500, self._next)


def main() -> dict:
    args = _args()
    quiet()
    torch.set_num_threads(args.threads)
    import napari

    bench = Bench(args)
    bench.start()
    napari.run()
    if bench.failure:
        raise SystemExit(f"training failed: {bench.failure}")
    report = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": os.getloadavg()[0]},
        "settings": {k: v for k, v in vars(args).items() if k != "json"}
        | {"switch_interval": bench.widget.switch_interval, "nice": bench.widget.nice,
           "progress_interval": bench.widget.progress_interval},
        "lateness_ms": {phase: _percentiles(v) for phase, v in bench.lateness.items()},
        "runs": bench.runs,
    }
    print(f"{'phase':<20}{'ticks':>7}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>9}   ms late")
    for phase, s in report["lateness_ms"].items():
        print(f"{phase:<20}{s['n']:>7}{s['p50']:>8.1f}{s['p95']:>8.1f}{s['p99']:>8.1f}"
              f"{s['max']:>9.1f}")
    for run in bench.runs:
        rate = run["minibatches"] / run["train_s"] if run["train_s"] else float("nan")
        print(f"{run['phase']}: {run['minibatches']} minibatches in {run['run_s']} s "
              f"({rate:.1f}/s training); painting the results took "
              f"{run['paint_results_ms']} ms on the GUI thread")
    print(f"load average {report['machine']['load_avg_1m_at_end']:.1f} on "
          f"{os.cpu_count()} CPUs")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1)
    return report


if __name__ == "__main__":
    main()
