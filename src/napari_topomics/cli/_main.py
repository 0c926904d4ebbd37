"""Entry point of the ``napari-topomics`` command (also installed as ``topomics``)."""

from __future__ import annotations

import argparse
import os
import sys

from ..workflow._device import DEVICE_CHOICES
from ..workflow._spatial import GRAPH_CHOICES, SPATIAL_MODE_CHOICES
from ._args import fit_topics

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _add_fit_options(
    parser: argparse.ArgumentParser, *, topics: int | str, epochs: int, topics_type=int,
    topics_help: str = "number of topics",
) -> None:
    model = parser.add_argument_group("model")
    model.add_argument("--topics", type=topics_type, default=topics,
                       help=f"{topics_help} (default {topics})")
    model.add_argument("--epochs", type=int, default=epochs,
                       help=f"training epochs (default {epochs})")
    model.add_argument("--batch-size", type=int, default=128,
                       help="cells per minibatch (default 128)")
    model.add_argument("--likelihood", action="append", metavar="MOD=LIK",
                       help="likelihood of a modality: multinomial, nb, bernoulli or gaussian "
                            "(repeatable; default: inferred from the data)")
    spatial = parser.add_argument_group("spatial")
    spatial.add_argument("--spatial", action=argparse.BooleanOptionalAction, default=False,
                         help="fit the spatial model, whose encoders also read each cell's "
                              "neighbours in the cell graph (default: off)")
    spatial.add_argument("--spatial-mode", choices=SPATIAL_MODE_CHOICES, default="gcn",
                         help="how the spatial model reads neighbours: gcn (graph "
                              "convolutions over sampled neighbourhoods) or sgc (features "
                              "smoothed over the graph once) (default gcn)")
    spatial.add_argument("--graph", choices=GRAPH_CHOICES, default="knn",
                         help="cell graph built from the cell centroids, used by --spatial "
                              "and to measure every run's spatial coherence (Moran's I): "
                              "knn (nearest neighbours), radius (cells closer than --radius) "
                              "or delaunay (triangulation) (default knn)")
    spatial.add_argument("--neighbors", type=int, default=6, metavar="N",
                         help="neighbours per cell of the knn graph (default 6)")
    spatial.add_argument("--radius", type=float, default=None, metavar="R",
                         help="neighbour distance of the radius graph, in units of the "
                              "coordinate system (required with --graph radius)")
    run = parser.add_argument_group("run")
    run.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                     help="training device (default auto: cuda, then mps, then cpu)")
    run.add_argument("--threads", type=int, default=None,
                     help="CPU threads for torch (default: half the cores, 1 to 4)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--top", type=int, default=20,
                     help="top features kept per topic and modality (default 20)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_distributed_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distributed training (docs/distributed.md)")
    group.add_argument("--devices", default=1, metavar="N",
                       help="training processes per node: CPU processes (gloo) or GPUs "
                            "(NCCL); N > 1 trains with DDP (default 1)")
    group.add_argument("--strategy", default="auto", metavar="NAME",
                       help="auto (DDP when --devices or --num-nodes > 1) or ddp "
                            "(default auto)")
    group.add_argument("--num-nodes", default=1, metavar="M",
                       help="machines taking part, each running this command with its "
                            "NODE_RANK (default 1)")
    group.add_argument("--distributed-timeout", default=600.0, type=float, metavar="S",
                       help="seconds a process waits for the others before the fit fails "
                            "(default 600)")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path",
                        help="SpatialData zarr store, or a vendor folder (Visium, Xenium...)")
    data = parser.add_argument_group("data")
    data.add_argument("--table", help="table to fit (default: the store's only table)")
    data.add_argument("--element", help="spatial element the table annotates, if several")
    data.add_argument("--modalities",
                      help="modalities to use: 'rna,protein' (feature blocks of the table) or "
                           "'rna=table_rna,protein=table_prot' (one table per modality)")
    data.add_argument("--modality-key",
                      help="var column splitting the table's features into modalities "
                           "(default: feature_types when present)")
    data.add_argument("--layer", action="append", metavar="MOD=LAYER",
                      help="take a modality from a layer of the table (repeatable)")
    data.add_argument("--mudata", help="a .h5mu file beside the store holding the modalities")
    data.add_argument("--coordinate-system", help="coordinate system of the cell positions")


def _add_sweep_options(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    sweep = parser.add_argument_group("topic sweep")
    if prefix:
        sweep.add_argument("--sweep-topics", default="4:16:2", metavar="RANGE",
                           help="numbers of topics --topics auto sweeps: START:END[:STEP] "
                                "(END included) or a list like 4,6,8 (default 4:16:2)")
    sweep.add_argument("--seeds", type=int, default=2,
                       help="restarts per number of topics, from --seed on; the stability "
                            "needs 2 or more (default 2)")
    sweep.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="fits run at once in N worker processes, one thread each "
                            "(default 1: one after another in this process)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-topomics",
        description="Find topics in spatial multi-omics tissue without a screen.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit", help="fit the topic model on a SpatialData store or vendor folder",
        description="Fit the topic model and write the run into the store (a vendor folder "
                    "is first converted to a new SpatialData store, see --output).",
    )
    _add_data_options(fit)
    fit.add_argument("--output",
                     help="store to write into when PATH is a vendor folder "
                          "(default ./<folder name>.zarr)")
    _add_fit_options(fit, topics=10, epochs=100, topics_type=fit_topics,
                     topics_help="number of topics, or 'auto': sweep --sweep-topics first and "
                                 "fit the recommended number")
    _add_sweep_options(fit, prefix="sweep")
    fit.add_argument("--run-name", default="topomics",
                     help="name of the run in the store (default topomics)")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace an existing run of the same name")
    fit.add_argument("--report", metavar="DIR",
                     help="also write the run's report (figures + index) into DIR")
    fit.add_argument("--lazy", action="store_true",
                     help="leave the table's matrix on disk (a SpatialData store; its var "
                          "blocks are fitted in order): each training process loads only "
                          "the cells it trains on (docs/distributed.md)")
    _add_distributed_options(fit)

    sweep = sub.add_parser(
        "sweep", help="fit a range of topic numbers and recommend one",
        description="Fit every number of topics in --topics with --seeds restarts on the "
                    "same cells, score each fit on held-out cells (perplexity), across "
                    "restarts (stability), by topic diversity, topics used and Moran's I, "
                    "and recommend a number of topics. Writes a table (CSV) and a figure; "
                    "the store is not changed.",
    )
    _add_data_options(sweep)
    _add_fit_options(sweep, topics="4:16:2", epochs=100, topics_type=str,
                     topics_help="numbers of topics: START:END[:STEP] (END included) or a "
                                 "list like 4,6,8")
    _add_sweep_options(sweep)
    sweep.add_argument("--out", default=None,
                       help="folder for sweep.csv, sweep_summary.csv and sweep.png "
                            "(default ./<store name>_sweep)")

    report = sub.add_parser("report", help="write figures and an index page for a run")
    report.add_argument("store", help="SpatialData store holding the run")
    report.add_argument("--run", default=None, help="run name (default: the only run)")
    report.add_argument("--out", default=None,
                        help="output folder (default ./<store name>_<run>_report)")
    report.add_argument("--top", type=int, default=10, help="top features shown (default 10)")

    demo = sub.add_parser(
        "demo", help="fit the bundled demo tissue, write it as a store, and report",
    )
    demo.add_argument("--out", default="topomics_demo",
                      help="output folder for demo.zarr and the report (default ./topomics_demo)")
    _add_fit_options(demo, topics=6, epochs=60)

    info = sub.add_parser("info", help="what tables, elements, modalities and runs a store holds")
    info.add_argument("path", help="SpatialData store or vendor folder")
    return parser


def _hide_library_noise() -> None:
    """Silence warnings that libraries print on every store write and mean nothing here."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*autosharding.*", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="ome_zarr")
    logging.getLogger("ome_zarr").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 bad input, 130 stopped).

    Bad input is reported as one line on stderr; set ``TOPOMICS_DEBUG=1`` for the traceback.
    """
    args = build_parser().parse_args(argv)
    _hide_library_noise()
    from ..io._errors import TopomicsInputError

    try:
        if args.command == "fit":
            from ._fit_command import run_fit

            return run_fit(args)
        if args.command == "sweep":
            from ._sweep_command import run_sweep

            return run_sweep(args)
        if args.command == "report":
            from ._report_command import run_report

            return run_report(args)
        if args.command == "demo":
            from ._demo import run_demo

            return run_demo(args)
        from ._info_command import run_info

        return run_info(args)
    except (TopomicsInputError, ValueError, KeyError, FileNotFoundError, PermissionError) as error:
        if os.environ.get("TOPOMICS_DEBUG"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"napari-topomics {args.command}: error: {message}".splitlines()[0], file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"napari-topomics {args.command}: aborted; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RuntimeError as error:
        from ..models._distributed import DistributedTrainingError

        if not isinstance(error, DistributedTrainingError) or os.environ.get("TOPOMICS_DEBUG"):
            raise
        print(f"napari-topomics {args.command}: error: {error}".splitlines()[0], file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
