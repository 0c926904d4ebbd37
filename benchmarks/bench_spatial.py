"""Spatial topics (issue 6): quality on a simulated tissue and coherence on real Visium.

* **Quality.** A simulated tissue with spatial domains at low depth (about 200 RNA counts
  per cell; topic mixtures close to their domain's mean, so θ is smooth in space): the
  matched θ correlation and the domain ARI (k-means of θ against the true domains) of the
  non-spatial model and of the spatial GCN and SGC models, same data, same seed, same
  epochs. Target: spatial − non-spatial ≥ 0.05 on both. Beside them, the per-cell oracle:
  θ re-estimated from each cell's own counts with the true topic matrices, the most any
  non-spatial model can reach; a spatial model can pass it by borrowing from neighbours.
* **Coherence on real data.** ``shared/data/visium_dg_giotto`` (624 Visium spots x 634
  genes): mean Moran's I of the topics over the 6-nearest-spot graph, for the non-spatial
  and the spatial models. Target: spatial − non-spatial ≥ 0.1.

Every model runs with its defaults except the number of topics and epochs.

Usage: ``python benchmarks/bench_spatial.py [--part quality|visium|all] [--seeds 0 1]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import machine, quiet, row, single_thread

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = {
    "non-spatial": {},
    "spatial gcn": {"spatial_mode": "gcn"},
    "spatial sgc": {"spatial_mode": "sgc"},
}


PLAN: dict = {}


def fit(adata, spatial_kwargs: dict | None, n_topics: int, epochs: int, seed: int):
    """Set ``adata`` up (with the coordinates' kNN graph when spatial), train, time it."""
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = seed
    data = adata.copy()
    spatial = spatial_kwargs is not None
    MultimodalAmortizedLDA.setup_anndata(data, spatial_key="spatial" if spatial else None)
    model = MultimodalAmortizedLDA(data, n_topics=n_topics, **(spatial_kwargs or {}))
    start = time.perf_counter()
    model.train(max_epochs=epochs, enable_progress_bar=False, plan_kwargs=dict(PLAN))
    return model, (time.perf_counter() - start) / epochs


def domain_ari(theta: np.ndarray, domain: np.ndarray) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    k = len(np.unique(domain))
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(theta)
    return float(adjusted_rand_score(domain, labels))


def quality(args) -> None:
    from napari_topomics.datasets import simulate_tissue
    from napari_topomics.metrics import matched_theta_correlation, oracle_theta_correlation

    print(
        f"\n== Quality: simulated tissue, {args.cells} cells x {args.genes} genes, "
        f"{args.topics} topics/domains, ~{args.depth:.0f} counts/cell, Dirichlet alpha "
        f"{args.alpha}, {args.epochs} epochs =="
    )
    gains = {name: [] for name in MODELS if name != "non-spatial"}
    for seed in args.seeds:
        mdata, truth = simulate_tissue(
            n_cells=args.cells, n_topics=args.topics, n_genes=args.genes, n_proteins=0,
            n_peaks=0, rna_depth=args.depth, dirichlet_alpha=args.alpha, seed=seed,
        )
        adata = mdata.mod["rna"].copy()
        adata.obsm["spatial"] = truth.coords
        print(row(f"seed {seed} per-cell oracle", theta_r=oracle_theta_correlation(mdata, truth)))
        scores = {}
        for name, kwargs in MODELS.items():
            model, sec = fit(adata, None if name == "non-spatial" else kwargs, args.topics,
                             args.epochs, seed)
            theta = model.get_cell_topic_dist()
            scores[name] = (
                matched_theta_correlation(theta, truth.theta), domain_ari(theta, truth.domain)
            )
            print(row(f"seed {seed} {name}", theta_r=scores[name][0], domain_ari=scores[name][1],
                      s_per_epoch=sec), flush=True)
        base = scores["non-spatial"]
        for name in gains:
            gains[name].append((scores[name][0] - base[0], scores[name][1] - base[1]))
    for name, values in gains.items():
        dr, da = np.mean(values, axis=0)
        met = all(v[0] >= 0.05 and v[1] >= 0.05 for v in values)
        print(f"{name}: mean gain over non-spatial θ r {dr:+.3f}, domain ARI {da:+.3f} "
              f"(target >= +0.05 each, every seed: {'met' if met else 'NOT met'})")


def visium(args) -> None:
    import anndata as ad

    path = SHARED / "visium_dg_giotto" / "visium_dg.h5ad"
    if not path.exists():
        print(f"(skipped: {path} not found)")
        return
    adata = ad.read_h5ad(path)
    print(f"\n== Coherence: Visium dentate gyrus, {adata.n_obs} spots x {adata.n_vars} genes, "
          f"{args.visium_topics} topics, {args.visium_epochs} epochs; mean Moran's I of the "
          "topics over the 6-nearest-spot graph ==")
    gains = {name: [] for name in MODELS if name != "non-spatial"}
    for seed in args.seeds:
        means = {}
        for name, kwargs in MODELS.items():
            model, sec = fit(adata, None if name == "non-spatial" else kwargs,
                             args.visium_topics, args.visium_epochs, seed)
            coherence = model.get_spatial_coherence(graph="spatial")
            theta = model.get_cell_topic_dist()
            dominant = len(np.unique(theta.argmax(1)))
            means[name] = float(np.nanmean(coherence))
            print(row(f"seed {seed} {name}", mean_morans_i=means[name],
                      dominant_topics=dominant, s_per_epoch=sec), flush=True)
        for name in gains:
            gains[name].append(means[name] - means["non-spatial"])
    for name, values in gains.items():
        met = all(v >= 0.1 for v in values)
        print(f"{name}: mean Moran's I gain {np.mean(values):+.3f} "
              f"(target >= +0.1, every seed: {'met' if met else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["quality", "visium", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cells", type=int, default=3000)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--topics", type=int, default=8)
    parser.add_argument("--depth", type=float, default=200.0)
    parser.add_argument("--alpha", type=float, default=20.0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--visium-topics", type=int, default=6)
    parser.add_argument("--visium-epochs", type=int, default=200)
    parser.add_argument("--neighbour-weight", type=float, default=None,
                        help="plan_kwargs['neighbour_likelihood_weight'] (default: the model's)")
    args = parser.parse_args()
    if args.neighbour_weight is not None:
        PLAN["neighbour_likelihood_weight"] = args.neighbour_weight
    single_thread()
    quiet()
    print(machine())
    if args.part in ("quality", "all"):
        quality(args)
    if args.part in ("visium", "all"):
        visium(args)


if __name__ == "__main__":
    main()
