"""The figure of a topic sweep: its measures against K, the recommended K marked."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._sweep import TopicSweep


def _curve(ax: Axes, frame, column: str, label: str | None = None, **style) -> None:
    """Each seed as a dot, the mean over seeds as a line."""
    values = frame[["K", column]].dropna()
    if values.empty:
        return
    line = ax.plot(*values.groupby("K")[column].mean().reset_index().to_numpy().T,
                   marker="o", label=label, **style)[0]
    ax.scatter(values["K"], values[column], s=10, alpha=0.5, color=line.get_color())


def plot_sweep(sweep: TopicSweep) -> Figure:
    """A 2 x 2 ``Figure`` (no pyplot): held-out perplexity per modality, stability with
    the threshold, topic diversity and topics used, and Moran's I (when measured)."""
    from matplotlib.figure import Figure

    frame = sweep.frame
    fig = Figure(figsize=(9.0, 6.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    (ppl, stab), (div, moran) = axes
    if not frame.empty:
        modality_columns = [c for c in frame.columns if c.startswith("perplexity_")]
        for column in modality_columns:
            series = frame[column]
            if not np.isfinite(series).any():
                continue
            relative = frame.assign(**{column: series / series.groupby(frame["K"]).transform(
                "mean").min()})
            _curve(ppl, relative, column, label=column.removeprefix("perplexity_"))
        ppl.set_ylabel("held-out perplexity\n(relative to its best K)")
        ppl.legend(fontsize="small")
        _curve(stab, frame, "stability", label="mean")
        _curve(stab, frame, "stability_min", label="worst topic", linestyle="--")
        stab.axhline(sweep.stability_threshold, color="grey", linewidth=0.8, linestyle=":")
        stab.set_ylim(top=max(1.0, stab.get_ylim()[1]))  # the threshold line stays visible
        stab.set_ylabel("stability across seeds\n(matched topic correlation)")
        if stab.get_legend_handles_labels()[0]:
            stab.legend(fontsize="small")
        else:
            stab.text(0.5, 0.5, "one seed per K:\nstability not measured",
                      ha="center", va="center", transform=stab.transAxes)
        _curve(div, frame, "diversity", label="diversity (unique top features)")
        _curve(div, frame, "topics_used", label="topics used (θ > 0.5 somewhere)")
        if "redundancy" in frame and np.isfinite(frame["redundancy"]).any():
            _curve(div, frame, "redundancy", label="redundancy (closest pair of topics)",
                   linestyle="--")
            if sweep.redundancy_limit is not None:
                div.axhline(sweep.redundancy_limit, color="grey", linewidth=0.8, linestyle=":")
        div.set_ylabel("fraction / correlation")
        div.legend(fontsize="small")
        if np.isfinite(frame["morans_i"]).any():
            _curve(moran, frame, "morans_i")
            moran.set_ylabel("mean Moran's I of the topics")
        else:
            moran.text(0.5, 0.5, "no coordinates:\nMoran's I not measured",
                       ha="center", va="center", transform=moran.transAxes)
    k = sweep.recommended
    for ax in axes.ravel():
        ax.set_xticks(sweep.n_topics)
        if k is not None:
            ax.axvline(k, color="crimson", linewidth=1.2, alpha=0.6)
    for ax in axes[1]:
        ax.set_xlabel("number of topics K")
    title = f"recommended K = {k}" if k is not None else "no recommendation (needs 2 seeds)"
    why = textwrap.fill(f"{sweep.reason}. Rule: {sweep.rule}.", width=110)  # fits 9 inches
    fig.suptitle(f"Topic sweep: {title}\n{why}", fontsize="medium")
    return fig
