"""The napari plugin: reader, sample data, topic-model dock, result layers and docks.

This subpackage is the only place that imports napari or Qt. Importing it is cheap: the
public helpers load their modules on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["add_result_layers", "color_by", "get_reader", "open_store", "paint_saved_run"]

_EXPORTS = {
    "add_result_layers": "._result_layers",
    "color_by": "._result_layers",
    "get_reader": "._reader",
    "open_store": "._open",
    "paint_saved_run": "._open",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
