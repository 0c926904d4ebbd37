"""SpatialData elements as napari layer data tuples ``(data, kwargs, layer_type)``.

Images keep their (multiscale) dask arrays lazy; every layer gets the element's
transformation to the chosen coordinate system as its ``affine``, and ``metadata`` naming
the store, the element and the tables annotating it (keys in :mod:`._keys`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io._errors import TopomicsInputError
from . import _keys as keys

if TYPE_CHECKING:
    from spatialdata import SpatialData

__all__ = [
    "KINDS",
    "LayerData",
    "choose_coordinate_system",
    "element_affine",
    "element_layer_data",
    "element_metadata",
    "element_points",
    "sdata_layer_data",
]

LayerData = tuple[Any, dict[str, Any], str]

#: Element kinds in the order their layers are stacked (images at the bottom).
KINDS = ("images", "labels", "shapes", "points")
_RGB_COORDS = (("r", "g", "b"), ("r", "g", "b", "a"))
#: Units of vendor coordinate systems that are known (spatialdata stores carry none).
_KNOWN_UNITS = {("xenium", "global"): "micrometer", ("merscope", "global"): "micrometer"}


def choose_coordinate_system(sdata: SpatialData, asked: str | None = None) -> str:
    """The coordinate system to show: ``asked``, else ``"global"``, else the fullest one.

    "Fullest" is the system holding the most elements (the first such, in the object's
    order).

    Raises
    ------
    TopomicsInputError
        For an unknown ``asked`` system or an object without coordinate systems.
    """
    systems = [str(s) for s in sdata.coordinate_systems]
    if asked is not None:
        if asked not in systems:
            raise TopomicsInputError(
                f"Coordinate system {asked!r} not found; available: {systems}."
            )
        return asked
    if not systems:
        raise TopomicsInputError("The SpatialData object has no coordinate system to show.")
    if "global" in systems:
        return "global"
    from spatialdata.transformations import get_transformation

    counts = dict.fromkeys(systems, 0)
    for _, _, element in sdata.gen_spatial_elements():
        for cs in get_transformation(element, get_all=True):
            if cs in counts:
                counts[cs] += 1
    return max(systems, key=lambda s: counts[s])


def _spatial_axes(element) -> tuple[str, ...]:
    from spatialdata.models import get_axes_names

    axes = get_axes_names(element)
    return tuple(a for a in ("z", "y", "x") if a in axes)


def element_affine(element, coordinate_system: str) -> np.ndarray | None:
    """The element → coordinate-system affine over its spatial axes (z,) y, x, or None."""
    from spatialdata.transformations import get_transformation

    systems = get_transformation(element, get_all=True)
    if coordinate_system not in systems:
        return None
    axes = _spatial_axes(element)
    matrix = systems[coordinate_system].to_affine_matrix(input_axes=axes, output_axes=axes)
    return np.asarray(matrix, dtype=np.float64)


def _annotating_tables(sdata: SpatialData, name: str) -> tuple[list[str], list[str]]:
    """(input tables, run tables) annotating element ``name``."""
    from ..io._tables import list_tables

    inputs, runs = [], []
    for info in list_tables(sdata):
        if name in info.elements:
            (runs if info.is_run else inputs).append(info.name)
    return inputs, runs


def element_metadata(
    sdata: SpatialData, name: str, kind: str, coordinate_system: str, source: str | None
) -> dict[str, Any]:
    """The ``metadata`` of a layer showing element ``name``."""
    from spatialdata.models import get_table_keys

    inputs, runs = _annotating_tables(sdata, name)
    meta: dict[str, Any] = {
        keys.SDATA: sdata,
        keys.SOURCE: source,
        keys.ELEMENT: name,
        keys.ELEMENT_KIND: kind,
        keys.COORDINATE_SYSTEM: coordinate_system,
        keys.TABLES: inputs + runs,
    }
    if inputs:
        table = sdata.tables[inputs[0]]
        _, region_key, instance_key = get_table_keys(table)
        meta.update({keys.ADATA: table, keys.REGION_KEY: region_key,
                     keys.INSTANCE_KEY: instance_key})
    return meta


def _levels(element) -> list:
    """Dask arrays of an image/labels element, finest first."""
    from xarray import DataArray

    if isinstance(element, DataArray):
        return [element.data]
    out = []
    for key in sorted(element.children, key=lambda k: int(str(k).removeprefix("scale") or 0)):
        node = element[key]
        var = next(iter(node.data_vars))
        out.append(node[var].data)
    return out


def _channels(element) -> list[str]:
    from xarray import DataArray

    array = element if isinstance(element, DataArray) else element["scale0"]
    if not isinstance(array, DataArray):
        array = array[next(iter(array.data_vars))]
    return [str(c) for c in array.coords["c"].values] if "c" in array.coords else []


def _common(name: str, affine: np.ndarray, ndim: int, units: str | None, meta: dict) -> dict:
    axes = ("z", "y", "x")[-ndim:]
    kwargs: dict[str, Any] = {"name": name, "affine": affine, "metadata": meta,
                              "axis_labels": axes}
    if units is not None:
        kwargs["units"] = (units,) * ndim
    return kwargs


def _image_data(name: str, element, kwargs: dict) -> LayerData:
    import dask.array as da

    levels = _levels(element)
    channels = _channels(element)
    multiscale = len(levels) > 1
    dtype = np.dtype(levels[0].dtype)
    if tuple(c.lower() for c in channels) in _RGB_COORDS and dtype == np.uint8:
        levels = [da.moveaxis(level, 0, -1) for level in levels]
        return (levels if multiscale else levels[0],
                {**kwargs, "rgb": True, "multiscale": multiscale}, "image")
    if len(channels) == 1:
        levels = [level[0] for level in levels]
        return (levels if multiscale else levels[0],
                {**kwargs, "multiscale": multiscale}, "image")
    names = [f"{name} [{c}]" for c in channels]
    return (levels if multiscale else levels[0],
            {**kwargs, "name": names, "channel_axis": 0, "multiscale": multiscale,
             "blending": "additive"}, "image")


def _labels_data(element, kwargs: dict) -> LayerData:
    levels = _levels(element)
    multiscale = len(levels) > 1
    return (levels if multiscale else levels[0], {**kwargs, "multiscale": multiscale}, "labels")


def _polygon_rings(geometry) -> list[np.ndarray]:
    polys = list(geometry.geoms) if geometry.geom_type == "MultiPolygon" else [geometry]
    rings = []
    for poly in polys:
        xy = np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]
        rings.append(xy[:, ::-1])
    return rings


def element_points(element) -> tuple[np.ndarray, np.ndarray | None, pd.Index]:
    """Positions (y, x), diameters (or None) and instance ids of circles or points."""
    import geopandas as gpd

    if isinstance(element, gpd.GeoDataFrame):
        xy = np.column_stack([element.geometry.x.to_numpy(), element.geometry.y.to_numpy()])
        size = element["radius"].to_numpy(np.float64) * 2 if "radius" in element else None
        return xy[:, ::-1], size, pd.Index(element.index)
    frame = element.compute() if hasattr(element, "compute") else element
    cols = [c for c in ("z", "y", "x") if c in frame.columns]
    return frame[cols].to_numpy(np.float64), None, pd.Index(frame.index)


def _default_point_size(coords: np.ndarray) -> float:
    if len(coords) < 2:
        return 10.0
    extent = float(np.ptp(coords, axis=0).max())
    return max(extent / 200.0, 1e-6)


def _shapes_data(name: str, element, kwargs: dict) -> LayerData | None:
    kinds = set(element.geometry.geom_type)
    features = pd.DataFrame({"index": np.asarray(element.index)})
    if kinds == {"Point"}:
        coords, size, _ = element_points(element)
        if size is None:
            size = np.full(len(coords), _default_point_size(coords))
        return (coords, {**kwargs, "size": size, "features": features,
                         "face_color": "transparent", "border_color": "yellow",
                         "border_width": 0.05}, "points")
    if not kinds <= {"Polygon", "MultiPolygon"}:
        return None
    rings, ids = [], []
    for idx, geometry in zip(element.index, element.geometry, strict=True):
        parts = _polygon_rings(geometry)
        rings.extend(parts)
        ids.extend([idx] * len(parts))
    features = pd.DataFrame({"index": np.asarray(ids)})
    return (rings, {**kwargs, "shape_type": "polygon", "features": features,
                    "face_color": "transparent", "edge_color": "cyan", "edge_width": 1.0},
            "shapes")


def _points_data(element, kwargs: dict) -> LayerData:
    coords, _, index = element_points(element)
    frame = element.compute()
    features = frame.drop(columns=[c for c in ("x", "y", "z") if c in frame.columns])
    features = features.reset_index(drop=True)
    features.insert(0, "index", np.asarray(index))
    return (coords, {**kwargs, "size": _default_point_size(coords), "features": features},
            "points")


def element_layer_data(
    sdata: SpatialData,
    name: str,
    coordinate_system: str,
    *,
    source: str | None = None,
    vendor: str | None = None,
) -> LayerData | None:
    """A layer data tuple for element ``name``, or None when it is not in the system."""
    kind = next((k for k in KINDS if name in getattr(sdata, k)), None)
    element = sdata[name]
    affine = element_affine(element, coordinate_system)
    if affine is None or kind is None:
        return None
    meta = element_metadata(sdata, name, kind, coordinate_system, source)
    units = _KNOWN_UNITS.get((vendor or "", coordinate_system))
    kwargs = _common(name, affine, affine.shape[0] - 1, units, meta)
    if kind == "images":
        return _image_data(name, element, kwargs)
    if kind == "labels":
        return _labels_data(element, kwargs)
    if kind == "shapes":
        return _shapes_data(name, element, kwargs)
    return _points_data(element, kwargs)


def sdata_layer_data(
    sdata: SpatialData,
    coordinate_system: str | None = None,
    *,
    source: str | None = None,
    vendor: str | None = None,
) -> list[LayerData]:
    """Layer data of every element of ``sdata`` in one coordinate system (images first)."""
    system = choose_coordinate_system(sdata, coordinate_system)
    out = []
    for kind in KINDS:
        for name in getattr(sdata, kind):
            data = element_layer_data(sdata, str(name), system, source=source, vendor=vendor)
            if data is not None:
                out.append(data)
    return out
