"""Input handling of a topic sweep: option checks, argument routing, the held-out split."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

#: Arguments of ``MultimodalAmortizedLDA.train`` (and scvi's ``PyroSviTrainMixin.train``)
#: routed to training; everything a setup or constructor signature names goes to
#: ``from_data``, and the rest (Lightning ``Trainer`` options) to training too.
_TRAIN_ONLY = ("max_epochs", "batch_size", "plan_kwargs", "train_size", "validation_size",
               "lr", "early_stopping", "accelerator", "device", "callbacks")


def check_topic_range(n_topics: Any, n_cells: int) -> list[int]:
    """The sorted distinct values of ``n_topics``, or one ``ValueError`` naming the option.

    Parameters
    ----------
    n_topics
        An iterable of integers (a ``range`` or a tuple), or a single integer.
    n_cells
        Cells in the data; every K must be smaller.
    """
    if isinstance(n_topics, int | np.integer) and not isinstance(n_topics, bool):
        n_topics = [n_topics]
    if isinstance(n_topics, str | bytes) or not isinstance(n_topics, Iterable):
        raise ValueError(
            f"n_topics must be a sequence of integers such as (4, 6, 8) or range(4, 17, 2), "
            f"got {n_topics!r}."
        )
    values = list(n_topics)
    if not values:
        raise ValueError("n_topics is empty: give at least one number of topics, e.g. (4, 6, 8).")
    bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | np.integer)]
    if bad:
        raise ValueError(f"n_topics must hold integers only, got {bad[0]!r}.")
    ks = sorted({int(v) for v in values})
    if ks[0] < 2:
        raise ValueError(f"n_topics must be at least 2 topics each, got K={ks[0]}.")
    if ks[-1] >= n_cells:
        raise ValueError(
            f"n_topics must be smaller than the number of cells ({n_cells}), got K={ks[-1]}."
        )
    return ks


def check_seeds(seeds: Any) -> list[int]:
    """``seeds`` restarts per K as the seeds ``0 .. seeds-1`` (or the given list of seeds)."""
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1 (restarts per K), got {seeds}.")
        return list(range(int(seeds)))
    if isinstance(seeds, Iterable) and not isinstance(seeds, str | bytes):
        values = list(seeds)
        if values and all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) for s in values
        ) and len(set(values)) == len(values):
            return [int(s) for s in values]
    raise ValueError(
        f"seeds must be a positive integer (restarts per K) or a list of distinct integer "
        f"seeds, got {seeds!r}."
    )


def check_n_jobs(n_jobs: Any) -> int:
    """Worker processes: ``None`` or 1 runs in this process; ``-1`` uses every core."""
    if n_jobs is None:
        return 1
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer):
        raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {n_jobs!r}.")
    if n_jobs == -1:
        import os

        return max(1, os.cpu_count() or 1)
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {n_jobs}.")
    return int(n_jobs)


def split_kwargs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Route ``sweep_topics``' extra arguments: ``(from_data kwargs, train kwargs)``.

    Names of ``MultimodalAmortizedLDA.from_data``, its setup methods and its constructor go
    to ``from_data``; the rest go to ``train`` (which hands unknown names to Lightning's
    ``Trainer``, so a misspelt option still fails with the name in the message).
    """
    from ._model import MultimodalAmortizedLDA as Model

    if "n_topics" in kwargs:
        raise ValueError("n_topics is the sweep's own argument; pass the range of K there.")
    setup_names: set[str] = set()
    for fn in (Model.from_data, Model.setup_data, Model.setup_mudata, Model.__init__):
        setup_names |= {
            p.name for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        }
    setup_names |= {"encoder_extra_obsm_key"}
    setup_names -= {"self", "cls", "data", "adata", "mdata", "n_topics", *_TRAIN_ONLY}
    setup = {k: v for k, v in kwargs.items() if k in setup_names}
    train = {k: v for k, v in kwargs.items() if k not in setup_names}
    return setup, train


def model_input(data, setup: dict[str, Any]):
    """The object to set up: a SpatialData stands for its table (``table_key``)."""
    from ..data import detect_input_type

    if detect_input_type(data) != "spatialdata":
        return data
    key = setup.pop("table_key", "table")
    if key not in data.tables:
        raise ValueError(
            f"table_key {key!r} is not a table of the SpatialData: {list(data.tables)}."
        )
    return data.tables[key]


def cell_names(data) -> pd.Index:
    """The cells of an AnnData, MuData or ``dict[str, AnnData]`` (their union for a dict)."""
    if isinstance(data, Mapping):
        names: list[str] = []
        seen: set[str] = set()
        for adata in data.values():
            for name in adata.obs_names:
                if name not in seen:
                    seen.add(name)
                    names.append(name)
        return pd.Index(names)
    return pd.Index(data.obs_names)


def subset_cells(data, names: pd.Index):
    """A copy of ``data`` restricted to the cells ``names`` (each modality its own share)."""
    if isinstance(data, Mapping):
        return {k: v[v.obs_names.isin(names)].copy() for k, v in data.items()}
    return data[data.obs_names.isin(names)].copy()


def holdout_split(
    names: pd.Index, fraction: float, seed: int
) -> tuple[pd.Index, pd.Index]:
    """``(fit cells, held-out cells)``: a seeded random ``fraction`` of the cells held out.

    One split serves every K and seed of a sweep, so their held-out figures compare.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, float | int) or not (
        0.0 < fraction < 1.0
    ):
        raise ValueError(f"holdout must be a fraction in (0, 1), got {fraction!r}.")
    n_held = int(round(fraction * len(names)))
    if n_held < 1 or n_held >= len(names) - 1:
        raise ValueError(
            f"holdout={fraction} of {len(names)} cells leaves no held-out or no fitting cells."
        )
    order = np.random.default_rng(seed).permutation(len(names))
    held = np.zeros(len(names), dtype=bool)
    held[order[:n_held]] = True
    return names[~held], names[held]
