"""``napari-topomics sweep``: fit a range of topic numbers, print and write the comparison."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..io._errors import TopomicsInputError
from ._args import parse_modalities, parse_pairs, parse_topic_range
from ._progress_bar import StopRequest, stop_on_interrupt

if TYPE_CHECKING:
    from ..models import TopicSweep
    from ..workflow import FitConfig

#: Columns of the terminal table, with their headers and formats.
_TABLE = (
    ("perplexity", "held-out perplexity", "{:.4f}"),
    ("stability", "stability", "{:.3f}"),
    ("redundancy", "redundancy", "{:+.2f}"),
    ("diversity", "diversity", "{:.2f}"),
    ("topics_used", "topics used", "{:.2f}"),
    ("morans_i", "Moran's I", "{:.3f}"),
    ("fit_seconds", "s/fit", "{:.1f}"),
)


class SweepProgressBar:
    """A tqdm bar over every fit of a sweep (``progress(done, total)``), time left included."""

    def __init__(self, description: str, disable: bool = False) -> None:
        self._bar = None
        self._description = description
        self._disable = disable

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None:
            self._bar = tqdm(total=total, desc=self._description, unit="fit", file=sys.stderr,
                             disable=self._disable, dynamic_ncols=True, miniters=1,
                             mininterval=0)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def check_sweep_options(seeds: int, jobs: int) -> None:
    """One-line errors for ``--seeds`` and ``--jobs`` before any data is read."""
    if seeds < 1:
        raise TopomicsInputError(f"--seeds must be at least 1 (restarts per K), got {seeds}.")
    if jobs < 1:
        raise TopomicsInputError(f"--jobs must be at least 1 worker process, got {jobs}.")


def range_error(err: ValueError, option: str) -> ValueError:
    """The sweep's ``n_topics=...`` complaint (a K too large for the cells) as ``option``'s."""
    text = str(err)
    if text.startswith("n_topics "):
        return TopomicsInputError(f"{option}: {text.removeprefix('n_topics ')}")
    return err


def sweep_with_progress(
    path: Path, config: FitConfig, n_topics: list[int], *, seeds: int, jobs: int, quiet: bool,
    option: str = "--topics",
) -> TopicSweep:
    """Run the sweep with a progress bar; the first Ctrl-C stops, keeping finished fits.

    A range the data cannot take raises ``TopomicsInputError`` naming ``option``.
    """
    from ..workflow import sweep_tissue

    label = f"sweeping K {n_topics[0]}..{n_topics[-1]} x {seeds} seeds"
    bar = SweepProgressBar(label, disable=quiet)
    with stop_on_interrupt(StopRequest()) as request:
        try:
            sweep, _ = sweep_tissue(path, config, n_topics, seeds=seeds, n_jobs=jobs,
                                    progress=bar, should_stop=request, source_label=str(path))
        except ValueError as err:
            raise range_error(err, option) from None
        finally:
            bar.close()
    return sweep


def format_table(sweep: TopicSweep) -> str:
    """Per K, the means over seeds of the sweep's measures; the recommended K starred."""
    summary = sweep.summary()
    headers = ["K", *(h for _, h, _ in _TABLE), ""]
    rows = []
    for k, values in summary.iterrows():
        cells = [str(k)] + [fmt.format(values[c]) for c, _, fmt in _TABLE]
        cells.append("<- recommended" if values["recommended"] else "")
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


def report_sweep(sweep: TopicSweep, out: Path) -> list[Path]:
    """Print the table and write ``sweep.csv``, ``sweep_summary.csv`` and ``sweep.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "sweep.csv", out / "sweep_summary.csv", out / "sweep.png"]
    sweep.to_frame().to_csv(written[0], index=False)
    sweep.summary().to_csv(written[1])
    sweep.plot().savefig(written[2], dpi=120)
    print(f"\n{format_table(sweep)}")
    k = sweep.recommended
    print(f"\nRecommended number of topics: {k if k is not None else 'none (needs --seeds 2)'}."
          f"\nWhy: {sweep.reason}.\nRule: {sweep.rule}.")
    for path in written:
        print(f"Wrote {path}")
    return written


def config_for_sweep(args: argparse.Namespace) -> FitConfig:
    """The :class:`FitConfig` of ``sweep``'s options (``n_topics`` is unused)."""
    from ._fit_command import config_from_args

    return config_from_args(
        args, n_topics=2, table=args.table, element=args.element,
        coordinate_system=args.coordinate_system, modalities=parse_modalities(args.modalities),
        modality_key=args.modality_key, layers=parse_pairs(args.layer, "--layer"),
        mudata=args.mudata,
    )


def run_sweep(args: argparse.Namespace) -> int:
    """Run ``sweep``; returns the exit status (130 when stopped, after writing what finished)."""
    n_topics = parse_topic_range(args.topics)
    check_sweep_options(args.seeds, args.jobs)
    config = config_for_sweep(args)
    config.validate()
    path = Path(args.path)
    sweep = sweep_with_progress(path, config, n_topics, seeds=args.seeds, jobs=args.jobs,
                                quiet=args.quiet)
    out = Path(args.out) if args.out else Path.cwd() / f"{path.stem}_sweep"
    if sweep.frame.empty:
        print("Sweep stopped before any fit finished; nothing was written.", file=sys.stderr)
        return 130
    report_sweep(sweep, out)
    if sweep.stopped:
        print(f"Sweep stopped on request: {len(sweep.frame)} of "
              f"{len(n_topics) * args.seeds} fits finished and are in the table.",
              file=sys.stderr)
        return 130
    return 0
