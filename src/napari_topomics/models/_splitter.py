"""Train/validation split whose validation batches are larger than the training ones."""

from __future__ import annotations

from scvi.dataloaders import DataSplitter

from ._row_shares import share_loader

#: Validation batches hold at least this many cells: the per-epoch validation pass then
#: costs one forward pass per 512 cells instead of one per training batch, which the
#: 5k-cell benchmark's 500 validation cells turned from four passes into one.
VALIDATION_BATCH_SIZE = 512


class ValidationBatchingSplitter(DataSplitter):
    """scvi's :class:`~scvi.dataloaders.DataSplitter`, validating in batches of >= 512 cells.

    The validation loss of a batch is an ELBO estimate at plate size ``N_train`` whatever
    the batch size, and the encoders run in evaluation mode, so larger batches change only
    the cost, not the logged ``elbo_validation``'s expectation.

    With ``row_share`` (a :class:`~napari_topomics.data._lazy.RowShare`: a DDP rank training
    on a lazily read matrix) each loader draws only the cells of the rank's own share
    (:func:`~napari_topomics.models._row_shares.share_loader`).
    """

    def __init__(self, *args, row_share=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_share = row_share

    def train_dataloader(self):
        if self.row_share is None:
            return super().train_dataloader()
        return share_loader(self, self.train_idx, self.row_share, True, self._batch_size())

    def _batch_size(self, at_least: int = 1) -> int:
        return max(int(self.data_loader_kwargs.get("batch_size") or 128), at_least)

    def val_dataloader(self):
        if len(self.val_idx) == 0:
            return None
        if self.row_share is not None:
            return share_loader(self, self.val_idx, self.row_share, False,
                                self._batch_size(VALIDATION_BATCH_SIZE))
        kwargs = dict(self.data_loader_kwargs)
        kwargs["batch_size"] = max(int(kwargs.get("batch_size") or 0), VALIDATION_BATCH_SIZE)
        return self.data_loader_cls(
            self.adata_manager,
            indices=self.val_idx,
            shuffle=False,
            drop_last=False,
            load_sparse_tensor=self.load_sparse_tensor,
            pin_memory=self.pin_memory,
            **kwargs,
        )
