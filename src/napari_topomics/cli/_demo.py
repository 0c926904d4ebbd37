"""``napari-topomics demo``: the whole job on the bundled demo tissue."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_RUN = "demo"


def _demo_store(out: Path, seed: int) -> Path:
    """Write the demo tissue as a SpatialData store under ``out`` (once) and return it."""
    from ..datasets import demo

    store = out / "demo.zarr"
    if not store.exists():
        out.mkdir(parents=True, exist_ok=True)
        demo(seed=seed).write(store)
        print(f"Wrote the demo tissue to {store}", file=sys.stderr)
    return store


def _planted_recovery(sdata, results) -> float | None:
    """Matched correlation of the fitted topic proportions with the planted ones."""
    from ..metrics import matched_theta_correlation

    table = sdata.tables["table"]
    if "theta_true" not in table.obsm:
        return None
    truth = table.obsm["theta_true"]
    fitted = results.proportions.loc[table.obs_names.astype(str)].to_numpy()
    return float(matched_theta_correlation(fitted, truth))


def run_demo(args: argparse.Namespace) -> int:
    """Run ``demo``; returns the exit status."""
    from ..io._read import read_tissue
    from ..io._store import write_run
    from ._fit_command import config_from_args, print_summary, train_with_progress
    from ._report_command import write_store_report

    out = Path(args.out)
    store = _demo_store(out, args.seed)
    sdata = read_tissue(store)
    config = config_from_args(args, run_name=DEMO_RUN)
    outcome = train_with_progress(sdata, config, quiet=args.quiet, source_label=str(store))
    if outcome.stopped:
        print("Training stopped on request; nothing was written.", file=sys.stderr)
        return 130
    write_run(store, outcome.results, model=outcome.model, overwrite=True)
    print_summary(outcome.results)
    recovery = _planted_recovery(sdata, outcome.results)
    if recovery is not None:
        print(f"\nPlanted topics recovered: matched correlation of cell-topic proportions "
              f"r = {recovery:.3f} (1 is perfect).")
    index = write_store_report(store, DEMO_RUN, out / "report")
    print(f"\nStore: {store}\nReport: {index}")
    return 0
