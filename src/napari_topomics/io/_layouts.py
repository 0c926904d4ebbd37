"""Per-modality AnnData copies from the table layouts users have.

* one table whose features form modality blocks (a var column such as 10x ``feature_types``);
* modalities as layers of one table;
* one table per modality, annotating the same cells;
* a single-modality table;
* a MuData file beside the store.

Every function returns ``{modality: AnnData}`` with rows in the order of the reference
table's cells and matrices that are copies (sparse stays sparse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._blocks import MODALITY_KEYS, find_modality_key, modality_blocks, pick_modalities
from ._errors import TopomicsInputError
from ._tables import AnnotatedElement, examples, match_ids, table_cells

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData
    from spatialdata import SpatialData

__all__ = ["mods_from_mudata", "mods_from_table", "mods_from_tables"]

Layers = str | Mapping[str, str | None] | None


def _matrix(adata: AnnData, layer: str | None, where: str):
    if layer is None or layer == "X":
        if adata.X is None:
            raise TopomicsInputError(
                f"{where} has no X matrix; choose a layer from {list(adata.layers.keys())}."
            )
        return adata.X
    if layer not in adata.layers:
        raise TopomicsInputError(
            f"Layer {layer!r} not found in {where}; available layers: "
            f"{list(adata.layers.keys())} (or None for X)."
        )
    return adata.layers[layer]


def _take(matrix, rows: np.ndarray, cols: np.ndarray):
    """A copy of ``matrix[rows][:, cols]``; sparse input gives CSR."""
    n_rows, n_cols = matrix.shape
    all_rows = rows.size == n_rows and np.array_equal(rows, np.arange(n_rows))
    all_cols = cols.size == n_cols and np.array_equal(cols, np.arange(n_cols))
    if sp.issparse(matrix):
        out = matrix.tocsr()
        if not all_rows:
            out = out[rows]
        if not all_cols:
            out = out[:, cols]
        return out.copy() if out is matrix else out
    arr = np.asarray(matrix)
    if all_rows and all_cols:
        return arr.copy()
    return arr[np.ix_(rows, cols)]


def _modality(
    adata: AnnData,
    rows: np.ndarray,
    cols: np.ndarray,
    layer: str | None,
    obs_names: pd.Index,
    where: str,
) -> AnnData:
    from anndata import AnnData

    if cols.size == 0:
        raise TopomicsInputError(f"{where} has no features; a modality needs at least one.")
    X = _take(_matrix(adata, layer, where), rows, cols)
    var = adata.var.iloc[cols].copy()
    var.index = var.index.astype(str)
    return AnnData(X=X, obs=pd.DataFrame(index=obs_names.copy()), var=var)


def _layer_per_modality(layers: Layers, names: Sequence[str], where: str) -> dict[str, str | None]:
    if layers is None or isinstance(layers, str):
        return dict.fromkeys(names, layers)
    if not isinstance(layers, Mapping):
        raise TopomicsInputError(
            f"layers must be a layer name or a mapping modality -> layer, got {layers!r}."
        )
    out: dict[str, str | None] = dict.fromkeys(names)
    for key, layer in layers.items():
        # a key may be a modality name or a synonym of its kind ("RNA", "adt")
        out[pick_modalities([str(key)], names, f"{where} (layers=)")[0]] = layer
    return out


def _single_name(modalities, table_name: str) -> str:
    if modalities is None:
        return "rna"
    names = [modalities] if isinstance(modalities, str) else list(modalities)
    if len(names) != 1:
        raise TopomicsInputError(
            f"Table {table_name!r} has no var column splitting its features into modalities "
            f"(tried {list(MODALITY_KEYS)}), so it is one modality, but {len(names)} names were "
            f"given ({names}); pass modality_key= or layers= to split it."
        )
    return str(names[0])


def mods_from_table(
    adata: AnnData,
    table_name: str,
    rows: np.ndarray,
    obs_names: pd.Index,
    *,
    modalities: str | Sequence[str] | None = None,
    layers: Layers = None,
    modality_key: str | None = None,
) -> dict[str, AnnData]:
    """Modalities of one table: var blocks, layers, or the whole table as one modality.

    With a mapping ``layers`` and at most one var block, each entry is a modality read
    from that layer (all features). With several blocks, a mapping ``layers`` picks the
    layer of each block. Without blocks the table is one modality (default name ``"rna"``).
    """
    where = f"table {table_name!r}"
    key = find_modality_key(adata, modality_key)
    blocks = modality_blocks(adata, key, table_name) if key is not None else {}
    all_cols = np.arange(adata.n_vars)
    if isinstance(layers, Mapping) and len(blocks) <= 1:
        names = pick_modalities(modalities, list(layers), f"layers={dict(layers)}")
        return {n: _modality(adata, rows, all_cols, layers[n], obs_names, where) for n in names}
    if blocks:
        names = pick_modalities(modalities, list(blocks), f"{where} (var column {key!r})")
        layer_of = _layer_per_modality(layers, list(blocks), f"{where} (var column {key!r})")
        return {
            n: _modality(
                adata, rows, blocks[n], layer_of[n], obs_names, f"modality {n!r} of {where}"
            )
            for n in names
        }
    name = _single_name(modalities, table_name)
    layer = _layer_per_modality(layers, [name], where)[name]
    return {name: _modality(adata, rows, all_cols, layer, obs_names, where)}


def mods_from_tables(
    sdata: SpatialData,
    tables: Mapping[str, str],
    element: AnnotatedElement,
    instance_ids: np.ndarray,
    obs_names: pd.Index,
    reference: str,
    layers: Layers = None,
) -> dict[str, AnnData]:
    """One table per modality, joined to the reference table's cells on the element's ids."""
    available = [str(t) for t in sdata.tables.keys()]
    layer_of = _layer_per_modality(layers, list(tables), f"modalities={dict(tables)}")
    out = {}
    for name, tname in tables.items():
        if not isinstance(tname, str) or tname not in available:
            raise TopomicsInputError(
                f"Table {tname!r} for modality {name!r} not found; available tables: {available}."
            )
        _, rows, _, ids = table_cells(sdata, tname, element.name)
        pos = match_ids(pd.Index(ids), instance_ids)
        missing = instance_ids[pos < 0]
        if missing.size:
            raise TopomicsInputError(
                f"Table {tname!r} (modality {name!r}) lacks {missing.size} of the "
                f"{instance_ids.size} cells of table {reference!r} in element "
                f"{element.name!r}, e.g. instance ids {examples(missing)}; the tables must "
                "annotate the same cells."
            )
        adata = sdata.tables[tname]
        cols = np.arange(adata.n_vars)
        out[str(name)] = _modality(
            adata, rows[pos], cols, layer_of[name], obs_names, f"table {tname!r}"
        )
    return out


def _read_mudata(mudata) -> tuple[MuData, str]:
    import mudata as md

    if isinstance(mudata, md.MuData):
        return mudata, "the MuData object"
    if not isinstance(mudata, str | Path):
        raise TopomicsInputError(
            f"mudata must be a path to an .h5mu file or a MuData, got {type(mudata).__name__}."
        )
    path = Path(mudata).expanduser()
    if not path.is_file():
        raise TopomicsInputError(f"MuData file not found: {path}; give the path of an .h5mu file.")
    try:
        return md.read_h5mu(path), f"MuData {str(path)!r}"
    except Exception as err:  # a broken or foreign file is bad input
        raise TopomicsInputError(f"Could not read {path} as an .h5mu MuData file: {err}") from err


def _cell_keys(
    mdata: MuData, obs_names: pd.Index, instance_ids: np.ndarray, label: str, table_name: str
) -> pd.Index:
    known = pd.Index(mdata.obs_names.astype(str))
    ids = pd.Index(instance_ids).astype(str)
    n_names = int(obs_names.isin(known).sum())
    if n_names == obs_names.size:
        return obs_names
    n_ids = int(ids.isin(known).sum())
    if n_ids == ids.size:
        return ids
    raise TopomicsInputError(
        f"The cells of {label} match neither the obs_names of table {table_name!r} "
        f"({n_names} of {obs_names.size} found, e.g. {examples(obs_names)}) nor its instance "
        f"ids ({n_ids} of {ids.size} found); its obs_names look like {examples(known)}."
    )


def mods_from_mudata(
    mudata,
    obs_names: pd.Index,
    instance_ids: np.ndarray,
    table_name: str,
    *,
    modalities: str | Sequence[str] | None = None,
    layers: Layers = None,
) -> dict[str, AnnData]:
    """Modalities of a MuData whose cells are the table's (by obs_names or instance ids)."""
    mdata, label = _read_mudata(mudata)
    names = pick_modalities(modalities, list(mdata.mod), label)
    layer_of = _layer_per_modality(layers, list(mdata.mod), label)
    keys = _cell_keys(mdata, obs_names, instance_ids, label, table_name)
    out = {}
    for name in names:
        adata = mdata.mod[name]
        index = pd.Index(adata.obs_names.astype(str))
        if not index.is_unique:
            raise TopomicsInputError(
                f"Modality {name!r} of {label} has duplicated obs_names; make them unique."
            )
        pos = index.get_indexer(keys)
        if (pos < 0).any():
            raise TopomicsInputError(
                f"Modality {name!r} of {label} lacks {int((pos < 0).sum())} of the "
                f"{keys.size} cells of table {table_name!r}, e.g. {examples(keys[pos < 0])}."
            )
        out[name] = _modality(
            adata,
            pos,
            np.arange(adata.n_vars),
            layer_of[name],
            obs_names,
            f"modality {name!r} of {label}",
        )
    return out
