"""``write_report``: every figure written and referenced; provenance and top features shown."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._results import TopicResults
from napari_topomics.report import write_report
from napari_topomics.report._index import provenance_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _results(n_cells: int = 40, spatial: bool = True, odd_feature: bool = False) -> TopicResults:
    """A small run on a 4 x 10 grid of square cells (label ids 101..)."""
    rng = np.random.default_rng(0)
    obs = [f"c{i}" for i in range(n_cells)]
    topics = [f"topic_{k}" for k in range(4)]
    props = pd.DataFrame(rng.dirichlet(np.full(4, 0.5), n_cells), index=obs, columns=topics)
    w = rng.uniform(0.1, 0.9, n_cells)
    weights = pd.DataFrame({"rna": w, "protein": 1 - w}, index=obs)
    names = {"rna": [f"Gene_{j:03d}" for j in range(30)], "protein": [f"CD_{j}" for j in range(8)]}
    if odd_feature:
        names["rna"][0] = "HLA<b>|x"
    top = {}
    for mod, feats in names.items():
        rows = [
            (t, r + 1, feats[(3 * k + r) % len(feats)], 1.0 / (r + 1))
            for k, t in enumerate(topics)
            for r in range(5)
        ]
        top[mod] = pd.DataFrame(rows, columns=["topic", "rank", "feature", "score"])
    hist = pd.DataFrame(
        {"elbo_train": 500.0 + 100.0 / np.arange(1, 7)}, index=pd.RangeIndex(6, name="epoch")
    )
    prov = {
        "run_name": "demo_run", "date": "2031-05-06T07:08:09+00:00", "seed": 98765,
        "source": "/tissues/section_A.zarr", "table": "table", "element": "cells",
        "modalities": ["rna", "protein"], "likelihoods": {"rna": "nb", "protein": "gamma_poisson"},
        "n_topics": 4, "n_epochs": 6, "model_params": {"n_topics": 4}, "device": "cpu",
        "versions": {"napari-topomics": "0.1.0", "scvi-tools": "1.4.2", "torch": "2.99.1-test"},
    }
    ids = np.arange(101, 101 + n_cells)
    xy = pd.DataFrame(
        {"x": 5.0 + 10 * (np.arange(n_cells) % 10), "y": 5.0 + 10 * (np.arange(n_cells) // 10)},
        index=obs,
    )
    return TopicResults(
        run_name="demo_run", proportions=props, modality_weights=weights, top_features=top,
        elbo_history=hist, provenance=prov, region="cells" if spatial else None,
        instance_ids=ids if spatial else None, coordinates=xy if spatial else None,
    )


def _labels(n_cells: int = 40) -> np.ndarray:
    lab = np.zeros((40, 100), dtype=np.int32)
    for i in range(n_cells):
        r, c = divmod(i, 10)
        lab[10 * r + 1 : 10 * r + 9, 10 * c + 1 : 10 * c + 9] = 101 + i
    return lab


def _referenced(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text))


def test_report_writes_and_references_every_figure(tmp_path):
    res = _results()
    index = write_report(res, tmp_path / "rep", labels=_labels(), n_top=4)
    out = tmp_path / "rep"
    assert index == out / "index.html"
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == {
        "topic_maps.png", "dominant_topic.png", "modality_weights.png",
        "top_features_rna.png", "top_features_protein.png", "elbo.png",
    }
    for name in pngs:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    html_text = index.read_text(encoding="utf-8")
    md_text = (out / "index.md").read_text(encoding="utf-8")
    assert _referenced(html_text, r"<img src='([^']+\.png)'") == pngs
    assert _referenced(md_text, r"!\[[^\]]*\]\(([^)]+\.png)\)") == pngs
    assert html_text.startswith("<!DOCTYPE html>") and html_text.rstrip().endswith("</html>")
    assert "<h1>Topics of run &#x27;demo_run&#x27;</h1>" in html_text
    assert md_text.startswith("# Topics of run 'demo_run'")


def test_report_shows_provenance_and_top_features(tmp_path):
    res = _results()
    index = write_report(res, tmp_path, labels=_labels(), title="Section A", n_top=3)
    html_text = index.read_text(encoding="utf-8")
    md_text = (tmp_path / "index.md").read_text(encoding="utf-8")
    expected = [
        "/tissues/section_A.zarr", "2031-05-06T07:08:09+00:00", "98765", "rna: nb",
        "protein: gamma_poisson", "2.99.1-test", "1.4.2", "Section A", "demo_run",
    ]
    for text in (html_text, md_text):
        for value in expected:
            assert value in text, value
        # the top-3 rna features of topic_1 in rank order, the 4th left out
        assert "Gene_003, Gene_004, Gene_005" in text
        assert "Gene_003, Gene_004, Gene_005, Gene_006" not in text
    counts = res.dominant_topic.value_counts()
    row = re.search(r"<tr><th>topic_2</th><td>(\d+)</td>", html_text)
    assert row is not None and int(row.group(1)) == counts["topic_2"]
    labels = [label for label, _ in provenance_rows(res)]
    assert {"Data source", "Date (UTC)", "Topics", "Modalities", "Likelihoods", "Epochs",
            "Seed"} <= set(labels)
    assert "Version: torch" in labels


def test_report_escapes_feature_names(tmp_path):
    index = write_report(_results(odd_feature=True), tmp_path, labels=_labels(), n_top=2)
    html_text = index.read_text(encoding="utf-8")
    assert "HLA&lt;b&gt;|x" in html_text and "HLA<b>" not in html_text
    md_text = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert "HLA<b>\\|x" in md_text  # a pipe would split the markdown table cell


def test_report_scatters_without_labels_and_skips_maps_without_layout(tmp_path):
    scattered = write_report(_results(), tmp_path / "a")
    assert (tmp_path / "a" / "topic_maps.png").exists()
    assert "topic_maps.png" in scattered.read_text(encoding="utf-8")

    bare = write_report(_results(spatial=False), tmp_path / "b")
    names = {p.name for p in (tmp_path / "b").glob("*.png")}
    assert names == {"top_features_rna.png", "top_features_protein.png", "elbo.png"}
    text = bare.read_text(encoding="utf-8")
    assert "Spatial maps left out" in text and "topic_maps.png" not in text


def test_report_refuses_bad_options_and_keeps_inputs(tmp_path):
    res = _results()
    with pytest.raises(TopomicsInputError, match="n_top"):
        write_report(res, tmp_path, n_top=0)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(TopomicsInputError, match=re.escape(str(blocker))):
        write_report(res, blocker)
    props, lab = res.proportions.copy(), _labels()
    lab0 = lab.copy()
    write_report(res, tmp_path / "c", labels=lab, image=lab * 3)
    pd.testing.assert_frame_equal(res.proportions, props)
    assert np.array_equal(lab, lab0)
    assert Path(tmp_path / "c" / "index.md").exists()
