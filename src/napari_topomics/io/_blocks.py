"""Modality blocks of one table: which features are RNA, protein, ATAC...

A var column (10x ``feature_types`` by default) labels each feature with its modality; its
values are mapped to the modality names the model knows ("rna", "protein", "atac").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data import canonical_kind
from ._errors import TopomicsInputError

if TYPE_CHECKING:
    from anndata import AnnData

__all__ = [
    "MODALITY_KEYS",
    "TENX_FEATURE_TYPES",
    "find_modality_key",
    "modality_blocks",
    "modality_name",
    "pick_modalities",
]

#: var columns tried, in order, when no ``modality_key`` is given.
MODALITY_KEYS: tuple[str, ...] = ("feature_types", "feature_type", "modality")

#: 10x Genomics ``feature_types`` values and the modality names they become.
TENX_FEATURE_TYPES: dict[str, str] = {
    "gene expression": "rna",
    "antibody capture": "protein",
    "peaks": "atac",
}
_KIND_TO_NAME = {"rna": "rna", "protein": "protein", "chromatin": "atac"}


def modality_name(value) -> str:
    """The modality name for a value of a feature-type column.

    10x values map to ``"rna"``, ``"protein"``, ``"atac"``; so do synonyms of those kinds
    (``"RNA"``, ``"ADT"``, ``"chromatin"``...); anything else is kept (stripped).
    """
    text = str(value).strip()
    low = text.lower()
    if low in TENX_FEATURE_TYPES:
        return TENX_FEATURE_TYPES[low]
    return _KIND_TO_NAME.get(canonical_kind(text), text)


def find_modality_key(table: AnnData, modality_key: str | None = None) -> str | None:
    """The var column that splits the features into modalities, or None.

    Parameters
    ----------
    table
        The table.
    modality_key
        A var column chosen by the user (it must exist); None tries :data:`MODALITY_KEYS`.

    Raises
    ------
    TopomicsInputError
        When ``modality_key`` is not a var column.
    """
    columns = [str(c) for c in table.var.columns]
    if modality_key is not None:
        if modality_key not in columns:
            raise TopomicsInputError(
                f"modality_key {modality_key!r} is not a var column of the table; var "
                f"columns: {columns}."
            )
        return modality_key
    return next((k for k in MODALITY_KEYS if k in columns), None)


def modality_blocks(
    table: AnnData, modality_key: str, table_name: str = "table"
) -> dict[str, np.ndarray]:
    """Feature positions of each modality, in order of first appearance in var.

    Parameters
    ----------
    table
        The table.
    modality_key
        The var column labelling each feature.
    table_name
        Used in error messages.

    Returns
    -------
    dict
        ``{modality name: int array of var positions}``.

    Raises
    ------
    TopomicsInputError
        For missing values in the column, or two values meaning the same modality.
    """
    values = table.var[modality_key]
    if values.isna().any():
        raise TopomicsInputError(
            f"var column {modality_key!r} of table {table_name!r} has "
            f"{int(values.isna().sum())} missing values; every feature needs a modality."
        )
    raw = values.astype(str).to_numpy()
    uniques = pd.unique(raw)
    out: dict[str, np.ndarray] = {}
    origin: dict[str, str] = {}
    for value in uniques:
        name = modality_name(value)
        if name in out:
            raise TopomicsInputError(
                f"var column {modality_key!r} of table {table_name!r} has values "
                f"{origin[name]!r} and {value!r} that both mean modality {name!r}; relabel one."
            )
        out[name] = np.flatnonzero(raw == value)
        origin[name] = str(value)
    return out


def pick_modalities(
    requested: str | Sequence[str] | None, available: Sequence[str], where: str
) -> list[str]:
    """Resolve requested modality names against the available ones, keeping order.

    A request matches a name verbatim, or the one available modality of the same kind
    (``"RNA"`` finds ``"rna"``, ``"adt"`` finds ``"protein"``).

    Raises
    ------
    TopomicsInputError
        For an unknown or ambiguous name, a repeated one, or an empty selection.
    """
    available = [str(a) for a in available]
    if requested is None:
        return list(available)
    if isinstance(requested, str):
        requested = [requested]
    if isinstance(requested, Mapping):
        requested = list(requested)
    out: list[str] = []
    for query in requested:
        if query in available:
            name = query
        else:
            kind = canonical_kind(str(query))
            same = [a for a in available if kind != "other" and canonical_kind(a) == kind]
            if len(same) != 1:
                raise TopomicsInputError(
                    f"Unknown modality {query!r} in {where}; available modalities: {available}."
                )
            name = same[0]
        if name in out:
            raise TopomicsInputError(f"Modality {name!r} selected twice; choose it once.")
        out.append(name)
    if not out:
        raise TopomicsInputError(f"No modality selected; available in {where}: {available}.")
    return out
