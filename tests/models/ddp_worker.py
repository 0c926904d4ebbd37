"""One rank of a distributed test fit (run as a script by test_model_distributed.py).

``python ddp_worker.py OUT [--devices N] [--num-nodes M] [--mode plain|gcn|sgc|covariates]
[--fail-rank R]`` fits a small simulated tissue. Without ``LOCAL_RANK`` in the environment
Lightning re-runs this script for the other local ranks. Every rank writes
``OUT/rank<r>.npz`` (its parameters in state-dict order and its θ); rank 0 also saves the
model to ``OUT/model`` and the ELBO history to ``OUT/history.csv``. A failure writes
``OUT/error_rank<r>.txt`` (exception class and message) and exits with status 3.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch  # before anything that may pull Qt in

MODALITIES = ("rna", "protein", "atac")
LIKELIHOODS = ["nb", "nb", "bernoulli"]


def simulated(n_cells: int, seed: int = 0):
    from napari_topomics.datasets import simulate_tissue

    mdata, truth = simulate_tissue(
        n_cells=n_cells, n_topics=4, n_genes=120, n_proteins=10, n_peaks=100,
        n_batches=2, batch_effect=0.2, seed=seed,
    )
    return mdata, truth


def write_lazy_input(path: Path, n_cells: int) -> None:
    """The simulated tissue as one ``.h5ad`` (modalities side by side) for ``--lazy``."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    mdata, _ = simulated(n_cells)
    mods = [mdata.mod[m] for m in MODALITIES]
    X = sp.hstack([sp.csr_matrix(a.X) for a in mods], format="csr", dtype=np.float32)
    var = pd.DataFrame(index=np.concatenate([a.var_names for a in mods]))
    first = mods[0]
    ad.AnnData(X=X, obs=first.obs[["batch"]].copy(), var=var,
               obsm={"spatial": np.asarray(first.obsm["spatial"])}).write_h5ad(path)


def build(mode: str, n_cells: int, lazy: str | None = None):
    from napari_topomics.models import MultimodalAmortizedLDA

    mdata, truth = simulated(n_cells)
    data = {m: mdata.mod[m] for m in MODALITIES}
    kwargs: dict = {"n_topics": 4, "n_hidden": 32, "likelihoods": LIKELIHOODS}
    if lazy:  # one AnnData whose matrix stays on disk
        from napari_topomics.io import open_lazy

        data = open_lazy(lazy)
        kwargs.update(modalities=list(MODALITIES),
                      n_inputs_modalities=[mdata.mod[m].n_vars for m in MODALITIES])
    parts = set(mode.split("+"))  # e.g. "gcn+covariates"
    if "covariates" in parts:
        kwargs["categorical_covariate_keys"] = ["batch"]
    for spatial in parts & {"gcn", "sgc"}:
        kwargs.update(spatial_keys="spatial", spatial_mode=spatial)
    model = MultimodalAmortizedLDA.from_data(data, **kwargs)
    return model, truth


class FailAt:
    """Lightning callback raising (or hanging) on one rank at the start of its 2nd epoch."""

    def __new__(cls, rank: int, hang: bool = False):
        from lightning.pytorch import Callback

        class _Fail(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.global_rank == rank and trainer.current_epoch == 1:
                    if hang:
                        import time

                        time.sleep(3600)
                    raise RuntimeError(f"planted failure on rank {rank}")

        return _Fail()


class SeenCells:
    """Lightning callback recording the cell indices of every first-epoch batch."""

    def __new__(cls):
        from lightning.pytorch import Callback
        from scvi import REGISTRY_KEYS

        class _Seen(Callback):
            cells: list = []

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if trainer.current_epoch == 0:
                    self.cells.append(batch[REGISTRY_KEYS.INDICES_KEY].reshape(-1).numpy())

        return _Seen()


def _share(model) -> np.ndarray:
    """``[start, stop, rows held]`` of the rank's share of a lazy matrix, else empty."""
    share = model.training_share
    return np.zeros(0) if share is None else np.array([share.start, share.stop,
                                                        share.held.size])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--mode", default="plain")
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64, help="cells per rank and step")
    parser.add_argument("--fail-rank", type=int, default=-1)
    parser.add_argument("--hang", action="store_true", help="the failing rank hangs instead")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--lazy", help="open this .h5ad lazily (write_lazy_input)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "scvi"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import scvi

    from napari_topomics.models._distributed import launch_rank

    scvi.settings.seed = 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model, truth = build(args.mode, args.cells, args.lazy)
    train: dict = {"max_epochs": args.epochs, "batch_size": args.batch_size,
                   "enable_progress_bar": False, "enable_model_summary": False,
                   "enable_checkpointing": False, "accelerator": "cpu"}
    seen = SeenCells()
    train["callbacks"] = [seen]
    if args.fail_rank >= 0:
        train["callbacks"].append(FailAt(args.fail_rank, args.hang))
    if args.devices * args.num_nodes > 1:
        train.update(strategy="ddp", devices=args.devices, num_nodes=args.num_nodes,
                     distributed_timeout=args.timeout)
    try:
        model.train(**train)
    except Exception as err:  # noqa: BLE001 - reported to the test through a file
        rank = launch_rank()
        (out / f"error_rank{rank}.txt").write_text(f"{type(err).__name__}\n{err}\n")
        return 3
    rank = model.trainer.global_rank
    params = torch.cat([v.detach().float().reshape(-1).cpu()
                        for v in model.module.state_dict().values()]).numpy()
    np.savez(out / f"rank{rank}.npz", params=params, theta=model.get_cell_topic_dist(),
             true_theta=truth.theta, world=model.trainer.world_size,
             seen=np.concatenate(seen.cells), train_indices=model.train_indices,
             share=_share(model), lazy_after=type(model.adata.X).__name__)
    if rank == 0:
        model.save(out / "model", overwrite=True)
        history = {k: v.iloc[:, 0] for k, v in model.history.items()}
        import pandas as pd

        pd.DataFrame(history).to_csv(out / "history.csv")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
