"""Where the cells of a run are drawn: a painted segmentation or a scatter of centres."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io._errors import TopomicsInputError
from ._paint import paint_cells, raster_stride

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap, Normalize

    from ..io._results import TopicResults

__all__ = ["Canvas", "make_canvas"]

logger = logging.getLogger(__name__)


@dataclass
class Canvas:
    """The drawing surface shared by the spatial figures of one report.

    With a segmentation, ``row_index`` maps every (strided) pixel to the results row of
    its cell (-1 for background and unknown cells), so painting a value per cell is one
    fancy-indexing step. Without one, cells are drawn as dots at ``coords``.
    """

    extent: tuple[float, float, float, float]  # (left, right, bottom, top), y pointing down
    row_index: np.ndarray | None = None
    coords: np.ndarray | None = None
    background: np.ndarray | None = None
    background_extent: tuple[float, float, float, float] | None = None

    @property
    def painted(self) -> bool:
        """Whether cells are painted from a segmentation (else scattered)."""
        return self.row_index is not None

    @property
    def aspect(self) -> float:
        """Height / width of the drawn area."""
        left, right, bottom, top = self.extent
        return max(abs(bottom - top), 1e-9) / max(abs(right - left), 1e-9)

    def paint(self, values: np.ndarray) -> np.ndarray:
        """``(h, w)`` float image of per-cell ``values``; NaN where there is no cell."""
        if self.row_index is None:
            raise ValueError("this canvas has no segmentation to paint")
        vals = np.asarray(values, dtype=np.float64)
        out = np.full(self.row_index.shape, np.nan)
        hit = self.row_index >= 0
        out[hit] = vals[self.row_index[hit]]
        return out

    def draw(self, ax: Axes, values: np.ndarray, cmap: Colormap, norm: Normalize) -> Any:
        """Draw per-cell ``values`` on ``ax``; returns the mappable for a colorbar."""
        if self.background is not None:
            ax.imshow(
                self.background, cmap="gray", extent=self.background_extent,
                interpolation="nearest", vmin=0.0, vmax=1.0,
            )
        if self.painted:
            art = ax.imshow(
                self.paint(values), cmap=cmap, norm=norm, extent=self.extent,
                interpolation="nearest",
            )
        else:
            assert self.coords is not None
            size = float(np.clip(30_000.0 / max(len(self.coords), 1), 0.3, 40.0))
            art = ax.scatter(
                self.coords[:, 0], self.coords[:, 1], c=values, cmap=cmap, norm=norm,
                s=size, linewidths=0, rasterized=True,
            )
        left, right, bottom, top = self.extent
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        return art


_MIN_OUTLINED_AREA = 60.0  # mean cell area (pixels) from which cell borders are drawn


def _outlined(row_index: np.ndarray) -> np.ndarray:
    """Clear the last pixel row/column of every cell so touching cells stay apart.

    Only when cells are large enough on the (strided) raster for a one-pixel border to
    leave most of each cell painted.
    """
    cells = row_index >= 0
    n_cells = np.unique(row_index[cells]).size
    if n_cells == 0 or cells.sum() / n_cells < _MIN_OUTLINED_AREA:
        return row_index
    border = np.zeros(row_index.shape, dtype=bool)
    border[:-1, :] |= row_index[:-1, :] != row_index[1:, :]
    border[:, :-1] |= row_index[:, :-1] != row_index[:, 1:]
    return np.where(border & cells, -1, row_index)


def _background(image: Any, step: int, extent: tuple) -> tuple[np.ndarray, tuple]:
    """Pale grey background from the first channel of an image, at the canvas stride."""
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = arr[0]
    if arr.ndim != 2:
        raise TopomicsInputError(
            f"image must be a (y, x) or (c, y, x) array, got shape {np.shape(image)}"
        )
    arr = arr[::step, ::step].astype(np.float64)
    lo, hi = np.nanpercentile(arr, [1.0, 99.5]) if arr.size else (0.0, 1.0)
    grey = np.clip((arr - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    # Light rendering (bright signal drawn dark on white): the gaps between painted
    # cells stay pale, so no colour of the maps is confused with the background.
    return 1.0 - 0.45 * grey, extent


def make_canvas(
    results: TopicResults,
    labels: Any = None,
    image: Any = None,
    *,
    max_size: int = 1200,
) -> Canvas:
    """Build the canvas for ``results``.

    Parameters
    ----------
    results
        The run; uses ``instance_ids`` (with ``labels``) or ``coordinates``.
    labels
        Optional ``(y, x)`` segmentation whose ids are ``results.instance_ids``.
    image
        Optional ``(y, x)`` or ``(c, y, x)`` image drawn in grey under the cells (first
        channel). It is assumed to cover the same field of view as ``labels`` (or, without
        labels, to be in the units of ``results.coordinates``).
    max_size
        Larger rasters are strided down to about this many pixels per side.
    """
    n = len(results.proportions)
    ids = results.instance_ids
    row_index = None
    if labels is not None and ids is not None:
        painted = paint_cells(labels, ids, np.arange(n), max_size=max_size)
        row_index = np.where(np.isnan(painted), -1, painted).astype(np.int64)
        found = np.unique(row_index[row_index >= 0]).size
        if found == 0:
            logger.warning(
                "None of the %d instance ids of run %r is in the labels raster; %s", n,
                results.run_name, "scattering the coordinates instead" if
                results.coordinates is not None else "the maps cannot be painted",
            )
            row_index = None
            if results.coordinates is None:
                raise TopomicsInputError(
                    f"no label id of run {results.run_name!r} appears in the labels raster "
                    f"(ids {np.asarray(ids)[:3].tolist()}...); pass the segmentation of "
                    f"element {results.region!r}"
                )
        elif found < 0.5 * n:
            logger.warning("Only %d of %d cells appear in the labels raster.", found, n)
    if row_index is not None:
        shape = tuple(np.shape(labels))
        step = raster_stride(shape, max_size)
        h, w = shape[-2:]
        canvas = Canvas(extent=(0.0, float(w), float(h), 0.0), row_index=_outlined(row_index))
    elif results.coordinates is not None:
        xy = results.coordinates[["x", "y"]].to_numpy(dtype=np.float64)
        if xy.shape[0] != n:
            raise TopomicsInputError(
                f"coordinates have {xy.shape[0]} rows but the results have {n} cells"
            )
        lo, hi = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
        pad = 0.02 * float(max(hi - lo)) + 1.0
        extent = (lo[0] - pad, hi[0] + pad, hi[1] + pad, lo[1] - pad)
        canvas = Canvas(extent=extent, coords=xy)
        step = 1 if image is None else raster_stride(np.shape(image), max_size)
    else:
        raise TopomicsInputError(
            "no spatial layout for the maps: give a labels raster matching "
            "results.instance_ids, or results with coordinates (columns x, y)"
        )
    if image is not None:
        img_shape = np.shape(image)[-2:]
        if canvas.painted:
            bg_extent = canvas.extent  # same field of view as the segmentation
        else:
            bg_extent = (0.0, float(img_shape[1]), float(img_shape[0]), 0.0)
        canvas.background, canvas.background_extent = _background(image, step, bg_extent)
    return canvas
