"""Self-contained CSR neighbour sampler for graph minibatches (spec §3.11.4).

torch-geometric's ``NeighborLoader`` needs the compiled ``pyg-lib``/``torch-sparse``
packages, which have no build for the project's torch, so subgraphs are sampled here with
numpy alone. Every call costs time and memory proportional to the subgraph it returns
(its nodes and the edges leaving them), never to the number of nodes ``N`` or edges ``E``
of the whole graph: membership tests use sorted arrays and ``searchsorted``, and there is
no Python loop over nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._graph import symmetrize_graph

__all__ = ["NeighbourSampler", "Subgraph"]


@dataclass(frozen=True, eq=False)  # arrays: no element-wise __eq__/__hash__
class Subgraph:
    """A sampled subgraph, seeds first.

    Attributes
    ----------
    nodes
        ``(n_nodes,)`` int64 global node ids; ``nodes[:n_seeds]`` are the seeds in the
        order given.
    edge_index
        ``(2, n_edges)`` int64 local indices into ``nodes``; row 0 is the source, row 1 the
        target. All edges of the symmetrised graph among ``nodes``, in both directions,
        without self-loops.
    n_seeds
        Number of seeds.
    """

    nodes: np.ndarray
    edge_index: np.ndarray
    n_seeds: int

    @property
    def seed_positions(self) -> np.ndarray:
        """Local positions of the seeds, ``arange(n_seeds)`` (int64)."""
        return np.arange(self.n_seeds, dtype=np.int64)

    @property
    def n_nodes(self) -> int:
        """Number of nodes of the subgraph (a work probe for benchmarks)."""
        return int(self.nodes.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of directed edges of the subgraph (each undirected edge counts twice)."""
        return int(self.edge_index.shape[1])


def _isin_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask of ``values`` found in the sorted array ``sorted_set``."""
    if sorted_set.size == 0:
        return np.zeros(values.shape, dtype=bool)
    pos = np.searchsorted(sorted_set, values)
    pos[pos == sorted_set.size] = 0
    return sorted_set[pos] == values


class NeighbourSampler:
    """Bounded-fan-out or exact L-hop neighbourhoods from a CSR graph.

    The cost of :meth:`sample` is proportional to the subgraph size, never O(N) or O(E)
    per call.

    Parameters
    ----------
    graph
        Square scipy sparse matrix (any format) or dense array. It is symmetrised
        (``A ∨ Aᵀ``), its self-loops are dropped and its weights ignored, once, here.

    Attributes
    ----------
    n_nodes
        Number of nodes ``N``.
    degree
        ``(N,)`` int64 degree of every node in the full symmetrised graph (no self-loop).
    indptr, indices
        CSR arrays of the symmetrised graph (int32 when they fit, else int64), with sorted
        column indices per row.
    """

    def __init__(self, graph) -> None:
        csr = symmetrize_graph(graph)
        self.n_nodes: int = int(csr.shape[0])
        self.indptr: np.ndarray = csr.indptr
        self.indices: np.ndarray = csr.indices
        self.degree: np.ndarray = np.diff(csr.indptr).astype(np.int64)

    # ------------------------------------------------------------------ helpers
    def _check_seeds(self, seeds) -> np.ndarray:
        arr = np.asarray(seeds)
        if arr.ndim != 1:
            raise ValueError(f"seeds must be a 1-D array of node ids, got shape {arr.shape}")
        if arr.size == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"seeds must be integer node ids, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = (arr < 0) | (arr >= self.n_nodes)
        if bad.any():
            raise ValueError(
                f"seeds must be node ids in [0, {self.n_nodes}); out of range: "
                f"{arr[bad][:10].tolist()}"
            )
        uniq, counts = np.unique(arr, return_counts=True)
        if uniq.size != arr.size:
            raise ValueError(
                f"seeds must be unique; repeated node ids: {uniq[counts > 1][:10].tolist()}"
            )
        return arr

    @staticmethod
    def _check_fan_out(fan_out, n_hops: int) -> list[int] | None:
        if fan_out is None:
            return None
        try:
            values = [int(k) for k in fan_out]
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"gcn_fan_out must be a sequence of integers, got {fan_out!r}"
            ) from err
        if len(values) != n_hops:
            raise ValueError(
                f"gcn_fan_out must have one entry per hop: got {len(values)} entries "
                f"({values}) for n_hops={n_hops} (gcn_n_layers)"
            )
        if any(k < -1 for k in values):
            raise ValueError(
                f"gcn_fan_out entries must be >= 0 (or -1 for all neighbours), got {values}"
            )
        return values

    def _gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of ``rows``: ``(neighbour_id, counts)``.

        Entries are grouped by row in the order of ``rows``, neighbours in ascending id,
        in the dtype of ``indices``. Temporaries are freed early, to keep the per-call
        peak memory small.
        """
        starts = self.indptr[rows].astype(np.int64)
        counts = self.indptr[rows + 1] - starts
        # pos[row_start_i + j] = starts_i + j, built as a running sum of increments (1
        # inside a row, a jump at each row start) so that no second buffer is needed
        nz = counts > 0
        s_nz, c_nz = starts[nz], counts[nz]
        jump = s_nz.copy()
        jump[1:] -= s_nz[:-1] + c_nz[:-1] - 1
        pos = np.ones(int(counts.sum()), dtype=np.int64)
        pos[(np.cumsum(counts) - counts)[nz]] = jump
        del starts, s_nz, c_nz, jump, nz
        np.cumsum(pos, out=pos)
        return self.indices[pos], counts

    @staticmethod
    def _row_of(entries: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Position of the source row of gathered entries ``entries`` (ascending)."""
        return np.searchsorted(np.cumsum(counts), entries, side="right")

    def _sample_neighbours(
        self, frontier: np.ndarray, k: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """At most ``k`` neighbours per frontier node, without replacement.

        Returns ``(row_pos, neighbour_id)`` pairs (``row_pos`` indexes ``frontier``);
        ``k = -1`` keeps every neighbour. Vectorised: one random key per candidate, a
        lexsort by (row, key), and the candidates of rank ``< k`` within their row are
        kept.
        """
        neigh, counts = self._gather(frontier)
        if k < 0 or neigh.size == 0:
            keep = np.arange(neigh.size, dtype=np.int64)
            return self._row_of(keep, counts), neigh
        row_starts = np.cumsum(counts) - counts
        row_pos = np.repeat(np.arange(counts.size, dtype=np.int32), counts)
        order = np.lexsort((rng.random(neigh.size), row_pos))
        del row_pos
        # rows stay grouped after the sort, so the rank is the offset within the group
        rank = np.arange(neigh.size, dtype=np.int64)
        rank -= np.repeat(row_starts, counts)
        keep = order[rank < k]
        del order, rank
        keep.sort()  # back to row order, ascending neighbour id within a row
        return self._row_of(keep, counts), neigh[keep]

    def _induced_edges(self, nodes: np.ndarray) -> np.ndarray:
        """All graph edges among ``nodes`` as local ``(2, E)`` int64 indices."""
        if nodes.size == 0:
            return np.zeros((2, 0), dtype=np.int64)
        order = np.argsort(nodes, kind="stable")
        sorted_nodes = nodes[order].astype(self.indices.dtype)
        neigh, counts = self._gather(nodes)
        pos = np.searchsorted(sorted_nodes, neigh)
        pos[pos == sorted_nodes.size] = 0
        inside = np.flatnonzero(sorted_nodes[pos] == neigh)
        del neigh
        pos = pos[inside]
        src = self._row_of(inside, counts)
        del inside
        out = np.empty((2, src.size), dtype=np.int64)
        out[0] = src
        del src
        np.take(order, pos, out=out[1], mode="clip")
        return out

    # ------------------------------------------------------------------ public
    def sample(
        self,
        seeds,
        n_hops: int,
        fan_out: Sequence[int] | None = None,
        rng: np.random.Generator | None = None,
    ) -> Subgraph:
        """Sample the neighbourhood subgraph of ``seeds``.

        Parameters
        ----------
        seeds
            Unique node ids in ``[0, N)``; they come first in the result, in this order.
        n_hops
            Number of hops (``gcn_n_layers``).
        fan_out
            ``None`` for the exact ``n_hops``-hop neighbourhood (the node set and induced
            edges of ``torch_geometric.utils.k_hop_subgraph`` on the symmetrised graph).
            Otherwise one entry per hop: at hop ``h`` each frontier node keeps at most
            ``fan_out[h]`` of its neighbours, sampled without replacement (``-1`` keeps
            them all); nodes already in the subgraph are not added again, and the next
            frontier is the nodes added at this hop.
        rng
            Generator for approximate sampling; ``None`` uses ``np.random.default_rng(0)``.

        Returns
        -------
        Subgraph
            Nodes (seeds first, then the nodes added at each hop in ascending id) and
            every edge of the graph among them.

        Raises
        ------
        ValueError
            Seeds not unique, not integers or out of range; ``n_hops < 0``; ``fan_out``
            of the wrong length or with entries below -1.
        """
        seeds_arr = self._check_seeds(seeds)
        n_hops = int(n_hops)
        if n_hops < 0:
            raise ValueError(f"n_hops must be >= 0, got {n_hops}")
        ks = self._check_fan_out(fan_out, n_hops)
        if ks is not None and rng is None:
            rng = np.random.default_rng(0)

        members = np.sort(seeds_arr).astype(self.indices.dtype)
        parts = [seeds_arr]
        frontier = members
        for hop in range(n_hops):
            if frontier.size == 0:
                break
            if ks is None:
                neigh, _ = self._gather(frontier)
            else:
                _, neigh = self._sample_neighbours(frontier, ks[hop], rng)
            cand = np.unique(neigh)
            new = cand[~_isin_sorted(cand, members)]
            if new.size == 0:
                break
            parts.append(new)
            members = np.union1d(members, new)
            frontier = new
        nodes = np.concatenate(parts).astype(np.int64, copy=False)
        return Subgraph(
            nodes=nodes,
            edge_index=self._induced_edges(nodes),
            n_seeds=int(seeds_arr.size),
        )
