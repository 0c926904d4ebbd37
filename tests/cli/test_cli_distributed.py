"""``napari-topomics fit --devices/--strategy/--num-nodes`` (issue 18)."""

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


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--devices", "0"], "devices"),
        (["--devices", "two"], "devices"),
        (["--strategy", "fsdp"], "strategy"),
        (["--num-nodes", "0"], "num_nodes"),
        (["--devices", "2", "--distributed-timeout", "-5"], "distributed_timeout"),
        (["--devices", "2", "--topics", "auto"], "--topics auto"),
    ],
)
def test_bad_distributed_values_one_error_line_and_store_unchanged(
    demo_store, capsys, extra, option
):
    before = tree_hashes(demo_store)
    assert main(["fit", str(demo_store), *FAST, *extra]) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and option in lines[0], lines
    assert tree_hashes(demo_store) == before


def test_two_device_fit_writes_a_run_that_reads_back_like_any_other(demo_store):
    from napari_topomics.io import read_run
    from napari_topomics.plugin._reader import read_layers

    assert main(["fit", str(demo_store), *FAST, "--run-name", "single"]) == 0
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-m", "napari_topomics.cli", "fit", str(demo_store), *FAST,
         "--devices", "2", "--strategy", "ddp", "--run-name", "ddp"],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Wrote run 'ddp'") == 1  # rank 1 writes nothing
    single, ddp = read_run(demo_store, "single"), read_run(demo_store, "ddp")
    assert ddp.proportions.shape == single.proportions.shape
    np.testing.assert_allclose(ddp.proportions.to_numpy().sum(1), 1.0, atol=1e-4)
    assert list(ddp.proportions.columns) == list(single.proportions.columns)
    assert set(ddp.top_features) == set(single.top_features)
    assert (demo_store / "topomics_models" / "ddp" / "model.pt").is_file()
    names = [kwargs.get("name", "") for _, kwargs, _ in read_layers(demo_store)]
    assert any("ddp" in n for n in names) and any("single" in n for n in names), names


def test_a_failed_distributed_fit_is_one_error_line_and_exit_status_1(
    demo_store, capsys, monkeypatch
):
    from napari_topomics.cli import _fit_command
    from napari_topomics.models import DistributedTrainingError

    def fail(*args, **kwargs):
        raise DistributedTrainingError(
            "Distributed training (2 processes: devices=2, num_nodes=1) failed on rank 0: "
            "another rank failed or stopped answering\nsecond line"
        )

    monkeypatch.setattr(_fit_command, "train_with_progress", fail)
    before = tree_hashes(demo_store)
    assert main(["fit", str(demo_store), *FAST, "--devices", "2"]) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "failed on rank 0" in lines[0], lines
    assert tree_hashes(demo_store) == before
