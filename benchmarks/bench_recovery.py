"""Quality and speed on the simulated 5,000-cell tissue (issue 3 targets).

Prints, for the same data in one run and one CPU thread: matched θ correlation, marker
average precision per modality and seconds per epoch of our model (three modalities for
several training seeds, and RNA alone; default settings), scvi-tools' AmortizedLDA on the
RNA (default lr and 1e-2), scikit-learn's LDA on the RNA, and the oracle ceiling; a rerun
with the same seed; and the query times of ``get_cell_topic_dist`` /
``get_feature_topic_dist``.

The protein counts are simulated negative binomial (with an ambient floor), so our model
fits them with ``likelihoods=["nb", "nb", "bernoulli"]``, everything else at its default.
The row "inferred likelihoods" leaves the likelihoods to the model, which gives a protein
modality the contract's multinomial (spec §4.8): on these over-dispersed counts it is
over-confident and pulls θ away from what the RNA says (see docs/benchmarks.md).

Usage: ``python benchmarks/bench_recovery.py [--cells 5000] [--epochs 100] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import machine, quiet, row, single_thread, timer

MODALITIES = ("rna", "protein", "atac")
SIMULATED_LIKELIHOODS = {"rna": "nb", "protein": "nb", "atac": "bernoulli"}


def score(theta, phis, truth) -> dict:
    from napari_topomics.metrics import (
        marker_average_precision,
        match_topics,
        matched_theta_correlation,
    )

    out = {"theta_r": matched_theta_correlation(theta, truth.theta)}
    matching = match_topics(theta, truth.theta)
    for name, phi in phis.items():
        out[f"AP_{name}"] = marker_average_precision(phi, truth.markers[name], matching)
    return out


def fit_ours(
    mdata, n_topics, epochs, modalities=MODALITIES, seed=0, infer_likelihoods=False
) -> tuple[dict, object]:
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = seed
    data = {m: mdata.mod[m] for m in modalities}
    likelihoods = None if infer_likelihoods else [SIMULATED_LIKELIHOODS[m] for m in modalities]
    model = MultimodalAmortizedLDA.from_data(data, n_topics=n_topics, likelihoods=likelihoods)
    times: dict = {}
    with timer(times, "train"):
        model.train(max_epochs=epochs, batch_size=128, enable_progress_bar=False)
    with timer(times, "theta_query"):
        theta = model.get_cell_topic_dist()
    with timer(times, "phi_query"):
        phis = {m: model.get_feature_topic_dist(m).to_numpy() for m in modalities}
    return {"theta": theta, "phis": phis, "s_per_epoch": times["train"] / epochs,
            "theta_query_s": times["theta_query"], "phi_query_s": times["phi_query"]}, model


def fit_scvi(rna, n_topics, epochs, lr) -> dict:
    import scvi

    from napari_topomics.models._heap import retained_heap

    scvi.settings.seed = 0
    adata = rna.copy()
    scvi.model.AmortizedLDA.setup_anndata(adata)
    model = scvi.model.AmortizedLDA(adata, n_topics=n_topics)
    start = time.perf_counter()
    with retained_heap():  # the allocator settings our training uses, for a fair timing
        model.train(max_epochs=epochs, batch_size=128, lr=lr, enable_progress_bar=False)
    elapsed = time.perf_counter() - start
    theta = model.get_latent_representation(n_samples=1000).to_numpy()
    phi = model.get_feature_by_topic(n_samples=1000).to_numpy()
    return {"theta": theta, "phis": {"rna": phi}, "s_per_epoch": elapsed / epochs}


def fit_sklearn(rna, n_topics, epochs) -> dict:
    from sklearn.decomposition import LatentDirichletAllocation

    lda = LatentDirichletAllocation(
        n_components=n_topics, learning_method="online", batch_size=128, max_iter=epochs,
        random_state=0,
    )
    start = time.perf_counter()
    doc_topic = lda.fit_transform(rna.X)
    elapsed = time.perf_counter() - start
    theta = doc_topic / doc_topic.sum(1, keepdims=True)
    phi = (lda.components_ / lda.components_.sum(1, keepdims=True)).T
    return {"theta": theta, "phis": {"rna": phi}, "s_per_epoch": elapsed / epochs}


def paired_speed(mdata, n_topics, rounds: int, epochs: int) -> dict[str, list[float]]:
    """Seconds per epoch of scvi (RNA), ours (3 modalities) and ours (RNA), interleaved.

    The host's speed drifts by +-20 % from minute to minute, so one long run of each
    contender compares different machines. Here every round trains each contender for
    ``epochs`` more epochs, one after the other; the ratios are taken within a round.
    Every contender trains once first (our k-means start happens there) and every one
    trains with the same allocator settings (:func:`retained_heap`).
    """
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA
    from napari_topomics.models._heap import retained_heap

    adata = mdata.mod["rna"].copy()
    scvi.model.AmortizedLDA.setup_anndata(adata)
    contenders = {
        "scvi": scvi.model.AmortizedLDA(adata, n_topics=n_topics),
        "ours_3mod": MultimodalAmortizedLDA.from_data(
            {m: mdata.mod[m] for m in MODALITIES}, n_topics=n_topics,
            likelihoods=[SIMULATED_LIKELIHOODS[m] for m in MODALITIES],
        ),
        "ours_rna": MultimodalAmortizedLDA.from_data(
            {"rna": mdata.mod["rna"]}, n_topics=n_topics, likelihoods=["nb"]
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for round_ in range(rounds + 1):
        for name, model in contenders.items():
            start = time.perf_counter()
            with retained_heap():
                model.train(max_epochs=epochs, batch_size=128, enable_progress_bar=False)
            if round_ > 0:  # round 0 is the warm-up
                seconds[name].append((time.perf_counter() - start) / epochs)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--topics", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds of our three-modality model")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--speed-rounds", type=int, default=8,
                        help="interleaved speed rounds (0 skips the paired timing)")
    parser.add_argument("--speed-epochs", type=int, default=3,
                        help="epochs per contender and speed round")
    args = parser.parse_args()
    single_thread()
    quiet()
    from napari_topomics.datasets import simulate_tissue
    from napari_topomics.metrics import oracle_theta_correlation

    mdata, truth = simulate_tissue(n_cells=args.cells, n_topics=args.topics, seed=0)
    print(f"# bench_recovery: {args.cells} cells, K={args.topics}, {args.epochs} epochs, "
          f"batch 128; {machine()}")
    print(row("oracle (true topic matrices)",
              theta_r=oracle_theta_correlation(mdata, truth)))
    results = {}
    ours, model = fit_ours(mdata, args.topics, args.epochs, seed=args.seeds[0])
    results[f"ours (rna+protein+atac) seed {args.seeds[0]}"] = ours
    rerun, _ = fit_ours(mdata, args.topics, args.epochs, seed=args.seeds[0])
    same = np.array_equal(rerun["theta"], ours["theta"])
    results[f"ours rerun (seed {args.seeds[0]})"] = rerun
    for seed in args.seeds[1:]:
        results[f"ours (rna+protein+atac) seed {seed}"], _ = fit_ours(
            mdata, args.topics, args.epochs, seed=seed
        )
    results["ours, inferred likelihoods (protein multinomial)"], _ = fit_ours(
        mdata, args.topics, args.epochs, infer_likelihoods=True
    )
    results["ours (rna only)"], _ = fit_ours(mdata, args.topics, args.epochs, ("rna",))
    rna = mdata.mod["rna"]
    if not args.skip_peers:
        results["scvi AmortizedLDA rna (lr 1e-3)"] = fit_scvi(rna, args.topics, args.epochs,
                                                              None)
        results["scvi AmortizedLDA rna (lr 1e-2)"] = fit_scvi(rna, args.topics, args.epochs,
                                                              1e-2)
        results["sklearn LDA rna (online)"] = fit_sklearn(rna, args.topics, args.epochs)
    for label, res in results.items():
        print(row(label, **score(res["theta"], res["phis"], truth),
                  s_per_epoch=res["s_per_epoch"]))
    print(row("rerun identical theta", identical=same))
    print(row("query times (default args)", cell_topic_s=ours["theta_query_s"],
              feature_topic_s=ours["phi_query_s"]))
    if not args.skip_peers:
        base = results["scvi AmortizedLDA rna (lr 1e-3)"]["s_per_epoch"]
        print(row("speed ratio vs scvi rna",
                  ours_3mod=ours["s_per_epoch"] / base,
                  ours_rna=results["ours (rna only)"]["s_per_epoch"] / base))
    if args.speed_rounds > 0:
        sec = paired_speed(mdata, args.topics, args.speed_rounds, args.speed_epochs)
        for name, values in sec.items():
            print(row(f"interleaved s/epoch {name}", median=float(np.median(values)),
                      rounds=" ".join(f"{v:.3f}" for v in values)))
        for name in ("ours_3mod", "ours_rna"):
            ratios = np.array(sec[name]) / np.array(sec["scvi"])
            print(row(f"interleaved ratio {name}/scvi", median=float(np.median(ratios)),
                      worst=float(ratios.max()),
                      rounds=" ".join(f"{r:.3f}" for r in ratios)))
    weights = model.get_modality_weights().mean()
    print(row("mean modality weights", **{k: float(v) for k, v in weights.items()}))


if __name__ == "__main__":
    main()
