"""Paint per-cell values onto a segmentation raster; fetch rasters from SpatialData."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..io._errors import TopomicsInputError

if TYPE_CHECKING:
    from spatialdata import SpatialData

__all__ = ["image_raster", "labels_raster", "paint_cells", "raster_stride"]

_MAX_LUT = 50_000_000  # largest label id painted through a dense lookup table


def raster_stride(shape: tuple[int, ...], max_size: int) -> int:
    """Stride that brings the largest of the last two axes of ``shape`` to ``<= max_size``."""
    if max_size < 1:
        raise TopomicsInputError(f"max_size must be a positive number of pixels, got {max_size}")
    return max(1, -(-max(shape[-2:]) // int(max_size)))


def paint_cells(
    labels: Any,
    instance_ids: Any,
    values: Any,
    *,
    max_size: int = 1200,
) -> np.ndarray:
    """Replace every label id of a segmentation by its cell's value.

    Parameters
    ----------
    labels
        2-D integer raster (numpy or dask), 0 = background.
    instance_ids
        ``(n,)`` label id of each cell (unique, non-negative).
    values
        ``(n,)`` or ``(n, k)`` values aligned with ``instance_ids``.
    max_size
        When the raster's larger side exceeds this, it is subsampled by striding
        (every ``s``-th pixel, ``s = ceil(side / max_size)``) before painting.

    Returns
    -------
    ``float`` array of shape ``(h, w)`` or ``(h, w, k)``; NaN on the background and on
    label ids that are not in ``instance_ids`` (drawn transparent).
    """
    shape = tuple(labels.shape)
    if len(shape) != 2:
        raise TopomicsInputError(f"labels must be a 2-D (y, x) raster, got shape {shape}")
    ids = np.asarray(instance_ids).ravel()
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape[0] != ids.shape[0] or vals.ndim not in (1, 2):
        raise TopomicsInputError(
            f"values of shape {vals.shape} do not match {ids.shape[0]} instance ids; "
            "expected (n,) or (n, k)"
        )
    if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0):
        raise TopomicsInputError("instance_ids must be non-negative integer label ids")
    if np.unique(ids).size != ids.size:
        raise TopomicsInputError("instance_ids must be unique: each label id is one cell")

    step = raster_stride(shape, max_size)
    lab = np.asarray(labels[::step, ::step])
    if not np.issubdtype(lab.dtype, np.integer):
        raise TopomicsInputError(f"labels must hold integer ids, got dtype {lab.dtype}")
    top = int(max(lab.max(initial=0), ids.max(initial=0)))
    tail = vals.shape[1:]
    if top < _MAX_LUT:
        lut = np.full((top + 1, *tail), np.nan)
        lut[ids] = vals
        lut[0] = np.nan  # 0 is background even when a cell claims it
        return lut[lab]
    # Huge ids: map through the sorted ids instead of a dense table.
    order = np.argsort(ids)
    sorted_ids = ids[order]
    pos = np.clip(np.searchsorted(sorted_ids, lab), 0, max(ids.size - 1, 0))
    hit = (sorted_ids[pos] == lab) & (lab != 0) if ids.size else np.zeros(lab.shape, bool)
    out = np.full((*lab.shape, *tail), np.nan)
    out[hit] = vals[order][pos[hit]]
    return out


def _element(sdata: SpatialData, element: str, kind: str) -> Any:
    group = sdata.labels if kind == "labels" else sdata.images
    if element not in group:
        available = sorted(group) or "none"
        raise TopomicsInputError(
            f"{kind} element {element!r} not found; available {kind}: {available}"
        )
    return group[element]


def _pick_scale(node: Any, max_size: int | None) -> Any:
    """The finest scale of a (multiscale) raster whose larger side is ``<= max_size``."""
    if not hasattr(node, "children") or not hasattr(node, "ds"):
        return node  # a plain DataArray
    scales = sorted(node.children, key=lambda s: int(s.removeprefix("scale") or 0))
    arrays = [next(iter(node[s].ds.data_vars.values())) for s in scales]
    if max_size is None:
        return arrays[0]
    for arr in arrays:
        if max(arr.shape[-2:]) <= max_size:
            return arr
    return arrays[-1]


def labels_raster(sdata: SpatialData, element: str, *, max_size: int | None = None) -> np.ndarray:
    """A labels element as a numpy array, from one scale of a multiscale pyramid.

    Parameters
    ----------
    sdata
        The SpatialData object.
    element
        Name of the labels element.
    max_size
        ``None`` takes the full-resolution scale; otherwise the finest scale whose larger
        side is at most ``max_size`` (or the coarsest scale when none is that small).

    Returns
    -------
    ``(y, x)`` integer array.
    """
    arr = _pick_scale(_element(sdata, element, "labels"), max_size)
    return np.asarray(arr.data if hasattr(arr, "data") else arr)


def image_raster(
    sdata: SpatialData, element: str, *, max_size: int | None = None
) -> np.ndarray:
    """An image element as a ``(c, y, x)`` numpy array; scale chosen as in :func:`labels_raster`."""
    arr = _pick_scale(_element(sdata, element, "images"), max_size)
    out = np.asarray(arr.data if hasattr(arr, "data") else arr)
    return out[None] if out.ndim == 2 else out
