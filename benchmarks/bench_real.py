"""Real data, no collapse: our defaults against scikit-learn LDA on two small real sets.

* CITE-seq PBMC (200 cells, RNA only fitted): agreement (adjusted Rand index) of each
  cell's dominant topic with k-means clusters of the CLR-normalised protein counts, which
  the models never see.
* Visium mouse brain (2,695 spots x 100 genes): mean Moran's I of the topic proportions over
  the 6-nearest-spot graph.

For every seed it prints both models' scores and how many topics are dominant in at least
one cell (``dominant``), i.e. whether the model collapsed, then each model's median and
worst score over the seeds: scikit-learn's LDA varies a lot with its seed, so a single
paired seed says little about the method.

Usage: ``python benchmarks/bench_real.py [--seeds 0 1 2] [--epochs N]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import machine, quiet, row, single_thread

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_pbmc():
    import mudata

    mdata = mudata.read_h5mu(SHARED / "citeseq_pbmc5k_scvi" / "pbmc5k_cite.h5mu")
    rna = mdata.mod["rna"].copy()
    keep = np.asarray((rna.X > 0).sum(0)).ravel() >= 10  # genes seen in >= 10 cells
    rna = rna[:, keep].copy()
    prot = np.asarray(mdata.mod["prot"].X, dtype=float)
    clr = np.log1p(prot) - np.log1p(prot).mean(1, keepdims=True)
    from sklearn.cluster import KMeans

    clusters = KMeans(n_clusters=6, n_init=20, random_state=0).fit_predict(clr)
    return rna, clusters


def _with_spot_graph(adata):
    """``adata`` and the 6-nearest-spot graph of its ``obsm["spatial"]``."""
    from napari_topomics.data import build_spatial_graph

    graph, _ = build_spatial_graph(np.asarray(adata.obsm["spatial"]), n_neighbors=6)
    return adata, graph


def load_visium():
    """The mouse-brain Visium spots and their 6-NN graph."""
    from spatialdata_io import visium

    sdata = visium(str(SHARED / "visium_mouse_brain_seurat"), dataset_id="mouse_brain")
    table = sdata.tables["table"]
    table.var_names_make_unique()
    return _with_spot_graph(table.copy())


def load_dentate_gyrus():
    """The dentate-gyrus Visium spots (``../shared/data/visium_dg_giotto``) and their 6-NN
    graph."""
    import anndata as ad

    return _with_spot_graph(ad.read_h5ad(SHARED / "visium_dg_giotto" / "visium_dg.h5ad"))


def fit_ours(adata, n_topics, seed, epochs, plan_kwargs=None):
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = seed
    model = MultimodalAmortizedLDA.from_data(adata.copy(), n_topics=n_topics)
    model.train(max_epochs=epochs, enable_progress_bar=False, plan_kwargs=plan_kwargs)
    return model.get_cell_topic_dist()


def fit_sklearn(adata, n_topics, seed):
    from sklearn.decomposition import LatentDirichletAllocation

    theta = LatentDirichletAllocation(n_components=n_topics, random_state=seed).fit_transform(
        adata.X
    )
    return theta / theta.sum(1, keepdims=True)


def n_dominant(theta) -> int:
    return int(np.unique(theta.argmax(1)).size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's own")
    parser.add_argument("--topic-init", choices=["zero", "kmeans"], default=None,
                        help="plan_kwargs topic_init of our model (default: the model's own)")
    parser.add_argument("--global-factor", default=None,
                        help="plan_kwargs global_lr_factor (a number or 'auto')")
    args = parser.parse_args()
    single_thread()
    quiet()
    from sklearn.metrics import adjusted_rand_score

    from napari_topomics.metrics import morans_i

    print(f"# bench_real: seeds {args.seeds}; {machine()}")
    rna, clusters = load_pbmc()
    compare("pbmc200", rna, 6, args,
            ARI_vs_protein=lambda theta: adjusted_rand_score(clusters, theta.argmax(1)))
    adata, graph = load_visium()
    compare("visium brain", adata, 8, args,
            mean_morans_I=lambda theta: float(np.mean(morans_i(theta, graph))))


def _plan_kwargs(args) -> dict:
    plan = {} if args.topic_init is None else {"topic_init": args.topic_init}
    if args.global_factor is not None:
        factor = args.global_factor
        plan["global_lr_factor"] = factor if factor == "auto" else float(factor)
    return plan


def compare(name: str, adata, k: int, args, **scores) -> None:
    """Fit ours and scikit-learn's LDA for every seed; print each score and the summary."""
    seen: dict[str, list[float]] = {"ours": [], "sklearn LDA": []}
    for seed in args.seeds:
        for label, theta in (
            ("ours", fit_ours(adata, k, seed, args.epochs, _plan_kwargs(args))),
            ("sklearn LDA", fit_sklearn(adata, k, seed)),
        ):
            values = {key: fn(theta) for key, fn in scores.items()}
            seen[label].append(next(iter(values.values())))
            print(row(f"{name} {label} seed {seed}", **values,
                      dominant=f"{n_dominant(theta)}/{k}"))
    for label, values in seen.items():
        print(row(f"{name} {label} over seeds", median=float(np.median(values)),
                  worst=float(np.min(values))))


if __name__ == "__main__":
    main()
