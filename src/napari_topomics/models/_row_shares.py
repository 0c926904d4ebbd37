"""Training on a lazily read matrix: each process holds only its rows (issue 18).

When the registered matrix is read lazily from disk (:mod:`~napari_topomics.data._lazy`),
``train`` loads the rows this process trains on into memory for the length of the call
(:func:`training_rows`) and puts the lazy matrix back afterwards, so inference streams over
every cell again. Under DDP each rank trains on a fixed contiguous share of the cells:
:class:`ShareBatchSampler` draws its minibatches from the training cells of its own share,
reshuffled every epoch, and every rank takes the same number of cells an epoch (the smallest
share's), so the ranks step in lockstep.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from scvi import REGISTRY_KEYS
from torch.utils.data import DataLoader, Sampler

from ..data._lazy import RowShare, contiguous_share, is_lazy_matrix, load_rows
from ._graph_source import _seed as sampler_seed
from ._graph_source import graph_source_for

logger = logging.getLogger(__name__)


def registered_matrix_is_lazy(model) -> bool:
    """Whether the model's registered matrix is read lazily from disk."""
    return is_lazy_matrix(model.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY))


def share_for(model, rank: int, world_size: int) -> RowShare:
    """The rows ``rank`` trains on; a spatial GCN model also holds every cell its seeds'
    sampled subgraphs can reach (the exact ``gcn_n_layers``-hop neighbourhood, which also
    covers the one ring the neighbourhood counts read)."""
    start, stop = contiguous_share(model.adata.n_obs, rank, world_size)
    held = np.arange(start, stop)
    source = model.module.graph_source
    if source is not None and source.samplers:
        hops = max(int(model.module.config.gcn_n_layers), 1)
        reach = [sampler.sample(held, hops).nodes for sampler in source.samplers]
        held = np.unique(np.concatenate([held, *reach]))
    return RowShare(rank, world_size, start, stop, held)


def _set_registered(model, matrix) -> None:
    field = model.adata_manager.data_registry[REGISTRY_KEYS.X_KEY]
    if field.attr_name == "X":
        model.adata.X = matrix
    else:
        getattr(model.adata, field.attr_name)[field.attr_key] = matrix


@contextmanager
def training_rows(model, share: RowShare):
    """Hold ``share``'s rows of the lazy registered matrix in memory while training.

    Not for an AnnData opened in backed mode, whose matrix cannot be exchanged (it trains
    reading its minibatches from the file).
    """
    adata = model.adata
    lazy = model.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
    held = load_rows(lazy, share.held)
    logger.info(
        "Rank %d of %d holds %d of %d cells (%d stored entries) while training.",
        share.rank, share.world_size, share.held.size, adata.n_obs, held.nnz,
    )
    on_disk_source = model.module.graph_source
    _set_registered(model, held)
    model.module.graph_source = graph_source_for(model)  # neighbours read from memory
    model.training_share = share
    try:
        yield held
    finally:
        _set_registered(model, lazy)
        model.module.graph_source = on_disk_source


class ShareBatchSampler(Sampler):
    """Minibatches of positions drawn from one rank's share, the same count on every rank.

    Parameters
    ----------
    positions
        Positions (into the loader's index list) of the cells this rank owns.
    n_cells
        Cells drawn per epoch (the smallest rank's count, so all ranks take as many steps).
    batch_size
        Cells per minibatch.
    shuffle
        Reshuffle every epoch (training) or keep the order (validation).
    seed
        Seed of the per-epoch permutations.
    drop_last
        Drop a final incomplete batch.
    """

    def __init__(self, positions: np.ndarray, n_cells: int, batch_size: int, shuffle: bool,
                 seed: int = 0, drop_last: bool = False):
        self.positions = np.asarray(positions, dtype=np.int64)
        self.n_cells = int(min(n_cells, self.positions.size))
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before every epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.drop_last:
            return self.n_cells // self.batch_size
        return math.ceil(self.n_cells / self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        order = self.positions
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        order = order[: self.n_cells]
        for b in range(len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size].tolist()


def share_loader(splitter, indices: np.ndarray, share: RowShare, shuffle: bool,
                 batch_size: int) -> DataLoader | None:
    """A loader over the cells of ``indices`` that lie in ``share`` (None when none do).

    Raises
    ------
    RuntimeError
        When Lightning gave this process another rank than the one whose rows it loaded.
    """
    rank = splitter.trainer.global_rank if splitter.trainer is not None else share.rank
    if rank != share.rank:
        raise RuntimeError(
            f"This process loaded the rows of rank {share.rank} but Lightning made it rank "
            f"{rank}: set RANK (or NODE_RANK and LOCAL_RANK) consistently before the model "
            "trains."
        )
    indices = np.asarray(indices)
    positions = np.flatnonzero(share.owns(indices))
    if shuffle:  # every rank draws as many training cells as the smallest share holds
        n_cells = min(
            int(((indices >= a) & (indices < b)).sum())
            for a, b in RowShare.shares(splitter.adata_manager.adata.n_obs, share.world_size)
        )
    else:
        n_cells = positions.size
    if n_cells == 0:
        if shuffle:
            raise ValueError(
                f"A rank of this {share.world_size}-process fit has no training cells: use "
                "fewer processes (devices/num_nodes) or more training cells."
            )
        return None
    sampler = ShareBatchSampler(positions, n_cells, batch_size, shuffle,
                                seed=sampler_seed(), drop_last=shuffle and splitter.drop_last)
    dataset = splitter.adata_manager.create_torch_dataset(
        indices=indices, load_sparse_tensor=splitter.load_sparse_tensor
    )
    return DataLoader(dataset, sampler=sampler, batch_size=None, shuffle=False,
                      pin_memory=splitter.pin_memory, num_workers=0)
