"""``write_report``: every figure plus an ``index.html`` and an ``index.md`` that show them."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..io._errors import TopomicsInputError
from ..io._results_spatial import graph_label, mean_coherence
from ._canvas import make_canvas
from ._figures import (
    plot_dominant_topic,
    plot_elbo,
    plot_modality_weights,
    plot_spatial_coherence,
    plot_top_features,
    plot_topic_maps,
    top_feature_names,
)

if TYPE_CHECKING:
    from ..io._results import TopicResults

__all__ = ["coherence_table", "provenance_rows", "write_report"]

logger = logging.getLogger(__name__)

_CAPTIONS = {
    "topic_maps.png": "Topic proportion of every cell, one map per topic (shared 0–1 scale).",
    "dominant_topic.png": "The most abundant topic of every cell.",
    "modality_weights.png": "Per-cell weight of each modality in the topic estimate.",
    "elbo.png": "Training curve: ELBO per cell by epoch (higher is better).",
}


def _fmt(value: Any) -> str:
    if value is None or value == "" or value == {} or value == []:
        return "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def provenance_rows(results: TopicResults) -> list[tuple[str, str]]:
    """``(label, value)`` rows describing where a run came from and how it was fitted."""
    prov = dict(results.provenance or {})
    rows = [
        ("Run", results.run_name),
        ("Data source", _fmt(prov.get("source"))),
        ("Table", _fmt(prov.get("table"))),
        ("Element", _fmt(prov.get("element", results.region))),
        ("Date (UTC)", _fmt(prov.get("date"))),
        ("Cells", str(len(results.proportions))),
        ("Topics", _fmt(prov.get("n_topics", results.n_topics))),
        ("Modalities", _fmt(prov.get("modalities", results.modality_names))),
        ("Likelihoods", _fmt(prov.get("likelihoods"))),
        ("Epochs", _fmt(prov.get("n_epochs"))),
        ("Seed", _fmt(prov.get("seed"))),
        ("Device", _fmt(prov.get("device"))),
    ]
    if "spatial" in prov:
        mode = prov.get("spatial_mode")
        rows.append(("Spatial model", f"yes ({mode})" if prov["spatial"] else "no"))
    label = graph_label(prov)
    if label is not None:
        edges = prov.get("graph_edges")
        where = prov.get("coordinate_system")
        extra = [f"{edges} edges" if edges is not None else None,
                 f"coordinate system {where}" if where else None]
        extra = [e for e in extra if e]
        rows.append(("Cell graph", label + (f" ({', '.join(extra)})" if extra else "")))
    for package, version in (prov.get("versions") or {}).items():
        rows.append((f"Version: {package}", _fmt(version)))
    return rows


def coherence_table(results: TopicResults) -> pd.DataFrame | None:
    """Topics (then ``mean``) × ``Moran's I``, formatted; None when not measured."""
    values = results.spatial_coherence
    if values is None:
        return None
    mean = mean_coherence(values)
    cells = [_moran(v) for v in values] + [_moran(mean)]
    return pd.DataFrame(
        {"Moran's I": cells}, index=pd.Index([*results.topic_names, "mean"], name="topic")
    )


def _moran(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.3f}"


_COHERENCE_TEXT = (
    "Moran's I of each topic's proportion over the cell-neighbour graph: about 1 when a topic "
    "fills contiguous regions, about 0 when it is scattered at random."
)


def _coherence_parts(
    results: TopicResults, figure: Path | None
) -> tuple[list[str], list[str]]:
    """The HTML and Markdown of the "Spatial coherence" section."""
    table = coherence_table(results)
    if table is None:
        note = results.provenance.get("graph_problem") or (
            "not measured for this run (written by a version that did not measure it)"
        )
        text = f"Spatial coherence: {note}."
        return (["<h2>Spatial coherence</h2>", f"<p>{html.escape(text)}</p>"],
                ["## Spatial coherence", "", text, ""])
    label = graph_label(results.provenance) or "cell graph"
    text = f"{_COHERENCE_TEXT} Graph: {label}."
    parts = ["<h2>Spatial coherence</h2>", f"<p>{html.escape(text)}</p>", _html_table(table)]
    md = ["## Spatial coherence", "", text, "", _md_table(table), ""]
    if figure is not None:
        parts.append(f"<figure><img src='{html.escape(figure.name)}' alt='{figure.stem}'>"
                     "<figcaption>Moran's I per topic; dashed line: the mean.</figcaption>"
                     "</figure>")
        md += [f"![{figure.stem}]({figure.name})", "", "Moran's I per topic; dashed: the mean.",
               ""]
    return parts, md


def _topic_summary(results: TopicResults) -> pd.DataFrame:
    counts = results.dominant_topic.value_counts()
    return pd.DataFrame(
        {
            "dominant in (cells)": [int(counts.get(t, 0)) for t in results.topic_names],
            "mean proportion": [f"{v:.3f}" for v in results.proportions.mean()],
        },
        index=pd.Index(results.topic_names, name="topic"),
    )


def _top_table(results: TopicResults, n_top: int) -> pd.DataFrame:
    """Topics × modalities, cells holding the comma-joined top features."""
    data = {}
    for mod in results.modality_names:
        if mod in results.top_features:
            tops = top_feature_names(results, mod, n=n_top)
            data[mod] = [", ".join(tops.get(t, [])) for t in results.topic_names]
    return pd.DataFrame(data, index=pd.Index(results.topic_names, name="topic"))


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame])
    body = "".join(
        "<tr><th>" + html.escape(str(idx)) + "</th>"
        + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    cols = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(map(_md_cell, cols)) + " |", "|" + "---|" * len(cols)]
    for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        lines.append("| " + " | ".join(_md_cell(v) for v in [idx, *row]) + " |")
    return "\n".join(lines)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;"
    "padding:4px 8px;text-align:left;vertical-align:top;font-size:0.9em}"
    "thead th{background:#f2f2f2}"
    "img{max-width:100%;border:1px solid #eee}figure{margin:1.5em 0}figcaption{color:#555}"
)


def _write_index(
    out: Path, title: str, results: TopicResults, figures: list[Path], notes: list[str],
    n_top: int, coherence_figure: Path | None = None,
) -> Path:
    prov = pd.DataFrame(provenance_rows(results), columns=["field", "value"]).set_index("field")
    prov.index.name = "field"
    summary, tops = _topic_summary(results), _top_table(results, n_top)
    caption = {
        p.name: _CAPTIONS.get(
            p.name, f"Top features per topic ({p.stem.removeprefix('top_features_')})."
        )
        for p in figures
    }

    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             "<h2>Provenance</h2>", _html_table(prov), "<h2>Topics</h2>", _html_table(summary)]
    coherence_html, coherence_md = _coherence_parts(results, coherence_figure)
    parts += coherence_html
    parts += [f"<p><em>{html.escape(n)}</em></p>" for n in notes]
    parts.append("<h2>Figures</h2>")
    for p in figures:
        parts.append(
            f"<figure><img src='{html.escape(p.name)}' alt='{html.escape(p.stem)}'>"
            f"<figcaption>{html.escape(caption[p.name])}</figcaption></figure>"
        )
    parts += [f"<h2>Top {n_top} features per topic</h2>", _html_table(tops), "</body></html>"]
    (out / "index.html").write_text("\n".join(parts), encoding="utf-8")

    md = [f"# {title}", "", "## Provenance", "", _md_table(prov), "", "## Topics", "",
          _md_table(summary), "", *coherence_md]
    md += [f"*{n}*\n" for n in notes]
    md += ["## Figures", ""]
    for p in figures:
        md += [f"![{p.stem}]({p.name})", "", caption[p.name], ""]
    md += [f"## Top {n_top} features per topic", "", _md_table(tops), ""]
    (out / "index.md").write_text("\n".join(md), encoding="utf-8")
    return out / "index.html"


def write_report(
    results: TopicResults,
    out_dir: Path | str,
    *,
    labels: Any = None,
    image: Any = None,
    title: str | None = None,
    n_top: int = 10,
) -> Path:
    """Write all figures of a run and an ``index.html`` + ``index.md`` that show them.

    Parameters
    ----------
    results
        The run.
    out_dir
        Folder to write to (created if needed; existing report files are overwritten).
    labels
        Optional ``(y, x)`` segmentation whose ids are ``results.instance_ids``; the maps
        paint cells from it. Without it the maps scatter ``results.coordinates``; with
        neither, the spatial maps are left out.
    image
        Optional ``(y, x)`` or ``(c, y, x)`` image shown in grey under the cells.
    title
        Page title (default ``"Topics of run '<run_name>'"``).
    n_top
        Features per topic in the heatmaps and tables.

    Returns
    -------
    Path of ``index.html``.
    """
    if int(n_top) < 1:
        raise TopomicsInputError(f"n_top must be a positive number of features, got {n_top}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TopomicsInputError(f"report folder {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    title = title or f"Topics of run '{results.run_name}'"
    figures: list[Path] = []
    notes: list[str] = []
    try:
        canvas = make_canvas(results, labels, image)
    except TopomicsInputError as err:
        canvas = None
        notes.append(f"Spatial maps left out: {err}")
        logger.warning("Report without spatial maps: %s", err)
    if canvas is not None:
        figures.append(plot_topic_maps(results, out, canvas=canvas))
        figures.append(plot_dominant_topic(results, out, canvas=canvas))
        figures.append(plot_modality_weights(results, out, canvas=canvas))
    for mod in results.modality_names:
        if mod in results.top_features:
            figures.append(plot_top_features(results, out, mod, n_top=int(n_top)))
    figures.append(plot_elbo(results, out))
    coherence_figure = None
    if results.spatial_coherence is not None:
        coherence_figure = plot_spatial_coherence(results, out)
    return _write_index(out, title, results, figures, notes, int(n_top), coherence_figure)
