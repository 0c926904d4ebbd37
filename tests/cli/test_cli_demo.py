"""``napari-topomics demo``: writes the demo store, fits it, reports, and scores recovery."""

from __future__ import annotations

import re

from napari_topomics.cli import main


def test_demo_writes_store_run_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "2", "--topics", "3", "--quiet",
                 "--threads", "1"]) == 0
    text = capsys.readouterr().out
    assert (out / "demo.zarr").is_dir()
    assert (out / "report" / "index.html").is_file()
    for modality in ("rna", "protein", "atac"):
        assert f"Top {modality} features per topic:" in text
    weights = dict(re.findall(r"^  (rna|protein|atac): ([0-9.]+)$", text, flags=re.M))
    assert abs(sum(float(v) for v in weights.values()) - 1.0) < 1e-2
    match = re.search(r"r = ([0-9.]+)", text)
    assert match is not None and 0.0 <= float(match.group(1)) <= 1.0
    # a second demo run reuses the store and replaces its own run
    assert main(["demo", "--out", str(out), "--epochs", "1", "--topics", "3", "--quiet"]) == 0
