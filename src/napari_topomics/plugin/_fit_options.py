"""What the "Topic model" widget fits, found from a napari layer, and why a choice is refused.

Qt-free: the widget asks these functions for the table behind a layer, the modalities of
that table with their inferred likelihoods, and the first problem of the current choice
(a one-line message, shown in the widget while Run stays disabled).

A layer names its data in ``layer.metadata`` (keys of :mod:`._keys`, written by this
plugin's reader and sample; napari-spatialdata's ``"sdata"``/``"name"``/``"_current_cs"``
work too): the in-memory SpatialData (``"sdata"``) or its store path
(``"topomics_source"``), the element the layer shows (``"topomics_element"``), and
optionally the tables annotating it and the coordinate system.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io._errors import TopomicsInputError
from . import _keys as keys
from ._spatial_values import spatial_options, spatial_problem

if TYPE_CHECKING:
    from spatialdata import SpatialData

    from ..data._stats import BlockStats
    from ..workflow import FitConfig

#: Likelihoods offered per modality (None = inferred from the data).
LIKELIHOOD_CHOICES: tuple[str, ...] = ("multinomial", "gamma_poisson", "bernoulli", "gaussian")
#: Rows read to infer likelihoods for display (training checks every row).
_INSPECT_ROWS = 20_000
#: Labels arrays up to this many pixels are scanned exactly for their ids.
_EXACT_PIXELS = 50_000_000
_EXAMPLES = 5

_SDATA_KEYS = (keys.SDATA, "spatialdata")
_PATH_KEYS = (keys.SOURCE, "path", "store", "store_path")
_ELEMENT_KEYS = (keys.ELEMENT, "element", "name")
_TABLES_KEYS = (keys.TABLES, "tables", "table_names")
_CS_KEYS = (keys.COORDINATE_SYSTEM, "coordinate_system", "_current_cs")


@dataclass
class TableSource:
    """The SpatialData element behind a layer and the tables that annotate it.

    Attributes
    ----------
    sdata
        The SpatialData object (in memory, or read from ``path``).
    element
        Name of the labels/points/shapes element the layer shows.
    tables
        Names of the tables annotating ``element`` that can be fitted (runs excluded).
    path
        The store on disk, or None for an in-memory object.
    coordinate_system
        The coordinate system the layer is shown in (None: the element's first).
    """

    sdata: SpatialData
    element: str
    tables: list[str]
    path: str | None = None
    coordinate_system: str | None = None


@dataclass(frozen=True)
class ModalityInfo:
    """One modality of a table as the widget lists it.

    Attributes
    ----------
    name
        Modality name (as the model will call it).
    n_features
        Features in its block.
    stats
        Value statistics of (up to the first 20,000 rows of) its block.
    inferred
        The likelihood the model would infer, or None when the values are not counts.
    """

    name: str
    n_features: int
    stats: BlockStats = field(repr=False)
    inferred: str | None


def _lookup(meta: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    return next((meta[n] for n in names if meta.get(n) is not None), None)


_READ_CACHE: dict[tuple[str, float], SpatialData] = {}


def _read_store(path: str) -> SpatialData:
    """Read a store once per modification time (the widget asks often)."""
    from ..io._read import read_tissue

    resolved = Path(path).expanduser().resolve()
    try:
        stamp = resolved.stat().st_mtime
    except OSError:
        stamp = -1.0
    key = (str(resolved), stamp)
    if key not in _READ_CACHE:
        _READ_CACHE.clear()
        _READ_CACHE[key] = read_tissue(resolved)
    return _READ_CACHE[key]


def source_from_layer(layer) -> TableSource:
    """The SpatialData element and tables behind ``layer`` (see the module docstring).

    Raises
    ------
    TopomicsInputError
        When the layer's metadata names no SpatialData object or store, no element, or an
        element no fittable table annotates.
    """
    from ..io._tables import list_tables

    meta = layer.metadata if isinstance(layer.metadata, Mapping) else {}
    sdata = _lookup(meta, _SDATA_KEYS)
    path = _lookup(meta, _PATH_KEYS)
    if sdata is None and path is None:
        raise TopomicsInputError(
            f"Layer {layer.name!r} has no table: it was not opened from a SpatialData store "
            "(its metadata names no SpatialData object or store); open the store or sample "
            "with napari-topomics."
        )
    if sdata is None:
        sdata = _read_store(str(path))
    elif path is None and getattr(sdata, "path", None) is not None:
        path = sdata.path
    element = _lookup(meta, _ELEMENT_KEYS)
    if element is None or str(element) not in _element_names(sdata):
        element = layer.name if layer.name in _element_names(sdata) else element
    if element is None or str(element) not in _element_names(sdata):
        raise TopomicsInputError(
            f"Layer {layer.name!r} names no element of its SpatialData object (metadata "
            f"'element' = {element!r}); elements: {sorted(_element_names(sdata))}."
        )
    element = str(element)
    infos = list_tables(sdata)
    wanted = _lookup(meta, _TABLES_KEYS)
    wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
    tables = [i.name for i in infos if element in i.elements and not i.is_run]
    if wanted:
        tables = [t for t in tables if t in wanted] or tables
    if not tables:
        raise TopomicsInputError(
            f"Layer {layer.name!r} (element {element!r}) has no table annotating it; tables: "
            f"{[i.name for i in infos if not i.is_run]}."
        )
    system = _lookup(meta, _CS_KEYS)
    return TableSource(
        sdata=sdata,
        element=element,
        tables=tables,
        path=None if path is None else str(path),
        coordinate_system=None if system is None else str(system),
    )


def _element_names(sdata: SpatialData) -> set[str]:
    return {str(n) for kind in ("labels", "points", "shapes") for n in getattr(sdata, kind)}


def count_layers(sdata: SpatialData, table: str) -> list[str]:
    """Where counts can come from: ``"X"`` and the table's layers."""
    return ["X", *(str(k) for k in sdata.tables[table].layers.keys())]


def inspect_modalities(sdata: SpatialData, table: str, layer: str = "X") -> list[ModalityInfo]:
    """The table's modalities (10x ``feature_types`` blocks, else one ``"rna"``).

    Likelihoods are inferred as the model does, from up to the first 20,000 rows.
    """
    from ..data import block_stats, infer_likelihood
    from ..io._blocks import find_modality_key, modality_blocks

    adata = sdata.tables[table]
    if layer in (None, "X"):
        matrix = adata.X
    elif layer in adata.layers:
        matrix = adata.layers[layer]
    else:
        raise TopomicsInputError(
            f"Table {table!r} has no layer {layer!r}; layers: {count_layers(sdata, table)}."
        )
    key = find_modality_key(adata)
    blocks = modality_blocks(adata, key, table) if key is not None else {}
    if not blocks:
        blocks = {"rna": np.arange(adata.n_vars)}
    head = matrix[: min(adata.n_obs, _INSPECT_ROWS)]
    out = []
    for name, cols in blocks.items():
        part = head[:, cols]
        stats = block_stats(part, slice(0, part.shape[1]))
        try:
            inferred = infer_likelihood(name, stats)
        except ValueError:
            inferred = None
        out.append(ModalityInfo(name, int(len(cols)), stats, inferred))
    return out


def likelihood_problem(info: ModalityInfo, likelihood: str | None) -> str | None:
    """Why ``likelihood`` (None = inferred) does not fit the modality's data, or None."""
    if likelihood == "gaussian":
        return None
    s = info.stats
    bad = [
        label
        for label, flag in (
            ("non-finite", s.has_nan or s.has_inf),
            ("negative", s.has_negative),
            ("non-integer", not s.is_integer),
        )
        if flag
    ]
    if bad:
        what = f"the {likelihood!r} likelihood" if likelihood else "an inferred count likelihood"
        return (
            f"Modality {info.name!r} holds {' and '.join(bad)} values, but {what} needs raw "
            "counts: pick a counts layer or the 'gaussian' likelihood."
        )
    if likelihood == "bernoulli" and not s.is_binary:
        shown = ", ".join(f"{v:g}" for v in s.offending_nonbinary[:_EXAMPLES])
        return (
            f"Likelihood 'bernoulli' needs 0/1 values, but modality {info.name!r} holds "
            f"{shown}; choose 'multinomial' or 'gamma_poisson'."
        )
    return None


def layer_ids(layer) -> tuple[np.ndarray | None, bool]:
    """Instance ids shown by a labels/points layer and whether they are exact.

    Labels: the non-zero label values (a coarse pyramid level when the full one is huge,
    then not exact). Points: the ``index`` feature when present. None when unknown (or
    too large to scan: training checks the ids against the element anyway).
    """
    if layer.__class__.__name__ == "Labels":
        levels = list(layer.data) if getattr(layer, "multiscale", False) else [layer.data]
        exact = True
        while int(np.prod(levels[0].shape)) > _EXACT_PIXELS:
            if len(levels) == 1:
                return None, False  # too large to scan on the GUI thread; training checks
            levels.pop(0)
            exact = False
        ids = np.unique(np.asarray(levels[0]))
        return ids[ids != 0], exact
    features = getattr(layer, "features", None)
    if features is not None and "index" in features.columns:
        return np.asarray(features["index"]), True
    return None, False


def ids_problem(layer, source: TableSource, table: str) -> str | None:
    """Why the table's instance ids do not match the layer's ids, or None."""
    from ..io._tables import match_ids, table_cells

    ae, _, _, table_ids = table_cells(source.sdata, table, source.element)
    shown, exact = layer_ids(layer)
    if shown is None or len(table_ids) == 0:
        return None
    found = match_ids(pd_index(shown), np.asarray(table_ids)) >= 0
    if found.all() or (not exact and found.any()):
        return None
    missing = np.asarray(table_ids)[~found]
    examples = ", ".join(str(v) for v in missing[:_EXAMPLES])
    return (
        f"{missing.size} of {len(table_ids)} ids of table {table!r} (obs column "
        f"{ae.instance_key!r}) are not ids of layer {layer.name!r}, e.g. [{examples}]."
    )


def pd_index(values: np.ndarray):
    """A pandas Index of ``values`` (helper so callers need not import pandas)."""
    import pandas as pd

    return pd.Index(values)


def build_config(values: Mapping[str, Any], source: TableSource) -> FitConfig:
    """The :class:`~napari_topomics.workflow.FitConfig` of the widget's ``values``."""
    from ..workflow import FitConfig

    layer = values.get("counts_layer") or "X"
    likelihoods = {m: lik for m, lik in (values.get("likelihoods") or {}).items() if lik}
    modalities = list(values.get("modalities") or [])
    model_kwargs = {
        "n_hidden": int(values.get("n_hidden", 128)),
        "weight_mode": str(values.get("weight_mode", "cell")),
        "aggregation_type": str(values.get("aggregation_type", "moe")),
        "topic_feature_prior_type": str(values.get("topic_feature_prior_type", "logistic_normal")),
        "learnable_dispersion": bool(values.get("learnable_dispersion", False)),
    }
    return FitConfig(
        table=values.get("table"),
        element=source.element,
        coordinate_system=source.coordinate_system,
        modalities=modalities,
        layers=None if layer == "X" else layer,
        likelihoods={m: lik for m, lik in likelihoods.items() if m in modalities},
        n_topics=int(values.get("n_topics", 10)),
        n_epochs=int(values.get("n_epochs", 100)),
        batch_size=int(values.get("batch_size", 128)),
        **spatial_options(values),
        device=str(values.get("device", "auto")),
        seed=int(values.get("seed", 0)),
        threads=int(values.get("threads", 1)),
        run_name=str(values.get("run_name", "topomics")),
        n_top=int(values.get("n_top", 20)),
        model_kwargs=model_kwargs,
    )


def run_problem(
    layer,
    source: TableSource | None,
    source_error: str | None,
    values: Mapping[str, Any],
    infos: list[ModalityInfo],
    ids_check: Callable[[Any, TableSource, str], str | None] | None = None,
) -> str | None:
    """The first reason the widget's current choice cannot be fitted, or None.

    Parameters
    ----------
    layer
        The chosen labels/points layer (None when there is none).
    source, source_error
        What :func:`source_from_layer` returned for it, or its error message.
    values
        The widget's values (see :func:`build_config`).
    infos
        The chosen table's modalities (:func:`inspect_modalities`).
    ids_check
        Replaces :func:`ids_problem` (e.g. a cached version).
    """
    if layer is None:
        return (
            "No labels or points layer: open a SpatialData store or the sample "
            "'Demo tissue (topomics)', then choose its cell layer."
        )
    if source_error is not None or source is None:
        return source_error or f"Layer {layer.name!r} has no table."
    table = values.get("table")
    if table not in source.tables:
        return f"Choose a table annotating {source.element!r}: {source.tables}."
    try:
        problem = (ids_check or ids_problem)(layer, source, table)
    except TopomicsInputError as err:
        return str(err)
    if problem:
        return problem
    chosen = list(values.get("modalities") or [])
    if not chosen:
        return f"No modality chosen: tick at least one of {[i.name for i in infos]}."
    likelihoods = values.get("likelihoods") or {}
    for info in infos:
        if info.name in chosen:
            problem = likelihood_problem(info, likelihoods.get(info.name))
            if problem:
                return problem
    problem = spatial_problem(values)
    if problem:
        return problem
    try:
        build_config(values, source).validate()
    except TopomicsInputError as err:
        return str(err)
    except (TypeError, ValueError) as err:
        return f"Invalid option: {err}"
    return None
