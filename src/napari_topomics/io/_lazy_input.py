"""The model input of a SpatialData store whose table matrix stays on disk (issue 18).

``fit --lazy`` reads the store's images, labels, shapes and points as usual, but opens
every table with :func:`~napari_topomics.io.open_lazy`: the model input is then one AnnData
whose ``X`` is the table's own matrix, read in chunks; training processes load only the
rows they train on (``docs/distributed.md``). That works when the table's features already
are the model's columns: its var blocks in the order fitted (or one modality), ``X`` (not a
layer), and every row annotating the fitted element. Anything else is refused with a
message saying what to drop.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

from ._blocks import find_modality_key, modality_blocks, pick_modalities
from ._errors import TopomicsInputError
from ._inputs import TissueInput
from ._layouts import _single_name
from ._lazy_open import open_lazy
from ._tables import cell_coordinates, resolve_coordinate_system, resolve_table, table_cells

#: Elements read into memory; tables are opened lazily instead.
EAGER_ELEMENTS = ("images", "labels", "shapes", "points")


def load_lazy_tissue_input(
    path: str | Path,
    table: str | None = None,
    *,
    element: str | None = None,
    modalities: str | Sequence[str] | None = None,
    modality_key: str | None = None,
    coordinate_system: str | None = None,
) -> TissueInput:
    """The :class:`TissueInput` of a store's table, its matrix left on disk.

    ``data`` is one AnnData (``X`` lazy, ``obsm["spatial"]`` the cells' positions) and
    ``model_setup`` holds the modality names and feature counts for ``from_data``.

    Raises
    ------
    TopomicsInputError
        For a path that is not a SpatialData store, or a table whose matrix is not the
        model's input as it stands (modalities out of order or left out, rows annotating
        another element).
    """
    import spatialdata
    import zarr

    store = Path(path)
    if not (store / "zarr.json").exists() and not (store / ".zgroup").exists():
        raise TopomicsInputError(
            f"--lazy reads a SpatialData zarr store, and {str(store)!r} is not one; convert "
            "the folder to a store first or fit without --lazy."
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        sdata = spatialdata.read_zarr(store, selection=EAGER_ELEMENTS)
    root = zarr.open_group(str(store), mode="r")
    for name in sorted(root["tables"].group_keys()) if "tables" in root else []:
        sdata.tables[name] = open_lazy(store, name)
    name = resolve_table(sdata, table)
    adata = sdata.tables[name]
    ae, rows, obs_names, ids = table_cells(sdata, name, element)
    if not np.array_equal(rows, np.arange(adata.n_obs)):
        raise TopomicsInputError(
            f"--lazy fits every row of table {name!r} in place, but {adata.n_obs - rows.size} "
            f"of its {adata.n_obs} rows annotate another element than {ae.name!r}; fit "
            "without --lazy."
        )
    names, counts = _blocks_in_order(adata, name, modalities, modality_key)
    system = resolve_coordinate_system(sdata, ae, coordinate_system)
    coords = cell_coordinates(sdata, name, ae.name, system)
    obs = adata.obs.copy()
    obs.index = pd.Index(obs_names.astype(str))
    var = adata.var.copy()
    var.index = var.index.astype(str)
    data = AnnData(X=adata.X, obs=obs, var=var,
                   obsm={"spatial": coords.to_numpy(dtype=np.float64, copy=True)})
    return TissueInput(
        data=data, table=name, element=ae, instance_ids=np.asarray(ids).copy(),
        obs_names=obs_names, coordinates=coords, modalities=names, source=str(store),
        coordinate_system=system,
        model_setup={"modalities": names, "n_inputs_modalities": counts},
    )


def _blocks_in_order(adata: AnnData, table: str, modalities, modality_key):
    """Modality names and feature counts, when they tile the table's columns in order."""
    key = find_modality_key(adata, modality_key)
    blocks = modality_blocks(adata, key, table) if key is not None else {}
    if not blocks:
        return [_single_name(modalities, table)], [adata.n_vars]
    names = pick_modalities(modalities, list(blocks), f"table {table!r} (var column {key!r})")
    columns = np.concatenate([blocks[n] for n in names])
    if not np.array_equal(columns, np.arange(adata.n_vars)):
        raise TopomicsInputError(
            f"--lazy fits the matrix of table {table!r} as it is stored, so its modalities "
            f"must cover all its features in var order ({list(blocks)}); {names} do not. "
            "Fit all of them in that order, or fit without --lazy."
        )
    return [str(n) for n in names], [int(blocks[n].size) for n in names]
