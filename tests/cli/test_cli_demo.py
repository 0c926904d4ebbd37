"""The ``topomics demo`` command: fits the demo tissue and prints readable topics."""

from __future__ import annotations

import re

from napari_topomics.cli import main


def test_demo_prints_topics_weights_and_dominant_topics(capsys):
    assert main(["demo", "--epochs", "2", "--topics", "3", "--top", "4"]) == 0
    out = capsys.readouterr().out
    for modality in ("rna", "protein", "atac"):
        block = re.search(rf"Top 4 {modality} features per topic:\n((?:  topic_\d: .*\n)+)", out)
        assert block is not None, f"no top-feature block for {modality}"
        lines = block.group(1).strip().splitlines()
        assert len(lines) == 3
        assert all(len(line.split(": ")[1].split(", ")) == 4 for line in lines)
    weights = dict(re.findall(r"^  (rna|protein|atac): ([0-9.]+)$", out, flags=re.M))
    assert set(weights) == {"rna", "protein", "atac"}
    assert abs(sum(float(v) for v in weights.values()) - 1.0) < 1e-2
    counts = [int(c) for c in re.findall(r"^  topic_\d: (\d+)$", out, flags=re.M)]
    assert sum(counts) == int(re.search(r"Demo tissue: (\d+) cells", out).group(1))
