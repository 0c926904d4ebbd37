"""Pieces shared by the setup paths: per-modality arguments, graphs, covariates, metadata."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._graph import CONNECTIVITIES_KEY, DISTANCES_KEY, build_spatial_graph, validate_graph
from ._modalities import resolve_modality

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger("napari_topomics.data")

#: obsm key of coordinates tried when a spatial key names neither an obsp nor an obsm key.
DEFAULT_COORDS_KEY = "spatial"
#: Default number of neighbours of the graph built from coordinates (§8).
DEFAULT_N_NEIGHBORS = 6

MODALITY_SETUP_KEY = "_modality_setup"
MULTIMODAL_SETUP_KEY = "_multimodal_setup"
ADATA_DICT_SETUP_KEY = "_adata_dict_setup"
SPATIALDATA_SETUP_KEY = "_spatialdata_setup"
GRAPH_KEY = "_spatial_graph"
GRAPHS_KEY = "_spatial_graphs"
INDICES_KEY = "_indices"


@dataclass
class PreparedInput:
    """The AnnData to register and its modality layout.

    Attributes
    ----------
    adata
        The AnnData to register: the user's own object on the AnnData and SpatialData-table
        paths, a new concatenated one on the MuData and dict paths.
    layer
        Layer of ``adata`` to register (``None`` = ``X``).
    modality_names
        Modality names, in column order.
    feature_counts
        Number of features of each modality.
    layer_dict
        Source layer of each modality (``None`` = ``X``).
    """

    adata: AnnData
    layer: str | None
    modality_names: list[str]
    feature_counts: list[int]
    layer_dict: dict[str, str | None] = field(default_factory=dict)


@dataclass
class GraphEntry:
    """A resolved spatial graph in the registered cell order."""

    adjacency: sp.csr_matrix
    key: str
    distances: sp.csr_matrix | None = None
    built_from: str | None = None


def short_list(items, limit: int = 30) -> list:
    """At most ``limit`` items of an iterable, as a list (for error messages)."""
    items = list(items)
    return items if len(items) <= limit else items[:limit] + ["..."]


def per_modality(
    value, modalities: Sequence[str], available: Sequence[str], argname: str
) -> dict[str, Any]:
    """Expand a str / dict / None argument to one entry per selected modality.

    A str (or None) applies to every modality. A dict is keyed by modality name (or a
    canonical kind naming exactly one available modality); modalities missing from it get
    ``None``, entries for available but unselected modalities are ignored, and an entry that
    names no available modality raises ``ValueError``.
    """
    if value is None or isinstance(value, str):
        return dict.fromkeys(modalities, value)
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{argname} must be a str, a dict keyed by modality name, or None; got "
            f"{type(value).__name__}"
        )
    out: dict[str, Any] = dict.fromkeys(modalities)
    available = list(available)
    for key, val in value.items():
        try:
            name = available[resolve_modality(key, available)]
        except (ValueError, KeyError, TypeError):
            raise ValueError(
                f"{argname}: {key!r} is not a modality name. Available modalities: {available}"
            ) from None
        if name in out:
            out[name] = val
    return out


def check_layer(adata: AnnData, layer: str | None, where: str) -> None:
    """Raise ``KeyError`` when ``layer`` is missing, ``ValueError`` when X is absent."""
    if layer is None:
        if adata.X is None:
            raise ValueError(f"{where} has no X; pass a layer to register instead")
        return
    if layer not in adata.layers:
        raise KeyError(
            f"Layer {layer!r} not found in {where}. Available layers: {list(adata.layers)}"
        )


def get_matrix(adata: AnnData, layer: str | None):
    """``adata.layers[layer]`` or ``adata.X`` (no copy)."""
    return adata.X if layer is None else adata.layers[layer]


def as_csr(A) -> sp.csr_matrix:
    """CSR copy of a sparse or dense adjacency matrix."""
    if sp.issparse(A):
        return sp.csr_matrix(A, copy=True)
    return sp.csr_matrix(np.asarray(A))


def reindex_square(A, src_names: pd.Index, target: pd.Index) -> sp.csr_matrix:
    """Re-index a graph over ``src_names`` to the cell order ``target``.

    Cells of ``src_names`` absent from ``target`` lose their edges; target cells absent from
    ``src_names`` get none.
    """
    if src_names.equals(target):
        return as_csr(A)
    pos = target.get_indexer(src_names)
    coo = sp.coo_matrix(A)
    keep = (pos[coo.row] >= 0) & (pos[coo.col] >= 0)
    n = len(target)
    out = sp.csr_matrix((coo.data[keep], (pos[coo.row[keep]], pos[coo.col[keep]])), shape=(n, n))
    out.sort_indices()
    return out


def graph_from_coords(
    coords,
    src_names: pd.Index,
    target: pd.Index,
    obsm_key: str,
    where: str,
    in_obsp: bool = True,
) -> GraphEntry:
    """kNN graph (k=6) built from coordinates, re-indexed to ``target``; logs what it did."""
    conn, dist = build_spatial_graph(coords, method="knn", n_neighbors=DEFAULT_N_NEIGHBORS)
    logger.info(
        "No obsp graph found; built a symmetric %d-nearest-neighbour spatial graph from "
        "obsm[%r] of %s (%d cells, %d edges); %s.",
        DEFAULT_N_NEIGHBORS,
        obsm_key,
        where,
        conn.shape[0],
        conn.nnz // 2,
        f"stored as obsp[{CONNECTIVITIES_KEY!r}] / obsp[{DISTANCES_KEY!r}] of the registered "
        "AnnData"
        if in_obsp
        else "kept in uns['_spatial_graph'] only (the user's obsp is not modified)",
    )
    if not src_names.equals(target):
        conn = reindex_square(conn, src_names, target)
        dist = reindex_square(dist, src_names, target)
    return GraphEntry(conn, CONNECTIVITIES_KEY, distances=dist, built_from=obsm_key)


@dataclass
class GraphSource:
    """One place where a graph or coordinates may be found."""

    obsp: Mapping
    obsm: Mapping
    obs_names: pd.Index
    where: str


def resolve_graph(
    key: str,
    sources: Sequence[GraphSource],
    target: pd.Index,
    required: bool = True,
    in_obsp: bool = True,
) -> GraphEntry | None:
    """Find the graph named ``key``: obsp of each source, then obsm coordinates (§4.1, §8).

    Order: ``obsp[key]`` in every source, then ``obsm[key]`` in every source, then the
    default ``obsm["spatial"]`` in every source. Graphs and coordinates are re-indexed to
    ``target``. Raises ``KeyError`` (naming the key and listing the obsp keys) when nothing
    is found and ``required``; returns None otherwise. ``in_obsp`` only changes the log
    message (whether a built graph goes to the registered obsp or to ``uns`` only).
    """
    n = len(target)
    for src in sources:
        if key in src.obsp:
            A = src.obsp[key]
            validate_graph(A, len(src.obs_names), key)
            logger.info("Spatial graph: using obsp[%r] of %s.", key, src.where)
            return GraphEntry(reindex_square(A, src.obs_names, target), key)
    coord_keys = [key] if key == DEFAULT_COORDS_KEY else [key, DEFAULT_COORDS_KEY]
    for ck in coord_keys:
        for src in sources:
            if ck in src.obsm:
                return graph_from_coords(
                    src.obsm[ck], src.obs_names, target, ck, src.where, in_obsp
                )
    if not required:
        return None
    listing = "; ".join(f"{src.where}: {list(src.obsp.keys())}" for src in sources)
    raise KeyError(
        f"Spatial key {key!r} not found in obsp, and no obsm coordinates under {key!r} or "
        f"{DEFAULT_COORDS_KEY!r} to build a graph from. Available obsp keys: {listing}"
        + ("" if n else " (no cells)")
    )


def graphs_to_uns(graphs: Mapping[str, GraphEntry | None]) -> dict[str, Any]:
    """Turn per-modality graphs into the ``uns`` entries (§4.1).

    Identical graphs are stored once (shared object). One distinct graph gives
    ``{"_spatial_graph": {...}}``; several give ``{"_spatial_graphs": {mod: {...}}}``.
    """
    distinct: list[GraphEntry] = []
    assigned: dict[str, GraphEntry] = {}
    for mod, entry in graphs.items():
        if entry is None:
            continue
        for d in distinct:
            if d.key == entry.key and _same_matrix(d.adjacency, entry.adjacency):
                entry = d
                break
        else:
            distinct.append(entry)
        assigned[mod] = entry
    if not distinct:
        return {}
    if len(distinct) == 1:
        g = distinct[0]
        return {GRAPH_KEY: {"adjacency": g.adjacency, "key": g.key}}
    return {GRAPHS_KEY: {m: {"adjacency": g.adjacency, "key": g.key} for m, g in assigned.items()}}


def _same_matrix(A: sp.csr_matrix, B: sp.csr_matrix) -> bool:
    if A is B:
        return True
    if A.shape != B.shape or A.nnz != B.nnz:
        return False
    return (A != B).nnz == 0


def find_covariate(
    key: str,
    global_obs: pd.DataFrame | None,
    tables: Sequence[tuple[str, pd.DataFrame]],
    target: pd.Index,
) -> pd.Series:
    """Look up a covariate column: global obs first, then each modality obs in order (§4.6).

    Values of cells absent from the first modality holding the key are filled from later
    modalities holding it. Raises ``KeyError`` naming the key when it is found nowhere and
    ``ValueError`` when some cells are left without a value.
    """
    if global_obs is not None and key in global_obs.columns:
        return global_obs[key].reindex(target)
    found: pd.Series | None = None
    for _name, obs in tables:
        if key not in obs.columns:
            continue
        col = obs[key].reindex(target)
        found = col if found is None else found.combine_first(col)
    if found is None:
        where = ["global obs"] if global_obs is not None else []
        where += [f"obs of modality {name!r}" for name, _ in tables]
        raise KeyError(f"Covariate key {key!r} not found in {', '.join(where)}")
    n_missing = int(found.isna().sum())
    if n_missing:
        raise ValueError(
            f"Covariate {key!r} has no value for {n_missing} of {len(target)} cells (cells "
            f"absent from every modality obs that holds the key)"
        )
    return found


def check_covariates_in_obs(adata: AnnData, keys: Sequence[str] | None) -> None:
    """Raise ``KeyError`` naming the first covariate key missing from ``adata.obs``."""
    for key in keys or ():
        if key not in adata.obs.columns:
            raise KeyError(
                f"Covariate key {key!r} not found in obs. Available obs columns: "
                f"{short_list(adata.obs.columns)}"
            )


def as_key_list(keys, argname: str) -> list[str]:
    """Normalise a covariate-key argument (None, str or sequence of str) to a list."""
    if keys is None:
        return []
    if isinstance(keys, str):
        return [keys]
    keys = list(keys)
    for k in keys:
        if not isinstance(k, str):
            raise TypeError(f"{argname}: keys must be str, got {type(k).__name__} {k!r}")
    return keys


def modality_setup(
    names: Sequence[str], counts: Sequence[int], layer_dict: Mapping[str, str | None]
) -> dict[str, Any]:
    """The ``{"modality_names", "feature_counts", "layer_dict"}`` metadata dict."""
    return {
        "modality_names": [str(n) for n in names],
        "feature_counts": [int(c) for c in counts],
        "layer_dict": {str(k): v for k, v in layer_dict.items()},
    }
