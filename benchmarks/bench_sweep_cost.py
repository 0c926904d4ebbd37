"""What a topic sweep costs against fitting each K by hand (issue 17, the timing target).

On the 5,000-cell three-modality simulated tissue (2,000 genes, 30 proteins, 3,000 peaks,
``simulate_tissue`` seed 0), ``sweep_topics`` fits K = 4, 6, 8, 10, 12, 16 with 2 seeds
(12 fits, defaults otherwise, held-out scoring included) once in this process
(``n_jobs=1``) and once in worker processes (``n_jobs=2``, one torch thread each). The
"by hand" baseline fits the same 12 models one after another in one process, on the same
fit cells (the sweep's 80 %), without any scoring. Every fit has one torch thread.

Prints ``sweep_1job_s=``, ``sweep_2jobs_s=``, ``by_hand_s=`` and the ratios
``sweep_1job_over_by_hand=`` and ``sweep_2jobs_over_by_hand=`` (target ≤ 1.2; on 2 cores
the parallel sweep should be faster than by hand).

Usage: ``python benchmarks/bench_sweep_cost.py [--cells 5000] [--epochs 30]``
"""

from __future__ import annotations

import argparse
import os
import time

from _common import machine, quiet, single_thread

KS = (4, 6, 8, 10, 12, 16)
SEEDS = (0, 1)
LIKELIHOODS = {"rna": "nb", "protein": "nb", "atac": "bernoulli"}


def by_hand(mdata, fit_cells, epochs: int) -> float:
    """Seconds to fit every (K, seed) one after another, as a user's loop would."""
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    subset = mdata[mdata.obs_names.isin(fit_cells)].copy()
    start = time.perf_counter()
    for k in KS:
        for seed in SEEDS:
            scvi.settings.seed = seed
            model = MultimodalAmortizedLDA.from_data(
                subset, likelihoods=[LIKELIHOODS[m] for m in subset.mod], n_topics=k
            )
            model.train(max_epochs=epochs, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False)
    return time.perf_counter() - start


def sweep(mdata, epochs: int, jobs: int):
    from napari_topomics.models import sweep_topics

    start = time.perf_counter()
    result = sweep_topics(mdata, KS, seeds=len(SEEDS), n_jobs=jobs, max_epochs=epochs,
                          likelihoods=[LIKELIHOODS[m] for m in mdata.mod])
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    single_thread()
    quiet()
    from napari_topomics.datasets import simulate_tissue

    mdata, _ = simulate_tissue(n_cells=args.cells, seed=0)
    print(f"# bench_sweep_cost: {args.cells} cells x "
          f"{sum(m.n_vars for m in mdata.mod.values())} features ({', '.join(mdata.mod)}), "
          f"K {list(KS)} x seeds {list(SEEDS)}, {args.epochs} epochs; {machine()}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    one, one_s = sweep(mdata, args.epochs, 1)
    print(f"sweep_1job_s={one_s:.1f}  (recommended K {one.recommended})", flush=True)
    _, two_s = sweep(mdata, args.epochs, 2)
    print(f"sweep_2jobs_s={two_s:.1f}", flush=True)
    hand_s = by_hand(mdata, one.fit_cells, args.epochs)
    print(f"by_hand_s={hand_s:.1f}")
    print(f"sweep_1job_over_by_hand={one_s / hand_s:.3f}")
    print(f"sweep_2jobs_over_by_hand={two_s / hand_s:.3f}")


if __name__ == "__main__":
    main()
