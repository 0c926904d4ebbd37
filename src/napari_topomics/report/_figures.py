"""The report figures, one function each; matplotlib ``Figure`` objects only (no pyplot)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io._errors import TopomicsInputError
from ._canvas import Canvas, make_canvas

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..io._results import TopicResults

__all__ = [
    "elbo_curves",
    "plot_dominant_topic",
    "plot_elbo",
    "plot_modality_weights",
    "plot_spatial_coherence",
    "plot_top_features",
    "plot_topic_maps",
    "top_feature_names",
    "topic_palette",
]

DPI = 110
_PANEL_IN = 3.4  # width of one spatial panel, inches
_CLEAR = (0.0, 0.0, 0.0, 0.0)


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, out_dir: Path | str, name: str) -> Path:
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, facecolor="white")
    return path


def _canvas(results, canvas, labels, image) -> Canvas:
    return canvas if canvas is not None else make_canvas(results, labels, image)


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    """Rows and columns for ``n`` panels: one row up to ``max_cols``, then a near square."""
    if n <= max_cols:
        return 1, max(n, 1)
    cols = min(max_cols, int(np.ceil(np.sqrt(n))))
    return int(np.ceil(n / cols)), cols


def top_feature_names(results: TopicResults, modality: str | None = None, n: int = 3) -> dict:
    """``{topic: [feature, ...]}``: the ``n`` best features of each topic in ``modality``.

    ``modality`` defaults to the first modality that has top features.
    """
    if not results.top_features:
        return {t: [] for t in results.topic_names}
    if modality is None:
        modality = next((m for m in results.modality_names if m in results.top_features), None)
        modality = modality or next(iter(results.top_features))
    if modality not in results.top_features:
        raise TopomicsInputError(
            f"modality {modality!r} has no top features; available: {sorted(results.top_features)}"
        )
    frame = results.top_features[modality].sort_values(["topic", "rank"], kind="stable")
    out = {t: [] for t in results.topic_names}
    for topic, group in frame.groupby("topic", sort=False):
        out[str(topic)] = [str(f) for f in group["feature"].head(n)]
    return out


def topic_palette(n: int) -> list:
    """Distinct colours for ``n`` categories: tab10, tab20, then evenly spaced hues."""
    from matplotlib import colormaps

    if n <= 10:
        return list(colormaps["tab10"].colors[:n])
    if n <= 20:
        return list(colormaps["tab20"].colors[:n])
    return [colormaps["hsv"](i / n) for i in range(n)]


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad=_CLEAR)  # background, unknown cells: transparent


def _value_maps(
    columns: list[str], titles: list[str], frame: pd.DataFrame, canvas: Canvas,
    cmap_name: str, label: str, suptitle: str,
) -> Figure:
    """A grid of spatial panels sharing a 0–1 colour scale and one colorbar."""
    from matplotlib.colors import Normalize

    rows, cols = _grid(len(columns))
    panel_h = _PANEL_IN * min(max(canvas.aspect, 0.4), 2.5) + 0.5
    fig = _figure(_PANEL_IN * cols + 1.0, panel_h * rows + 0.5)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    norm, cmap = Normalize(0.0, 1.0), _cmap(cmap_name)
    art = None
    for ax, col, title in zip(axes, columns, titles, strict=False):
        art = canvas.draw(ax, frame[col].to_numpy(), cmap, norm)
        ax.set_title(title, fontsize=9)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    fig.colorbar(art, ax=axes[: len(columns)].tolist(), shrink=0.8, label=label)
    fig.suptitle(suptitle, fontsize=12)
    return fig


def plot_topic_maps(
    results: TopicResults, out_dir: Path | str, *, labels: Any = None, image: Any = None,
    canvas: Canvas | None = None, n_label: int = 3,
) -> Path:
    """``topic_maps.png``: one spatial map of each topic's proportion (shared 0–1 scale).

    Each panel is titled with the topic and its ``n_label`` top features of the first
    modality. Cells are painted from ``labels`` when given, else drawn at
    ``results.coordinates``.
    """
    cv = _canvas(results, canvas, labels, image)
    tops = top_feature_names(results, n=n_label)
    titles = [f"{t}\n{', '.join(tops.get(t, [])) or '–'}" for t in results.topic_names]
    fig = _value_maps(
        results.topic_names, titles, results.proportions, cv, "viridis",
        "topic proportion", "Topic proportions per cell",
    )
    return _save(fig, out_dir, "topic_maps.png")


def plot_dominant_topic(
    results: TopicResults, out_dir: Path | str, *, labels: Any = None, image: Any = None,
    canvas: Canvas | None = None, n_label: int = 3,
) -> Path:
    """``dominant_topic.png``: each cell coloured by its most abundant topic."""
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    cv = _canvas(results, canvas, labels, image)
    names = results.topic_names
    colours = topic_palette(len(names))
    cmap = ListedColormap(colours).with_extremes(bad=_CLEAR)
    norm = BoundaryNorm(np.arange(len(names) + 1) - 0.5, len(names))
    codes = results.dominant_topic.cat.codes.to_numpy().astype(np.float64)
    codes[codes < 0] = np.nan
    fig = _figure(_PANEL_IN * 1.9 + 3.6, _PANEL_IN * 1.9 * min(max(cv.aspect, 0.4), 2.5) + 0.6)
    ax = fig.subplots()
    cv.draw(ax, codes, cmap, norm)
    tops = top_feature_names(results, n=n_label)
    counts = results.dominant_topic.value_counts()
    handles = [
        Patch(color=c, label=f"{t} ({int(counts.get(t, 0))} cells): {', '.join(tops.get(t, []))}")
        for t, c in zip(names, colours, strict=True)
    ]
    fig.legend(  # "outside": constrained layout makes room for it, however long
        handles=handles, loc="outside right upper", fontsize=8, frameon=False,
        title="dominant topic: top features", title_fontsize=9,
    )
    ax.set_title("Dominant topic per cell", fontsize=12)
    return _save(fig, out_dir, "dominant_topic.png")


def plot_modality_weights(
    results: TopicResults, out_dir: Path | str, *, labels: Any = None, image: Any = None,
    canvas: Canvas | None = None,
) -> Path:
    """``modality_weights.png``: one map per modality of its per-cell weight (0–1)."""
    cv = _canvas(results, canvas, labels, image)
    mods = list(results.modality_weights.columns)
    means = results.modality_weights.mean()
    titles = [f"{m} (mean {means[m]:.2f})" for m in mods]
    fig = _value_maps(
        mods, titles, results.modality_weights, cv, "cividis", "modality weight",
        "How much each modality informs the topics of a cell",
    )
    return _save(fig, out_dir, "modality_weights.png")


def _heatmap_matrix(frame: pd.DataFrame, topics: list[str], n_top: int) -> pd.DataFrame:
    """Topics × union of their top ``n_top`` features, ordered topic by topic."""
    frame = frame.sort_values(["topic", "rank"], kind="stable")
    frame = frame[frame.groupby("topic", sort=False).cumcount() < n_top]
    order: list[str] = []
    for topic in topics:
        for feat in frame.loc[frame["topic"] == topic, "feature"]:
            if feat not in order:
                order.append(str(feat))
    wide = frame.assign(feature=frame["feature"].astype(str)).pivot_table(
        index="topic", columns="feature", values="score", aggfunc="max"
    )
    return wide.reindex(index=topics, columns=order)


def plot_top_features(
    results: TopicResults, out_dir: Path | str, modality: str, *, n_top: int = 10
) -> Path:
    """``top_features_<modality>.png``: heatmap of scores, topics × their top features.

    Cells outside a topic's own top ``n_top`` list are grey (not stored in the results).
    """
    from matplotlib import colormaps

    if modality not in results.top_features:
        raise TopomicsInputError(
            f"modality {modality!r} has no top features; available: {sorted(results.top_features)}"
        )
    mat = _heatmap_matrix(results.top_features[modality], results.topic_names, n_top)
    n_feat = max(mat.shape[1], 1)
    width = float(np.clip(0.19 * n_feat + 2.8, 6.0, 40.0))
    height = 0.32 * len(mat.index) + 2.6
    fig = _figure(width, height)
    ax = fig.subplots()
    cmap = colormaps["magma_r"].with_extremes(bad="#e6e6e6")
    art = ax.imshow(np.ma.masked_invalid(mat.to_numpy(dtype=float)), cmap=cmap, aspect="auto",
                    interpolation="nearest")
    ax.set_yticks(range(len(mat.index)), mat.index, fontsize=8)
    ax.set_xticks(range(mat.shape[1]), mat.columns, rotation=90, fontsize=7)
    ax.set_xlabel(
        f"{modality} features (top {n_top} of each topic; grey: not in that topic's list)"
    )
    fig.colorbar(art, ax=ax, label="score", shrink=0.9, pad=0.01)
    ax.set_title(f"Top {modality} features per topic", fontsize=12)
    return _save(fig, out_dir, f"top_features_{modality}.png")


def elbo_curves(history: pd.DataFrame | None) -> dict[str, pd.Series]:
    """``{"train": ELBO per cell by epoch, "validation": ...}`` from a run's history.

    The model logs the training *loss*, the negative ELBO per cell, as ``elbo_train``
    (and ``elbo_validation``); the ELBO is its negation, so higher is better.
    """
    if history is None:
        return {}
    return {
        col.removeprefix("elbo_"): -history[col].astype(float)
        for col in ("elbo_train", "elbo_validation")
        if col in history and history[col].notna().any()
    }


def plot_elbo(results: TopicResults, out_dir: Path | str) -> Path:
    """``elbo.png``: the ELBO per cell over the training epochs (higher is better)."""
    curves = elbo_curves(results.elbo_history)
    fig = _figure(6.4, 3.8)
    ax = fig.subplots()
    if not curves:
        ax.text(0.5, 0.5, "no training history", ha="center", va="center")
        ax.set_axis_off()
        return _save(fig, out_dir, "elbo.png")
    for (name, curve), style in zip(curves.items(), ("-", "--"), strict=False):
        epochs = np.asarray(curve.index, dtype=float)
        ax.plot(epochs, curve.to_numpy(), style, marker="." if len(curve) < 40 else None,
                label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO per cell (higher is better)")
    ax.set_title("Training objective", fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    return _save(fig, out_dir, "elbo.png")


def plot_spatial_coherence(results: TopicResults, out_dir: Path | str) -> Path:
    """``spatial_coherence.png``: Moran's I of each topic as bars, the mean as a line.

    Bars are in the topic colours of :func:`plot_dominant_topic`; a topic without a value
    (constant over the cells) is marked "n/a".
    """
    from ..io._results_spatial import graph_label

    if results.spatial_coherence is None:
        raise TopomicsInputError(
            f"run {results.run_name!r} has no spatial coherence (written before it was measured)"
        )
    values = results.spatial_coherence.to_numpy(dtype=float)
    names = results.topic_names
    fig = _figure(float(np.clip(0.45 * len(names) + 2.6, 4.5, 14.0)), 3.4)
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, np.nan_to_num(values), color=topic_palette(len(names)), edgecolor="#444",
           linewidth=0.5)
    for i in np.flatnonzero(~np.isfinite(values)):
        ax.text(i, 0.0, "n/a", ha="center", va="bottom", fontsize=7)
    finite = values[np.isfinite(values)]
    if finite.size:
        ax.axhline(float(finite.mean()), color="#222", linestyle="--", linewidth=1,
                   label=f"mean {finite.mean():.2f}")
        ax.legend(frameon=False, fontsize=8, loc="upper right")
        top, bottom = max(float(finite.max()), 0.05), min(float(finite.min()), 0.0)
        ax.set_ylim(bottom * 1.2, top * 1.3)  # room for the legend above the bars
    ax.axhline(0.0, color="#888", linewidth=0.6)
    ax.set_xticks(x, names, rotation=45 if len(names) > 8 else 0, fontsize=8)
    ax.set_ylabel("Moran's I")
    where = graph_label(results.provenance) or "cell graph"
    ax.set_title(f"Spatial coherence per topic\n(Moran's I over a {where})", fontsize=10)
    return _save(fig, out_dir, "spatial_coherence.png")
