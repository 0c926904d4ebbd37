"""Training off the GUI thread: a napari generator worker that yields progress and can stop.

:class:`FitJob` runs :func:`~napari_topomics.workflow.fit_tissue` in a training thread and
exposes it as a generator (:meth:`FitJob.events`) that yields the latest
:class:`~napari_topomics.workflow._progress.ProgressEvent` at most every ``interval``
seconds and returns a :class:`JobResult`; :func:`start_fit_worker` wraps it in napari's
``GeneratorWorker`` so the events arrive on the GUI thread. Stopping is cooperative: the
training loop polls :meth:`FitJob.should_stop` after every minibatch. Errors never escape
as exceptions: they come back in :class:`JobResult` as one line for the user.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..io._errors import TopomicsInputError

if TYPE_CHECKING:
    from ..workflow import FitConfig, FitOutcome
    from ..workflow._progress import ProgressEvent

logger = logging.getLogger(__name__)


@dataclass
class JobResult:
    """How a fitting job ended.

    Attributes
    ----------
    outcome
        The fitting outcome (None when it failed).
    message
        One line for the user when it failed, else None.
    stopped
        True when it was stopped on request before the last epoch.
    elapsed_s
        Seconds from start to end.
    """

    outcome: FitOutcome | None
    message: str | None
    stopped: bool
    elapsed_s: float

    @property
    def ok(self) -> bool:
        """True when training finished every epoch and produced results."""
        return self.outcome is not None and not self.stopped


def error_message(err: BaseException) -> str:
    """One line describing ``err`` for the user."""
    if isinstance(err, TopomicsInputError):
        return str(err).strip().splitlines()[0] if str(err).strip() else "Invalid input."
    lines = str(err).strip().splitlines()
    return f"Training failed: {type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class FitJob:
    """One training run, as a generator of progress events.

    Parameters
    ----------
    source
        A SpatialData object or store path (see ``fit_tissue``).
    config
        The run's options; ``config.threads`` caps torch's CPU threads for the run (the
        previous setting is restored afterwards).
    source_label
        Where the data came from, for the provenance.
    interval
        Minimum seconds between two yielded events (the GUI need not repaint faster).
    switch_interval
        Python's thread switch interval during training (seconds; None keeps it), so the
        GUI thread gets the interpreter back quickly while the training thread runs.
    nice
        Niceness added to the training thread (Linux; 0 keeps it), so the OS runs the GUI
        thread first when both want the CPU.
    after_fit
        Called in the training thread after a successful fit (e.g. warming up what the GUI
        thread needs to paint the results); its errors are logged and ignored.
    fit
        The fitting function (``fit_tissue``; replaceable for tests).
    """

    def __init__(
        self,
        source: Any,
        config: FitConfig,
        *,
        source_label: str | None = None,
        interval: float = 0.1,
        switch_interval: float | None = 0.001,
        nice: int = 0,
        after_fit: Callable[[], None] | None = None,
        fit: Callable[..., FitOutcome] | None = None,
    ) -> None:
        self.source = source
        self.config = config
        self.source_label = source_label
        self.interval = float(interval)
        self.switch_interval = switch_interval
        self.nice = int(nice)
        self.after_fit = after_fit
        self._fit = fit
        self._stop = threading.Event()
        self.last_event: ProgressEvent | None = None
        #: Polls answered "stop" (1 when training ended at the first minibatch after Stop).
        self.stop_polls = 0

    def request_stop(self) -> None:
        """Ask training to end after the current minibatch."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    def should_stop(self) -> bool:
        """Polled by the training loop after every minibatch."""
        if self._stop.is_set():
            self.stop_polls += 1
            return True
        return False

    def _train(self, events: queue.SimpleQueue, box: dict) -> None:
        fit = self._fit
        if fit is None:
            from ..workflow import fit_tissue as fit
        if self.nice and hasattr(os, "setpriority"):
            try:  # on Linux this sets the niceness of this thread only
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                pass
        try:
            box["outcome"] = fit(
                self.source,
                self.config,
                on_progress=events.put,
                should_stop=self.should_stop,
                source_label=self.source_label,
            )
        except BaseException as err:  # noqa: BLE001 - reported to the user, never re-raised
            box["error"] = err
            return
        if self.after_fit is not None:
            try:
                self.after_fit()
            except Exception:  # noqa: BLE001 - a warm-up only
                logger.debug("after_fit failed", exc_info=True)

    def events(self) -> Generator[ProgressEvent, None, JobResult]:
        """Train in a thread, yielding the latest progress event every ``interval`` s."""
        import torch

        start = time.perf_counter()
        threads_before = torch.get_num_threads()
        switch_before = sys.getswitchinterval()
        events: queue.SimpleQueue = queue.SimpleQueue()
        box: dict[str, Any] = {}
        thread = threading.Thread(
            target=self._train, args=(events, box), name="topomics-fit", daemon=True
        )
        if self.switch_interval is not None:
            sys.setswitchinterval(self.switch_interval)
        thread.start()
        try:
            latest, last_yield = None, 0.0
            while thread.is_alive() or not events.empty():
                try:
                    latest = events.get(timeout=self.interval / 2)
                    while not events.empty():
                        latest = events.get_nowait()
                except queue.Empty:
                    pass
                now = time.perf_counter()
                if latest is not None and now - last_yield >= self.interval:
                    self.last_event, latest, last_yield = latest, None, now
                    yield self.last_event
            if latest is not None:
                self.last_event = latest
                yield latest
        finally:
            if thread.is_alive():  # the consumer went away: end training, then clean up
                self._stop.set()
                thread.join(timeout=60)
            sys.setswitchinterval(switch_before)
            torch.set_num_threads(threads_before)
        return self._result(box, time.perf_counter() - start)

    def _result(self, box: dict, elapsed: float) -> JobResult:
        err = box.get("error")
        if err is not None:
            if not isinstance(err, TopomicsInputError):
                logger.error("Topic model training failed", exc_info=err)
            return JobResult(None, error_message(err), self.stop_requested, elapsed)
        outcome = box.get("outcome")
        stopped = bool(getattr(outcome, "stopped", False)) or self.stop_requested
        return JobResult(outcome, None, stopped, elapsed)


def warm_labels_colormap(dtype) -> None:
    """Compile napari's direct label-colormap kernels for ``dtype`` labels.

    napari JIT-compiles (numba) the texture mapping of a ``DirectLabelColormap`` on its
    first use, which takes seconds; doing it in the training thread keeps that freeze off
    the GUI thread when the results are painted. Best effort: failures are ignored.
    """
    import numpy as np
    from napari.utils.colormaps import DirectLabelColormap

    colormap = DirectLabelColormap(color_dict={1: "red", 2: "blue", None: "transparent"})
    try:
        colormap._data_to_texture(np.array([[0, 1], [2, 3]], dtype=dtype))
    except Exception:  # noqa: BLE001 - napari internals may change; only a warm-up
        logger.debug("label colormap warm-up failed", exc_info=True)


def start_fit_worker(
    job: FitJob,
    *,
    on_event: Callable[[ProgressEvent], None],
    on_done: Callable[[JobResult], None],
    start: bool = True,
):
    """A napari ``GeneratorWorker`` running ``job.events()``.

    ``on_event`` gets each yielded event and ``on_done`` the :class:`JobResult`, both on
    the GUI thread. Warnings raised while training (Lightning, torch) are logged instead
    of popping up as napari notifications. ``worker.quit()`` (napari calls it on every
    worker when it quits) also stops training after the current minibatch.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(job.events, _start_thread=False)
    relay = getattr(worker, "_relay_warning", None)
    if relay is not None:
        try:
            worker.warned.disconnect(relay)
        except (TypeError, RuntimeError):
            pass
    worker.warned.connect(_log_warning)
    quit_worker = worker.quit

    def quit_and_stop() -> None:
        job.request_stop()
        quit_worker()

    worker.quit = quit_and_stop
    worker.yielded.connect(on_event)
    worker.returned.connect(on_done)
    if start:
        worker.start()
    return worker


def _log_warning(args: tuple) -> None:
    message = args[0] if args else ""
    logger.debug("warning while training: %s", message)
