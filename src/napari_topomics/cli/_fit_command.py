"""``napari-topomics fit``: fit a store or vendor folder and write the run into a store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io._results_spatial import coherence_line
from ..models._distributed import is_global_zero
from ..workflow import FitConfig
from ._args import parse_modalities, parse_pairs
from ._progress_bar import ProgressBar, StopRequest, stop_on_interrupt


def config_from_args(args: argparse.Namespace, **overrides) -> FitConfig:
    """The :class:`FitConfig` the command-line options describe."""
    values = dict(
        likelihoods=parse_pairs(args.likelihood, "--likelihood"),
        n_topics=args.topics,
        n_epochs=args.epochs,
        batch_size=args.batch_size,
        spatial=args.spatial,
        spatial_mode=args.spatial_mode,
        graph=args.graph,
        n_neighbors=args.neighbors,
        radius=args.radius,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        n_top=args.top,
    )
    for name in ("devices", "strategy", "num_nodes", "distributed_timeout"):
        if hasattr(args, name):  # fit only (not sweep or demo)
            values[name] = getattr(args, name)
    values.update(overrides)
    return FitConfig(**values)


def train_with_progress(sdata, config: FitConfig, *, quiet: bool, source_label: str | None):
    """Fit with a progress bar; the first Ctrl-C stops after the current minibatch."""
    from ..workflow import fit_tissue

    bar = ProgressBar(description=f"fitting {config.n_topics} topics", disable=quiet)
    with stop_on_interrupt(StopRequest()) as request:
        try:
            outcome = fit_tissue(
                sdata, config, on_progress=bar, should_stop=request, source_label=source_label
            )
        finally:
            bar.close()
    return outcome


def print_summary(results, n_show: int = 5) -> None:
    """Top features of each topic in every modality and the mean modality weights."""
    print(f"\n{results.n_topics} topics over {len(results.proportions)} cells.")
    for modality, frame in results.top_features.items():
        print(f"\nTop {modality} features per topic:")
        for topic, rows in frame.groupby("topic", sort=False):
            names = rows.sort_values("rank")["feature"].head(n_show)
            share = float((results.dominant_topic == topic).mean())
            print(f"  {topic} (dominant in {share:.0%} of cells): {', '.join(map(str, names))}")
    print("\nMean modality weight per cell:")
    for name, value in results.modality_weights.mean().items():
        print(f"  {name}: {value:.3f}")
    print(f"\n{coherence_line(results)}")


def choose_topics(sdata, path: Path, config: FitConfig, n_topics: list[int], args) -> int | None:
    """``--topics auto``: sweep ``n_topics``, report it, and return the recommended K.

    The sweep's table and figure go to ``<--report>/sweep`` (or ``./<store>_sweep``).
    ``None`` when the sweep was stopped (nothing is fitted or written then).
    """
    from ..workflow import sweep_tissue
    from ._sweep_command import SweepProgressBar, range_error, report_sweep

    label = f"sweeping K {n_topics[0]}..{n_topics[-1]} x {args.seeds} seeds"
    bar = SweepProgressBar(label, disable=args.quiet)
    with stop_on_interrupt(StopRequest()) as request:
        try:
            sweep, _ = sweep_tissue(sdata, config, n_topics, seeds=args.seeds,
                                    n_jobs=args.jobs, progress=bar, should_stop=request,
                                    source_label=str(path))
        except ValueError as err:
            raise range_error(err, "--sweep-topics") from None
        finally:
            bar.close()
    if sweep.stopped or sweep.recommended is None:
        why = "stopped on request" if sweep.stopped else "gave no recommendation (--seeds 2)"
        print(f"The topic sweep {why}; nothing was fitted or written.", file=sys.stderr)
        return None
    out = Path(args.report) / "sweep" if args.report else Path.cwd() / f"{path.stem}_sweep"
    report_sweep(sweep, out)
    print(f"Fitting the recommended {sweep.recommended} topics on every cell.",
          file=sys.stderr)
    return sweep.recommended


def _check_lazy_fit(kind: str, auto: bool) -> None:
    from ..io._errors import TopomicsInputError

    if kind != "spatialdata":
        raise TopomicsInputError(
            f"--lazy reads a SpatialData zarr store, and this is a {kind} folder: convert "
            "it once (napari-topomics fit without --lazy writes the store), then fit the "
            "store with --lazy."
        )
    if auto:
        raise TopomicsInputError(
            "--topics auto runs a sweep, which reads the table into memory: run "
            "'napari-topomics sweep' first, then fit the chosen --topics with --lazy."
        )


def run_fit(args: argparse.Namespace) -> int:
    """Run ``fit``; returns the exit status."""
    from ..io._destination import check_run_destination
    from ..io._read import detect_source, read_tissue
    from ..io._store import write_run

    auto = args.topics == "auto"
    if auto:
        from ._args import parse_topic_range
        from ._sweep_command import check_sweep_options

        sweep_range = parse_topic_range(args.sweep_topics, "--sweep-topics")
        check_sweep_options(args.seeds, args.jobs)
    config = config_from_args(
        args,
        n_topics=2 if auto else args.topics,
        table=args.table,
        element=args.element,
        coordinate_system=args.coordinate_system,
        modalities=parse_modalities(args.modalities),
        modality_key=args.modality_key,
        layers=parse_pairs(args.layer, "--layer"),
        mudata=args.mudata,
        run_name=args.run_name,
        lazy=args.lazy,
    )
    config.validate()
    if auto and config.distributed_kwargs():
        from ..io._errors import TopomicsInputError

        # every rank re-runs this command: the sweep would run once per process
        raise TopomicsInputError(
            "--topics auto cannot be combined with --devices/--num-nodes above 1: run "
            "'napari-topomics sweep' first, then fit the chosen --topics with --devices."
        )
    path = Path(args.path)
    kind = detect_source(path)
    if kind == "spatialdata":
        if args.output is not None:
            print("note: --output is ignored for a SpatialData store; the run is written "
                  "into the store itself.", file=sys.stderr)
        store = path
    else:
        store = Path(args.output) if args.output else Path.cwd() / f"{path.name}.zarr"
    check_run_destination(store, config.run_name, overwrite=args.overwrite)
    if config.lazy:  # the table's matrix stays on disk; fit_tissue opens the store itself
        _check_lazy_fit(kind, auto)
        sdata = path
        print(f"Opened {path} lazily: the table's matrix is read from disk.", file=sys.stderr)
    else:
        sdata = read_tissue(path)
        print(f"Read {kind} data from {path}.", file=sys.stderr)
    if auto:
        config.n_topics = choose_topics(sdata, path, config, sweep_range, args)
        if config.n_topics is None:
            return 130
    follower = bool(config.distributed_kwargs()) and not is_global_zero()
    outcome = train_with_progress(sdata, config, quiet=args.quiet or follower,
                                  source_label=str(path))
    if follower:  # another process of a distributed fit: rank 0 writes the run
        return 0
    if outcome.stopped:
        print("Training stopped on request; nothing was written (the store is unchanged).",
              file=sys.stderr)
        return 130
    if kind != "spatialdata" and not store.exists():
        sdata.write(store)
        print(f"Wrote the {kind} data as a SpatialData store: {store}", file=sys.stderr)
    table = write_run(store, outcome.results, model=outcome.model, overwrite=args.overwrite)
    print_summary(outcome.results)
    print(f"\nWrote run '{config.run_name}' into {store} (table '{table}').")
    if args.report:
        from ._report_command import write_store_report

        index = write_store_report(store, config.run_name, Path(args.report))
        print(f"Report: {index}")
    return 0
