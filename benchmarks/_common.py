"""Shared helpers of the benchmark scripts: threads, timing, peak memory, quiet logging."""

from __future__ import annotations

import logging
import os
import resource
import time
import warnings
from contextlib import contextmanager


def single_thread() -> None:
    """Pin every library to one thread so that timings compare like with like."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import torch

    torch.set_num_threads(1)


def quiet() -> None:
    """Silence Lightning's and scvi's chatter so the figures stand out."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi", "pyro"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


@contextmanager
def timer(store: dict, key: str):
    """Record the wall time of the block in ``store[key]`` (seconds)."""
    start = time.perf_counter()
    yield
    store[key] = time.perf_counter() - start


def machine() -> str:
    """One line naming the machine and thread count of this run."""
    import platform

    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch threads={torch.get_num_threads()}, torch {torch.__version__}")


def row(label: str, **values) -> str:
    """A fixed-width result line."""
    cells = "  ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    return f"{label:<38s} {cells}"
