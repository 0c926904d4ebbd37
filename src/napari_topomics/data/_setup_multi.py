"""MuData and dict inputs: align modalities by obs_names and concatenate them (§4.3, §4.4)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._graph import CONNECTIVITIES_KEY, DISTANCES_KEY
from ._modalities import resolve_modality
from ._setup_common import (
    ADATA_DICT_SETUP_KEY,
    INDICES_KEY,
    MODALITY_SETUP_KEY,
    MULTIMODAL_SETUP_KEY,
    GraphEntry,
    GraphSource,
    PreparedInput,
    as_key_list,
    check_layer,
    find_covariate,
    get_matrix,
    graphs_to_uns,
    logger,
    modality_setup,
    per_modality,
    resolve_graph,
)

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData

__all__ = ["concatenate_modalities", "prepare_adata_dict", "prepare_mudata"]


def _select(modalities, available: Sequence[str], container: str) -> list[str]:
    """Resolve the requested modality names (verbatim or by unique kind) in order."""
    available = list(available)
    if modalities is None:
        return available
    if isinstance(modalities, str):
        modalities = [modalities]
    out = []
    for q in modalities:
        try:
            name = available[resolve_modality(q, available)]
        except (KeyError, TypeError):
            raise ValueError(
                f"Modality {q!r} not found in {container}. Available: {available}"
            ) from None
        except ValueError as err:
            if "ambiguous" in str(err):
                raise
            raise ValueError(
                f"Modality {q!r} not found in {container}. Available: {available}"
            ) from None
        if name in out:
            raise ValueError(f"Modality {name!r} selected twice in modalities={modalities!r}")
        out.append(name)
    if not out:
        raise ValueError(f"No modality selected. Available in {container}: {available}")
    return out


def _aligned_block(X, pos: np.ndarray, n_vars: int):
    """Rows of ``X`` reordered so that row g is source row ``pos[g]`` (zeros where -1)."""
    n = pos.shape[0]
    present = pos >= 0
    identity = bool(present.all()) and X.shape[0] == n and np.array_equal(pos, np.arange(n))
    if sp.issparse(X):
        X = sp.csr_matrix(X)
        sub = X if identity else X[pos[present]]
        counts = np.zeros(n, dtype=np.int64)
        counts[present] = np.diff(sub.indptr)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return sp.csr_matrix(
            (sub.data.astype(np.float32), sub.indices.copy(), indptr), shape=(n, n_vars)
        )
    X = np.asarray(X)
    if identity:
        return X.astype(np.float32, copy=True)
    out = np.zeros((n, n_vars), dtype=np.float32)
    out[present] = X[pos[present]]
    return out


def _feature_names(mods: Mapping[str, AnnData]) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Unique registered var_names, original names and modality labels (§8)."""
    from anndata.utils import make_index_unique

    owners: dict[str, set[str]] = {}
    for name, ad in mods.items():
        for v in ad.var_names:
            owners.setdefault(str(v), set()).add(name)
    names, originals, labels = [], [], []
    for name, ad in mods.items():
        for v in map(str, ad.var_names):
            names.append(f"{name}:{v}" if len(owners[v]) > 1 else v)
            originals.append(v)
            labels.append(name)
    index = pd.Index(names)
    if not index.is_unique:
        logger.warning("Duplicated feature names within a modality were made unique.")
        index = make_index_unique(index)
    return index, np.asarray(originals, dtype=object), np.asarray(labels, dtype=object)


def concatenate_modalities(
    mods: Mapping[str, AnnData],
    obs_names: pd.Index,
    *,
    layers=None,
    spatial_keys=None,
    global_obs: pd.DataFrame | None = None,
    global_obsm: Mapping | None = None,
    global_obsp: Mapping | None = None,
    other_mods: Mapping[str, AnnData] | None = None,
    categorical_covariate_keys: Sequence[str] | None = None,
    continuous_covariate_keys: Sequence[str] | None = None,
    encoder_extra_obsm_key: str | None = None,
    container: str = "MuData",
) -> tuple[AnnData, list[str], list[int], dict[str, str | None]]:
    """Build the concatenated AnnData of several modalities aligned on ``obs_names``.

    Parameters
    ----------
    mods
        Selected modalities, in registration order.
    obs_names
        Global cell order; a cell missing from a modality gets an all-zero block.
    layers, spatial_keys
        str (every modality), dict keyed by modality, or None (§4.3).
    global_obs, global_obsm, global_obsp
        Container-level tables (MuData); None for a dict input.
    other_mods
        Unselected modalities, searched last for covariates.
    categorical_covariate_keys, continuous_covariate_keys, encoder_extra_obsm_key
        Registered covariates and encoder-extra features (§4.1, §4.6).
    container
        Name of the input type, for messages.

    Returns
    -------
    tuple
        ``(adata, modality_names, feature_counts, layer_dict)``; ``adata`` carries
        ``obs["_indices"]``, ``var["modality"]``, graphs and ``uns["_modality_setup"]``.
    """
    import anndata as ad

    names = list(mods)
    if not names:
        raise ValueError(f"No modality to concatenate from the {container}")
    everything = {**mods, **(other_mods or {})}
    layer_dict = per_modality(layers, names, list(everything), "layers")
    key_dict = per_modality(spatial_keys, names, list(everything), "spatial_keys")
    for name, layer in layer_dict.items():
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"layers[{name!r}] must be a str or None, got {layer!r}")
        check_layer(mods[name], layer, f"modality {name!r}")
    for name, m in mods.items():
        if not m.obs_names.is_unique:
            dup = m.obs_names[m.obs_names.duplicated()].unique()
            raise ValueError(
                f"Modality {name!r} has duplicated obs_names ({len(dup)}, e.g. "
                f"{list(dup[:5])}); make them unique before setup"
            )
    obs_names = pd.Index(obs_names)
    if not obs_names.is_unique:
        raise ValueError(f"The {container} has duplicated obs_names; make them unique")
    cat_keys = as_key_list(categorical_covariate_keys, "categorical_covariate_keys")
    cont_keys = as_key_list(continuous_covariate_keys, "continuous_covariate_keys")

    # ---- covariates (validated before any heavy work)
    tables = [(n, m.obs) for n, m in everything.items()]
    covariates = {k: find_covariate(k, global_obs, tables, obs_names) for k in cat_keys + cont_keys}

    # ---- obsm: copies of the container's obsm (+ encoder extras from a modality)
    obsm: dict[str, Any] = {}
    for key, val in (global_obsm or {}).items():
        arr = val.copy() if hasattr(val, "copy") else np.array(val)
        if key in everything and getattr(arr, "ndim", 2) == 1 and arr.dtype == bool:
            continue  # mudata's per-modality membership masks
        obsm[key] = arr
    if encoder_extra_obsm_key is not None and encoder_extra_obsm_key not in obsm:
        obsm[encoder_extra_obsm_key] = _extra_from_modalities(
            encoder_extra_obsm_key, everything, obs_names, global_obsm is not None
        )
    if global_obsm is None and "spatial" not in obsm:
        for m in everything.values():  # dict input: carry coordinates that cover every cell
            if "spatial" in m.obsm and obs_names.isin(m.obs_names).all():
                obsm["spatial"] = np.asarray(m.obsm["spatial"])[m.obs_names.get_indexer(obs_names)]
                break

    # ---- graphs: modality obsp/obsm first, then the container's (§4.3, §8)
    def sources(name: str) -> list[GraphSource]:
        m = mods[name]
        out = [GraphSource(m.obsp, m.obsm, m.obs_names, f"modality {name!r}")]
        if global_obsp is not None or global_obsm is not None:
            out.append(GraphSource(global_obsp or {}, global_obsm or {}, obs_names, container))
        return out

    # a dict entry must be found; a single str key may be missing for some modalities
    required = isinstance(spatial_keys, Mapping)
    graphs: dict[str, GraphEntry | None] = {
        name: None
        if key_dict[name] is None
        else resolve_graph(key_dict[name], sources(name), obs_names, required=required)
        for name in names
    }
    if isinstance(spatial_keys, str) and all(g is None for g in graphs.values()):
        resolve_graph(spatial_keys, sources(names[0]), obs_names)  # raises KeyError
    # ---- the matrix
    n = len(obs_names)
    blocks, counts = [], []
    for name, m in mods.items():
        pos = m.obs_names.get_indexer(obs_names)
        n_missing = int((pos < 0).sum())
        n_dropped = int((~m.obs_names.isin(obs_names)).sum())
        if n_missing:
            logger.info(
                "Modality %r lacks %d of %d cells: their %r block is all zero (masked).",
                name,
                n_missing,
                n,
                name,
            )
        if n_dropped > 0:
            logger.warning(
                "%d cells of modality %r are not in the %s obs_names and are dropped.",
                n_dropped,
                name,
                container,
            )
        blocks.append(_aligned_block(get_matrix(m, layer_dict[name]), pos, m.n_vars))
        counts.append(int(m.n_vars))
    if any(sp.issparse(b) for b in blocks):
        X = sp.hstack([sp.csr_matrix(b) for b in blocks], format="csr", dtype=np.float32)
    else:
        X = np.concatenate(blocks, axis=1).astype(np.float32, copy=False)

    var_names, originals, labels = _feature_names(mods)
    var = pd.DataFrame(
        {"modality": pd.Categorical(labels, categories=names), "feature_name": originals},
        index=var_names,
    )
    obs = global_obs.copy() if global_obs is not None else pd.DataFrame(index=obs_names)
    obs.index = obs_names
    for key, col in covariates.items():
        obs[key] = col
    obs[INDICES_KEY] = np.arange(n, dtype=np.int64)

    obsp: dict[str, sp.csr_matrix] = {}
    for g in graphs.values():
        if g is not None and g.key not in obsp:
            obsp[g.key] = g.adjacency
            if g.key == CONNECTIVITIES_KEY and g.distances is not None:
                obsp[DISTANCES_KEY] = g.distances

    adata = ad.AnnData(X=X, obs=obs, var=var, obsm=obsm or None, obsp=obsp or None)
    adata.uns[MODALITY_SETUP_KEY] = modality_setup(names, counts, layer_dict)
    adata.uns.update(graphs_to_uns(graphs))
    return adata, names, counts, layer_dict


def _extra_from_modalities(
    key: str, mods: Mapping[str, AnnData], obs_names: pd.Index, has_global: bool
) -> np.ndarray:
    """Encoder-extra features from the first modality obsm holding ``key`` (zeros elsewhere)."""
    for name, m in mods.items():
        if key in m.obsm:
            vals = np.asarray(m.obsm[key], dtype=np.float32)
            if vals.ndim == 1:
                vals = vals[:, None]
            pos = m.obs_names.get_indexer(obs_names)
            out = np.zeros((len(obs_names), vals.shape[1]), dtype=np.float32)
            out[pos >= 0] = vals[pos[pos >= 0]]
            if (pos < 0).any():
                logger.info(
                    "obsm[%r] taken from modality %r; %d cells without it get zeros.",
                    key,
                    name,
                    int((pos < 0).sum()),
                )
            return out
    where = (["global obsm"] if has_global else []) + [f"modality {n!r}" for n in mods]
    raise KeyError(f"encoder_extra_obsm_key {key!r} not found in the obsm of {', '.join(where)}")


def prepare_mudata(
    mdata: MuData,
    modalities: Sequence[str] | str | None = None,
    layers: str | Mapping[str, str | None] | None = None,
    spatial_keys: str | Mapping[str, str] | None = None,
    categorical_covariate_keys: Sequence[str] | None = None,
    continuous_covariate_keys: Sequence[str] | None = None,
    encoder_extra_obsm_key: str | None = None,
) -> PreparedInput:
    """Concatenate the modalities of a MuData into a new AnnData (§4.3).

    Writes ``mdata.uns["_multimodal_setup"]`` (the only change to ``mdata``).

    Parameters
    ----------
    mdata
        The MuData; its ``obs_names`` define the cell order.
    modalities
        Modalities to use, in order (default: every key of ``mdata.mod``).
    layers
        A layer for every modality (str), per modality (dict), or None (X).
    spatial_keys
        A graph key for every modality (str) or per modality (dict); see
        :func:`~napari_topomics.data._setup_common.resolve_graph`.
    categorical_covariate_keys, continuous_covariate_keys
        obs keys, looked up in ``mdata.obs`` then in each modality obs.
    encoder_extra_obsm_key
        obsm key of encoder-only features (``mdata.obsm`` first, then modality obsm).

    Returns
    -------
    PreparedInput
    """
    available = list(mdata.mod.keys())
    names = _select(modalities, available, "MuData")
    mods = {n: mdata.mod[n] for n in names}
    others = {n: mdata.mod[n] for n in available if n not in names}
    adata, names, counts, layer_dict = concatenate_modalities(
        mods,
        mdata.obs_names,
        layers=layers,
        spatial_keys=spatial_keys,
        global_obs=mdata.obs,
        global_obsm=mdata.obsm,
        global_obsp=mdata.obsp,
        other_mods=others,
        categorical_covariate_keys=categorical_covariate_keys,
        continuous_covariate_keys=continuous_covariate_keys,
        encoder_extra_obsm_key=encoder_extra_obsm_key,
        container="MuData",
    )
    meta = {
        "modality_order": list(names),
        "feat_counts": list(counts),
        "layer_dict": dict(layer_dict),
        "setup_method": "separate_modalities",
    }
    adata.uns[MULTIMODAL_SETUP_KEY] = copy.deepcopy(meta)
    mdata.uns[MULTIMODAL_SETUP_KEY] = meta
    return PreparedInput(adata, None, names, counts, dict(layer_dict))


def prepare_adata_dict(
    adata_dict: Mapping[str, AnnData],
    modalities: Sequence[str] | str | None = None,
    layers: str | Mapping[str, str | None] | None = None,
    spatial_keys: str | Mapping[str, str] | None = None,
    categorical_covariate_keys: Sequence[str] | None = None,
    continuous_covariate_keys: Sequence[str] | None = None,
    encoder_extra_obsm_key: str | None = None,
) -> PreparedInput:
    """Concatenate a ``dict[str, AnnData]`` (dict order = modality order) (§4.4).

    Cells are aligned on the union of the modalities' obs_names, in order of first
    appearance. The input AnnData objects are not modified.

    Parameters
    ----------
    adata_dict
        One AnnData per modality.
    modalities, layers, spatial_keys, categorical_covariate_keys, continuous_covariate_keys,
    encoder_extra_obsm_key
        As in :func:`prepare_mudata` (covariates are looked up in each modality obs).

    Returns
    -------
    PreparedInput
    """
    from anndata import AnnData

    if not isinstance(adata_dict, Mapping) or not adata_dict:
        raise TypeError("adata_dict must be a non-empty dict[str, AnnData]")
    for key, val in adata_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"adata_dict keys must be modality names (str), got {key!r}")
        if not isinstance(val, AnnData):
            raise TypeError(f"adata_dict[{key!r}] must be an AnnData, got {type(val).__name__}")
    available = list(adata_dict)
    names = _select(modalities, available, "the AnnData dict")
    mods = {n: adata_dict[n] for n in names}
    others = {n: adata_dict[n] for n in available if n not in names}
    obs_names = pd.Index(
        pd.unique(np.concatenate([np.asarray(m.obs_names, dtype=object) for m in mods.values()]))
    )
    adata, names, counts, layer_dict = concatenate_modalities(
        mods,
        obs_names,
        layers=layers,
        spatial_keys=spatial_keys,
        other_mods=others,
        categorical_covariate_keys=categorical_covariate_keys,
        continuous_covariate_keys=continuous_covariate_keys,
        encoder_extra_obsm_key=encoder_extra_obsm_key,
        container="AnnData dict",
    )
    adata.uns[ADATA_DICT_SETUP_KEY] = modality_setup(names, counts, layer_dict)
    return PreparedInput(adata, None, names, counts, dict(layer_dict))
