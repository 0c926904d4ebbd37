"""How a run's spatial coherence and cell graph are described to people (CLI, report, info)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from ._results import TopicResults

__all__ = ["coherence_line", "graph_label", "mean_coherence"]


def graph_label(provenance: Mapping[str, Any] | None) -> str | None:
    """``"6-NN graph"``, ``"radius-25 graph"`` or ``"Delaunay graph"`` from a run's provenance.

    None when the provenance does not describe a graph (runs written before it did).
    """
    prov = provenance or {}
    method = prov.get("graph")
    if method == "knn":
        k = prov.get("n_neighbors")
        return f"{k}-NN graph" if k is not None else "nearest-neighbour graph"
    if method == "radius":
        radius = prov.get("radius")
        return f"radius-{radius:g} graph" if isinstance(radius, int | float) else "radius graph"
    if method == "delaunay":
        return "Delaunay graph"
    return None if method is None else f"{method} graph"


def mean_coherence(coherence: pd.Series | None) -> float | None:
    """Mean Moran's I over the topics that have one (None when none has)."""
    if coherence is None:
        return None
    values = coherence.to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def coherence_line(results: TopicResults) -> str:
    """One line: the run's mean Moran's I and the graph it was measured on."""
    label = graph_label(results.provenance) or "cell graph"
    mean = mean_coherence(results.spatial_coherence)
    if results.spatial_coherence is None:
        note = results.provenance.get("graph_problem") or "not measured for this run"
        return f"Spatial coherence: {note}."
    if mean is None:
        return (f"Spatial coherence (mean Moran's I over a {label}): undefined (the graph "
                "links no cells, or every topic is constant over them).")
    return f"Spatial coherence (mean Moran's I over a {label}): {mean:.2f}"
