"""Entry point of the ``topomics`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="topomics",
        description="Find topics in spatial multi-omics tissue without a screen.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="Fit the model on the bundled demo tissue and print the topics."
    )
    demo.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    demo.add_argument("--topics", type=int, default=6, help="number of topics (default 6)")
    demo.add_argument("--top", type=int, default=8, help="top features per topic (default 8)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(n_epochs=args.epochs, n_topics=args.topics, n_top=args.top, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
