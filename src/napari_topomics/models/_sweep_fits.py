"""Running the independent fits of a topic sweep, in this process or in worker processes.

Every fit builds its model on the fit cells only, trains it, and scores it on the held-out
cells. In worker processes (spawned, one torch thread each) a finished model is saved to
the sweep's folder and loaded back only when asked for.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._sweep_metrics import fit_metrics, topic_contrasts


@dataclass
class FitPayload:
    """What every fit of a sweep shares: the data, the setup and training arguments."""

    fit_data: Any
    heldout_data: Any
    setup: dict[str, Any]
    train: dict[str, Any]


@dataclass
class FitRecord:
    """One finished fit: its metrics, its topic contrasts and where its model is."""

    n_topics: int
    seed: int
    metrics: dict[str, float]
    contrasts: np.ndarray
    seconds: float
    model: Any = None
    path: str | None = None
    _loaded: Any = field(default=None, repr=False)

    def get_model(self):
        """The fitted model (loaded from ``path`` the first time, for worker fits)."""
        if self.model is not None:
            return self.model
        if self._loaded is None:
            from ._model import MultimodalAmortizedLDA

            self._loaded = MultimodalAmortizedLDA.load(self.path)
        return self._loaded


def _quiet() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def _scvi_quiet():
    """Hide scvi's "transfer AnnData setup" note while the held-out query is scored."""
    logger = logging.getLogger("scvi")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def fit_one(
    payload: FitPayload, n_topics: int, seed: int, should_stop: Callable[[], bool] | None
) -> FitRecord | None:
    """Fit one ``(K, seed)``; ``None`` when ``should_stop`` ended its training early."""
    import scvi

    from ..workflow._progress import TrainingMonitor
    from ._model import MultimodalAmortizedLDA

    _quiet()
    start = time.perf_counter()
    scvi.settings.seed = int(seed)
    model = MultimodalAmortizedLDA.from_data(
        payload.fit_data, n_topics=int(n_topics), **payload.setup
    )
    monitor = TrainingMonitor(should_stop=should_stop)
    train = dict(payload.train)
    train["callbacks"] = [*list(train.get("callbacks") or []), monitor]
    train.setdefault("enable_progress_bar", False)
    train.setdefault("enable_model_summary", False)
    train.setdefault("enable_checkpointing", False)
    with warnings.catch_warnings():
        # Lightning's notes on small epochs and its own deprecations, once per fit
        warnings.filterwarnings("ignore", message=".*number of training batches.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        model.train(**train)
    if monitor.stopped:
        return None
    with _scvi_quiet():
        query = model._prepare_query(payload.heldout_data)
        metrics = fit_metrics(model, query)
    return FitRecord(
        int(n_topics), int(seed), metrics, topic_contrasts(model),
        time.perf_counter() - start, model=model,
    )


# ---------------------------------------------------------------- worker processes
_WORKER: dict[str, Any] = {}


def _write_data(data, path: Path) -> str:
    """Write an AnnData, MuData or dict of AnnData under ``path`` (a stem); returns where.

    Worker processes read their data from disk: AnnData objects inside a MuData do not
    survive pickling across a spawn.
    """
    if isinstance(data, dict):
        path.mkdir(parents=True, exist_ok=True)
        for name, adata in data.items():
            adata.write_h5ad(path / f"{name}.h5ad")
        return str(path)
    if hasattr(data, "mod"):
        target = path.with_suffix(".h5mu")
        data.write(target)
        return str(target)
    target = path.with_suffix(".h5ad")
    data.write_h5ad(target)
    return str(target)


def _read_data(where: str):
    import anndata as ad

    path = Path(where)
    if path.is_dir():
        return {p.stem: ad.read_h5ad(p) for p in sorted(path.glob("*.h5ad"))}
    if path.suffix == ".h5mu":
        import mudata as md

        return md.read_h5mu(path)
    return ad.read_h5ad(path)


def _init_worker(fit_path: str, heldout_path: str, setup, train, stop_event, folder) -> None:
    import torch

    torch.set_num_threads(1)
    payload = FitPayload(_read_data(fit_path), _read_data(heldout_path), setup, train)
    _WORKER.update(payload=payload, stop=stop_event, folder=folder)


def _fit_in_worker(n_topics: int, seed: int) -> FitRecord | None:
    stop = _WORKER["stop"]
    record = fit_one(_WORKER["payload"], n_topics, seed, stop.is_set)
    if record is None:
        return None
    path = Path(_WORKER["folder"]) / f"k{n_topics}_seed{seed}"
    record.model.save(str(path), save_anndata=True, overwrite=True)
    record.model, record.path = None, str(path)
    return record


def run_fits(
    payload: FitPayload,
    jobs: list[tuple[int, int]],
    *,
    n_jobs: int,
    folder: str | None,
    progress: Callable[[int, int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> tuple[list[FitRecord], bool]:
    """Run every ``(K, seed)`` job; returns the finished fits and whether a stop came.

    ``progress(done, total)`` is called after every finished fit. ``should_stop`` is
    polled during training (the fit in progress ends and is dropped) and between fits;
    fits finished before the stop are kept.
    """
    if n_jobs <= 1 or len(jobs) <= 1:
        return _run_here(payload, jobs, progress, should_stop)
    return _run_in_workers(payload, jobs, n_jobs, folder, progress, should_stop)


def _run_here(payload, jobs, progress, should_stop) -> tuple[list[FitRecord], bool]:
    records: list[FitRecord] = []
    for n_topics, seed in jobs:
        if should_stop is not None and should_stop():
            return records, True
        record = fit_one(payload, n_topics, seed, should_stop)
        if record is None:
            return records, True
        records.append(record)
        if progress is not None:
            progress(len(records), len(jobs))
    return records, False


def _run_in_workers(
    payload, jobs, n_jobs, folder, progress, should_stop
) -> tuple[list[FitRecord], bool]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    stop_event = context.Event()
    records: list[FitRecord] = []
    stopped = False
    fit_path = _write_data(payload.fit_data, Path(folder) / "fit_cells")
    heldout_path = _write_data(payload.heldout_data, Path(folder) / "heldout_cells")
    initargs = (fit_path, heldout_path, payload.setup, payload.train, stop_event, folder)
    with ProcessPoolExecutor(
        max_workers=min(n_jobs, len(jobs)), mp_context=context,
        initializer=_init_worker, initargs=initargs,
    ) as pool:
        pending: set[Future] = {pool.submit(_fit_in_worker, k, s) for k, s in jobs}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                if future.cancelled():
                    continue
                record = future.result()
                if record is not None:
                    records.append(record)
                    if progress is not None and not stopped:
                        progress(len(records), len(jobs))
            if not stopped and should_stop is not None and should_stop():
                stopped = True
                stop_event.set()
                for future in pending:
                    future.cancel()
    order = {job: i for i, job in enumerate(jobs)}
    records.sort(key=lambda r: order[(r.n_topics, r.seed)])
    return records, stopped
