"""Spatial coherence of the topics: Moran's I of each topic's proportion over a cell graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data._graph import CONNECTIVITIES_KEY, build_spatial_graph, validate_graph
from ..data._registered_graphs import registered_graphs
from ..data._setup_common import DEFAULT_COORDS_KEY, DEFAULT_N_NEIGHBORS
from ..metrics import morans_i


class SpatialQueriesMixin:
    """``get_spatial_coherence``: how smoothly each topic varies over the tissue."""

    def get_spatial_coherence(
        self, adata=None, graph=None, batch_size=None, n_samples: int | None = 5000
    ) -> pd.Series:
        """Moran's I of each topic's cell proportion over the cell-neighbour graph.

        About 1 when a topic fills contiguous regions, about 0 when it is scattered at
        random; the mean over topics (``result.mean()``) summarises a model.

        Parameters
        ----------
        adata
            Cells to score (default: the registered data).
        graph
            The graph: an ``(n_obs, n_obs)`` matrix, an ``obsp`` key, or an ``obsm`` key of
            coordinates (a 6-nearest-neighbour graph is built). ``None`` takes the model's
            registered graph, else ``obsp["spatial_connectivities"]``, else a
            6-nearest-neighbour graph of ``obsm["spatial"]``.
        batch_size, n_samples
            As in :meth:`get_cell_topic_dist`.

        Returns
        -------
        pandas.Series
            Moran's I per topic (index ``topic_k``, name ``"morans_i"``); NaN for a topic
            that is constant over the cells.

        Raises
        ------
        ValueError
            When no graph can be found or built, or the graph has the wrong shape.
        """
        target = self.adata if adata is None else adata
        W = self._coherence_graph(target, graph)
        theta = self.get_cell_topic_dist(adata, batch_size=batch_size, n_samples=n_samples)
        values = morans_i(theta, W)
        return pd.Series(
            np.asarray(values, dtype=float), index=self._topic_columns(), name="morans_i"
        )

    def _coherence_graph(self, adata, graph) -> sp.csr_matrix:
        n = adata.n_obs
        if graph is not None and not isinstance(graph, str):
            validate_graph(graph, n, "graph")
            return sp.csr_matrix(graph)
        if isinstance(graph, str):
            if graph in adata.obsp:
                validate_graph(adata.obsp[graph], n, f"obsp[{graph!r}]")
                return sp.csr_matrix(adata.obsp[graph])
            if graph in adata.obsm:
                return _knn_graph(adata.obsm[graph])
            raise ValueError(
                f"graph={graph!r} is neither an obsp key {list(adata.obsp)} nor an obsm key "
                f"of coordinates {list(adata.obsm)}."
            )
        registered = registered_graphs(adata.uns, list(self.modality_names), n)
        if registered is not None:
            return registered.adjacency[registered.assignment[0]]
        if CONNECTIVITIES_KEY in adata.obsp:
            return sp.csr_matrix(adata.obsp[CONNECTIVITIES_KEY])
        if DEFAULT_COORDS_KEY in adata.obsm:
            return _knn_graph(adata.obsm[DEFAULT_COORDS_KEY])
        raise ValueError(
            "No cell graph to measure spatial coherence on: pass graph= (a matrix, an obsp "
            f"key or an obsm key of coordinates), or give the cells obsp[{CONNECTIVITIES_KEY!r}] "
            f"or obsm[{DEFAULT_COORDS_KEY!r}] coordinates."
        )


def _knn_graph(coords) -> sp.csr_matrix:
    return build_spatial_graph(np.asarray(coords), n_neighbors=DEFAULT_N_NEIGHBORS)[0]
