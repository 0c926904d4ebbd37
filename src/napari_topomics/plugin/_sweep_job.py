"""The topic sweep as a :class:`._worker.FitJob`: progress per finished fit, a cooperative stop.

:func:`sweep_job` returns a job whose ``fit`` runs
:func:`~napari_topomics.workflow.sweep_tissue`; its events are :class:`SweepProgress`
and its outcome a :class:`SweepRun`, so the widget reuses the fit's worker, stop and error
handling unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ._worker import FitJob

if TYPE_CHECKING:
    from ..io._inputs import TissueInput
    from ..models import TopicSweep
    from ..workflow import FitConfig


@dataclass
class SweepProgress:
    """``done`` of ``total`` fits finished after ``elapsed_s`` seconds."""

    done: int
    total: int
    elapsed_s: float

    @property
    def fraction(self) -> float:
        """Share of the fits finished."""
        return self.done / self.total if self.total else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first fit ends)."""
        if not self.done:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)


@dataclass
class SweepRun:
    """A finished (or stopped) sweep, the tissue it ran on and the options it ran with."""

    sweep: TopicSweep
    tissue: TissueInput
    config: FitConfig
    stopped: bool


def _run_sweep(
    source: Any,
    config: FitConfig,
    *,
    on_progress,
    should_stop,
    source_label: str | None,
    n_topics: list[int],
    seeds: int,
    n_jobs: int,
) -> SweepRun:
    from ..workflow import sweep_tissue

    start = time.perf_counter()
    total = len(n_topics) * seeds
    on_progress(SweepProgress(0, total, 0.0))

    def progress(done: int, total: int) -> None:
        on_progress(SweepProgress(done, total, time.perf_counter() - start))

    sweep, tissue = sweep_tissue(
        source, config, n_topics, seeds=seeds, n_jobs=n_jobs if n_jobs > 1 else None,
        progress=progress, should_stop=should_stop, source_label=source_label,
    )
    return SweepRun(sweep, tissue, config, stopped=sweep.stopped)


def sweep_job(
    source: Any,
    config: FitConfig,
    n_topics: list[int],
    *,
    seeds: int,
    n_jobs: int,
    source_label: str | None = None,
    interval: float = 0.25,
) -> FitJob:
    """A job that sweeps ``n_topics`` x ``seeds`` on ``source`` with ``config``'s options.

    ``n_jobs`` worker processes (one torch thread each; 1 fits in the job's thread).
    """
    fit = partial(_run_sweep, n_topics=list(n_topics), seeds=int(seeds), n_jobs=int(n_jobs))
    return FitJob(source, config, source_label=source_label, interval=interval, fit=fit)
