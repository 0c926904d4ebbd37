"""The model input from a SpatialData object: one MuData of modality copies, plus its origin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._errors import TopomicsInputError
from ._layouts import mods_from_mudata, mods_from_table, mods_from_tables
from ._tables import (
    AnnotatedElement,
    cell_coordinates,
    resolve_coordinate_system,
    resolve_table,
    table_cells,
)

if TYPE_CHECKING:
    from anndata import AnnData
    from mudata import MuData
    from spatialdata import SpatialData

__all__ = ["TissueInput", "check_count_modalities", "load_tissue_input"]


@dataclass
class TissueInput:
    """What the model is fitted on, and where in the store it came from.

    Attributes
    ----------
    data
        MuData with one modality per entry of ``modalities``; every modality has the
        table's cells as rows (in table order) and ``obsm["spatial"]`` holds ``(x, y)``.
        Its matrices are copies, never views of the user's table.
    table
        The table whose cells these are.
    element
        The labels/shapes/points element that table annotates, with its region and
        instance keys.
    instance_ids
        The element's instance id of each row (label ids for labels).
    obs_names
        The table's obs_names of the rows (str).
    coordinates
        Cell positions (index = ``obs_names``, columns ``x``, ``y``) in
        ``coordinate_system``.
    modalities
        Modality names, in the MuData's order.
    source
        Where the data came from (a path, or None).
    coordinate_system
        The coordinate system of ``coordinates``.
    model_setup
        Extra ``from_data`` arguments: the modality names and feature counts when ``data``
        is one AnnData whose matrix stays on disk (``fit --lazy``), else empty.
    """

    data: MuData | AnnData
    table: str
    element: AnnotatedElement
    instance_ids: np.ndarray
    obs_names: pd.Index
    coordinates: pd.DataFrame
    modalities: list[str]
    source: str | None = None
    coordinate_system: str | None = None
    model_setup: dict = field(default_factory=dict)


def _build_mudata(mods: dict[str, AnnData], obs: pd.DataFrame, xy: np.ndarray) -> MuData:
    import mudata as md

    with md.set_options(pull_on_update=False):
        mdata = md.MuData(mods)
    mdata.obs = obs
    mdata.obsm["spatial"] = xy
    return mdata


def load_tissue_input(
    sdata: SpatialData,
    table: str | None = None,
    *,
    element: str | None = None,
    modalities: str | Sequence[str] | Mapping[str, str] | None = None,
    layers: str | Mapping[str, str | None] | None = None,
    modality_key: str | None = None,
    mudata: str | Path | MuData | None = None,
    coordinate_system: str | None = None,
    source: str | None = None,
) -> TissueInput:
    """Build the model input from a table of ``sdata`` (which is left unchanged).

    Parameters
    ----------
    sdata
        The SpatialData object.
    table
        The table whose cells are fitted (None: the only non-run table; with a mapping
        ``modalities``, the first table named there).
    element
        The annotated element, when the table annotates several.
    modalities
        A mapping ``{modality: table name}`` for one table per modality (joined on the
        element's instance ids); else a name or list selecting modalities among the
        table's var blocks, the keys of ``layers``, or the MuData's modalities, or naming
        a single-modality table (default ``"rna"``).
    layers
        One layer for every modality, or ``{modality: layer}`` (None/"X" = X). On a table
        with at most one var block, a mapping makes each entry a modality read from that
        layer.
    modality_key
        var column labelling each feature's modality (default: the first of
        ``feature_types``, ``feature_type``, ``modality`` present).
    mudata
        An ``.h5mu`` path (or a MuData) holding the modalities; its obs_names must match the
        table's obs_names or instance ids.
    coordinate_system
        Coordinate system of the cell positions (default: the element's first).
    source
        Where the data came from, recorded in the result (default: ``sdata.path``).

    Returns
    -------
    TissueInput

    Raises
    ------
    TopomicsInputError
        For any table, element, modality, layer, key or cell mismatch (one line naming it
        and the choices).
    """
    tables = None
    if isinstance(modalities, Mapping):
        if mudata is not None:
            raise TopomicsInputError(
                "modalities as a mapping {modality: table} cannot be combined with mudata=; "
                "pass one of them."
            )
        tables = {str(k): v for k, v in modalities.items()}
        if not tables:
            raise TopomicsInputError("modalities is an empty mapping; name at least one table.")
        if table is None:
            table = next(iter(tables.values()))
    table = resolve_table(sdata, table)
    adata = sdata.tables[table]
    if adata.n_obs == 0:
        raise TopomicsInputError(f"Table {table!r} has no cells (0 rows); nothing to fit.")
    ae, rows, obs_names, ids = table_cells(sdata, table, element)
    if rows.size == 0:
        raise TopomicsInputError(
            f"Table {table!r} has no rows annotating element {ae.name!r}; nothing to fit."
        )
    if not obs_names.is_unique:
        raise TopomicsInputError(
            f"Table {table!r} has {int(obs_names.duplicated().sum())} duplicated obs_names; "
            "make them unique (obs_names_make_unique) before fitting."
        )
    system = resolve_coordinate_system(sdata, ae, coordinate_system)
    coords = cell_coordinates(sdata, table, ae.name, system)

    if tables is not None:
        mods = mods_from_tables(sdata, tables, ae, ids, obs_names, table, layers)
    elif mudata is not None:
        mods = mods_from_mudata(mudata, obs_names, ids, table, modalities=modalities, layers=layers)
    else:
        mods = mods_from_table(
            adata,
            table,
            rows,
            obs_names,
            modalities=modalities,
            layers=layers,
            modality_key=modality_key,
        )
    obs = adata.obs.iloc[rows].copy()
    obs.index = obs_names.copy()
    mdata = _build_mudata(mods, obs, coords.to_numpy(dtype=np.float64, copy=True))
    if source is None and getattr(sdata, "path", None) is not None:
        source = str(sdata.path)
    return TissueInput(
        data=mdata,
        table=table,
        element=ae,
        instance_ids=np.asarray(ids).copy(),
        obs_names=obs_names,
        coordinates=coords,
        modalities=list(mods),
        source=source,
        coordinate_system=system,
    )


def _modality_matrices(data, blocks=None) -> dict[str, tuple[object, slice]]:
    from anndata import AnnData

    if hasattr(data, "mod"):
        return {str(k): (v.X, slice(0, v.n_vars)) for k, v in data.mod.items()}
    if isinstance(data, Mapping):
        return {str(k): (v.X, slice(0, v.n_vars)) for k, v in data.items()}
    if isinstance(data, AnnData) and blocks:
        return {str(k): (data.X, sl) for k, sl in blocks.items()}
    if isinstance(data, AnnData):
        return {"rna": (data.X, slice(0, data.n_vars))}
    raise TopomicsInputError(
        f"Expected a MuData, a dict of AnnData or an AnnData, got {type(data).__name__}."
    )


def check_count_modalities(
    data,
    likelihoods: Mapping[str, str | None] | None = None,
    blocks: Mapping[str, slice] | None = None,
) -> None:
    """Refuse non-count data for modalities that get a count likelihood.

    A modality whose likelihood is missing from ``likelihoods`` (or None) gets an inferred
    one, which is always a count likelihood; only ``"gaussian"`` takes any real values.
    The model itself only warns (and rounds) for non-integer data under an explicit count
    likelihood, and raises a ``ValueError`` when it infers one; this check fails first with
    a message for the user.

    Parameters
    ----------
    data
        A MuData (one modality per mod), a dict of AnnData, or an AnnData (one modality).
    likelihoods
        ``{modality: likelihood}``.
    blocks
        ``{modality: column slice}`` of an AnnData holding several modalities side by side.

    Raises
    ------
    TopomicsInputError
        Naming the first modality holding non-finite, negative or non-integer values (or
        values other than 0/1 under ``"bernoulli"``), or an unknown modality or likelihood.
    """
    from ..data import VALID_LIKELIHOODS, block_stats, normalize_likelihood

    matrices = _modality_matrices(data, blocks)
    likelihoods = dict(likelihoods or {})
    for name in likelihoods:
        if name not in matrices:
            raise TopomicsInputError(
                f"Likelihood given for unknown modality {name!r}; modalities: {list(matrices)}."
            )
    for name, (X, columns) in matrices.items():
        given = likelihoods.get(name)
        try:
            lik = None if given is None else normalize_likelihood(given)
        except (TypeError, ValueError):
            raise TopomicsInputError(
                f"Unknown likelihood {given!r} for modality {name!r}; choose one of "
                f"{list(VALID_LIKELIHOODS)}."
            ) from None
        if lik == "gaussian":
            continue
        stats = block_stats(X, columns)
        problems = [
            label
            for label, bad in (
                ("non-finite", stats.has_nan or stats.has_inf),
                ("negative", stats.has_negative),
                ("non-integer", not stats.is_integer),
            )
            if bad
        ]
        what = f"the {lik!r} likelihood" if lik else "an inferred count likelihood"
        if problems:
            raise TopomicsInputError(
                f"Modality {name!r} holds {' and '.join(problems)} values, but {what} needs raw "
                "counts; use a layer of raw counts (layers=) or the 'gaussian' likelihood for it."
            )
        if lik == "bernoulli" and not stats.is_binary:
            raise TopomicsInputError(
                f"Modality {name!r} uses the 'bernoulli' likelihood but holds values other than "
                f"0 and 1, e.g. {list(stats.offending_nonbinary)[:5]}; binarise it or use "
                "'multinomial'."
            )
