"""Argument-keyed cache for query results (spec §5.10)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import numpy as np


def content_key(value: Any) -> Any:
    """A hashable key that identifies ``value`` by content (arrays) or identity (objects)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, np.ndarray | list | tuple | range):
        arr = np.ascontiguousarray(np.asarray(value))
        return ("array", arr.dtype.str, arr.shape, hashlib.sha1(arr.tobytes()).hexdigest())
    return ("object", id(value))


class MetricCache:
    """A dict of results keyed by method name and every argument; returns copies."""

    def __init__(self) -> None:
        self._store: dict[tuple, Any] = {}

    def key(self, method: str, **arguments) -> tuple:
        return (method, *sorted((k, content_key(v)) for k, v in arguments.items()))

    def get(self, key: tuple):
        if key not in self._store:
            return None
        return copy.deepcopy(self._store[key])

    def put(self, key: tuple, value):
        self._store[key] = copy.deepcopy(value)
        return value

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)
