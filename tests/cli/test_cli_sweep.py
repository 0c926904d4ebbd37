"""``napari-topomics sweep`` and ``fit --topics auto``: table, CSV, figure, stop, bad input."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import error_lines, tree_hashes

from napari_topomics.cli import main

FAST = ["--epochs", "3", "--quiet", "--threads", "1"]


def test_sweep_prints_a_table_and_writes_csv_and_figure(demo_store, tmp_path, capsys):
    before = tree_hashes(demo_store)
    out = tmp_path / "sweep"
    assert main(["sweep", str(demo_store), "--topics", "3:4", "--seeds", "2", *FAST,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "held-out perplexity" in printed and "stability" in printed
    assert "redundancy" in printed  # the split-topic signal beside the stability
    assert printed.count("<- recommended") == 1
    frame = pd.read_csv(out / "sweep.csv")
    assert frame["redundancy"].between(-1, 1).all()
    assert sorted(zip(frame["K"], frame["seed"], strict=True)) == [(3, 0), (3, 1), (4, 0),
                                                                   (4, 1)]
    summary = pd.read_csv(out / "sweep_summary.csv", index_col="K")
    recommended = int(summary.index[summary["recommended"]][0])
    assert f"Recommended number of topics: {recommended}.\nWhy: " in printed and "Rule: " in printed
    assert (out / "sweep.png").stat().st_size > 10_000
    assert tree_hashes(demo_store) == before  # a sweep never writes into the store


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--topics", "1:4"], "--topics"),
        (["--topics", "8:4"], "--topics"),
        (["--topics", "four"], "--topics"),
        (["--topics", "3:400"], "--topics: must be smaller than the number of cells"),
        (["--seeds", "0"], "--seeds"),
        (["--jobs", "0"], "--jobs"),
    ],
)
def test_sweep_bad_options_one_line_error(demo_store, tmp_path, capsys, extra, needle):
    args = ["sweep", str(demo_store), "--topics", "3:4", *FAST, "--out", str(tmp_path / "o"),
            *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1, err
    assert needle in error_lines(err)[0]
    assert not (tmp_path / "o").exists()


def test_fit_topics_auto_sweeps_then_fits_the_recommended_k(demo_store, tmp_path, capsys):
    import spatialdata

    report = tmp_path / "report"
    assert main(["fit", str(demo_store), "--topics", "auto", "--sweep-topics", "3,4", *FAST,
                 "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    summary = pd.read_csv(report / "sweep" / "sweep_summary.csv", index_col="K")
    recommended = int(summary.index[summary["recommended"]][0])
    assert f"Recommended number of topics: {recommended}." in printed
    table = spatialdata.read_zarr(demo_store).tables["topomics_topomics"]
    assert table.n_vars == recommended  # fitted on every cell with the recommended K
    assert (report / "index.html").exists()


def test_fit_topics_rejects_words_other_than_auto(demo_store, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", str(demo_store), "--topics", "many", *FAST])
    assert info.value.code == 2
    assert "auto" in capsys.readouterr().err


def test_ctrl_c_keeps_the_finished_fits(demo_store, tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "napari_topomics.cli", "sweep", str(demo_store),
               "--topics", "3:6", "--seeds", "1", "--epochs", "400", "--threads", "1",
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started, seen = time.monotonic(), ""
    while time.monotonic() - started < 240:
        # the bar redraws with carriage returns: read what has come, not lines
        chunk = os.read(process.stderr.fileno(), 4096).decode(errors="replace")
        if not chunk and process.poll() is not None:
            break
        seen += chunk
        if re.search(r"\| [123]/4", seen):
            break
    assert process.poll() is None, seen
    process.send_signal(signal.SIGINT)
    printed, err = (text.decode() for text in process.communicate(timeout=120))
    assert process.returncode == 130, err
    assert "stopped on request" in err and "Traceback" not in err
    frame = pd.read_csv(out / "sweep.csv")
    assert 1 <= len(frame) < 4
    assert frame["K"].tolist() == [3, 4, 5][: len(frame)]


def test_fit_topics_auto_names_sweep_topics_for_a_range_too_large(demo_store, capsys):
    assert main(["fit", str(demo_store), "--topics", "auto", "--sweep-topics", "3:5000",
                 *FAST]) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "--sweep-topics: must be smaller than the number of cells" in err[0]
