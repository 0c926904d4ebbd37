"""Validation and dtype normalisation of ``TopicResults`` fields.

Every function returns a new, normalised object (the caller's frames are never modified)
or raises :class:`TopomicsInputError` with a one-line message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ._errors import TopomicsInputError

ROW_SUM_TOL = 1e-3
TOP_COLUMNS = ["topic", "rank", "feature", "score"]
RESERVED_OBS = ("dominant_topic", "topic_entropy")


def _str_index(index: pd.Index, what: str) -> pd.Index:
    if index.dtype == object and pd.api.types.infer_dtype(index, skipna=False) == "string":
        out = index  # already object strings: no per-cell conversion (fast at 10^6 cells)
    else:
        out = pd.Index([str(v) for v in index], dtype=object)
    if not out.is_unique:
        dup = out[out.duplicated()].unique()[:5].tolist()
        raise TopomicsInputError(f"{what} has duplicated cell names: {dup}.")
    return out


def _simplex_frame(frame: Any, what: str, index: pd.Index | None) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TopomicsInputError(f"{what} must be a pandas DataFrame; got {type(frame).__name__}.")
    if frame.shape[1] == 0:
        raise TopomicsInputError(f"{what} has no columns.")
    try:
        values = frame.to_numpy(dtype=np.float32, copy=True)
    except (TypeError, ValueError) as err:
        raise TopomicsInputError(f"{what} must hold numbers ({err}).") from None
    if not np.isfinite(values).all():
        raise TopomicsInputError(f"{what} holds non-finite values.")
    if (values < -ROW_SUM_TOL).any():
        raise TopomicsInputError(f"{what} holds negative values (min {values.min():.3g}).")
    sums = values.astype(np.float64).sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOL)
    if bad.size:
        raise TopomicsInputError(
            f"{what} rows must sum to 1; row {frame.index[bad[0]]!r} sums to {sums[bad[0]]:.6g} "
            f"({bad.size} rows off by more than {ROW_SUM_TOL})."
        )
    if index is not None and frame.index is index:
        rows = index  # the same (validated) index object: nothing to check again
    else:
        rows = _str_index(frame.index, what)
    if index is not None and not rows.equals(index):
        raise TopomicsInputError(
            f"{what} rows are not aligned with proportions' rows (same cell names, same order)."
        )
    columns = pd.Index([str(c) for c in frame.columns], dtype=object)
    return pd.DataFrame(values, index=rows, columns=columns)


def proportions(frame: Any) -> pd.DataFrame:
    """Cells × ``topic_0..`` float32, rows on the simplex."""
    out = _simplex_frame(frame, "proportions", None)
    expected = [f"topic_{k}" for k in range(out.shape[1])]
    if list(out.columns) != expected:
        raise TopomicsInputError(
            f"proportions columns must be topic_0..topic_{len(expected) - 1} in order; got "
            f"{list(out.columns)[:5]}."
        )
    return out


def modality_weights(frame: Any, index: pd.Index) -> pd.DataFrame:
    """Cells × modality float32, rows on the simplex, aligned with ``index``."""
    out = _simplex_frame(frame, "modality_weights", index)
    for name in out.columns:
        valid_name(name, "modality name")
    lowered = [c.lower() for c in out.columns]
    if len(set(lowered)) != len(lowered):
        raise TopomicsInputError(
            f"modality names must be unique ignoring case; got {list(out.columns)}."
        )
    return out


def valid_name(name: Any, what: str) -> str:
    """A SpatialData-safe name: letters, digits, ``_ - .``, not starting with ``__``."""
    ok = (
        isinstance(name, str) and name not in ("", ".", "..") and not name.startswith("__")
        and all(c.isalnum() or c in "_-." for c in name)
    )
    if not ok:
        raise TopomicsInputError(
            f"Invalid {what} {name!r}: use letters, digits, '_', '-' and '.', not starting "
            "with '__'."
        )
    return name


def top_features(value: Any, modalities: list[str], topics: list[str]) -> dict[str, pd.DataFrame]:
    """Modality → long frame ``topic, rank, feature, score``, same modalities as weights."""
    if not isinstance(value, Mapping):
        raise TopomicsInputError(
            f"top_features must be a dict modality -> DataFrame; got {type(value).__name__}."
        )
    if sorted(map(str, value)) != sorted(modalities):
        raise TopomicsInputError(
            f"top_features modalities {sorted(map(str, value))} do not match modality_weights "
            f"columns {modalities}."
        )
    return {mod: _top_frame(value[mod], mod, topics) for mod in modalities}


def _top_frame(frame: Any, mod: str, topics: list[str]) -> pd.DataFrame:
    what = f"top_features[{mod!r}]"
    if not isinstance(frame, pd.DataFrame) or list(frame.columns) != TOP_COLUMNS:
        got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise TopomicsInputError(
            f"{what} must be a DataFrame with columns {TOP_COLUMNS}; got {got}."
        )
    try:
        out = pd.DataFrame({
            "topic": pd.Series([str(v) for v in frame["topic"]], dtype=object),
            "rank": pd.Series(np.asarray(frame["rank"], dtype=np.int64)),
            "feature": pd.Series([str(v) for v in frame["feature"]], dtype=object),
            "score": pd.Series(np.asarray(frame["score"], dtype=np.float64)),
        })
    except (TypeError, ValueError) as err:
        raise TopomicsInputError(f"{what} has a non-numeric rank or score ({err}).") from None
    unknown = sorted(set(out["topic"]) - set(topics))
    if unknown:
        raise TopomicsInputError(f"{what} names unknown topics {unknown[:5]}; known: {topics}.")
    counts = out["topic"].value_counts()
    if len(set(counts.tolist())) > 1 or (len(out) and len(counts) != len(topics)):
        raise TopomicsInputError(
            f"{what} must list the same number of features for every topic; got "
            f"{counts.reindex(topics, fill_value=0).to_dict()}."
        )
    return out


def elbo_history(frame: Any) -> pd.DataFrame:
    """Index ``epoch`` (0..n-1), float64 columns: ``elbo_train`` first, then the rest sorted."""
    if not isinstance(frame, pd.DataFrame) or "elbo_train" not in frame.columns:
        got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise TopomicsInputError(
            f"elbo_history must be a DataFrame with column 'elbo_train'; got {got}."
        )
    order = ["elbo_train"] + sorted(str(c) for c in frame.columns if c != "elbo_train")
    try:
        values = frame.set_axis([str(c) for c in frame.columns], axis=1)[order].to_numpy(
            dtype=np.float64, copy=True
        )
    except (TypeError, ValueError) as err:
        raise TopomicsInputError(f"elbo_history must hold numbers ({err}).") from None
    epochs = np.asarray(frame.index)
    if not np.array_equal(epochs, np.arange(len(frame))):
        raise TopomicsInputError(
            f"elbo_history index must be the epochs 0..{len(frame) - 1}; got {epochs[:5].tolist()}."
        )
    index = pd.Index(np.arange(len(frame), dtype=np.int64), name="epoch")
    return pd.DataFrame(values, index=index, columns=pd.Index(order, dtype=object))


def json_safe(value: Any) -> Any:
    """A JSON-serialisable copy: numpy → Python, tuples/sets → lists, others → ``str``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [json_safe(v) for v in items]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def provenance(value: Any) -> dict:
    """Normalised JSON-safe copy of the provenance dict."""
    if not isinstance(value, Mapping):
        raise TopomicsInputError(f"provenance must be a dict; got {type(value).__name__}.")
    out = json_safe(value)
    json.dumps(out, allow_nan=False)
    return out


def region(value: Any) -> str | None:
    """``None`` or a valid SpatialData element name."""
    return None if value is None else valid_name(value, "region (element name)")


def keys(region_key: Any, instance_key: Any, modalities: list[str]) -> tuple[str, str]:
    """Valid, distinct obs column names not clashing with the run's own columns."""
    valid_name(region_key, "region_key")
    valid_name(instance_key, "instance_key")
    taken = {*RESERVED_OBS, *(f"weight_{m}" for m in modalities)}
    for name, what in ((region_key, "region_key"), (instance_key, "instance_key")):
        if name.lower() in {t.lower() for t in taken}:
            raise TopomicsInputError(
                f"{what}={name!r} clashes with a column the run writes; avoid {sorted(taken)}."
            )
    if region_key.lower() == instance_key.lower():
        raise TopomicsInputError(
            f"region_key and instance_key must differ; both are {region_key!r}."
        )
    return region_key, instance_key


def instance_ids(value: Any, n: int) -> np.ndarray | None:
    """``None`` or a unique int64 array of length ``n``."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.ndim != 1 or len(arr) != n:
        raise TopomicsInputError(
            f"instance_ids must have one id per row ({n}); got shape {arr.shape}."
        )
    if arr.dtype.kind not in "iu" and not (
        arr.dtype.kind == "f" and np.isfinite(arr).all() and np.array_equal(arr, np.round(arr))
    ):
        raise TopomicsInputError(f"instance_ids must be integers; got dtype {arr.dtype}.")
    out = arr.astype(np.int64)
    steps = np.diff(out)
    unique = bool((steps > 0).all()) or (  # sorted ids (the usual case) need no sort
        n < 2 or bool((np.diff(np.sort(out)) != 0).all())
    )
    if not unique:
        raise TopomicsInputError("instance_ids must be unique (one element instance per row).")
    return out


def coordinates(value: Any, index: pd.Index) -> pd.DataFrame | None:
    """``None`` or a float64 frame with columns ``x, y`` aligned with ``index``."""
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        missing = [c for c in ("x", "y") if c not in value.columns]
        if missing:
            raise TopomicsInputError(
                f"coordinates needs columns ['x', 'y']; missing {missing} in {list(value.columns)}."
            )
        same = value.index is index
        if not same and not _str_index(value.index, "coordinates").equals(index):
            raise TopomicsInputError("coordinates rows are not aligned with proportions' rows.")
        value = value[["x", "y"]]
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (len(index), 2):
        raise TopomicsInputError(
            f"coordinates must be {len(index)} x 2 (x, y); got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise TopomicsInputError("coordinates hold non-finite values.")
    return pd.DataFrame(arr.copy(), index=index.copy(), columns=pd.Index(["x", "y"], dtype=object))


def frames_equal(a: pd.DataFrame | None, b: pd.DataFrame | None) -> bool:
    """Exact equality of two frames (values, dtypes, index and column labels), or both None."""
    if a is None or b is None:
        return a is None and b is None
    try:
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    except AssertionError:
        return False
    return True


def spatial_coherence(value: Any, topics: list[str]) -> pd.Series | None:
    """``None`` or a float64 Series of Moran's I per topic (index ``topics``, name ``morans_i``).

    A Series must be indexed by the topic names (any order; it is put in topic order); an
    array-like must hold one value per topic. NaN is allowed (a topic constant over the
    cells has no Moran's I), infinities are not.
    """
    if value is None:
        return None
    if isinstance(value, pd.Series):
        names = [str(v) for v in value.index]
        if sorted(names) != sorted(topics) or len(set(names)) != len(names):
            raise TopomicsInputError(
                f"spatial_coherence must be indexed by the topics {topics}; got {names[:5]}."
            )
        value = pd.Series(value.to_numpy(), index=names).reindex(topics)
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise TopomicsInputError(f"spatial_coherence must hold numbers ({err}).") from None
    if arr.shape != (len(topics),):
        raise TopomicsInputError(
            f"spatial_coherence needs one value per topic ({len(topics)}); got {arr.size}."
        )
    if np.isinf(arr).any():
        raise TopomicsInputError("spatial_coherence holds infinite values.")
    return pd.Series(arr.copy(), index=pd.Index(topics, dtype=object), name="morans_i")


def series_equal(a: pd.Series | None, b: pd.Series | None) -> bool:
    """Exact equality of two series (NaN equals NaN), or both None."""
    if a is None or b is None:
        return a is None and b is None
    try:
        pd.testing.assert_series_equal(a, b, check_exact=True)
    except AssertionError:
        return False
    return True
