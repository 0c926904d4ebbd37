"""Rasters of the demo tissue: a cell segmentation and a three-channel stain image."""

from __future__ import annotations

import numpy as np

__all__ = ["PX_PER_UNIT", "canvas_shape", "paint_stains", "tessellate"]

PX_PER_UNIT = 13.0  # pixels per simulator unit (about one cell diameter)
MARGIN_UNITS = 1.0  # empty border around the outermost cells, in simulator units
_RADIUS_RANGE = (0.5, 0.72)  # cell radius cap, in units; neighbours sit ~1 unit apart
_NUCLEUS_FRACTION = (0.35, 0.48)  # nucleus radius / cell radius cap
_MAX_INTENSITY = 4000.0  # uint16 full scale used by the stains


def canvas_shape(coords: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Scale simulator coordinates to pixels and size the canvas around them.

    Parameters
    ----------
    coords
        ``(n, 2)`` simulator ``(x, y)`` coordinates.

    Returns
    -------
    pixels
        ``(n, 2)`` ``(x, y)`` centres in pixel units, where pixel ``[i, j]`` spans
        ``[j, j + 1) × [i, i + 1)`` (spatialdata's convention for rasters).
    shape
        ``(height, width)`` of the canvas.
    """
    origin = coords.min(axis=0) - MARGIN_UNITS
    pixels = (coords - origin) * PX_PER_UNIT
    far = coords.max(axis=0) + MARGIN_UNITS
    width, height = np.ceil((far - origin) * PX_PER_UNIT).astype(int)
    return pixels, (int(height), int(width))


def tessellate(
    pixels: np.ndarray, shape: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest-centre tessellation capped at a per-cell radius.

    Parameters
    ----------
    pixels
        ``(n, 2)`` ``(x, y)`` cell centres in pixels; cell ``i`` gets label ``i + 1``.
    shape
        ``(height, width)`` of the raster.
    rng
        Random generator for the per-cell radius caps.

    Returns
    -------
    labels
        ``uint32`` raster, 0 = background.
    dist
        ``float32`` distance of each pixel centre to its nearest cell centre (pixels).
    radius
        ``(n,)`` per-cell radius cap in pixels.
    """
    from scipy.spatial import cKDTree

    n = pixels.shape[0]
    radius = rng.uniform(*_RADIUS_RANGE, size=n) * PX_PER_UNIT
    height, width = shape
    yy, xx = np.mgrid[0:height, 0:width]
    centres = np.column_stack([xx.ravel() + 0.5, yy.ravel() + 0.5])
    dist, nearest = cKDTree(pixels).query(centres, k=1)
    inside = dist <= radius[nearest]
    labels = np.where(inside, nearest + 1, 0).astype(np.uint32).reshape(shape)
    return labels, dist.astype(np.float32).reshape(shape), radius


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels of a cell that touch another label or the background."""
    edge = np.zeros(labels.shape, dtype=bool)
    dy = labels[1:, :] != labels[:-1, :]
    dx = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge & (labels > 0)


def _to_uint16(channel: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Scale a 0–1 channel to uint16 with additive camera-like noise."""
    scaled = channel * _MAX_INTENSITY + rng.normal(60.0, noise * _MAX_INTENSITY, channel.shape)
    return np.clip(np.rint(scaled), 0, 65535).astype(np.uint16)


def paint_stains(
    labels: np.ndarray,
    dist: np.ndarray,
    radius: np.ndarray,
    stain_level: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Three stain channels: nuclei, membranes and a per-cell marker stain.

    Parameters
    ----------
    labels, dist, radius
        Output of :func:`tessellate`.
    stain_level
        ``(n,)`` marker intensity per cell in ``[0, 1]`` (a planted topic proportion).
    rng
        Random generator for nucleus sizes, brightness and noise.

    Returns
    -------
    ``(3, height, width)`` uint16 image: nuclei (DAPI-like), membranes, marker stain.
    """
    from scipy.ndimage import gaussian_filter

    n = radius.shape[0]
    idx = labels.astype(np.int64) - 1  # -1 on background
    cell = idx >= 0
    safe = np.where(cell, idx, 0)

    nucleus_r = radius * rng.uniform(*_NUCLEUS_FRACTION, size=n)
    brightness = rng.uniform(0.55, 1.0, size=n)
    rel = dist / nucleus_r[safe]
    nuclei = np.where(cell & (rel < 1.0), brightness[safe] * np.sqrt(np.clip(1 - rel**2, 0, 1)), 0)
    nuclei = gaussian_filter(nuclei, 0.8)

    membrane = gaussian_filter(_boundaries(labels).astype(np.float64), 0.7)
    membrane /= max(float(membrane.max()), 1e-12)

    # Cytoplasmic marker: proportional to the cell's level, dimmer over the nucleus.
    cyto = np.where(cell, np.clip(stain_level, 0, 1)[safe], 0.0) * np.where(rel < 1.0, 0.6, 1.0)
    marker = gaussian_filter(cyto, 1.0)

    return np.stack(
        [
            _to_uint16(nuclei, rng, 0.02),
            _to_uint16(0.8 * membrane, rng, 0.02),
            _to_uint16(marker, rng, 0.03),
        ]
    )
