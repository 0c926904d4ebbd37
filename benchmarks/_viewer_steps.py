"""Timing helpers for benchmarks that drive a real napari viewer (run under ``xvfb-run -a``).

:class:`Probe` is a 5 ms ``QTimer``; the time between two ticks minus 5 ms is how late
the Qt event loop ran, i.e. how long napari could not react to the user. :func:`step`
times one action (until its layers are drawn) and keeps the probe's lateness during it.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np

PROBE_MS = 5


class Probe:
    """Record the lateness of a 5 ms timer on the Qt event loop."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.lateness: list[float] = []
        self._last: float | None = None
        self.timer = QTimer()
        self.timer.setInterval(PROBE_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.lateness.append(max(0.0, now - self._last - PROBE_MS / 1000))
        self._last = now

    def start(self) -> None:
        """Start from a fresh record."""
        self.lateness, self._last = [], time.perf_counter()
        self.timer.start()

    def stop(self) -> np.ndarray:
        """Stop; the lateness in ms of every tick since :meth:`start`."""
        self.timer.stop()
        self._tick()  # a stall that lasts to the end counts too
        return np.asarray(self.lateness) * 1000


def process(seconds: float = 0.0) -> None:
    """Run the Qt event loop for ``seconds`` (at least one pass)."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + seconds
    while True:
        QApplication.processEvents()
        if time.perf_counter() >= end:
            return
        time.sleep(0.001)


def wait_for(cond: Callable[[], bool], timeout: float = 120.0) -> None:
    """Run the event loop until ``cond()`` is true (TimeoutError after ``timeout`` s)."""
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError("step did not finish")
        process(0.002)


class Drawn:
    """Counts the canvas' draws, to wait until a change is on screen."""

    def __init__(self, viewer) -> None:
        self.count = 0
        canvas = viewer.window._qt_viewer.canvas._scene_canvas
        canvas.events.draw.connect(self._on_draw)
        self.canvas = canvas

    def _on_draw(self, event=None) -> None:
        self.count += 1

    def wait_next(self, timeout: float = 60.0) -> None:
        """Ask for a repaint and wait until it happened."""
        start = self.count
        self.canvas.update()
        wait_for(lambda: self.count > start, timeout)


@contextmanager
def step(name: str, probe: Probe, out: dict[str, float]):
    """Time the block (which must wait for its own result) and the lateness during it."""
    probe.start()
    t0 = time.perf_counter()
    yield
    out[f"{name}_s"] = time.perf_counter() - t0
    late = probe.stop()
    out[f"{name}_p99_late_ms"] = float(np.percentile(late, 99)) if late.size else float("nan")
    out[f"{name}_max_late_ms"] = float(late.max()) if late.size else float("nan")


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (Linux: ru_maxrss is in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def table_bytes(adata) -> int:
    """In-memory bytes of an AnnData's X, obs, obsm and var (sparse: data + indices)."""
    total = 0
    x = adata.X
    if x is not None:
        if hasattr(x, "data") and hasattr(x, "indptr"):
            total += x.data.nbytes + x.indices.nbytes + x.indptr.nbytes
        else:
            total += np.asarray(x).nbytes
    total += int(adata.obs.memory_usage(deep=True).sum())
    total += int(adata.var.memory_usage(deep=True).sum())
    total += sum(np.asarray(v).nbytes for v in adata.obsm.values())
    return total
