"""Find the tables of a SpatialData object, the element each annotates, and cell positions.

Built on spatialdata's own API (``get_table_keys``, ``get_centroids``, ``get_transformation``).
Nothing here modifies the SpatialData object or its tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._blocks import find_modality_key, modality_blocks
from ._errors import TopomicsInputError

if TYPE_CHECKING:
    from anndata import AnnData
    from spatialdata import SpatialData

__all__ = [
    "AnnotatedElement",
    "TableInfo",
    "annotated_element",
    "cell_coordinates",
    "examples",
    "list_tables",
    "match_ids",
    "resolve_coordinate_system",
    "resolve_table",
    "table_cells",
]

_ELEMENT_KINDS = ("labels", "shapes", "points")
_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class AnnotatedElement:
    """The spatial element a table annotates and the obs columns that link them.

    Attributes
    ----------
    name
        Element name in the SpatialData object.
    kind
        ``"labels"``, ``"shapes"`` or ``"points"``.
    region_key
        obs column of the table naming the element of each row.
    instance_key
        obs column of the table with the element's instance id (label id, shape index,
        point index) of each row.
    """

    name: str
    kind: str
    region_key: str
    instance_key: str


@dataclass(frozen=True)
class TableInfo:
    """A summary of one table, for listing a store's tables.

    Attributes
    ----------
    name
        Table name.
    n_obs, n_vars
        Rows (cells) and features.
    elements
        Names of the elements it annotates (empty when it annotates none).
    layers
        Its layer names.
    modalities
        Modality blocks found in its var (e.g. ``("rna", "protein")`` from 10x
        ``feature_types``); empty when it has no such column.
    modality_key
        The var column the blocks come from, or None.
    is_run
        Whether it holds a napari-topomics run (``"topomics" in table.uns``).
    """

    name: str
    n_obs: int
    n_vars: int
    elements: tuple[str, ...]
    layers: tuple[str, ...]
    modalities: tuple[str, ...]
    modality_key: str | None
    is_run: bool


def _where(sdata: SpatialData) -> str:
    path = getattr(sdata, "path", None)
    return f" in {path}" if path is not None else ""


def examples(values) -> str:
    values = list(values)
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:_MAX_EXAMPLES])
    return f"[{shown}{', ...' if len(values) > _MAX_EXAMPLES else ''}]"


def _annotated_regions(table: AnnData) -> tuple[list[str], str | None, str | None]:
    """(regions, region_key, instance_key) of a table, empty when it annotates nothing."""
    from spatialdata.models import get_table_keys

    try:
        region, region_key, instance_key = get_table_keys(table)
    except (ValueError, KeyError, TypeError):
        return [], None, None
    if region is None:
        return [], region_key, instance_key
    regions = [region] if isinstance(region, str) else [str(r) for r in region]
    return regions, region_key, instance_key


def list_tables(sdata: SpatialData) -> list[TableInfo]:
    """Summarise every table of ``sdata`` (in its table order).

    Parameters
    ----------
    sdata
        The SpatialData object.

    Returns
    -------
    list of TableInfo
    """
    out = []
    for name, table in sdata.tables.items():
        regions, _, _ = _annotated_regions(table)
        key = find_modality_key(table)
        try:
            blocks = tuple(modality_blocks(table, key, name)) if key is not None else ()
        except TopomicsInputError:  # a broken column is reported when the table is used
            blocks = ()
        out.append(
            TableInfo(
                name=str(name),
                n_obs=int(table.n_obs),
                n_vars=int(table.n_vars),
                elements=tuple(regions),
                layers=tuple(str(k) for k in table.layers.keys()),
                modalities=blocks,
                modality_key=key,
                is_run="topomics" in table.uns,
            )
        )
    return out


def resolve_table(sdata: SpatialData, table: str | None = None) -> str:
    """The name of the table to fit: the user's choice, or the only non-run table.

    Parameters
    ----------
    sdata
        The SpatialData object.
    table
        A table name, or None to pick the single table that is not a napari-topomics run.

    Returns
    -------
    str

    Raises
    ------
    TopomicsInputError
        For a store without tables, an unknown name (listing the tables), or several
        candidate tables and no choice.
    """
    names = [str(n) for n in sdata.tables.keys()]
    if not names:
        raise TopomicsInputError(
            f"The SpatialData object{_where(sdata)} has no table; napari-topomics fits the "
            "features of a table that annotates labels, shapes or points."
        )
    if table is not None:
        if table not in names:
            raise TopomicsInputError(
                f"Table {table!r} not found{_where(sdata)}; available tables: {names}."
            )
        return table
    candidates = [n for n in names if "topomics" not in sdata.tables[n].uns]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise TopomicsInputError(
            f"Every table{_where(sdata)} is a napari-topomics run ({names}); pass table= to "
            "choose the one to fit."
        )
    raise TopomicsInputError(
        f"Several tables{_where(sdata)} could be fitted: {candidates}; pass table= to choose one."
    )


def _element_kind(sdata: SpatialData, name: str) -> str | None:
    for kind in (*_ELEMENT_KINDS, "images"):
        if name in getattr(sdata, kind):
            return kind
    return None


def annotated_element(
    sdata: SpatialData, table: str, element: str | None = None
) -> AnnotatedElement:
    """The spatial element a table annotates (the one chosen, when it annotates several).

    Parameters
    ----------
    sdata
        The SpatialData object.
    table
        Table name.
    element
        The element to use when the table annotates several (None: its only one).

    Returns
    -------
    AnnotatedElement

    Raises
    ------
    TopomicsInputError
        When the table annotates nothing, annotates several elements and none is chosen,
        ``element`` is not among them, or the element is missing from ``sdata`` or is an
        image.
    """
    name = resolve_table(sdata, table)
    adata = sdata.tables[name]
    regions, region_key, instance_key = _annotated_regions(adata)
    if not regions or region_key is None or instance_key is None:
        raise TopomicsInputError(
            f"Table {name!r}{_where(sdata)} annotates no spatial element (uns"
            "['spatialdata_attrs'] names no region); parse it with spatialdata's "
            "TableModel.parse(region=..., region_key=..., instance_key=...)."
        )
    if element is None:
        if len(regions) > 1:
            raise TopomicsInputError(
                f"Table {name!r} annotates several elements {regions}; pass element= to choose one."
            )
        element = regions[0]
    elif element not in regions:
        raise TopomicsInputError(
            f"Table {name!r} does not annotate element {element!r}; it annotates {regions}."
        )
    kind = _element_kind(sdata, element)
    if kind not in _ELEMENT_KINDS:
        present = [e for k in _ELEMENT_KINDS for e in getattr(sdata, k)]
        what = "is an image" if kind == "images" else "is not"
        raise TopomicsInputError(
            f"Element {element!r} annotated by table {name!r} {what} in the SpatialData "
            f"object{_where(sdata)} as labels, shapes or points; those present: {present}."
        )
    for key in (region_key, instance_key):
        if key not in adata.obs.columns:
            raise TopomicsInputError(
                f"Table {name!r} has no obs column {key!r} (named in its spatialdata_attrs); "
                f"obs columns: {list(adata.obs.columns)}."
            )
    return AnnotatedElement(element, kind, str(region_key), str(instance_key))


def table_cells(
    sdata: SpatialData, table: str, element: str | None = None
) -> tuple[AnnotatedElement, np.ndarray, pd.Index, np.ndarray]:
    """The rows of a table that annotate its element.

    Returns
    -------
    (element, rows, obs_names, instance_ids)
        The annotated element, the row positions in the table, their obs_names (str) and
        their instance ids (as stored in the table).
    """
    table = resolve_table(sdata, table)
    ae = annotated_element(sdata, table, element)
    adata = sdata.tables[table]
    region_col = adata.obs[ae.region_key].astype(str).to_numpy()
    rows = np.flatnonzero(region_col == ae.name)
    obs_names = pd.Index(adata.obs_names[rows].astype(str))
    instance_ids = adata.obs[ae.instance_key].to_numpy()[rows]
    dup = pd.Index(instance_ids).duplicated()
    if dup.any():
        raise TopomicsInputError(
            f"Table {table!r} has {int(dup.sum())} rows repeating an instance id of element "
            f"{ae.name!r} (obs column {ae.instance_key!r}), e.g. "
            f"{examples(np.unique(instance_ids[dup]))}; each cell must appear once."
        )
    return ae, rows, obs_names, instance_ids


def resolve_coordinate_system(sdata: SpatialData, ae: AnnotatedElement, asked: str | None) -> str:
    from spatialdata.transformations import get_transformation

    systems = [str(s) for s in get_transformation(sdata[ae.name], get_all=True)]
    if asked is None:
        if not systems:
            raise TopomicsInputError(
                f"Element {ae.name!r} has no coordinate system; give it a transformation."
            )
        return systems[0]
    if asked not in systems:
        raise TopomicsInputError(
            f"Element {ae.name!r} is not in coordinate system {asked!r}; its coordinate "
            f"systems: {systems}."
        )
    return asked


def match_ids(index: pd.Index, ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` in ``index`` (-1 where absent), tolerating int/str mismatches."""
    pos = index.get_indexer(pd.Index(ids))
    if (pos < 0).all() and len(ids):
        pos = pd.Index(index.astype(str)).get_indexer(pd.Index(ids).astype(str))
    return pos


def cell_coordinates(
    sdata: SpatialData,
    table: str,
    element: str | None = None,
    coordinate_system: str | None = None,
) -> pd.DataFrame:
    """Positions of a table's cells: centroids of the labels, shapes or points they annotate.

    Parameters
    ----------
    sdata
        The SpatialData object.
    table
        Table name.
    element
        The annotated element (None: the table's only one).
    coordinate_system
        Coordinate system of the positions (None: the element's first one).

    Returns
    -------
    pandas.DataFrame
        Index = the table's obs_names (of the rows annotating the element), float columns
        ``x`` and ``y``.

    Raises
    ------
    TopomicsInputError
        For the errors of :func:`annotated_element`, an unknown coordinate system, or
        instance ids of the table that the element does not have.
    """
    import spatialdata

    table = resolve_table(sdata, table)
    ae, _, obs_names, ids = table_cells(sdata, table, element)
    system = resolve_coordinate_system(sdata, ae, coordinate_system)
    centroids = spatialdata.get_centroids(sdata[ae.name], coordinate_system=system).compute()
    index = pd.Index(centroids.index)
    if not index.is_unique:
        raise TopomicsInputError(
            f"Element {ae.name!r} ({ae.kind}) has duplicated instance ids, so table "
            f"{table!r} cannot be matched to it."
        )
    pos = match_ids(index, ids)
    missing = ids[pos < 0]
    if missing.size:
        raise TopomicsInputError(
            f"{missing.size} of {ids.size} instance ids of table {table!r} (obs column "
            f"{ae.instance_key!r}) are not in {ae.kind} element {ae.name!r}, e.g. "
            f"{examples(missing)}."
        )
    xy = centroids[["x", "y"]].to_numpy(dtype=np.float64)[pos]
    return pd.DataFrame(xy, index=obs_names, columns=["x", "y"])
