"""The napari reader: SpatialData zarr stores and vendor folders, runs reopened coloured.

:func:`get_reader` never raises; it returns None for anything that is not a SpatialData
store or a vendor folder the I/O layer recognises.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io._errors import TopomicsInputError
from . import _keys as keys

if TYPE_CHECKING:
    from spatialdata import SpatialData

    from ._element_layers import LayerData

__all__ = ["get_reader", "read_layers", "sdata_to_layer_data"]


def _single_path(path: Any) -> str | Path | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    return path if isinstance(path, str | Path) else None


def get_reader(path: Any) -> Callable[[Any], list[LayerData]] | None:
    """The reader function for ``path``, or None when it is not tissue data we read.

    Parameters
    ----------
    path
        A path (or a one-element list of paths) napari asks about.
    """
    single = _single_path(path)
    if single is None:
        return None
    try:
        from ..io._read import detect_source

        vendor = detect_source(single)
    except Exception:  # never raise from get_reader: napari tries other readers
        return None
    return partial(read_layers, vendor=vendor)


def read_layers(
    path: Any, *, vendor: str | None = None, coordinate_system: str | None = None
) -> list[LayerData]:
    """Read a store or vendor folder into napari layer data tuples.

    Raises
    ------
    TopomicsInputError
        For a path that is not readable tissue data (napari shows the message).
    """
    from ..io._read import read_tissue

    single = _single_path(path)
    if single is None:
        raise TopomicsInputError(f"Expected one store or folder path, got {path!r}.")
    sdata = read_tissue(single, vendor=vendor)
    return sdata_to_layer_data(
        sdata, source=str(single), vendor=vendor, coordinate_system=coordinate_system
    )


def _run_layers(sdata: SpatialData, system: str, source: str | None, vendor: str | None):
    from ..io._results import TopicResults
    from ..io._tables import list_tables
    from ._result_layers import result_layer_data

    out = []
    for info in list_tables(sdata):
        if not info.is_run:
            continue
        try:
            results = TopicResults.from_table(sdata.tables[info.name])
            out.append(result_layer_data(sdata, results, system, source=source, vendor=vendor))
        except TopomicsInputError as err:
            warnings.warn(f"Run table {info.name!r} not shown: {err}", stacklevel=2)
    return out


def sdata_to_layer_data(
    sdata: SpatialData,
    *,
    source: str | None = None,
    vendor: str | None = None,
    coordinate_system: str | None = None,
) -> list[LayerData]:
    """Layer data of every element of ``sdata``, then one coloured layer per stored run.

    The element a run paints is still returned, hidden, under the run's layer.
    """
    from ._element_layers import choose_coordinate_system, sdata_layer_data

    system = choose_coordinate_system(sdata, coordinate_system)
    layers = sdata_layer_data(sdata, system, source=source, vendor=vendor)
    runs = _run_layers(sdata, system, source, vendor)
    painted = {kwargs["metadata"].get(keys.REGION) for _, kwargs, _ in runs}
    for _, kwargs, layer_type in layers:
        if layer_type != "image" and kwargs["metadata"].get(keys.ELEMENT) in painted:
            kwargs["visible"] = False
    return layers + runs
