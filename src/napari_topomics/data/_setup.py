"""Preparing the AnnData to register: AnnData and SpatialData inputs, dispatch, clean-up.

The MuData and dict paths live in :mod:`._setup_multi`. None of these functions imports
scvi-tools or torch; the model registers the returned AnnData itself (§4.1).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._graph import validate_graph
from ._setup_common import (
    ADATA_DICT_SETUP_KEY,
    GRAPH_KEY,
    GRAPHS_KEY,
    INDICES_KEY,
    MODALITY_SETUP_KEY,
    MULTIMODAL_SETUP_KEY,
    SPATIALDATA_SETUP_KEY,
    GraphSource,
    PreparedInput,
    as_key_list,
    check_covariates_in_obs,
    check_layer,
    graphs_to_uns,
    logger,
    modality_setup,
    per_modality,
    resolve_graph,
)
from ._setup_multi import prepare_adata_dict, prepare_mudata

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "PreparedInput",
    "detect_input_type",
    "prepare_adata_dict",
    "prepare_anndata",
    "prepare_data",
    "prepare_mudata",
    "prepare_spatialdata",
    "strip_setup_state",
]

_SPATIAL_EXTRA_MSG = 'pip install "napari-topomics[spatial]"'
#: uns keys of a MuData that cannot be written to .h5mu (§5.10).
NON_SERIALISABLE_UNS_KEYS = ("_flattened_ann_data",)


def _single_modality(modalities, default: str = "rna") -> str:
    if modalities is None:
        return default
    if isinstance(modalities, str):
        return modalities
    modalities = list(modalities)
    if len(modalities) != 1:
        raise ValueError(
            f"A single AnnData is one modality, but modalities={modalities!r} names "
            f"{len(modalities)}. Pass a dict of AnnData or a MuData for several modalities, "
            f"or describe a pre-concatenated AnnData with n_inputs_modalities and "
            f"modality_names in the model."
        )
    if not isinstance(modalities[0], str):
        raise TypeError(f"modality names must be str, got {modalities[0]!r}")
    return modalities[0]


def _existing_setup(adata: AnnData) -> tuple[list[str], list[int], dict] | None:
    """Multi-modality metadata already on a flattened AnnData, when it matches its shape."""
    meta = adata.uns.get(MODALITY_SETUP_KEY)
    if not isinstance(meta, Mapping):
        return None
    try:
        names = [str(x) for x in meta["modality_names"]]
        counts = [int(c) for c in meta["feature_counts"]]
    except (KeyError, TypeError, ValueError):
        return None
    if len(names) != len(counts) or sum(counts) != adata.n_vars or min(counts, default=0) < 1:
        return None
    flattened = MULTIMODAL_SETUP_KEY in adata.uns or ADATA_DICT_SETUP_KEY in adata.uns
    if len(names) < 2 and not flattened:
        return None
    stored = meta.get("layer_dict", {})
    stored = dict(stored) if isinstance(stored, Mapping) else {}
    return names, counts, {n: stored.get(n) for n in names}


def _existing_graphs(adata: AnnData) -> dict[str, Any]:
    """``_spatial_graph(s)`` entries already in ``adata.uns``, shape-checked."""
    out: dict[str, Any] = {}
    if GRAPH_KEY in adata.uns:
        g = adata.uns[GRAPH_KEY]
        validate_graph(g["adjacency"], adata.n_obs, f"uns[{GRAPH_KEY!r}]")
        out[GRAPH_KEY] = g
    if GRAPHS_KEY in adata.uns:
        for mod, g in adata.uns[GRAPHS_KEY].items():
            validate_graph(g["adjacency"], adata.n_obs, f"uns[{GRAPHS_KEY!r}][{mod!r}]")
        out[GRAPHS_KEY] = adata.uns[GRAPHS_KEY]
    return out


def _graph_for_anndata(adata: AnnData, key: str) -> dict[str, Any]:
    """Graph of an AnnData by obsp key, obsm coordinates or an earlier uns entry."""
    src = [GraphSource(adata.obsp, adata.obsm, adata.obs_names, "AnnData")]
    entry = resolve_graph(key, src, adata.obs_names, required=False, in_obsp=False)
    if entry is None:
        stored = adata.uns.get(GRAPH_KEY)
        if isinstance(stored, Mapping) and str(stored.get("key")) == key:
            validate_graph(stored["adjacency"], adata.n_obs, key)
            logger.info("Spatial key %r: reusing the graph stored in uns[%r].", key, GRAPH_KEY)
            return {GRAPH_KEY: stored}
        resolve_graph(key, src, adata.obs_names)  # raises KeyError
    return graphs_to_uns({"_": entry})


def prepare_anndata(
    adata: AnnData,
    modality: str = "rna",
    layer: str | Mapping[str, str] | None = None,
    spatial_key: str | Mapping[str, str] | None = None,
    categorical_covariate_keys: Sequence[str] | None = None,
    continuous_covariate_keys: Sequence[str] | None = None,
    encoder_extra_obsm_key: str | None = None,
) -> PreparedInput:
    """Prepare a single AnnData (one modality) for registration (§4.2).

    Adds only ``obs["_indices"]`` and the ``uns`` keys ``_modality_setup`` and, with a
    spatial key, ``_spatial_graph``; X, layers, obsm and obsp are left untouched. A graph
    built from coordinates is stored in ``uns`` only. When the AnnData already carries the
    multi-modality metadata of a flattened AnnData (as when scvi's ``load`` re-runs setup),
    that metadata and its stored graphs are kept.

    Parameters
    ----------
    adata
        The AnnData; it is the object that gets registered.
    modality
        Name of the modality (a one-element list is accepted).
    layer
        Layer to register (None = X); a dict keyed by the modality name is accepted.
    spatial_key
        obsp key of the graph, or obsm key of coordinates (str or dict keyed by name).
    categorical_covariate_keys, continuous_covariate_keys
        obs keys of the covariates.
    encoder_extra_obsm_key
        obsm key of encoder-only features.

    Returns
    -------
    PreparedInput
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        raise TypeError(f"Expected an AnnData, got {type(adata).__name__}")
    if adata.is_view:
        raise ValueError(
            "The AnnData is a view; setup would have to copy it. Run `adata = adata.copy()` first."
        )
    modality = _single_modality(modality)
    layer = per_modality(layer, [modality], [modality], "layers")[modality]
    spatial_key = per_modality(spatial_key, [modality], [modality], "spatial_keys")[modality]
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"layer must be a str or None, got {layer!r}")
    check_layer(adata, layer, "AnnData")
    check_covariates_in_obs(
        adata,
        as_key_list(categorical_covariate_keys, "categorical_covariate_keys")
        + as_key_list(continuous_covariate_keys, "continuous_covariate_keys"),
    )
    if encoder_extra_obsm_key is not None and encoder_extra_obsm_key not in adata.obsm:
        raise KeyError(
            f"encoder_extra_obsm_key {encoder_extra_obsm_key!r} not found in obsm. "
            f"Available obsm keys: {list(adata.obsm)}"
        )

    existing = _existing_setup(adata)
    if existing is not None:
        names, counts, layer_dict = existing
        logger.info(
            "AnnData already holds the setup of %d modalities %s; reusing it.",
            len(names),
            names,
        )
        graph_uns = _existing_graphs(adata)
        if not graph_uns and spatial_key is not None:
            graph_uns = _graph_for_anndata(adata, spatial_key)
    else:
        names, counts, layer_dict = [modality], [int(adata.n_vars)], {modality: layer}
        graph_uns = _graph_for_anndata(adata, spatial_key) if spatial_key is not None else {}

    # all checks passed: the permitted additions only
    adata.obs[INDICES_KEY] = np.arange(adata.n_obs, dtype=np.int64)
    adata.uns[MODALITY_SETUP_KEY] = modality_setup(names, counts, layer_dict)
    for key in (GRAPH_KEY, GRAPHS_KEY):
        if key not in graph_uns:
            adata.uns.pop(key, None)  # a stale graph from an earlier setup
    adata.uns.update(graph_uns)
    return PreparedInput(adata, layer, list(names), list(counts), dict(layer_dict))


def _import_spatialdata():
    try:
        import spatialdata
    except ImportError as err:
        raise ImportError(
            f"SpatialData input needs the optional 'spatialdata' package: {_SPATIAL_EXTRA_MSG}"
        ) from err
    return spatialdata


def prepare_spatialdata(
    sdata,
    table_key: str = "table",
    modalities: Sequence[str] | str | None = None,
    layers: str | Mapping[str, str] | None = None,
    spatial_keys: str | Mapping[str, str] | None = None,
    categorical_covariate_keys: Sequence[str] | None = None,
    continuous_covariate_keys: Sequence[str] | None = None,
    encoder_extra_obsm_key: str | None = None,
) -> PreparedInput:
    """Prepare a SpatialData table for registration (§4.5).

    An AnnData table is one modality and is registered as is (it gains only
    ``obs["_indices"]`` and the ``uns`` keys, including ``_spatialdata_setup``). A MuData
    table goes through :func:`prepare_mudata`.

    Parameters
    ----------
    sdata
        The SpatialData object.
    table_key
        Name of the table in ``sdata.tables``.
    modalities
        Name of the table's modality (default ``"rna"``).
    layers, spatial_keys
        A str, or a dict keyed by the modality name.
    categorical_covariate_keys, continuous_covariate_keys, encoder_extra_obsm_key
        As in :func:`prepare_anndata`.

    Returns
    -------
    PreparedInput
    """
    _import_spatialdata()
    tables = sdata.tables
    if table_key not in tables:
        raise KeyError(
            f"Table '{table_key}' not found in SpatialData. Available tables: {list(tables)}"
        )
    table = tables[table_key]
    kwargs = dict(
        categorical_covariate_keys=categorical_covariate_keys,
        continuous_covariate_keys=continuous_covariate_keys,
        encoder_extra_obsm_key=encoder_extra_obsm_key,
    )
    if detect_input_type(table) == "mudata":
        prep = prepare_mudata(table, modalities, layers, spatial_keys, **kwargs)
    else:
        modality = _single_modality(modalities)
        prep = prepare_anndata(table, modality, layers, spatial_keys, **kwargs)
    meta = modality_setup(prep.modality_names, prep.feature_counts, prep.layer_dict)
    prep.adata.uns[SPATIALDATA_SETUP_KEY] = dict(meta, table_key=table_key)
    return prep


def _is_spatialdata(data) -> bool:
    mod = sys.modules.get("spatialdata")
    if mod is not None and isinstance(data, mod.SpatialData):
        return True
    return any(
        c.__name__ == "SpatialData" and c.__module__.split(".")[0] == "spatialdata"
        for c in type(data).__mro__
    )


def detect_input_type(data) -> str:
    """Return ``"anndata"``, ``"mudata"``, ``"spatialdata"`` or ``"dict"``.

    Raises
    ------
    TypeError
        For any other type.
    """
    from anndata import AnnData

    mudata = sys.modules.get("mudata")
    if mudata is None and type(data).__name__ == "MuData":
        import mudata
    if mudata is not None and isinstance(data, mudata.MuData):
        return "mudata"
    if isinstance(data, AnnData):
        return "anndata"
    if _is_spatialdata(data):
        return "spatialdata"
    if isinstance(data, Mapping):
        return "dict"
    raise TypeError(
        f"Unsupported data type: {type(data).__name__}. Supported types: AnnData, MuData, "
        f"SpatialData, or dict[str, AnnData]"
    )


def prepare_data(
    data,
    modalities: Sequence[str] | str | None = None,
    layers: str | Mapping[str, str] | None = None,
    spatial_keys: str | Mapping[str, str] | None = None,
    table_key: str = "table",
    categorical_covariate_keys: Sequence[str] | None = None,
    continuous_covariate_keys: Sequence[str] | None = None,
    encoder_extra_obsm_key: str | None = None,
) -> PreparedInput:
    """Detect the input type and run the matching ``prepare_*`` function (§4.6)."""
    kind = detect_input_type(data)
    kwargs = dict(
        categorical_covariate_keys=categorical_covariate_keys,
        continuous_covariate_keys=continuous_covariate_keys,
        encoder_extra_obsm_key=encoder_extra_obsm_key,
    )
    if kind == "anndata":
        return prepare_anndata(data, _single_modality(modalities), layers, spatial_keys, **kwargs)
    if kind == "mudata":
        return prepare_mudata(data, modalities, layers, spatial_keys, **kwargs)
    if kind == "spatialdata":
        return prepare_spatialdata(data, table_key, modalities, layers, spatial_keys, **kwargs)
    return prepare_adata_dict(data, modalities, layers, spatial_keys, **kwargs)


def strip_setup_state(mdata):
    """Remove the non-serialisable setup keys from ``mdata.uns`` (§5.10), in place.

    Drops ``_flattened_ann_data`` and any other top-level ``uns`` entry holding an AnnData
    or MuData object, so that the container can be written to ``.h5mu`` / ``.h5ad``. The
    documented metadata (``_multimodal_setup`` ...) is kept.

    Parameters
    ----------
    mdata
        A MuData (or AnnData) after setup.

    Returns
    -------
    The same object, for chaining.
    """
    from anndata import AnnData

    mudata = sys.modules.get("mudata")
    containers: tuple[type, ...] = (AnnData,) + ((mudata.MuData,) if mudata else ())
    for key in list(mdata.uns.keys()):
        if key in NON_SERIALISABLE_UNS_KEYS or isinstance(mdata.uns[key], containers):
            del mdata.uns[key]
            logger.debug("strip_setup_state: removed uns[%r]", key)
    return mdata
