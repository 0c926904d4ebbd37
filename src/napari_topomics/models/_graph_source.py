"""Graph inputs of a spatial model for one AnnData (spec §3.11.4, §3.11.5).

A :class:`GraphSource` holds, on the CPU and outside the module's state dict, what the
spatial encoders read besides the minibatch: the registered matrix and covariates of every
cell (neighbours are looked up there), one neighbour sampler per distinct graph and, in SGC
mode, the smoothed features. Only the rows a minibatch needs move to the device.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS

from ..data._lazy import is_lazy_matrix, read_rows, times_rows
from ..data._neighbour_sampler import NeighbourSampler
from ..data._registered_graphs import RegisteredGraphs, registered_graphs
from ..data._smoothing import sgc_features
from ..module import GraphInputs

logger = logging.getLogger(__name__)

SAMPLER_SEED = 0


def _rows(matrix, nodes: np.ndarray) -> np.ndarray:
    """Dense float32 rows of a sparse, dense or lazily read matrix."""
    part = read_rows(matrix, nodes, np.float32) if is_lazy_matrix(matrix) else matrix[nodes]
    part = part.toarray() if sp.issparse(part) else np.asarray(part)
    return np.ascontiguousarray(part, dtype=np.float32)


def _optional(manager, key: str) -> np.ndarray | None:
    if key not in manager.data_registry:
        return None
    value = manager.get_from_registry(key)
    return np.asarray(getattr(value, "values", value))


class GraphSource:
    """Registered data and graphs of one AnnData, as the spatial encoders need them.

    Parameters
    ----------
    manager
        The scvi ``AnnDataManager`` of the AnnData (training or query data).
    graphs
        Its graphs (:func:`~napari_topomics.data._registered_graphs.registered_graphs`).
    config
        The module configuration (spatial mode, hops, fan-out, blocks).
    sgc_scale
        Per-modality library-size median of the training cells (SGC mode).
    seed
        Seed of the training-time sampler.
    """

    def __init__(self, manager, graphs: RegisteredGraphs, config, sgc_scale: Sequence[float],
                 seed: int = SAMPLER_SEED):
        self.config = config
        self.graphs = graphs
        X = manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        if is_lazy_matrix(X) and config.spatial_mode == "sgc":
            raise ValueError(
                "spatial_mode='sgc' smooths the registered matrix of every cell up front, "
                "which needs it in memory, but it is read lazily from disk here. Use "
                "spatial_mode='gcn' (neighbourhoods are read as minibatches need them) or "
                "load the data into memory (adata.X = adata.X.to_memory())."
            )
        if sp.issparse(X):
            X = X.tocsr()
        elif not is_lazy_matrix(X):  # a lazy matrix stays on disk; rows are read as needed
            X = np.asarray(X)
        self.X = X
        self.cat = _optional(manager, REGISTRY_KEYS.CAT_COVS_KEY)
        self.cont = _optional(manager, REGISTRY_KEYS.CONT_COVS_KEY)
        self.extra = _optional(manager, "encoder_extra")
        self.n_obs = int(self.X.shape[0])
        # GCN mode samples subgraphs; SGC mode reads precomputed features instead
        self.samplers = (
            [NeighbourSampler(A) for A in graphs.adjacency]
            if config.spatial_mode == "gcn" else []
        )
        self.rng = np.random.default_rng(seed)
        self.seed = int(seed)
        self.smoothed: list | None = None
        if config.spatial_mode == "sgc":
            self.smoothed = [
                sgc_features(
                    self.X[:, config.block(m)], graphs.adjacency[graphs.assignment[m]],
                    config.sgc_n_layers, float(sgc_scale[m]), config.is_count(m),
                )
                for m in range(config.n_modalities)
            ]
        for g, key in enumerate(graphs.keys):
            isolated = graphs.n_isolated(g)
            if isolated:
                logger.info(
                    "Spatial graph %r: %d of %d cells have no neighbour; they are encoded "
                    "from their own features.", key, isolated, self.n_obs,
                )

    # ------------------------------------------------------------------ GCN mode
    def _rng_for(self, seeds: np.ndarray, training: bool) -> np.random.Generator:
        if training:
            return self.rng
        # eval: a fixed generator per seed set, so identical calls agree (§3.11.4)
        key = (int(seeds.size), int(seeds[:1].sum()), int(seeds.sum() % (2**31)))
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def graph_inputs(
        self, ind: torch.Tensor, training: bool, device: torch.device
    ) -> list[GraphInputs]:
        """The sampled subgraph of each distinct graph around the seed cells ``ind``."""
        cfg = self.config
        seeds = ind.detach().cpu().numpy().astype(np.int64).reshape(-1)
        fan_out = None if cfg.gcn_sampling == "exact" else list(cfg.gcn_fan_out)
        rng = self._rng_for(seeds, training)
        out = []
        for sampler in self.samplers:
            sub = sampler.sample(seeds, cfg.gcn_n_layers, fan_out, rng)
            nodes = sub.nodes
            edge_index = torch.from_numpy(np.ascontiguousarray(sub.edge_index, dtype=np.int64))
            weight = None
            if cfg.gcn_conv_type == "GCNConv":
                edge_index, weight = _gcn_edges(edge_index, sampler.degree[nodes])
            out.append(GraphInputs(
                x=torch.from_numpy(_rows(self.X, nodes)).to(device),
                cat=_gather(self.cat, nodes, device, torch.long),
                cont=_gather(self.cont, nodes, device, torch.float32),
                extra=_gather(self.extra, nodes, device, torch.float32),
                edge_index=edge_index.to(device),
                edge_weight=None if weight is None else weight.to(device),
                n_seeds=int(sub.n_seeds),
            ))
        return out

    # ------------------------------------------------------------------ neighbourhoods
    def neighbour_counts(
        self, ind: torch.Tensor, device: torch.device
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per distinct graph: the summed registered rows of each seed's neighbours, and
        the seeds' degrees. Work ∝ the seeds' neighbourhoods (a CSR row slice)."""
        seeds = ind.detach().cpu().numpy().astype(np.int64).reshape(-1)
        out = []
        for A in self.graphs.adjacency:
            rows = A[seeds]
            summed = times_rows(rows, self.X, np.float32)  # only the neighbours' rows
            summed = summed.toarray() if sp.issparse(summed) else np.asarray(summed)
            degree = np.diff(rows.indptr).astype(np.float32)
            out.append((
                torch.from_numpy(np.ascontiguousarray(summed, dtype=np.float32)).to(device),
                torch.from_numpy(degree).to(device),
            ))
        return out

    # ------------------------------------------------------------------ SGC mode
    def smoothed_inputs(self, ind: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
        """Each modality's smoothed features of the cells ``ind``."""
        rows = ind.detach().cpu().numpy().astype(np.int64).reshape(-1)
        return [torch.from_numpy(_rows(f, rows)).to(device) for f in self.smoothed]


def _gather(values: np.ndarray | None, nodes: np.ndarray, device, dtype) -> torch.Tensor | None:
    if values is None:
        return None
    return torch.as_tensor(np.asarray(values[nodes]), dtype=dtype).to(device)


def _gcn_edges(edge_index: torch.Tensor, degree: np.ndarray):
    """Edges with self-loops and weights ``1/sqrt((d_i + 1)(d_j + 1))`` (full-graph degrees)."""
    n = degree.shape[0]
    inv = torch.from_numpy(1.0 / np.sqrt(degree.astype(np.float64) + 1.0)).float()
    loops = torch.arange(n, dtype=torch.long).repeat(2, 1)
    edges = torch.cat([edge_index, loops], dim=1)
    return edges, inv[edges[0]] * inv[edges[1]]


def graph_source_for(model, adata: AnnData | None = None) -> GraphSource | None:
    """The graph source of ``adata`` (the registered data when None) for a spatial model.

    Raises
    ------
    ValueError
        When a spatial model is queried with an AnnData that carries no graph.
    """
    if not model.spatial:
        return None
    target = model.adata if adata is None else adata
    graphs = registered_graphs(target.uns, list(model.modality_names), target.n_obs)
    if graphs is None:
        raise ValueError(
            "This spatial model encodes each cell with its neighbours, so query data needs "
            "its own cell graph: set it up with MultimodalAmortizedLDA.setup_anndata(query, "
            "spatial_key=...) (an obsp graph or obsm coordinates), or use predict(query) with "
            "obsm['spatial'] coordinates. The training graph is never reused for new cells."
        )
    manager = model.get_anndata_manager(target, required=True)
    module = model.module
    return GraphSource(
        manager, graphs, module.config, module.sgc_scale.tolist(), seed=_seed()
    )


def _seed() -> int:
    from scvi import settings

    return int(settings.seed) if settings.seed is not None else SAMPLER_SEED

