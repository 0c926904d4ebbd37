"""The report's "Spatial coherence" section: Moran's I table, mean, bar figure."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._results import TopicResults
from napari_topomics.report import plot_spatial_coherence, write_report
from napari_topomics.report._index import coherence_table, provenance_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOPICS = [f"topic_{k}" for k in range(4)]


def _results(coherence=None, provenance=None) -> TopicResults:
    rng = np.random.default_rng(3)
    cells = [f"c{i}" for i in range(20)]
    top = pd.DataFrame(
        [(t, 1, f"g{k}", 0.5) for k, t in enumerate(TOPICS)],
        columns=["topic", "rank", "feature", "score"],
    )
    prov = {"spatial": True, "spatial_mode": "sgc", "graph": "radius", "radius": 15.0,
            "n_neighbors": None, "graph_edges": 31, "coordinate_system": "global"}
    return TopicResults(
        run_name="coh",
        proportions=pd.DataFrame(rng.dirichlet(np.ones(4), 20), index=cells, columns=TOPICS),
        modality_weights=pd.DataFrame({"rna": np.ones(20)}, index=cells),
        top_features={"rna": top},
        elbo_history=pd.DataFrame({"elbo_train": [5.0, 4.0]},
                                  index=pd.Index([0, 1], name="epoch")),
        provenance=prov if provenance is None else provenance,
        coordinates=pd.DataFrame({"x": np.arange(20) % 5 * 10.0,
                                  "y": np.arange(20) // 5 * 10.0}, index=cells),
        spatial_coherence=coherence,
    )


def _section(text: str, start: str, end: str) -> str:
    return text[text.index(start): text.index(end, text.index(start))]


def test_report_shows_coherence_table_mean_and_figure(tmp_path):
    res = _results([0.61, 0.2, np.nan, -0.1])
    index = write_report(res, tmp_path)
    assert (tmp_path / "spatial_coherence.png").read_bytes()[:8] == PNG_MAGIC
    html_text = index.read_text(encoding="utf-8")
    md_text = (tmp_path / "index.md").read_text(encoding="utf-8")

    section = _section(html_text, "<h2>Spatial coherence</h2>", "<h2>Figures</h2>")
    rows = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]+)</td></tr>", section))
    assert rows == {"topic_0": "0.610", "topic_1": "0.200", "topic_2": "n/a",
                    "topic_3": "-0.100", "mean": "0.237"}
    assert "radius-15 graph" in section
    assert "<img src='spatial_coherence.png'" in section

    md_section = _section(md_text, "## Spatial coherence", "## Figures")
    assert "| topic_0 | 0.610 |" in md_section and "| mean | 0.237 |" in md_section
    assert "![spatial_coherence](spatial_coherence.png)" in md_section

    labels = dict(provenance_rows(res))
    assert labels["Spatial model"] == "yes (sgc)"
    assert labels["Cell graph"] == "radius-15 graph (31 edges, coordinate system global)"


def test_report_of_a_run_without_coherence_says_so(tmp_path):
    res = _results(None, provenance={"seed": 1})
    assert coherence_table(res) is None
    index = write_report(res, tmp_path)
    assert not (tmp_path / "spatial_coherence.png").exists()
    html_text = index.read_text(encoding="utf-8")
    section = _section(html_text, "<h2>Spatial coherence</h2>", "<h2>Figures</h2>")
    assert "not measured for this run" in section and "<table>" not in section
    assert "Spatial coherence: not measured" in (tmp_path / "index.md").read_text()
    labels = [label for label, _ in provenance_rows(res)]
    assert "Spatial model" not in labels and "Cell graph" not in labels
    with pytest.raises(TopomicsInputError, match="no spatial coherence"):
        plot_spatial_coherence(res, tmp_path)


def test_coherence_figure_draws_one_bar_per_topic(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    saved = {}
    original = Figure.savefig

    def keep(fig, *args, **kwargs):
        saved["fig"] = fig
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    path = plot_spatial_coherence(_results([0.5, 0.3, np.nan, 0.1]), tmp_path)
    assert path.name == "spatial_coherence.png"
    ax = saved["fig"].axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([0.5, 0.3, 0.0, 0.1])
    assert [t.get_text() for t in ax.get_xticklabels()] == TOPICS
    assert any(t.get_text() == "n/a" for t in ax.texts)
    mean_lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("mean")]
    assert len(mean_lines) == 1 and mean_lines[0].get_ydata()[0] == pytest.approx(0.3)
