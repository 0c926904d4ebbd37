"""The small generated demo tissue used by the README, the CLI demo and napari."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._simulate import simulate_tissue

if TYPE_CHECKING:
    from mudata import MuData

__all__ = ["demo_tissue"]


def demo_tissue(seed: int = 0) -> MuData:
    """A small simulated spatial multimodal tissue, generated (not downloaded).

    1,500 cells on a square in 6 spatial domains, 6 planted topics; RNA (300 genes, NB,
    about 1,000 counts per cell), protein (20 antibodies, NB with 15 % ambient background,
    about 500 counts per cell) and ATAC (400 peaks, binary, about 10 % open). The same
    ``seed`` always gives the same data; generation takes well under a second.

    Parameters
    ----------
    seed
        Random seed.

    Returns
    -------
    MuData with modalities ``"rna"``, ``"protein"`` and ``"atac"`` (float32 CSR counts),
    ``obs["domain"]`` and ``obsm["spatial"]``. For checking results, the planted truth is
    attached: ``obsm["theta_true"]`` (cells × 6 topic proportions) and, in every
    modality, ``var["planted_topic"]`` (the topic whose marker block holds the feature,
    -1 for shared features).
    """
    mdata, truth = simulate_tissue(
        n_cells=1500,
        n_topics=6,
        n_genes=300,
        n_proteins=20,
        n_peaks=400,
        rna_depth=1000.0,
        protein_depth=500.0,
        atac_open_fraction=0.1,
        seed=seed,
    )
    for mod, adata in mdata.mod.items():
        planted = np.full(adata.n_vars, -1, dtype=np.int64)
        for k, block in enumerate(truth.markers[mod]):
            planted[block] = k
        adata.var["planted_topic"] = planted
    mdata.obsm["theta_true"] = truth.theta.astype(np.float32)
    return mdata
