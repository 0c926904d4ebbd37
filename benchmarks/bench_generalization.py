"""Topics on tissues we never tuned to: the simulator family and the real sets (issue 16).

For every member of the simulator family (``napari_topomics.datasets.GENERATORS``) and seed it
prints, on the same data in one run and one CPU thread: ours with defaults (every modality),
ours spatial (GCN over the coordinates' 6-NN graph), scvi-tools AmortizedLDA on the RNA (its
default lr and 1e-2), scikit-learn's online LDA on the RNA, and the oracle ceiling: matched θ
correlation, marker average precision per modality, mean per-cell maximum of θ beside the
truth's, and the domain ARI (k-means of θ against the true domains). Then, per generator, the
median over seeds, and the spatial model's gain over the non-spatial one.

On the real sets in ``../shared/data`` (``--real``; ``--real-sets`` picks among ``visium``,
``dg`` for the dentate-gyrus spots and ``pbmc``) it prints ours, ours spatial (spots) and
scikit-learn's LDA: the mean Moran's I of the topics, the fraction of topics above 0.5 in some
spot, and (CITE-seq) the ARI of each cell's dominant topic against k-means clusters of the
CLR protein counts that no model sees.

Usage::

    python benchmarks/bench_generalization.py                       # family, seeds 0-2
    python benchmarks/bench_generalization.py --generators mixed mixed_flat --seeds 3 4
    python benchmarks/bench_generalization.py --real --no-family
    python benchmarks/bench_generalization.py --quick                # 1,500 cells, 1 seed
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np

from _common import machine, quiet, row, single_thread

LIKELIHOODS = {"rna": "nb", "protein": "nb", "atac": "bernoulli"}
#: ``--prior``: the opt-in learned neighbourhood prior in place of the neighbourhood likelihood.
PRIOR = {"neighbourhood_prior": True}


def domain_ari(theta: np.ndarray, domain: np.ndarray) -> float:
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    k = len(np.unique(domain))
    labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(theta)
    return float(adjusted_rand_score(domain, labels))


def score(theta: np.ndarray, phis: dict, truth) -> dict:
    from napari_topomics.metrics import (
        marker_average_precision,
        match_topics,
        matched_theta_correlation,
    )

    out = {"theta_r": matched_theta_correlation(theta, truth.theta)}
    matching = match_topics(theta, truth.theta)
    for name, phi in phis.items():
        out[f"AP_{name}"] = marker_average_precision(phi, truth.markers[name], matching)
    out["max_theta"] = float(theta.max(axis=1).mean())
    out["domain_ari"] = domain_ari(theta, truth.domain)
    return out


def fit_ours(mdata, modalities, n_topics, epochs, seed, spatial=False, plan_kwargs=None) -> dict:
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = seed
    data = {m: mdata.mod[m] for m in modalities}
    kwargs = {"spatial_keys": "spatial"} if spatial else {}
    model = MultimodalAmortizedLDA.from_data(
        data, n_topics=n_topics, likelihoods=[LIKELIHOODS[m] for m in modalities], **kwargs
    )
    start = time.perf_counter()
    model.train(max_epochs=epochs, batch_size=128, enable_progress_bar=False,
                plan_kwargs=plan_kwargs)
    seconds = time.perf_counter() - start
    phis = {m: model.get_feature_topic_dist(m).to_numpy() for m in modalities}
    return {"theta": model.get_cell_topic_dist(), "phis": phis, "s_per_epoch": seconds / epochs}


def fit_scvi(rna, n_topics, epochs, lr, seed) -> dict:
    import scvi

    scvi.settings.seed = seed
    adata = rna.copy()
    scvi.model.AmortizedLDA.setup_anndata(adata)
    model = scvi.model.AmortizedLDA(adata, n_topics=n_topics)
    start = time.perf_counter()
    model.train(max_epochs=epochs, batch_size=128, lr=lr, enable_progress_bar=False)
    seconds = time.perf_counter() - start
    theta = model.get_latent_representation(n_samples=1000).to_numpy()
    phi = model.get_feature_by_topic(n_samples=1000).to_numpy()
    return {"theta": theta, "phis": {"rna": phi}, "s_per_epoch": seconds / epochs}


def fit_sklearn(x, n_topics, epochs, seed) -> dict:
    from sklearn.decomposition import LatentDirichletAllocation

    lda = LatentDirichletAllocation(
        n_components=n_topics, learning_method="online", batch_size=128, max_iter=epochs,
        random_state=seed,
    )
    start = time.perf_counter()
    doc_topic = lda.fit_transform(x)
    seconds = time.perf_counter() - start
    theta = doc_topic / doc_topic.sum(1, keepdims=True)
    phi = (lda.components_ / lda.components_.sum(1, keepdims=True)).T
    return {"theta": theta, "phis": {"rna": phi}, "s_per_epoch": seconds / epochs}


def family(args) -> None:
    from napari_topomics.datasets import GENERATORS, simulate_family
    from napari_topomics.metrics import oracle_theta_correlation

    modalities = tuple(args.modalities.split(","))
    medians: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for name in args.generators:
        gen = GENERATORS[name]
        k_fit = gen.fit_topics(args.topics)
        print(f"\n== {name}: {gen.description}; {args.cells} cells, true K {args.topics}, "
              f"fitted K {k_fit}, {args.epochs} epochs ==", flush=True)
        for seed in args.seeds:
            mdata, truth = simulate_family(name, n_cells=args.cells, n_topics=args.topics,
                                           seed=seed)
            print(row(f"{name} s{seed} truth", max_theta=float(truth.theta.max(1).mean()),
                      oracle_theta_r=oracle_theta_correlation(mdata, truth)), flush=True)
            for label, res in _simulated_fits(mdata, modalities, k_fit, seed, args):
                values = score(res["theta"], res["phis"], truth)
                medians[(name, label)].append(values)
                print(row(f"{name} s{seed} {label}", **values, s_per_epoch=res["s_per_epoch"]),
                      flush=True)
    print("\n== medians over seeds ==")
    for (name, label), runs in medians.items():
        keys = runs[0].keys()
        print(row(f"{name} {label}", **{k: float(np.median([r[k] for r in runs])) for k in keys}))
    print("\n== spatial gain over non-spatial (every seed) ==")
    labels = ["ours spatial", *(["ours spatial prior"] if args.prior else [])]
    for name in args.generators:
        base = medians[(name, "ours")]
        for label in labels:
            spatial = medians[(name, label)]
            d_r = [s["theta_r"] - b["theta_r"] for s, b in zip(spatial, base, strict=True)]
            d_a = [s["domain_ari"] - b["domain_ari"]
                   for s, b in zip(spatial, base, strict=True)]
            print(row(f"{name} {label}", theta_r_gain_min=float(min(d_r)),
                      theta_r_gain_median=float(np.median(d_r)),
                      domain_ari_gain_median=float(np.median(d_a))))


def _simulated_fits(mdata, modalities, k_fit, seed, args):
    """``(label, result)`` of every contender on one simulated tissue, fitted in turn."""
    yield "ours", fit_ours(mdata, modalities, k_fit, args.epochs, seed)
    yield "ours spatial", fit_ours(mdata, modalities, k_fit, args.epochs, seed, spatial=True)
    if args.prior:
        yield "ours spatial prior", fit_ours(mdata, modalities, k_fit, args.epochs, seed,
                                             spatial=True, plan_kwargs=PRIOR)
    if args.skip_peers:
        return
    rna = mdata.mod["rna"]
    yield "scvi lr 1e-3", fit_scvi(rna, k_fit, args.epochs, None, seed)
    yield "scvi lr 1e-2", fit_scvi(rna, k_fit, args.epochs, 1e-2, seed)
    yield "sklearn LDA", fit_sklearn(rna.X, k_fit, args.epochs, seed)


def real(args) -> None:
    from sklearn.metrics import adjusted_rand_score

    from bench_real import load_dentate_gyrus, load_pbmc, load_visium
    from napari_topomics.metrics import morans_i

    def used(theta) -> float:
        return float((theta.max(axis=0) > 0.5).mean())

    spot_sets = {"visium": ("Visium mouse brain", load_visium),
                 "dg": ("Visium dentate gyrus", load_dentate_gyrus)}
    for key, (title, load) in spot_sets.items():
        if key not in args.real_sets:
            continue
        adata, graph = load()
        print(f"\n== {title}, {adata.n_obs} spots x {adata.n_vars} genes, 8 topics ==")
        for seed in args.seeds:
            for label, theta in _real_fits(adata, 8, seed, args, spatial=True):
                moran = float(np.mean(morans_i(theta, graph)))
                print(row(f"{key} s{seed} {label}", mean_morans_I=moran,
                          topics_above_half=used(theta)), flush=True)
    if "pbmc" not in args.real_sets:
        return
    rna, clusters = load_pbmc()
    print("\n== CITE-seq PBMC, RNA topics against protein clusters, 6 topics ==")
    for seed in args.seeds:
        for label, theta in _real_fits(rna, 6, seed, args, spatial=False):
            print(row(f"pbmc s{seed} {label}", ARI_vs_protein=float(
                adjusted_rand_score(clusters, theta.argmax(1))), topics_above_half=used(theta)),
                flush=True)


def _real_fits(adata, n_topics, seed, args, spatial):
    import scvi

    from bench_real import fit_sklearn as sklearn_batch
    from napari_topomics.models import MultimodalAmortizedLDA

    variants = [("ours", {})]
    if spatial:
        variants.append(("ours spatial", {"spatial_keys": "spatial"}))
        if args.prior:
            variants.append(("ours spatial prior", {"spatial_keys": "spatial"}))
    for label, kwargs in variants:
        scvi.settings.seed = seed
        model = MultimodalAmortizedLDA.from_data(adata.copy(), n_topics=n_topics, **kwargs)
        model.train(max_epochs=args.real_epochs, enable_progress_bar=False,
                    plan_kwargs=PRIOR if label.endswith("prior") else None)
        yield label, model.get_cell_topic_dist()
    yield "sklearn LDA", sklearn_batch(adata, n_topics, seed)


def main() -> None:
    from napari_topomics.datasets import GENERATORS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS),
                        choices=list(GENERATORS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--topics", type=int, default=8, help="true number of topics")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--real-epochs", type=int, default=200)
    parser.add_argument("--modalities", default="rna,protein,atac")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--prior", action="store_true",
                        help="also fit the spatial model with the learned neighbourhood prior")
    parser.add_argument("--real", action="store_true", help="also run the real sets")
    parser.add_argument("--real-sets", nargs="+", default=["visium", "dg", "pbmc"],
                        choices=["visium", "dg", "pbmc"], help="which real sets --real runs")
    parser.add_argument("--no-family", action="store_true", help="skip the simulated family")
    parser.add_argument("--quick", action="store_true", help="1,500 cells, seed 0, 40 epochs")
    args = parser.parse_args()
    if args.quick:
        args.cells, args.seeds, args.epochs, args.real_epochs = 1500, [0], 40, 40
    single_thread()
    quiet()
    print(f"# bench_generalization: seeds {args.seeds}; {machine()}")
    if not args.no_family:
        family(args)
    if args.real:
        real(args)


if __name__ == "__main__":
    main()
