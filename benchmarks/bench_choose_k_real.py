"""How many topics on real data? ``sweep_topics`` with defaults on the real sets (issue 17).

* Visium mouse brain (2,695 spots x 100 genes, spatial coordinates: Moran's I per K),
* Visium dentate gyrus (624 spots x 634 genes, coordinates),
* CITE-seq PBMC (RNA, genes seen in >= 10 cells, and the protein counts; no coordinates).

Each: K = 4, 6, ..., 14 with 2 seeds, the sweep's defaults otherwise (``--epochs`` for the
training length). Prints the summary table (per K: held-out perplexity, stability, topic
diversity, topics used, Moran's I) and the recommended K, and saves the sweep figure to
``--figures`` (``sweep_<set>.png``).

Usage: ``python benchmarks/bench_choose_k_real.py [--sets visium dg pbmc] [--jobs 2]
[--epochs 100] [--figures docs/images]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import machine, quiet, single_thread

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load(name: str):
    """The model input of one real set, and its ``from_data`` keyword arguments."""
    import anndata as ad

    if name == "visium":
        from spatialdata_io import visium

        table = visium(str(SHARED / "visium_mouse_brain_seurat"),
                       dataset_id="mouse_brain").tables["table"]
        table.var_names_make_unique()
        return table.copy(), {"spatial_keys": "spatial"}
    if name == "dg":
        return ad.read_h5ad(SHARED / "visium_dg_giotto" / "visium_dg.h5ad"), {
            "spatial_keys": "spatial"}
    import mudata

    mdata = mudata.read_h5mu(SHARED / "citeseq_pbmc5k_scvi" / "pbmc5k_cite.h5mu")
    rna = mdata.mod["rna"]
    rna = rna[:, np.asarray((rna.X > 0).sum(0)).ravel() >= 10].copy()
    return {"rna": rna, "protein": mdata.mod["prot"].copy()}, {"likelihoods": ["nb", "nb"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=("visium", "dg", "pbmc"),
                        default=["visium", "dg", "pbmc"])
    parser.add_argument("--topics", type=int, nargs="+", default=[4, 6, 8, 10, 12, 14])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--figures", default=None, help="folder for sweep_<set>.png")
    parser.add_argument("--dump", default=None,
                        help="folder for every set's fits (npz, see bench_choose_k.py)")
    args = parser.parse_args()
    single_thread()
    quiet()
    import pandas as pd

    from napari_topomics.models import sweep_topics

    pd.set_option("display.width", 160)
    print(f"# bench_choose_k_real: K {args.topics}, 2 seeds, {args.epochs} epochs, "
          f"{args.jobs} jobs; {machine()}", flush=True)
    for name in args.sets:
        data, setup = load(name)
        start = time.perf_counter()
        sweep = sweep_topics(data, args.topics, seeds=2, n_jobs=args.jobs,
                             max_epochs=args.epochs, **setup)
        cols = ["perplexity", "stability", "stability_min", "diversity", "topics_used",
                "morans_i"]
        print(f"\n== {name}: recommended K={sweep.recommended} "
              f"({time.perf_counter() - start:.0f} s)")
        print(f"why: {sweep.reason}")
        print(sweep.summary()[cols].round(4).to_string(), flush=True)
        if args.dump:
            from bench_choose_k import dump_sweep

            dump_sweep(sweep, Path(args.dump) / f"{name}_s0.npz", 0)
        if args.figures:
            fig = sweep.plot()
            fig.savefig(Path(args.figures) / f"sweep_{name}.png", dpi=100)


if __name__ == "__main__":
    main()
