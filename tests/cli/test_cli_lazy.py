"""``napari-topomics fit --lazy``: the table's matrix stays on disk (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import error_lines, tree_hashes

from napari_topomics.cli import main

FAST = ["--epochs", "2", "--topics", "3", "--quiet", "--threads", "1"]
LAUNCH_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_PORT",
               "LOCAL_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "_TOPOMICS_DEVICES")


def test_a_lazy_fit_writes_the_run_an_in_memory_fit_writes(demo_store):
    from napari_topomics.io import read_run

    assert main(["fit", str(demo_store), *FAST, "--run-name", "memory"]) == 0
    assert main(["fit", str(demo_store), *FAST, "--run-name", "lazy", "--lazy"]) == 0
    memory, lazy = read_run(demo_store, "memory"), read_run(demo_store, "lazy")
    assert list(lazy.proportions.index) == list(memory.proportions.index)
    np.testing.assert_allclose(lazy.proportions.to_numpy(), memory.proportions.to_numpy(),
                               atol=1e-4)
    assert set(lazy.top_features) == set(memory.top_features)
    assert lazy.provenance["source"] == memory.provenance["source"]


def test_a_lazy_two_process_fit_writes_one_run(demo_store):
    from napari_topomics.io import read_run

    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-m", "napari_topomics.cli", "fit", str(demo_store), *FAST,
         "--devices", "2", "--lazy", "--run-name", "ddp"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Wrote run 'ddp'") == 1
    run = read_run(demo_store, "ddp")
    np.testing.assert_allclose(run.proportions.to_numpy().sum(1), 1.0, atol=1e-4)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--layer", "rna=counts"], "layers"),
        (["--spatial", "--spatial-mode", "sgc"], "sgc"),
        (["--topics", "auto"], "--topics auto"),
        (["--modalities", "protein"], "var order"),
    ],
)
def test_lazy_with_what_it_cannot_do_is_one_error_line(demo_store, capsys, extra, needle):
    before = tree_hashes(demo_store)
    args = ["fit", str(demo_store), *FAST, "--lazy", *extra]
    if "--topics" in extra:
        args.remove("3")
        args.remove("--topics")
    assert main(args) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and needle in lines[0], lines
    assert tree_hashes(demo_store) == before


def test_lazy_on_a_vendor_folder_says_to_convert_it_first(visium_folder, tmp_path, capsys):
    out = tmp_path / "visium.zarr"
    assert main(["fit", str(visium_folder), *FAST, "--lazy", "--output", str(out)]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "convert" in lines[0], lines
    assert not out.exists()
