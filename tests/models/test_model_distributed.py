"""Multi-process (DDP, gloo) training (issue 18).

Each fit runs ``ddp_worker.py`` in a fresh interpreter: with ``devices=2`` Lightning
re-runs the script for rank 1, and the two processes train together over gloo on the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_topomics.metrics import matched_theta_correlation
from napari_topomics.models._distributed import (
    DistributedOptionError,
    DistributedTrainingError,
    parse_distributed,
)

WORKER = Path(__file__).with_name("ddp_worker.py")
LAUNCH_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "GROUP_RANK", "MASTER_PORT",
               "LOCAL_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "_TOPOMICS_DEVICES")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")


def launch_env(**extra: str) -> dict:
    """This environment without any launcher's variables, one thread, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", **extra)
    return env


def run_worker(out: Path, *args: str, timeout: float = 150.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(WORKER), str(out), *args], env=launch_env(), capture_output=True,
        text=True, timeout=timeout,
    )


def ranks(out: Path, world: int) -> list[dict]:
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(world)]


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """The same 600-cell three-modality fit in one process and in two.

    Both take 64 cells per optimiser step: 64 in one process, 32 on each of two ranks.
    """
    root = tmp_path_factory.mktemp("ddp")
    for name, devices, batch in (("single", "1", "64"), ("ddp", "2", "32")):
        done = run_worker(root / name, "--devices", devices, "--epochs", "30",
                          "--batch-size", batch)
        assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_two_process_parameters_identical_on_every_rank(fits):
    rank0, rank1 = ranks(fits / "ddp", 2)
    assert int(rank0["world"]) == 2
    np.testing.assert_array_equal(rank0["params"], rank1["params"])
    np.testing.assert_array_equal(rank0["theta"], rank1["theta"])
    single = ranks(fits / "single", 1)[0]
    assert not np.array_equal(single["params"], rank0["params"])  # it did train apart


def test_two_process_ranks_draw_disjoint_shares_of_the_training_cells(fits):
    rank0, rank1 = ranks(fits / "ddp", 2)
    seen0, seen1 = set(rank0["seen"].tolist()), set(rank1["seen"].tolist())
    assert not seen0 & seen1
    assert seen0 | seen1 == set(rank0["train_indices"].tolist())
    assert abs(len(seen0) - len(seen1)) <= 1


def test_two_process_fit_recovers_topics_as_well_as_one_process(fits):
    single = ranks(fits / "single", 1)[0]
    ddp = ranks(fits / "ddp", 2)[0]
    r_single = matched_theta_correlation(single["theta"], single["true_theta"])
    r_ddp = matched_theta_correlation(ddp["theta"], ddp["true_theta"])
    assert r_single > 0.8, r_single
    assert r_ddp >= r_single - 0.03, (r_single, r_ddp)


def test_two_process_fit_saves_what_a_single_process_fit_saves(fits):
    import pandas as pd

    single, ddp = fits / "single" / "model", fits / "ddp" / "model"
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in ddp.iterdir())
    a = torch.load(single / "model.pt", weights_only=False)
    b = torch.load(ddp / "model.pt", weights_only=False)
    assert a.keys() == b.keys()
    sa, sb = a["model_state_dict"], b["model_state_dict"]
    shapes = [{k: v.shape for k, v in s.items() if torch.is_tensor(v)} for s in (sa, sb)]
    assert shapes[0] == shapes[1]
    # every parameter lives in the module: nothing in Pyro's global store to drift per rank
    assert not sb["pyro_param_store"]["params"]
    assert a["attr_dict"]["init_params_"] == b["attr_dict"]["init_params_"]
    h1 = pd.read_csv(fits / "single" / "history.csv", index_col=0)
    h2 = pd.read_csv(fits / "ddp" / "history.csv", index_col=0)
    assert list(h1.columns) == list(h2.columns) and len(h1) == len(h2) == 30
    assert np.isfinite(h2.to_numpy()).all()


def test_two_process_spatial_gcn_with_covariates(tmp_path):
    done = run_worker(tmp_path, "--devices", "2", "--mode", "gcn+covariates", "--epochs", "2",
                      "--cells", "400")
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = ranks(tmp_path, 2)
    np.testing.assert_array_equal(rank0["params"], rank1["params"])
    assert not set(rank0["seen"].tolist()) & set(rank1["seen"].tolist())


def test_failing_rank_fails_the_whole_fit_with_one_error_in_bounded_time(tmp_path):
    start = time.perf_counter()
    done = run_worker(tmp_path, "--devices", "2", "--fail-rank", "1", "--epochs", "5",
                      "--cells", "300", "--timeout", "30")
    elapsed = time.perf_counter() - start
    assert done.returncode == 3, done.stderr[-3000:]
    assert elapsed < 120
    for rank in (0, 1):
        kind, message = (tmp_path / f"error_rank{rank}.txt").read_text().split("\n", 1)
        assert kind == "DistributedTrainingError"
        assert f"rank {rank}" in message and "devices=2" in message
    assert "planted failure" in (tmp_path / "error_rank1.txt").read_text()
    assert not (tmp_path / "model").exists()


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().decode(errors="ignore"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow  # waits out the 30 s timeout
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for leftovers")
def test_hanging_rank_fails_the_fit_after_the_timeout_and_leaves_no_process(tmp_path):
    start = time.perf_counter()
    done = run_worker(tmp_path, "--devices", "2", "--fail-rank", "1", "--hang",
                      "--epochs", "3", "--cells", "300", "--timeout", "30")
    elapsed = time.perf_counter() - start
    assert done.returncode == 3, done.stderr[-3000:]
    kind, message = (tmp_path / "error_rank0.txt").read_text().split("\n", 1)
    assert kind == "DistributedTrainingError" and "another rank" in message
    assert elapsed < 150
    time.sleep(1)
    assert not _processes_mentioning(str(tmp_path)), "a rank outlived the failed fit"


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"strategy": "fsdp"}, "strategy"),
        ({"strategy": 3}, "strategy"),
        ({"devices": 0}, "devices"),
        ({"devices": "two"}, "devices"),
        ({"devices": True}, "devices"),
        ({"num_nodes": 0}, "num_nodes"),
        ({"num_nodes": 1.5}, "num_nodes"),
        ({"devices": 2, "distributed_timeout": 0}, "distributed_timeout"),
        ({"devices": 2, "accelerator": "mps"}, "mps"),
    ],
)
def test_bad_distributed_options_name_the_option(untrained_model, kwargs, option):
    before = {k: v.clone() for k, v in untrained_model.module.state_dict().items()}
    with pytest.raises(DistributedOptionError, match=option) as info:
        untrained_model.train(max_epochs=1, **kwargs)
    assert isinstance(info.value, ValueError)
    assert len(str(info.value).splitlines()) == 1
    after = untrained_model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_gpu_devices_beyond_the_machine_name_the_option():
    found = torch.cuda.device_count()
    with pytest.raises(DistributedOptionError, match=f"devices={found + 1}"):
        parse_distributed("ddp", found + 1, 1, None, "gpu")


def test_one_process_options_mean_an_ordinary_fit():
    assert parse_distributed() is None
    assert parse_distributed("auto", 1, 1) is None
    settings = parse_distributed("auto", "2", 3, 45)
    assert (settings.devices, settings.num_nodes, settings.world_size) == (2, 3, 6)
    assert settings.timeout_s == 45.0
    assert issubclass(DistributedTrainingError, RuntimeError)


@pytest.fixture(scope="module")
def lazy_fits(tmp_path_factory):
    """The 600-cell fit of ``fits`` from an ``.h5ad`` opened lazily, in two processes."""
    sys.path.insert(0, str(WORKER.parent))
    from ddp_worker import write_lazy_input

    root = tmp_path_factory.mktemp("ddp_lazy")
    write_lazy_input(root / "tissue.h5ad", 600)
    done = run_worker(root / "ddp", "--devices", "2", "--epochs", "30", "--batch-size", "32",
                      "--lazy", str(root / "tissue.h5ad"))
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_lazy_ranks_hold_and_train_on_their_own_half_of_the_cells(lazy_fits):
    rank0, rank1 = ranks(lazy_fits / "ddp", 2)
    (a0, b0, held0), (a1, b1, held1) = rank0["share"], rank1["share"]
    assert (a0, b0, a1, b1) == (0, 300, 300, 600)
    assert held0 == held1 == 300  # non-spatial: no neighbour rows
    seen0, seen1 = rank0["seen"], rank1["seen"]
    assert ((seen0 >= a0) & (seen0 < b0)).all() and ((seen1 >= a1) & (seen1 < b1)).all()
    assert len(seen0) == len(seen1)  # both ranks take the same number of steps
    train = set(rank0["train_indices"].tolist())
    assert set(seen0.tolist()) | set(seen1.tolist()) <= train
    assert len(set(seen0.tolist()) | set(seen1.tolist())) >= len(train) - 20
    assert str(rank0["lazy_after"]) == str(rank1["lazy_after"]) == "_CSRDataset"


def test_lazy_two_process_fit_matches_the_in_memory_fits(lazy_fits, fits):
    rank0, rank1 = ranks(lazy_fits / "ddp", 2)
    np.testing.assert_array_equal(rank0["params"], rank1["params"])
    np.testing.assert_array_equal(rank0["theta"], rank1["theta"])
    single = ranks(fits / "single", 1)[0]
    r_single = matched_theta_correlation(single["theta"], single["true_theta"])
    r_lazy = matched_theta_correlation(rank0["theta"], rank0["true_theta"])
    assert r_lazy >= r_single - 0.03, (r_single, r_lazy)
    assert rank0["theta"].shape == single["theta"].shape  # θ for every cell, not a share


def test_lazy_two_process_spatial_gcn_holds_its_share_and_the_neighbours(tmp_path):
    sys.path.insert(0, str(WORKER.parent))
    from ddp_worker import write_lazy_input

    write_lazy_input(tmp_path / "tissue.h5ad", 400)
    done = run_worker(tmp_path / "out", "--devices", "2", "--mode", "gcn", "--epochs", "2",
                      "--lazy", str(tmp_path / "tissue.h5ad"))
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = ranks(tmp_path / "out", 2)
    np.testing.assert_array_equal(rank0["params"], rank1["params"])
    for r in (rank0, rank1):
        start, stop, held = r["share"]
        assert stop - start < held < 400  # the share, its neighbours, not every cell


def _free_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def test_two_loopback_nodes_train_one_model(tmp_path, fits):
    """``num_nodes=2``, one process per node, started by hand as on two machines."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp_path), "--num-nodes", "2", "--epochs", "30",
             "--batch-size", "32"],
            env=launch_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(node),
                            WORLD_SIZE="2"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for node in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=150)
        assert proc.returncode == 0, err[-3000:]
    rank0, rank1 = ranks(tmp_path, 2)
    assert int(rank0["world"]) == 2
    np.testing.assert_array_equal(rank0["params"], rank1["params"])
    # the same two-process fit as devices=2 on one machine
    ddp = ranks(fits / "ddp", 2)[0]
    np.testing.assert_allclose(rank0["theta"], ddp["theta"], atol=1e-4)


def test_torchrun_launches_the_ranks(tmp_path):
    """Processes started by ``torchrun`` (RANK/LOCAL_RANK/WORLD_SIZE set) train together."""
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", _free_port(), str(WORKER),
         str(tmp_path), "--devices", "2", "--epochs", "2", "--cells", "300"],
        env=launch_env(), capture_output=True, text=True, timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = ranks(tmp_path, 2)
    assert int(rank0["world"]) == 2
    np.testing.assert_array_equal(rank0["params"], rank1["params"])
    assert not set(rank0["seen"].tolist()) & set(rank1["seen"].tolist())
