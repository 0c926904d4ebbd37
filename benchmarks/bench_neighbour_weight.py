"""Can held-out counts choose the spatial neighbourhood weight? (issue 16 item 4, a probe).

Every cell's counts are split binomially into two halves (data thinning: for Poisson counts
the halves are independent). Each candidate — the non-spatial model and the spatial GCN
model with neighbour-likelihood weight λ in ``--weights`` — is fitted on the first half;
it is scored by the multinomial log-likelihood per count of the second half under its
``θ φᵀ`` (counts it never saw), and by θ r against the truth. If the held-out score ranks
the candidates as θ r does, λ can be validated on the user's data instead of fixed.

Tissues: issue 6's (cells close to their domain's mean mixture, ~200 counts) and members
of the simulator family, RNA only.

Usage::

    python benchmarks/bench_neighbour_weight.py --seeds 0          # the seed the rule is read on
    python benchmarks/bench_neighbour_weight.py --seeds 5          # judged
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import machine, quiet, row, single_thread

TISSUES = ("issue6", "one_topic", "mixed", "shallow_mixed")


def tissue(name: str, n_cells: int, seed: int):
    """RNA AnnData with ``obsm['spatial']`` and its truth."""
    from napari_topomics.datasets import simulate_family, simulate_tissue

    if name == "issue6":
        mdata, truth = simulate_tissue(n_cells=n_cells, n_topics=8, n_genes=1000, n_proteins=0,
                                       n_peaks=0, rna_depth=200, dirichlet_alpha=20, seed=seed)
        adata = mdata.mod["rna"].copy()
        adata.obsm["spatial"] = truth.coords
        return adata, truth
    mdata, truth = simulate_family(name, n_cells=n_cells, n_genes=1000, n_proteins=0,
                                   n_peaks=0, seed=seed)
    return mdata.mod["rna"].copy(), truth


def thin(adata, seed: int):
    """``(first half as AnnData, second half as a dense count array)``."""
    import scipy.sparse as sp

    x = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    x = np.rint(x).astype(np.int64)
    first = np.random.default_rng(seed).binomial(x, 0.5)
    half = adata.copy()
    half.X = sp.csr_matrix(first.astype(np.float32))
    return half, x - first


def main() -> None:
    import scvi

    from napari_topomics.metrics import matched_theta_correlation
    from napari_topomics.models import MultimodalAmortizedLDA

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tissues", nargs="+", default=list(TISSUES), choices=TISSUES)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--cells", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 2.0, 6.0])
    args = parser.parse_args()
    single_thread()
    quiet()
    print(f"# bench_neighbour_weight: {args.cells} cells, 8 topics, {args.epochs} epochs; "
          f"{machine()}")
    candidates = [("non-spatial", None)] + [(f"lambda {w:g}", w) for w in args.weights]
    for seed in args.seeds:
        for name in args.tissues:
            adata, truth = tissue(name, args.cells, seed)
            half, held_out = thin(adata, seed + 1000)
            scores = {}
            for label, weight in candidates:
                scvi.settings.seed = seed
                spatial = {} if weight is None else {"spatial_keys": "spatial"}
                model = MultimodalAmortizedLDA.from_data(half.copy(), n_topics=8,
                                                         likelihoods=["nb"], **spatial)
                start = time.perf_counter()
                model.train(max_epochs=args.epochs, batch_size=128, enable_progress_bar=False,
                            plan_kwargs=None if weight is None
                            else {"neighbour_likelihood_weight": weight})
                theta = model.get_cell_topic_dist()
                phi = model.get_feature_topic_dist("rna").to_numpy()
                rate = np.clip(theta @ phi.T, 1e-12, None)
                score = float((held_out * np.log(rate)).sum() / held_out.sum())
                scores[label] = (score, matched_theta_correlation(theta, truth.theta))
                print(row(f"{name} s{seed} {label}", heldout_ll_per_count=score,
                          theta_r=scores[label][1], seconds=time.perf_counter() - start),
                      flush=True)
            chosen = max(scores, key=lambda k: scores[k][0])
            best = max(scores, key=lambda k: scores[k][1])
            print(row(f"{name} s{seed} chosen={chosen!r} best={best!r}",
                      theta_r_chosen=scores[chosen][1],
                      theta_r_vs_non_spatial=scores[chosen][1] - scores["non-spatial"][1]),
                  flush=True)


if __name__ == "__main__":
    main()
