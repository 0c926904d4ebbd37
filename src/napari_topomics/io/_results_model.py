"""Collect a trained model's results and provenance for ``TopicResults.from_model``."""

from __future__ import annotations

import datetime as dt
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from ._errors import TopomicsInputError
from ._results_check import json_safe

VERSION_PACKAGES = ("napari-topomics", "scvi-tools", "torch", "pyro-ppl", "spatialdata", "anndata")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on (``None`` if absent)."""
    out: dict[str, str | None] = {}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def top_feature_frame(model, modality: str, n_top: int) -> pd.DataFrame:
    """The model's distinctive features of ``modality`` per topic, as a long frame.

    Ranked by ``get_top_features_per_topic(..., ranking="distinctive")``: what a reader
    of a topic needs (frequent in the topic and specific to it); the plain profile weight
    lets rare features with drifting weights lead every topic on real data.
    """
    ranked = model.get_top_features_per_topic(
        modality, n_features=n_top, return_scores=True, ranking="distinctive"
    )
    rows = [
        (topic, rank, feature, score)
        for topic, pairs in ranked.items()
        for rank, (feature, score) in enumerate(pairs, start=1)
    ]
    return pd.DataFrame(rows, columns=["topic", "rank", "feature", "score"])


def elbo_frame(history: dict) -> pd.DataFrame:
    """``elbo_train`` (and ``elbo_validation``) per epoch from scvi's ``model.history``."""
    columns = {}
    for key in ("elbo_train", "elbo_validation"):
        frame = history.get(key)
        if frame is not None and len(frame):
            columns[key] = np.asarray(frame.iloc[:, 0], dtype=np.float64)
    if "elbo_train" not in columns:
        raise TopomicsInputError(
            "The model has no 'elbo_train' history; train it (model.train(...)) before "
            "collecting results."
        )
    n = len(columns["elbo_train"])
    columns = {k: v for k, v in columns.items() if len(v) == n}
    return pd.DataFrame(columns, index=pd.Index(np.arange(n, dtype=np.int64), name="epoch"))


def model_device(model) -> str:
    """The device of the model's parameters (``"cpu"``, ``"cuda:0"``...)."""
    try:
        return str(next(model.module.parameters()).device)
    except (AttributeError, StopIteration):
        return "cpu"


def collect(
    model, *, run_name: str, n_top: int, region: str | None, source: Any, table: str | None,
    seed: int | None, device: str | None, cells: Any = None,
) -> dict[str, Any]:
    """Proportions, weights, top features, ELBO history and provenance of a trained model.

    ``cells`` (data set up like the training data, e.g. every cell of a tissue the model
    saw a part of) gives the per-cell results of those cells instead of the training ones.
    """
    if isinstance(n_top, bool) or not isinstance(n_top, int | np.integer) or n_top < 1:
        raise TopomicsInputError(f"n_top must be a positive integer; got {n_top!r}.")
    if not getattr(model, "is_trained_", False):
        raise TopomicsInputError("The model has not been trained; call model.train(...) first.")
    query = None if cells is None else model._prepare_query(cells)
    proportions = model.get_cell_topic_dist(adata=query, return_dataframe=True)
    weights = model.get_modality_weights(adata=query)
    modalities = [str(m) for m in model.modality_names]
    history = elbo_frame(model.history)
    if seed is None:
        import scvi

        seed = scvi.settings.seed
    provenance = {
        "run_name": run_name,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "source": None if source is None else str(source),
        "table": table,
        "element": region,
        "modalities": modalities,
        "likelihoods": dict(zip(modalities, map(str, model.likelihoods), strict=True)),
        "n_topics": int(model.n_topics),
        "n_epochs": len(history),
        "model_params": json_safe(getattr(model, "init_params_", {})),
        "device": device if device is not None else model_device(model),
        "versions": package_versions(),
    }
    return {
        "proportions": proportions,
        "modality_weights": weights,
        "top_features": {m: top_feature_frame(model, m, int(n_top)) for m in modalities},
        "elbo_history": history,
        "provenance": provenance,
    }
