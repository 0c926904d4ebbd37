"""The graphs a registered AnnData carries, one per modality, each distinct graph once (§3.11.1)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._graph import symmetrize_graph, validate_graph
from ._setup_common import GRAPH_KEY, GRAPHS_KEY

logger = logging.getLogger("napari_topomics.data")

__all__ = ["RegisteredGraphs", "has_registered_graph", "registered_graphs"]


@dataclass(frozen=True)
class RegisteredGraphs:
    """Distinct symmetrised graphs and the graph each modality uses.

    Attributes
    ----------
    keys
        Name of each distinct graph (its obsp key or where it came from).
    adjacency
        Each distinct graph as a binary, symmetric CSR matrix without self-loops.
    assignment
        For every modality (in model order), the index of its graph in ``adjacency``.
    """

    keys: tuple[str, ...]
    adjacency: tuple[sp.csr_matrix, ...]
    assignment: tuple[int, ...]

    def n_isolated(self, g: int) -> int:
        """Number of cells without a neighbour in graph ``g``."""
        return int(np.count_nonzero(np.diff(self.adjacency[g].indptr) == 0))


def has_registered_graph(uns: Mapping) -> bool:
    """Whether setup stored a spatial graph in ``uns`` (``model.spatial``)."""
    return GRAPH_KEY in uns or bool(uns.get(GRAPHS_KEY))


def _symmetrised(entry: Mapping, where: str, n_obs: int) -> tuple[str, sp.csr_matrix]:
    if not isinstance(entry, Mapping) or "adjacency" not in entry:
        raise ValueError(f"{where} must be a dict with an 'adjacency' matrix; got {entry!r:.80}")
    adjacency = entry["adjacency"]
    validate_graph(adjacency, n_obs, where)
    key = str(entry.get("key", where))
    A = sp.csr_matrix(adjacency)
    sym = symmetrize_graph(A)
    pattern = A.copy()
    pattern.setdiag(0)
    pattern.eliminate_zeros()
    if (pattern != 0).nnz != sym.nnz:
        logger.info(
            "Spatial graph %r is not symmetric; using A ∨ Aᵀ (an edge in either direction "
            "links both cells).", key,
        )
    return key, sym


def _same_pattern(A: sp.csr_matrix, B: sp.csr_matrix) -> bool:
    return A.shape == B.shape and A.nnz == B.nnz and (A != B).nnz == 0


def registered_graphs(
    uns: Mapping, modality_names: Sequence[str], n_obs: int
) -> RegisteredGraphs | None:
    """Resolve ``uns["_spatial_graph"]`` / ``uns["_spatial_graphs"]`` for the model.

    With one graph every modality uses it. With per-modality graphs each modality uses its
    own, and one without a graph uses the graph of the first modality that has one. A graph
    object shared by several modalities is kept once.

    Parameters
    ----------
    uns
        The registered AnnData's ``uns``.
    modality_names
        Modality names in model order.
    n_obs
        Number of registered cells (every graph must be ``(n_obs, n_obs)``).

    Returns
    -------
    RegisteredGraphs or None
        ``None`` when no graph is registered.
    """
    if GRAPH_KEY in uns:
        key, A = _symmetrised(uns[GRAPH_KEY], f"uns[{GRAPH_KEY!r}]", n_obs)
        return RegisteredGraphs((key,), (A,), (0,) * len(modality_names))
    per_mod = uns.get(GRAPHS_KEY)
    if not per_mod:
        return None
    unknown = [m for m in per_mod if m not in modality_names]
    if unknown:
        raise ValueError(
            f"uns[{GRAPHS_KEY!r}] names modalities {unknown} that the model does not have; "
            f"modalities: {list(modality_names)}"
        )
    keys: list[str] = []
    mats: list[sp.csr_matrix] = []
    seen: dict[int, int] = {}
    own: dict[str, int] = {}
    for name in modality_names:
        if name not in per_mod:
            continue
        entry = per_mod[name]
        ident = id(entry.get("adjacency")) if isinstance(entry, Mapping) else id(entry)
        if ident not in seen:
            key, A = _symmetrised(entry, f"uns[{GRAPHS_KEY!r}][{name!r}]", n_obs)
            same = [g for g, B in enumerate(mats) if _same_pattern(A, B)]
            if same:  # equal content (e.g. after a save/load round trip): keep one
                seen[ident] = same[0]
            else:
                seen[ident] = len(mats)
                keys.append(key)
                mats.append(A)
        own[name] = seen[ident]
    first = own[next(n for n in modality_names if n in own)]
    assignment = tuple(own.get(name, first) for name in modality_names)
    return RegisteredGraphs(tuple(keys), tuple(mats), assignment)
