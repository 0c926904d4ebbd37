"""Modality names, canonical kinds and likelihood names (spec §4.8)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._stats import BlockStats

__all__ = [
    "KIND_SYNONYMS",
    "VALID_LIKELIHOODS",
    "canonical_kind",
    "infer_likelihood",
    "is_nb",
    "normalize_likelihood",
    "resolve_modality",
]

KIND_SYNONYMS: dict[str, tuple[str, ...]] = {
    "rna": ("rna", "genes", "transcripts"),
    "protein": ("adt", "protein", "prot", "proteins", "proteomics"),
    "chromatin": ("chromatin", "atac"),
}
_SYNONYM_TO_KIND = {syn: kind for kind, syns in KIND_SYNONYMS.items() for syn in syns}

VALID_LIKELIHOODS: tuple[str, ...] = (
    "multinomial",
    "gamma_poisson",
    "nb",
    "bernoulli",
    "gaussian",
)
COUNT_LIKELIHOODS: tuple[str, ...] = ("multinomial", "gamma_poisson", "nb", "bernoulli")


def canonical_kind(name: str) -> str:
    """Map a modality name to its canonical kind.

    Parameters
    ----------
    name
        Modality name as given by the user (matching ignores case and surrounding spaces).

    Returns
    -------
    str
        One of ``"rna"``, ``"protein"``, ``"chromatin"`` or ``"other"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"Modality names must be str, got {type(name).__name__}: {name!r}")
    return _SYNONYM_TO_KIND.get(name.strip().lower(), "other")


def resolve_modality(query: str | int, modality_names: Sequence[str]) -> int:
    """Return the index of a modality given its name, canonical kind or position.

    Parameters
    ----------
    query
        The verbatim modality name (tried first), a synonym of a canonical kind that
        exactly one modality has (e.g. ``"RNA"`` or ``"adt"``), or an integer position.
    modality_names
        The modality names in registration order.

    Returns
    -------
    int
        The position of the modality.

    Raises
    ------
    KeyError
        For an integer outside ``range(len(modality_names))``.
    ValueError
        For a kind shared by several modalities (listing them) or an unknown name.
    """
    names = [str(n) for n in modality_names]
    if isinstance(query, numbers.Integral) and not isinstance(query, bool):
        idx = int(query)
        if not 0 <= idx < len(names):
            raise KeyError(
                f"Modality index {idx} out of range: the model has {len(names)} modalities {names}"
            )
        return idx
    if not isinstance(query, str):
        raise TypeError(
            f"A modality is selected by name (str) or position (int), got "
            f"{type(query).__name__}: {query!r}"
        )
    if query in names:
        return names.index(query)
    kind = canonical_kind(query)
    if kind != "other":
        matches = [i for i, n in enumerate(names) if canonical_kind(n) == kind]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ValueError(
                f"Modality {query!r} is ambiguous: it is the kind {kind!r}, shared by the "
                f"modalities {[names[i] for i in matches]}. Use one of those names."
            )
    raise ValueError(f"Unknown modality {query!r}. Valid modality names: {names}")


def normalize_likelihood(value: str, index: int | None = None) -> str:
    """Lower-case and validate a likelihood name.

    Parameters
    ----------
    value
        The likelihood as given by the user (case is ignored).
    index
        Position of the modality, used only in the error message.

    Returns
    -------
    str
        The lower-case name, one of :data:`VALID_LIKELIHOODS` (``"nb"`` is kept as is).
    """
    where = "" if index is None else f" (modality {index})"
    if not isinstance(value, str):
        raise TypeError(
            f"likelihoods{where}: expected a str, got {type(value).__name__} {value!r}; "
            f"allowed values: {list(VALID_LIKELIHOODS)}"
        )
    lik = value.strip().lower()
    if lik not in VALID_LIKELIHOODS:
        raise ValueError(
            f"likelihoods{where}: unknown likelihood {value!r}; allowed values: "
            f"{list(VALID_LIKELIHOODS)} (case-insensitive)"
        )
    return lik


def is_nb(lik: str) -> bool:
    """Return True for the negative-binomial likelihood (``gamma_poisson`` or ``nb``)."""
    return lik.strip().lower() in ("gamma_poisson", "nb")


def infer_likelihood(name: str, block_stats: BlockStats) -> str:
    """Infer the likelihood of a modality from its kind and data (spec §4.8).

    Parameters
    ----------
    name
        The modality name.
    block_stats
        Statistics of the modality's block of the registered matrix.

    Returns
    -------
    str
        ``"gamma_poisson"`` for RNA; ``"bernoulli"`` for binary chromatin, else
        ``"multinomial"``.

    Raises
    ------
    ValueError
        When the block holds non-finite, negative or non-integer values: such data never
        gets a count likelihood silently.
    """
    problems = []
    if block_stats.has_nan or getattr(block_stats, "has_inf", False):
        problems.append("non-finite (NaN/inf)")
    if block_stats.has_negative:
        problems.append("negative")
    if not block_stats.is_integer:
        problems.append("non-integer")
    if problems:
        raise ValueError(
            f"Modality {name!r} contains {' and '.join(problems)} values, so no count "
            f"likelihood can be inferred for it. Pass `likelihoods` explicitly (for example "
            f"'gaussian' for this modality)."
        )
    kind = canonical_kind(name)
    if kind == "rna":
        return "gamma_poisson"
    if kind == "chromatin":
        return "bernoulli" if block_stats.is_binary else "multinomial"
    return "multinomial"
