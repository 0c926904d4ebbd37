"""``napari-topomics report``: figures and an index page for a run in a store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def write_store_report(store: Path, run: str | None, out: Path | None, n_top: int = 10) -> Path:
    """Write the report of ``run`` (default: the store's only run); returns index.html."""
    from ..io._errors import TopomicsInputError
    from ..io._read import read_tissue
    from ..io._store import list_runs, read_run
    from ..report import labels_raster, write_report

    sdata = read_tissue(store)
    runs = list_runs(sdata)
    if run is None:
        if len(runs) != 1:
            listed = ", ".join(runs) if runs else "none"
            raise TopomicsInputError(
                f"Store {store} holds {len(runs)} runs ({listed}); choose one with --run."
            )
        run = runs[0]
    results = read_run(sdata, run)
    labels = None
    if results.region is not None and results.region in sdata.labels:
        labels = labels_raster(sdata, results.region)
    out = out if out is not None else Path.cwd() / f"{Path(store).stem}_{run}_report"
    return write_report(results, out, labels=labels, title=f"Topics of run '{run}' in {store}",
                        n_top=n_top)


def run_report(args: argparse.Namespace) -> int:
    """Run ``report``; returns the exit status."""
    index = write_store_report(
        Path(args.store), args.run, Path(args.out) if args.out else None, n_top=args.top
    )
    print(f"Report written: {index}", file=sys.stderr)
    print(index)
    return 0
