"""The cell-neighbour graph of a fitting run: built from the cells' centroids, used by the
spatial model and to measure every run's spatial coherence (Moran's I per topic)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io._errors import TopomicsInputError

if TYPE_CHECKING:
    import scipy.sparse as sp

logger = logging.getLogger(__name__)

GRAPH_CHOICES = ("knn", "radius", "delaunay")
SPATIAL_MODE_CHOICES = ("gcn", "sgc")
#: obsp key of the graph on the in-memory model input (distinct from squidpy's
#: ``spatial_connectivities``, so a graph the user's data already carries never shadows it).
MODEL_GRAPH_KEY = "topomics_spatial_connectivities"


def check_graph_options(
    spatial_mode: Any, graph: Any, n_neighbors: Any, radius: Any
) -> None:
    """Raise a one-line :class:`TopomicsInputError` for a bad spatial or graph option."""
    if spatial_mode not in SPATIAL_MODE_CHOICES:
        raise TopomicsInputError(
            f"spatial_mode must be one of {list(SPATIAL_MODE_CHOICES)}, got {spatial_mode!r}."
        )
    if graph not in GRAPH_CHOICES:
        raise TopomicsInputError(f"graph must be one of {list(GRAPH_CHOICES)}, got {graph!r}.")
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int) or n_neighbors < 1:
        raise TopomicsInputError(f"n_neighbors must be an integer >= 1, got {n_neighbors!r}.")
    if graph == "radius":
        ok = (
            isinstance(radius, int | float) and not isinstance(radius, bool)
            and math.isfinite(radius) and radius > 0
        )
        if not ok:
            raise TopomicsInputError(
                f"graph 'radius' needs a radius > 0 (the neighbour distance, in units of the "
                f"coordinate system); got radius={radius!r}."
            )


@dataclass
class CellGraph:
    """The run's cell graph, or why there is none.

    Attributes
    ----------
    connectivities
        Symmetric binary ``(n_cells, n_cells)`` CSR matrix, rows in the model input's order;
        None when no graph could be built.
    provenance
        What the run records about it: ``spatial``, ``spatial_mode``, ``graph``,
        ``n_neighbors``, ``radius``, ``coordinate_system``, ``graph_edges``,
        ``graph_isolated_cells`` and, without a graph, ``graph_problem``.
    """

    connectivities: sp.csr_matrix | None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def problem(self) -> str | None:
        """Why no graph was built (None when there is one)."""
        return self.provenance.get("graph_problem")


def build_cell_graph(
    coordinates: pd.DataFrame, config, coordinate_system: str | None = None
) -> CellGraph:
    """Build the graph ``config`` asks for from the cells' ``x, y`` centroids.

    Parameters
    ----------
    coordinates
        Cell centroids (columns ``x``, ``y``), in the model input's row order.
    config
        A :class:`~napari_topomics.workflow.FitConfig` (``spatial``, ``spatial_mode``,
        ``graph``, ``n_neighbors``, ``radius``).
    coordinate_system
        Recorded in the provenance.

    Returns
    -------
    CellGraph
        With ``connectivities=None`` and a ``graph_problem`` when the points admit no graph
        (e.g. a Delaunay triangulation of collinear cells); never raises for that.
    """
    from ..data import build_spatial_graph

    method = config.graph
    prov: dict[str, Any] = {
        "spatial": bool(config.spatial),
        "spatial_mode": config.spatial_mode if config.spatial else None,
        "graph": method,
        "n_neighbors": int(config.n_neighbors) if method == "knn" else None,
        "radius": float(config.radius) if method == "radius" else None,
        "coordinate_system": coordinate_system,
    }
    xy = np.asarray(coordinates[["x", "y"]], dtype=np.float64)
    try:
        conn, _ = build_spatial_graph(
            xy, method=method, n_neighbors=int(config.n_neighbors), radius=config.radius
        )
    except ValueError as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        problem = f"no {method} graph of the {len(xy)} cells could be built ({reason})"
        logger.warning("Spatial coherence not measured: %s", problem)
        prov.update(graph_edges=None, graph_isolated_cells=None, graph_problem=problem)
        return CellGraph(None, prov)
    degree = np.diff(conn.indptr)
    prov.update(graph_edges=int(conn.nnz // 2), graph_isolated_cells=int((degree == 0).sum()))
    return CellGraph(conn, prov)


def require_graph(graph: CellGraph) -> sp.csr_matrix:
    """The connectivities a spatial fit needs, or a one-line error saying why there are none."""
    if graph.connectivities is None:
        raise TopomicsInputError(
            f"Spatial fitting needs a cell graph, but {graph.problem}; choose another graph."
        )
    return graph.connectivities


def measure_coherence(model, graph: CellGraph, cells=None) -> pd.Series | None:
    """Moran's I of each topic over ``graph`` (None without a graph).

    ``cells``: the data the graph's nodes are (default: the model's training cells).

    A graph without edges (a single cell, or a radius smaller than any cell spacing) gives
    NaN for every topic: Moran's I is undefined there.
    """
    if graph.connectivities is None:
        return None
    names = [f"topic_{k}" for k in range(int(model.n_topics))]
    if graph.connectivities.nnz == 0:
        return pd.Series(np.full(len(names), np.nan), index=names, name="morans_i")
    query = None if cells is None else model._prepare_query(cells)
    return model.get_spatial_coherence(adata=query, graph=graph.connectivities)
