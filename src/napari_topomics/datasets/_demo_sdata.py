"""The bundled demo tissue as a SpatialData object: image, cell labels and a 10x-style table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._demo_raster import canvas_shape, paint_stains, tessellate
from ._simulate import _stream, simulate_tissue_dict

if TYPE_CHECKING:
    from anndata import AnnData
    from spatialdata import SpatialData

    from ._truth import SimulationTruth

__all__ = ["DEMO_SIZES", "FEATURE_TYPES", "demo"]

IMAGE_KEY = "demo_image"
LABELS_KEY = "demo_cells"
TABLE_KEY = "table"
REGION_KEY = "region"
INSTANCE_KEY = "cell_id"
N_TOPICS = 6
STAIN_TOPIC = 0  # the planted topic the marker-stain channel follows
DEMO_SIZES = {"rna": 300, "protein": 20, "atac": 400}
FEATURE_TYPES = {"rna": "Gene Expression", "protein": "Antibody Capture", "atac": "Peaks"}
_N_CHROMOSOMES = 5
_RASTER_STREAM = 7  # spawn key of the raster random stream, apart from the simulator's


def _feature_names(mod: str, n: int) -> list[str]:
    """Readable 10x-like names: ``Gene_0001``, ``CD_01``, ``chr1:10000-10500``."""
    if mod == "rna":
        return [f"Gene_{j + 1:04d}" for j in range(n)]
    if mod == "protein":
        return [f"CD_{j + 1:02d}" for j in range(n)]
    per_chrom = -(-n // _N_CHROMOSOMES)
    names = []
    for j in range(n):
        chrom, pos = divmod(j, per_chrom)
        start = 10_000 + 250_000 * pos
        names.append(f"chr{chrom + 1}:{start}-{start + 500}")
    return names


def _table(mods: dict[str, AnnData], truth: SimulationTruth, pixels: np.ndarray) -> AnnData:
    """One AnnData with the three modalities side by side, 10x ``feature_types`` in var."""
    from anndata import AnnData

    n = truth.theta.shape[0]
    blocks, var_parts = [], []
    for mod, adata in mods.items():
        planted = np.full(adata.n_vars, -1, dtype=np.int64)
        for k, block in enumerate(truth.markers[mod]):
            planted[block] = k
        var_parts.append(
            pd.DataFrame(
                {"feature_types": FEATURE_TYPES[mod], "planted_topic": planted},
                index=pd.Index(_feature_names(mod, adata.n_vars)),
            )
        )
        blocks.append(sp.csr_matrix(adata.X, dtype=np.float32))
    var = pd.concat(var_parts)
    kinds = list(FEATURE_TYPES.values())
    var["feature_types"] = pd.Categorical(var["feature_types"], categories=kinds)

    ids = np.arange(1, n + 1, dtype=np.int64)
    width = len(str(n))
    obs = pd.DataFrame(index=pd.Index([f"cell_{i:0{width}d}" for i in ids]))
    obs[REGION_KEY] = pd.Categorical([LABELS_KEY] * n)
    obs[INSTANCE_KEY] = ids
    obs["domain"] = next(iter(mods.values())).obs["domain"].to_numpy()
    table = AnnData(X=sp.hstack(blocks, format="csr", dtype=np.float32), obs=obs, var=var)
    table.obsm["spatial"] = pixels.astype(np.float64)
    table.obsm["theta_true"] = truth.theta.astype(np.float32)
    return table


def demo(seed: int = 0, n_cells: int = 2000) -> SpatialData:
    """A small generated multimodal tissue as SpatialData, with planted topics.

    ``n_cells`` simulated cells (see :func:`~napari_topomics.datasets.simulate_tissue`) in
    6 spatial domains with 6 planted topics: RNA (300 genes, ~1,000 counts per cell),
    protein (20 antibodies, ~500 counts) and ATAC (400 binary peaks, ~10 % open). The
    same ``seed`` always gives the same object; 2,000 cells take about a second.

    Parameters
    ----------
    seed
        Random seed.
    n_cells
        Number of cells (the canvas grows with it, ~13 px per cell spacing).

    Returns
    -------
    SpatialData with, all in the ``"global"`` coordinate system (identity, pixel units):

    * image ``"demo_image"`` ``(c, y, x)`` uint16, channels ``"DAPI"`` (nuclei),
      ``"membrane"`` (cell boundaries) and a marker stain named after a protein whose
      intensity follows planted topic 0 (``table.uns["demo"]["stain_channel"]``);
    * labels ``"demo_cells"`` uint32: nearest-centre tessellation capped at a cell radius,
      0 = background, cell ``i`` of the table has label id ``obs["cell_id"] == i + 1``;
    * table ``"table"`` annotating ``"demo_cells"`` (``region_key="region"``,
      ``instance_key="cell_id"``): float32 CSR raw counts of all three modalities, with
      ``var["feature_types"]`` in ``{"Gene Expression", "Antibody Capture", "Peaks"}``,
      ``var["planted_topic"]`` (-1 for shared features), ``obs["domain"]``,
      ``obsm["spatial"]`` (cell centres in pixels, ≈ the label centroids) and the planted
      ``obsm["theta_true"]``.
    """
    from spatialdata import SpatialData
    from spatialdata.models import Image2DModel, Labels2DModel, TableModel
    from spatialdata.transformations import Identity

    if int(n_cells) < N_TOPICS:
        raise ValueError(f"n_cells must be at least {N_TOPICS} (one per domain), got {n_cells}")
    mods, truth = simulate_tissue_dict(
        n_cells=int(n_cells),
        n_topics=N_TOPICS,
        n_genes=DEMO_SIZES["rna"],
        n_proteins=DEMO_SIZES["protein"],
        n_peaks=DEMO_SIZES["atac"],
        rna_depth=1000.0,
        protein_depth=500.0,
        atac_open_fraction=0.1,
        seed=seed,
    )
    pixels, shape = canvas_shape(truth.coords)
    rng = _stream(seed, _RASTER_STREAM)
    labels, dist, radius = tessellate(pixels, shape, rng)
    image = paint_stains(labels, dist, radius, truth.theta[:, STAIN_TOPIC], rng)

    table = _table(mods, truth, pixels)
    stain = str(table.var_names[DEMO_SIZES["rna"] + int(truth.markers["protein"][STAIN_TOPIC][0])])
    table.uns["demo"] = {"seed": int(seed), "stain_channel": stain, "stain_topic": STAIN_TOPIC}

    identity = {"global": Identity()}
    return SpatialData(
        images={
            IMAGE_KEY: Image2DModel.parse(
                image, dims=("c", "y", "x"), c_coords=["DAPI", "membrane", stain],
                transformations=identity,
            )
        },
        labels={
            LABELS_KEY: Labels2DModel.parse(labels, dims=("y", "x"), transformations=identity)
        },
        tables={
            TABLE_KEY: TableModel.parse(
                table, region=LABELS_KEY, region_key=REGION_KEY, instance_key=INSTANCE_KEY
            )
        },
    )
