"""A whole-slide-sized SpatialData store for scale tests: N cells, rasters built in chunks.

The cells sit on a jittered grid (one cell per ``tile`` × ``tile`` pixel tile, an ellipse
of random radii inside it). Every raster chunk is computed from the pixel coordinates
alone (:func:`label_block`), so the multiscale labels and the stain image are dask arrays
written chunk by chunk: no level is ever held whole in memory. The table has a small
sparse count matrix (two modalities) and the saved run has *synthesised* topic
proportions (smooth spatial domains, no model is fitted) written with
:func:`napari_topomics.io.write_run`, exactly as a fitted run is written.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ScaleStore", "label_block", "scale_grid", "write_scale_store"]

LABELS_KEY = "cells"
IMAGE_KEY = "stain"
TABLE_KEY = "table"
REGION_KEY = "region"
INSTANCE_KEY = "cell_id"
RUN_NAME = "scale"
CHUNK = 2048
_SEED_STREAM = 19


@dataclass(frozen=True)
class ScaleStore:
    """What :func:`write_scale_store` wrote.

    Attributes
    ----------
    path
        The store.
    n_cells, n_topics
        Cells (labels ``1..n_cells``) and topics of the saved run.
    shape
        Finest raster level (y, x).
    tile
        Pixels per cell tile side.
    run_name, labels, image, table
        Names of the run and of the elements.
    """

    path: Path
    n_cells: int
    n_topics: int
    shape: tuple[int, int]
    tile: int
    run_name: str = RUN_NAME
    labels: str = LABELS_KEY
    image: str = IMAGE_KEY
    table: str = TABLE_KEY


def scale_grid(n_cells: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding exactly ``n_cells`` cells (last row short)."""
    cols = int(math.ceil(math.sqrt(n_cells)))
    rows = int(math.ceil(n_cells / cols))
    return rows, cols


def _cell_shapes(n_cells: int, tile: int, seed: int) -> np.ndarray:
    """Per-cell (dy, dx, ry, rx) in pixels: centre offset and radii inside the tile."""
    rng = np.random.default_rng([seed, _SEED_STREAM])
    r = rng.uniform(0.32, 0.47, size=(n_cells, 2)) * tile
    jitter = (0.5 * tile - r) * rng.uniform(-0.8, 0.8, size=(n_cells, 2))
    return np.column_stack([0.5 * tile + jitter, r]).astype(np.float32)


def label_block(
    y0: int, y1: int, x0: int, x1: int, *, n_cells: int, tile: int, shapes: np.ndarray,
    step: int = 1,
) -> np.ndarray:
    """Cell labels (uint32, 0 = background) of the finest-level pixels ``[y0:y1:step, x0:x1:step]``.

    Pixel ``(y, x)`` belongs to the cell of its tile when it lies inside that cell's
    ellipse; ``step`` > 1 samples one pixel per ``step`` × ``step`` block, near its centre
    (a nearest-neighbour pyramid; the tile corners are background, so sampling them would
    leave the coarse levels empty).
    """
    rows, cols = scale_grid(n_cells)
    offset = min(step, tile) // 2
    ys = np.arange(y0, y1, step, dtype=np.int64) + offset
    xs = np.arange(x0, x1, step, dtype=np.int64) + offset
    ty, tx = ys // tile, xs // tile
    cell = ty[:, None] * cols + tx[None, :]
    valid = (ty[:, None] < rows) & (tx[None, :] < cols) & (cell < n_cells)
    cell = np.where(valid, cell, 0)
    shape = shapes[cell]
    ly = (ys % tile).astype(np.float32)[:, None] - shape[..., 0]
    lx = (xs % tile).astype(np.float32)[None, :] - shape[..., 1]
    inside = (ly / shape[..., 2]) ** 2 + (lx / shape[..., 3]) ** 2 <= 1.0
    return np.where(valid & inside, cell + 1, 0).astype(np.uint32)


def _level_array(shape: tuple[int, int], step: int, fn) -> object:
    """A lazy dask array of one pyramid level; ``fn(y0, y1, x0, x1, step)`` fills a chunk."""
    import dask.array as da

    ny, nx = -(-shape[0] // step), -(-shape[1] // step)
    chunks = (tuple(_splits(ny)), tuple(_splits(nx)))

    def block(block_info=None):
        (cy0, cy1), (cx0, cx1) = block_info[None]["array-location"]
        return fn(cy0 * step, cy1 * step, cx0 * step, cx1 * step, step)

    dtype = np.dtype(fn(0, step, 0, step, step).dtype)
    return da.map_blocks(block, chunks=chunks, dtype=dtype)


def _splits(n: int) -> list[int]:
    return [min(CHUNK, n - i) for i in range(0, n, CHUNK)]


def _stain_fn(n_cells: int, tile: int, shapes: np.ndarray):
    def fn(y0, y1, x0, x1, step):
        labels = label_block(y0, y1, x0, x1, n_cells=n_cells, tile=tile, shapes=shapes,
                             step=step)
        value = np.where(labels > 0, 90 + (labels % 97).astype(np.int64), 12)
        return value.astype(np.uint8)[None]
    return fn


def _labels_fn(n_cells: int, tile: int, shapes: np.ndarray):
    def fn(y0, y1, x0, x1, step):
        return label_block(y0, y1, x0, x1, n_cells=n_cells, tile=tile, shapes=shapes,
                           step=step)
    return fn


def _n_levels(shape: tuple[int, int], smallest: int = 512) -> int:
    levels = 1
    while max(shape) // 2 ** levels >= smallest:
        levels += 1
    return levels


def _multiscale(model, fn, shape: tuple[int, int], dims: tuple[str, ...], **kwargs):
    """A multiscale DataTree of a SpatialData model from lazily computed levels."""
    import xarray as xr
    from spatialdata.models import Image2DModel
    from spatialdata.transformations import Identity, Scale

    levels = _n_levels(shape)
    tree = {}
    for level in range(levels):
        step = 2 ** level
        data = _level_array(shape, step, fn) if len(dims) == 2 else None
        if data is None:
            import dask.array as da

            flat = _level_array(shape, step, lambda *a: fn(*a)[0])
            data = da.expand_dims(flat, 0)
        coords = {"c": ["stain"]} if model is Image2DModel else {}
        arr = xr.DataArray(data, dims=dims, coords=coords, name="image")
        transform = Identity() if level == 0 else Scale([step, step], axes=("y", "x"))
        arr = model.parse(arr, dims=dims, transformations={"global": transform}, **kwargs)
        tree[f"scale{level}"] = xr.Dataset({"image": arr})
    return xr.DataTree.from_dict(tree)


def _cell_frame(n_cells: int, tile: int, shapes: np.ndarray) -> np.ndarray:
    """Cell centroids ``(x, y)`` in pixels of the finest level."""
    _, cols = scale_grid(n_cells)
    idx = np.arange(n_cells)
    y = (idx // cols) * tile + shapes[:, 0]
    x = (idx % cols) * tile + shapes[:, 1]
    return np.column_stack([x, y]).astype(np.float64)


def synthesise_proportions(xy: np.ndarray, n_topics: int, seed: int) -> np.ndarray:
    """Smooth spatial topic domains: a softmax of distances to random topic centres."""
    rng = np.random.default_rng([seed, _SEED_STREAM, 1])
    span = np.ptp(xy, axis=0) + 1.0
    unit = (xy - xy.min(axis=0)) / span
    centres = rng.uniform(0.05, 0.95, size=(n_topics, 2))
    out = np.empty((len(xy), n_topics), dtype=np.float32)
    for start in range(0, len(xy), 200_000):
        part = unit[start:start + 200_000]
        d2 = ((part[:, None, :] - centres[None]) ** 2).sum(-1)
        logits = -d2 / 0.02 + rng.normal(0, 0.6, size=d2.shape)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        out[start:start + 200_000] = p / p.sum(axis=1, keepdims=True)
    return out


def _table(n_cells: int, seed: int, proportions: np.ndarray):
    """A small sparse two-modality count table annotating the labels."""
    import anndata as ad
    import scipy.sparse as sp
    from spatialdata.models import TableModel

    rng = np.random.default_rng([seed, _SEED_STREAM, 2])
    n_rna, n_prot, per_cell = 40, 10, 6
    n_vars = n_rna + n_prot
    dominant = proportions.argmax(axis=1)
    cols = (dominant[:, None] * 5 + rng.integers(0, n_vars, size=(n_cells, per_cell))) % n_vars
    data = rng.integers(1, 20, size=(n_cells, per_cell)).astype(np.float32)
    indptr = np.arange(0, n_cells * per_cell + 1, per_cell, dtype=np.int64)
    order = np.argsort(cols, axis=1)
    counts = sp.csr_matrix((np.take_along_axis(data, order, 1).ravel(),
                            np.take_along_axis(cols, order, 1).ravel(), indptr),
                           shape=(n_cells, n_vars))
    counts.sum_duplicates()
    var = pd.DataFrame(
        {"feature_types": ["Gene Expression"] * n_rna + ["Antibody Capture"] * n_prot},
        index=[f"Gene_{j:03d}" for j in range(n_rna)] + [f"CD_{j:02d}" for j in range(n_prot)],
    )
    obs = pd.DataFrame(
        {REGION_KEY: pd.Categorical([LABELS_KEY] * n_cells),
         INSTANCE_KEY: np.arange(1, n_cells + 1, dtype=np.int64)},
        index=pd.Index([f"cell_{i}" for i in range(n_cells)], dtype=object),
    )
    table = ad.AnnData(X=counts, obs=obs, var=var)
    return TableModel.parse(table, region=LABELS_KEY, region_key=REGION_KEY,
                            instance_key=INSTANCE_KEY)


def _run(table, proportions: np.ndarray, xy: np.ndarray, seed: int):
    from ..io._results import TopicResults

    rng = np.random.default_rng([seed, _SEED_STREAM, 3])
    n, k = proportions.shape
    topics = [f"topic_{i}" for i in range(k)]
    index = pd.Index(table.obs_names, dtype=object)
    w = rng.beta(4, 3, size=n).astype(np.float32)
    weights = pd.DataFrame({"rna": w, "protein": 1 - w}, index=index)
    top = {}
    for mod, names in (("rna", table.var_names[:40]), ("protein", table.var_names[40:])):
        rows = [(t, r + 1, str(names[(5 * i + r) % len(names)]), 1.0 / (r + 1))
                for i, t in enumerate(topics) for r in range(5)]
        top[mod] = pd.DataFrame(rows, columns=["topic", "rank", "feature", "score"])
    epochs = np.arange(50)
    elbo = pd.DataFrame({"elbo_train": 1e4 / (1 + epochs) + 500.0},
                        index=pd.Index(epochs, name="epoch"))
    return TopicResults(
        run_name=RUN_NAME, proportions=pd.DataFrame(proportions, index=index, columns=topics),
        modality_weights=weights, top_features=top, elbo_history=elbo,
        provenance={"synthesised": True, "n_cells": int(n)}, region=LABELS_KEY,
        region_key=REGION_KEY, instance_key=INSTANCE_KEY,
        instance_ids=np.arange(1, n + 1, dtype=np.int64),
        coordinates=pd.DataFrame(xy, index=index, columns=["x", "y"]),
    )


def write_scale_store(
    path: str | Path, n_cells: int, *, tile: int = 16, n_topics: int = 8, seed: int = 0,
) -> ScaleStore:
    """Write a SpatialData store of ``n_cells`` cells with a saved (synthesised) topic run.

    Parameters
    ----------
    path
        The store to create (must not exist).
    n_cells
        Cells; labels are ``1..n_cells`` on a near-square grid.
    tile
        Pixels per cell tile side: the finest level is about ``sqrt(n_cells) * tile``
        pixels square.
    n_topics
        Topics of the saved run ``"scale"``.
    seed
        Seed of the shapes, the proportions and the counts.

    Returns
    -------
    ScaleStore
        What was written.
    """
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel, Labels2DModel

    from ..io import write_run

    path = Path(path)
    rows, cols = scale_grid(n_cells)
    shape = (rows * tile, cols * tile)
    shapes = _cell_shapes(n_cells, tile, seed)
    labels = _multiscale(Labels2DModel, _labels_fn(n_cells, tile, shapes), shape, ("y", "x"))
    image = _multiscale(Image2DModel, _stain_fn(n_cells, tile, shapes), shape,
                        ("c", "y", "x"))
    xy = _cell_frame(n_cells, tile, shapes)
    proportions = synthesise_proportions(xy, n_topics, seed)
    table = _table(n_cells, seed, proportions)
    sdata = SpatialData(images={IMAGE_KEY: image}, labels={LABELS_KEY: labels},
                        tables={TABLE_KEY: table})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata.write(path)
        write_run(path, _run(table, proportions, xy, seed))
    return ScaleStore(path=path, n_cells=n_cells, n_topics=n_topics, shape=shape, tile=tile)
