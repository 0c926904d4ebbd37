"""Small offline tissues for the io tests: hand-built SpatialData objects and stores."""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# label ids of the 12 cells: not contiguous and not sorted, so matching by id is tested
CELL_IDS = np.array([7, 3, 12, 25, 4, 9, 31, 18, 2, 40, 11, 5])
N_RNA, N_PROT, N_ATAC = 6, 3, 4
FEATURE_TYPES = ["Gene Expression"] * N_RNA + ["Antibody Capture"] * N_PROT + ["Peaks"] * N_ATAC
MICRON_SCALE = 0.5


def _quiet() -> None:
    for name in ("ome_zarr", "spatialdata", "lightning", "lightning.pytorch", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*zarr v3 autosharding.*")
    warnings.filterwarnings("ignore", category=FutureWarning, module="mudata")


_quiet()


def label_image() -> np.ndarray:
    """A 24 x 32 label image: one 4 x 4 square per cell id on a 3 x 4 grid, 0 = background."""
    labels = np.zeros((24, 32), dtype=np.int32)
    for k, cell in enumerate(sorted(CELL_IDS)):
        r, c = divmod(k, 4)
        labels[r * 8 + 1 : r * 8 + 5, c * 8 + 2 : c * 8 + 6] = cell
    return labels


def counts_table(seed: int = 0, order: np.ndarray | None = None) -> ad.AnnData:
    """The multimodal table: integer counts in X (CSR) and ``layers["counts"]``."""
    rng = np.random.default_rng(seed)
    ids = CELL_IDS if order is None else CELL_IDS[order]
    n_vars = N_RNA + N_PROT + N_ATAC
    X = rng.poisson(3.0, size=(ids.size, n_vars)).astype(np.float32)
    X[:, N_RNA + N_PROT :] = (X[:, N_RNA + N_PROT :] > 2).astype(np.float32)
    var = pd.DataFrame(
        {"feature_types": FEATURE_TYPES},
        index=[f"gene{i}" for i in range(N_RNA)]
        + [f"prot{i}" for i in range(N_PROT)]
        + [f"peak{i}" for i in range(N_ATAC)],
    )
    obs = pd.DataFrame(
        {
            "region": pd.Categorical(["cells"] * ids.size),
            "cell_id": ids.astype(np.int64),
            "batch": pd.Categorical(rng.choice(["a", "b"], size=ids.size)),
        },
        index=[f"cell_{i}" for i in ids],
    )
    table = ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=var)
    table.layers["counts"] = sp.csr_matrix(X)
    table.layers["lognorm"] = np.log1p(X)
    return table


def make_tissue(seed: int = 0):
    """SpatialData with labels ``cells`` (systems ``global`` and ``micron``) and ``table``."""
    import spatialdata as sd
    from spatialdata.models import Labels2DModel, TableModel
    from spatialdata.transformations import Identity, Scale

    labels = Labels2DModel.parse(
        label_image(),
        dims=("y", "x"),
        transformations={
            "global": Identity(),
            "micron": Scale([MICRON_SCALE, MICRON_SCALE], axes=("y", "x")),
        },
    )
    rng = np.random.default_rng(seed + 1)
    table = TableModel.parse(
        counts_table(seed, order=rng.permutation(CELL_IDS.size)),
        region="cells",
        region_key="region",
        instance_key="cell_id",
    )
    return sd.SpatialData(labels={"cells": labels}, tables={"table": table})


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative path -> digest)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """The builders and constants above, for tests (test modules do not import conftest)."""
    return SimpleNamespace(
        CELL_IDS=CELL_IDS,
        N_RNA=N_RNA,
        N_PROT=N_PROT,
        N_ATAC=N_ATAC,
        MICRON_SCALE=MICRON_SCALE,
        SHARED_DATA=SHARED_DATA,
        label_image=label_image,
        counts_table=counts_table,
        make_tissue=make_tissue,
        tree_hashes=tree_hashes,
    )


@pytest.fixture
def tissue():
    """A fresh in-memory tissue (labels + multimodal table)."""
    return make_tissue()


@pytest.fixture(scope="session")
def tissue_store(tmp_path_factory) -> Path:
    """The tissue written once as a SpatialData zarr store; tests must leave it unchanged."""
    path = tmp_path_factory.mktemp("reading_store") / "tissue.zarr"
    make_tissue().write(path)
    return path


@pytest.fixture
def unchanged():
    """Call with a folder to snapshot it; the test fails if any file differs at teardown."""
    snapshots: list[tuple[Path, dict[str, str]]] = []

    def snap(root: Path) -> Path:
        snapshots.append((root, tree_hashes(root)))
        return root

    yield snap
    for root, before in snapshots:
        assert tree_hashes(root) == before, f"files under {root} changed"
