"""Validation of the constructor arguments (spec §2.2): every check before any tensor."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

WEIGHT_MODES = ("equal", "universal", "cell")
AGGREGATIONS = ("moe", "attention")
PRIOR_TYPES = ("logistic_normal", "horseshoe")
LIKELIHOOD_WEIGHT_MODES = ("none", "inverse_features", "sqrt_inverse_features")
LIKELIHOOD_WEIGHT_REFS = ("mean", "median", "max")
CONV_TYPES = ("GATv2Conv", "GCNConv")
SPATIAL_MODES = ("gcn", "sgc", "simplified")
SAMPLING_MODES = ("approx", "exact")


def choice(name: str, value: Any, allowed: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise naming all three."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(allowed)}; got {value!r}.")
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid. Allowed values: {list(allowed)}.")
    return value


def integer(name: str, value: Any, minimum: int) -> int:
    """Validate an integer ≥ ``minimum`` (bool is rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}.")
    return int(value)


def real(
    name: str, value: Any, minimum: float | None = None, maximum: float | None = None,
    strict: bool = False,
) -> float:
    """Validate a finite real number in ``[minimum, maximum]`` (``(minimum, …]`` if strict)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number; got {value!r}.")
    value = float(value)
    low_bad = minimum is not None and (value <= minimum if strict else value < minimum)
    if not np.isfinite(value) or low_bad or (maximum is not None and value > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        bracket = "(" if strict else "["
        raise ValueError(f"{name} must be in {bracket}{lo}, {hi}]; got {value!r}.")
    return value


def flag(name: str, value: Any) -> bool:
    """Validate a boolean."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}.")
    return bool(value)


def concentration(name: str, value: Any, length: int, what: str) -> tuple[float, ...]:
    """Resolve a Dirichlet concentration: ``None`` → ``1/K``, scalar, or a sequence."""
    if value is None:
        return ()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        values = [float(value)] * length
    elif isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        values = [real(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if len(values) != length:
            raise ValueError(
                f"{name} has length {len(values)} but must have one value per {what} "
                f"({length})."
            )
    else:
        raise TypeError(f"{name} must be None, a positive number or a sequence; got {value!r}.")
    if any(not np.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f"{name} values must all be > 0; got {value!r}.")
    return tuple(values)


def int_list(name: str, value: Any, length: int, minimum: int = 1) -> list[int] | None:
    """Validate an optional list of integers of a given length."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{name} must be a list of integers; got {value!r}.")
    items = [integer(f"{name}[{i}]", v, minimum) for i, v in enumerate(value)]
    if len(items) != length:
        raise ValueError(
            f"{name} has length {len(items)} but gcn_n_layers is {length}; they must match."
        )
    return items


def likelihood_weights(feature_counts: Sequence[int], mode: str, ref: str) -> list[float]:
    """The per-modality likelihood weights ``w_m`` of spec §3.7."""
    counts = np.asarray(feature_counts, dtype=np.float64)
    if mode == "none":
        return [1.0] * len(counts)
    if ref == "mean":
        f_ref = counts.mean()
    elif ref == "max":
        f_ref = counts.max()
    else:  # the lower middle value, as torch.median computes it
        f_ref = np.sort(counts)[(len(counts) - 1) // 2]
    ratio = f_ref / counts
    return list(ratio if mode == "inverse_features" else np.sqrt(ratio))
