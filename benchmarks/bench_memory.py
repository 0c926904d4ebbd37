"""Peak memory of a fit on 200,000 cells x (2,000 + 30 + 3,000) sparse features.

The tissue is simulated in a child process and written to an ``.h5ad`` with the three
modalities side by side (the pre-concatenated layout that ``from_data`` registers without
copying). The fitting process then reads it, builds the model (all constructor statistics
are sparse-aware) and trains one epoch; its own peak RSS is the figure reported.

Usage: ``python benchmarks/bench_memory.py [--cells 200000] [--epochs 1]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, peak_rss_gb, quiet, row, single_thread

SIZES = {"rna": 2000, "protein": 30, "atac": 3000}


def write_dataset(path: Path, n_cells: int) -> None:
    """Simulate and write the concatenated AnnData (runs in a child process)."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from napari_topomics.datasets import simulate_tissue

    mdata, _ = simulate_tissue(n_cells=n_cells, seed=0)
    blocks = [mdata.mod[m].X for m in SIZES]
    X = sp.hstack(blocks, format="csr", dtype=np.float32)
    del blocks
    var = pd.DataFrame(index=np.concatenate([mdata.mod[m].var_names for m in SIZES]))
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=mdata.obs_names), var=var)
    del mdata
    adata.write_h5ad(path)


def fit(path: Path, epochs: int) -> None:
    import anndata as ad
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = 0
    adata = ad.read_h5ad(path)
    nnz = adata.X.nnz
    print(row("data", cells=adata.n_obs, features=adata.n_vars, nnz=nnz,
              matrix_gb=(adata.X.data.nbytes + adata.X.indices.nbytes) / 1024**3))
    print(row("after reading", peak_rss_gb=peak_rss_gb()))
    start = time.perf_counter()
    model = MultimodalAmortizedLDA.from_data(
        adata, modalities=list(SIZES), n_inputs_modalities=list(SIZES.values()), n_topics=8
    )
    print(row("after constructor", peak_rss_gb=peak_rss_gb(),
              seconds=time.perf_counter() - start))
    start = time.perf_counter()
    model.train(max_epochs=epochs, batch_size=128, enable_progress_bar=False)
    print(row(f"after {epochs} training epoch(s)", peak_rss_gb=peak_rss_gb(),
              s_per_epoch=(time.perf_counter() - start) / epochs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_dataset(args.write, args.cells)
        return
    single_thread()
    quiet()
    print(f"# bench_memory: {args.cells} cells; {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tissue.h5ad"
        subprocess.run([sys.executable, __file__, "--cells", str(args.cells), "--write",
                        str(path)], check=True)
        fit(path, args.epochs)


if __name__ == "__main__":
    main()
