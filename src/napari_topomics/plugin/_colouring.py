"""What a run's cells are coloured by, and the colours: palettes, colormaps, feature tables.

Pure computation on a :class:`~napari_topomics.io._results.TopicResults`; the only napari
object built here is the labels layer's colormap, a lookup table from label id to one of a
few palette colours (:class:`~._lut_colormap.LutLabelColormap`), so it scales to millions
of cells. Nothing refits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..io._errors import TopomicsInputError

if TYPE_CHECKING:
    from ..io._results import TopicResults
    from ._lut_colormap import LutLabelColormap

__all__ = [
    "DOMINANT",
    "TOPIC_CMAP",
    "TRANSPARENT",
    "WEIGHT_CMAP",
    "WEIGHT_PREFIX",
    "Colouring",
    "colouring_choices",
    "colouring_label",
    "compute_colouring",
    "labels_colormap",
    "match_positions",
    "results_features",
    "topic_palette",
    "topic_titles",
]

DOMINANT = "dominant_topic"
WEIGHT_PREFIX = "weight:"
TOPIC_CMAP = "viridis"
WEIGHT_CMAP = "cividis"
TRANSPARENT = np.zeros(4, dtype=np.float32)


@dataclass(frozen=True)
class Colouring:
    """The colours of one choice of what to paint.

    Attributes
    ----------
    what
        ``"dominant_topic"``, a topic name, or ``"weight:<modality>"``.
    kind
        ``"categorical"`` (dominant topic) or ``"continuous"``.
    title
        Human-readable name of what is shown.
    colors
        RGBA in [0, 1], one row per cell of the results (same order).
    categories, category_colors
        Categorical only: the topic names and their RGBA colours.
    cmap, vmin, vmax, values
        Continuous only: matplotlib colormap name, colour range, and each cell's value.
    codes, palette
        Each cell's row of ``palette`` (-1: no colour) and the distinct colours: the topic
        colours, or the colormap's entries (``colors == palette[codes]``).
    """

    what: str
    kind: str
    title: str
    colors: np.ndarray
    categories: tuple[str, ...] = ()
    category_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    cmap: str | None = None
    vmin: float = 0.0
    vmax: float = 1.0
    values: np.ndarray | None = None
    codes: np.ndarray | None = None
    palette: np.ndarray | None = None


def colouring_choices(results: TopicResults) -> list[str]:
    """Everything a run can be coloured by: dominant topic, each topic, each modality weight."""
    return [
        DOMINANT,
        *results.topic_names,
        *(f"{WEIGHT_PREFIX}{m}" for m in results.modality_names),
    ]


def colouring_label(what: str) -> str:
    """Human-readable text for a colouring choice (used in pickers and titles)."""
    if what == DOMINANT:
        return "Dominant topic"
    if what.startswith(WEIGHT_PREFIX):
        return f"{what[len(WEIGHT_PREFIX):]} weight"
    return f"{what} proportion"


def topic_palette(n: int) -> np.ndarray:
    """``n`` distinct opaque RGBA colours: tab10, tab20, then evenly spaced hues."""
    from matplotlib import colormaps

    if n <= 10:
        colors = colormaps["tab10"](np.arange(n))
    elif n <= 20:
        colors = colormaps["tab20"](np.arange(n))
    else:
        colors = colormaps["hsv"](np.linspace(0.0, 1.0, n, endpoint=False))
    return np.asarray(colors, dtype=np.float32)


def _continuous(
    values: np.ndarray, cmap: str, vmin: float, vmax: float
) -> tuple[np.ndarray, np.ndarray]:
    """(codes, palette): each value's entry of the colormap's lookup table, and the table.

    The binning is matplotlib's own (``int(x * N)``, ``x == 1`` in the last entry), so
    ``palette[codes]`` equals ``colormaps[cmap](x)``; NaN gets code -1 (no colour).
    """
    from matplotlib import colormaps

    colormap = colormaps[cmap]
    n = int(colormap.N)
    span = vmax - vmin if vmax > vmin else 1.0
    scaled = np.clip((values - vmin) / span, 0.0, 1.0) * n
    scaled[scaled == n] = n - 1
    bad = np.isnan(scaled)
    codes = np.where(bad, -1, np.nan_to_num(scaled)).astype(np.int64)
    palette = np.asarray(colormap(np.arange(n)), dtype=np.float32)
    return codes, palette


def _colors(codes: np.ndarray, palette: np.ndarray) -> np.ndarray:
    colors = palette[np.maximum(codes, 0)]
    colors[codes < 0] = TRANSPARENT
    return colors


def compute_colouring(
    results: TopicResults,
    what: str = DOMINANT,
    *,
    topic_cmap: str = TOPIC_CMAP,
    weight_cmap: str = WEIGHT_CMAP,
) -> Colouring:
    """The colours of every cell of ``results`` for one choice of what to paint.

    Topic proportions use the range ``[0, max]`` (0 means absent); modality weights use
    their ``[min, max]`` so small differences between modalities show.

    Raises
    ------
    TopomicsInputError
        For a choice that is not in :func:`colouring_choices`.
    """
    choices = colouring_choices(results)
    if what not in choices:
        raise TopomicsInputError(
            f"Cannot colour run {results.run_name!r} by {what!r}; choose one of {choices}."
        )
    if what == DOMINANT:
        palette = topic_palette(results.n_topics)
        codes = np.argmax(results.proportions.to_numpy(), axis=1)  # = dominant_topic codes
        return Colouring(
            what, "categorical", colouring_label(what), _colors(codes, palette),
            categories=tuple(results.topic_names), category_colors=palette,
            codes=codes, palette=palette,
        )
    if what.startswith(WEIGHT_PREFIX):
        values = results.modality_weights[what[len(WEIGHT_PREFIX):]].to_numpy(np.float64)
        cmap, vmin = weight_cmap, float(values.min()) if values.size else 0.0
    else:
        values = results.proportions[what].to_numpy(np.float64)
        cmap, vmin = topic_cmap, 0.0
    vmax = float(values.max()) if values.size else vmin
    if vmax <= vmin:
        vmax = vmin + 1e-6
    codes, palette = _continuous(values, cmap, vmin, vmax)
    return Colouring(
        what, "continuous", colouring_label(what), _colors(codes, palette),
        cmap=cmap, vmin=vmin, vmax=vmax, values=values, codes=codes, palette=palette,
    )


def _require_ids(results: TopicResults) -> np.ndarray:
    if results.instance_ids is None:
        raise TopomicsInputError(
            f"Run {results.run_name!r} has no instance ids (label ids of its cells), so it "
            "cannot be painted on labels; it can only be shown as points at its coordinates."
        )
    return np.asarray(results.instance_ids)


def labels_colormap(results: TopicResults, colouring: Colouring) -> LutLabelColormap:
    """A labels colormap giving each cell's label id its colour; other ids transparent.

    A lookup table (label id → palette row), not one dict entry per cell: milliseconds to
    build at 10⁶ cells and safe to build off the GUI thread. Background (0) stays
    see-through whatever the table says.
    """
    from ._lut_colormap import LutLabelColormap

    ids = _require_ids(results)
    return LutLabelColormap.from_codes(ids, colouring.codes, colouring.palette)


_ROW_LOOKUPS: dict[int, tuple[str, np.ndarray]] = {}


def _row_lookup(results: TopicResults) -> tuple[str, np.ndarray]:
    """(kind, table) finding rows by id: ``"dense"`` id → row, else ``"sorted"`` ids.

    Built once per run (kept until the run object is garbage collected), so reading one
    clicked cell of 10⁶ never rebuilds an index of all ids.
    """
    key = id(results)
    if key not in _ROW_LOOKUPS:
        import weakref

        ids = _require_ids(results).astype(np.int64, copy=False)
        if ids.size and ids.min() >= 0 and ids.max() <= 2**26:
            table = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
            table[ids] = np.arange(len(ids))
            _ROW_LOOKUPS[key] = ("dense", table)
        else:
            _ROW_LOOKUPS[key] = ("sorted", np.argsort(ids, kind="stable"))
        weakref.finalize(results, _ROW_LOOKUPS.pop, key, None)
    return _ROW_LOOKUPS[key]


def match_positions(results: TopicResults, element_ids) -> np.ndarray:
    """Row of ``results`` for each of ``element_ids`` (-1 where the run has no such cell)."""
    from ..io._tables import match_ids

    wanted = np.asarray(element_ids)
    if wanted.dtype.kind not in "iu":
        return match_ids(pd.Index(_require_ids(results)), wanted)
    kind, table = _row_lookup(results)
    wanted = wanted.astype(np.int64, copy=False)
    if kind == "dense":
        inside = (wanted >= 0) & (wanted < len(table))
        return np.where(inside, table[np.where(inside, wanted, 0)], -1)
    ids = _require_ids(results).astype(np.int64, copy=False)
    sorted_ids = ids[table]
    pos = np.clip(np.searchsorted(sorted_ids, wanted), 0, max(len(ids) - 1, 0))
    found = sorted_ids[pos] == wanted if len(ids) else np.zeros(wanted.shape, bool)
    return np.where(found, table[pos], -1)


def results_features(results: TopicResults) -> pd.DataFrame:
    """The per-cell table for ``layer.features``: ``index`` (label ids) and every value.

    Columns: ``index``, the topic proportions, ``dominant_topic``, ``topic_entropy`` and
    ``weight_<modality>``; one row per cell of the run.
    """
    n = len(results.proportions)
    props = results.proportions.to_numpy()
    weights = results.modality_weights.to_numpy()
    ids = results.instance_ids
    columns: dict[str, object] = {"index": np.asarray(ids) if ids is not None else np.arange(n)}
    for k, name in enumerate(results.topic_names):
        columns[name] = props[:, k]
    columns["dominant_topic"] = pd.Categorical.from_codes(
        np.argmax(props, axis=1), categories=results.topic_names
    )
    columns["topic_entropy"] = results.topic_entropy.to_numpy()
    for m, mod in enumerate(results.modality_names):
        columns[f"weight_{mod}"] = weights[:, m]
    # one frame from whole columns: no per-column insertion (10⁶ rows are copied once)
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def topic_titles(
    results: TopicResults, modality: str | None = None, n: int = 3
) -> dict[str, str]:
    """``{topic: "topic_k: f1, f2, f3"}`` naming each topic by its top features.

    ``modality`` defaults to the run's first modality that has top features.
    """
    mods = [m for m in results.modality_names if m in results.top_features]
    if modality is None:
        modality = mods[0] if mods else None
    elif modality not in results.top_features:
        raise TopomicsInputError(
            f"Run {results.run_name!r} has no top features for modality {modality!r}; "
            f"modalities: {mods}."
        )
    out = {}
    for topic in results.topic_names:
        if modality is None:
            out[topic] = topic
            continue
        frame = results.top_features[modality]
        rows = frame[frame["topic"] == topic].sort_values("rank").head(n)
        names = ", ".join(str(f) for f in rows["feature"])
        out[topic] = f"{topic}: {names}" if names else topic
    return out
