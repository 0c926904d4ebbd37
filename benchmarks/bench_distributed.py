"""Distributed (DDP) training (issue 18): one process against two, and two loopback nodes.

* **speed**: the 5,000-cell three-modality simulated tissue (2,000 genes, 30 proteins,
  3,000 peaks, 8 topics), fitted in one process and in two gloo processes
  (``devices=2``), one torch thread each, the same epochs and ``batch_size`` per process:
  θ correlation with the ground truth, seconds per epoch (wall, epochs 2..E), their ratio
  (target <= 0.65; ``--repeats`` pairs run in turn, the ratio of the medians is the
  figure), and CPU seconds per epoch of each process.
* **nodes**: the same fit as two "nodes" on the loopback interface (``num_nodes=2``, one
  process each, ``MASTER_ADDR=127.0.0.1``, ``NODE_RANK`` 0 and 1): θ correlation.
* **memory**: peak resident memory per rank of one epoch on ``--memory-cells`` cells x
  5,030 features (200,000 in the issue): one process reading the ``.h5ad`` into memory, one
  process and two ranks opening it with ``open_lazy`` (the matrix stays on disk and each
  rank loads only its share's rows); target: a rank of two <= 0.6x the single process.

Every figure is printed as a ``name=value`` line. Each fit runs in fresh processes (this
script re-run with ``--worker``); the data is simulated once and written to an ``.h5ad``.

Usage: ``python benchmarks/bench_distributed.py [--part speed|nodes|memory|all]
[--cells 5000] [--epochs 30] [--memory-cells 200000] [--batch-size 128] [--repeats 3]
[--lazy]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"rna": 2000, "protein": 30, "atac": 3000}
LIKELIHOODS = ["nb", "nb", "bernoulli"]
LAUNCH_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_PORT",
               "MASTER_ADDR", "LOCAL_WORLD_SIZE", "_TOPOMICS_DEVICES")


def write_dataset(path: Path, n_cells: int) -> None:
    """Simulate the tissue; write the concatenated AnnData and the true θ beside it."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from napari_topomics.datasets import simulate_tissue

    mdata, truth = simulate_tissue(n_cells=n_cells, seed=0)
    X = sp.hstack([mdata.mod[m].X for m in SIZES], format="csr", dtype=np.float32)
    var = pd.DataFrame(index=np.concatenate([mdata.mod[m].var_names for m in SIZES]))
    ad.AnnData(X=X, obs=pd.DataFrame(index=mdata.obs_names), var=var).write_h5ad(path)
    np.save(path.with_suffix(".theta.npy"), truth.theta)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(args) -> int:
    """One rank of a fit: train and write this rank's figures as JSON."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import quiet

    quiet()
    import anndata as ad
    import numpy as np
    import scvi
    from lightning.pytorch import Callback

    from napari_topomics.metrics import matched_theta_correlation
    from napari_topomics.models import MultimodalAmortizedLDA

    class EpochClock(Callback):
        starts: list = []
        ends: list = []
        cpu: list = []

        def on_train_epoch_start(self, trainer, pl_module):
            self.starts.append(time.perf_counter())
            self.cpu.append(cpu_seconds())

        def on_train_epoch_end(self, trainer, pl_module):
            self.ends.append(time.perf_counter())
            self.cpu.append(cpu_seconds())

    scvi.settings.seed = 0
    if args.lazy:  # the matrix stays on disk; each rank loads only its share's rows
        from napari_topomics.io import open_lazy

        adata = open_lazy(args.data)
    else:
        adata = ad.read_h5ad(args.data)
    model = MultimodalAmortizedLDA.from_data(
        adata, modalities=list(SIZES), n_inputs_modalities=list(SIZES.values()),
        likelihoods=LIKELIHOODS, n_topics=8,
    )
    built_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    clock = EpochClock()
    kwargs: dict = {"max_epochs": args.epochs, "enable_progress_bar": False,
                    "enable_model_summary": False, "enable_checkpointing": False,
                    "accelerator": "cpu", "callbacks": [clock],
                    "batch_size": args.batch_size}
    if args.devices * args.num_nodes > 1:
        kwargs.update(strategy="ddp", devices=args.devices, num_nodes=args.num_nodes)
    start = time.perf_counter()
    model.train(**kwargs)
    wall = time.perf_counter() - start
    rank = model.trainer.global_rank
    n = len(clock.ends)
    later = slice(1, n) if n > 1 else slice(0, n)  # epoch 1 pays the start-up
    s_epoch = float(np.mean(np.array(clock.ends)[later] - np.array(clock.starts)[later]))
    cpu = np.array(clock.cpu).reshape(-1, 2)
    out = {"rank": rank, "world": model.trainer.world_size, "s_per_epoch": s_epoch,
           "cpu_s_per_epoch": float(np.mean(cpu[later, 1] - cpu[later, 0])),
           "train_wall_s": wall,
           "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
           "built_peak_rss_gb": built_rss}
    if rank == 0 and args.theta:
        truth = np.load(Path(args.data).with_suffix(".theta.npy"))
        out["theta_r"] = matched_theta_correlation(model.get_cell_topic_dist(), truth)
    Path(args.worker, f"rank{rank}.json").write_text(json.dumps(out))
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(out: Path, data: Path, epochs: int, devices: int = 1, nodes: int = 1,
           theta: bool = True, batch_size: int = 128, lazy: bool = False) -> list[dict]:
    """Run a fit in fresh processes (``nodes`` loopback nodes); every rank's figures."""
    out.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    base["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(out), "--data",
           str(data), "--epochs", str(epochs), "--devices", str(devices), "--num-nodes",
           str(nodes), "--batch-size", str(batch_size)] + (["--theta"] if theta else []) + (
               ["--lazy"] if lazy else [])
    port = str(free_port())
    procs = []
    for node in range(nodes):
        env = dict(base)
        if nodes > 1:
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(node),
                       WORLD_SIZE=str(nodes * devices))
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed ({proc.returncode}): {err[-2000:]}")
    return [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


def speed_and_nodes(args, tmp: Path) -> None:
    data = tmp / "tissue.h5ad"
    start = time.perf_counter()
    write_dataset(data, args.cells)
    print(f"simulated_cells={args.cells} features={sum(SIZES.values())} "
          f"simulate_s={time.perf_counter() - start:.1f}")
    if args.part in ("speed", "all"):
        pairs = []  # single and two-process fits interleaved, so drifts in load hit both
        for _ in range(args.repeats):
            single = launch(tmp / f"single{len(pairs)}", data, args.epochs,
                            batch_size=args.batch_size, lazy=args.lazy)[0]
            two = launch(tmp / f"two{len(pairs)}", data, args.epochs, devices=2,
                         batch_size=args.batch_size, lazy=args.lazy)
            pairs.append((single, two))
        single, two = pairs[0]
        print(f"single_theta_r={single['theta_r']:.4f}")
        print(f"ddp2_theta_r={two[0]['theta_r']:.4f}")
        for i, (single, two) in enumerate(pairs):
            tag = f"_run{i + 1}" if args.repeats > 1 else ""
            print(f"single_s_per_epoch{tag}={single['s_per_epoch']:.3f}")
            print(f"ddp2_s_per_epoch{tag}={two[0]['s_per_epoch']:.3f}")
            print(f"ddp2_over_single_s_per_epoch{tag}="
                  f"{two[0]['s_per_epoch'] / single['s_per_epoch']:.3f}")
        if args.repeats > 1:
            import numpy as np

            s1 = float(np.median([p[0]["s_per_epoch"] for p in pairs]))
            s2 = float(np.median([p[1][0]["s_per_epoch"] for p in pairs]))
            print(f"single_s_per_epoch_median={s1:.3f}")
            print(f"ddp2_s_per_epoch_median={s2:.3f}")
            print(f"ddp2_over_single_s_per_epoch_median={s2 / s1:.3f}")
        single, two = pairs[-1]
        print(f"single_cpu_s_per_epoch={single['cpu_s_per_epoch']:.3f}")
        for r in two:
            print(f"ddp2_rank{r['rank']}_cpu_s_per_epoch={r['cpu_s_per_epoch']:.3f}")
        print(f"ddp2_cpu_per_process_over_single="
              f"{max(r['cpu_s_per_epoch'] for r in two) / single['cpu_s_per_epoch']:.3f}")
        print(f"single_train_wall_s={single['train_wall_s']:.1f}")
        print(f"ddp2_train_wall_s={two[0]['train_wall_s']:.1f}")
    if args.part in ("nodes", "all"):
        nodes = launch(tmp / "nodes", data, args.epochs, nodes=2, batch_size=args.batch_size,
                        lazy=args.lazy)
        print(f"nodes2_world={nodes[0]['world']}")
        print(f"nodes2_theta_r={nodes[0]['theta_r']:.4f}")
        print(f"nodes2_s_per_epoch={nodes[0]['s_per_epoch']:.3f}")


def memory(args, tmp: Path) -> None:
    data = tmp / "large.h5ad"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--write", str(data),
                           "--cells", str(args.memory_cells)], check=True)
    del proc
    print(f"memory_cells={args.memory_cells} memory_features={sum(SIZES.values())} "
          f"simulate_s={time.perf_counter() - start:.1f}")
    single = launch(tmp / "mem1", data, 1, theta=False)[0]
    lazy = launch(tmp / "mem1lazy", data, 1, theta=False, lazy=True)[0]
    two = launch(tmp / "mem2", data, 1, devices=2, theta=False, lazy=True)
    print(f"memory_single_in_memory_peak_rss_gb={single['peak_rss_gb']:.3f}")
    print(f"memory_single_lazy_peak_rss_gb={lazy['peak_rss_gb']:.3f}")
    for r in two:
        print(f"memory_ddp2_lazy_rank{r['rank']}_peak_rss_gb={r['peak_rss_gb']:.3f}")
    for name, r in (("single_in_memory", single), ("single_lazy", lazy), ("ddp2_rank0", two[0])):
        print(f"memory_{name}_peak_rss_before_training_gb={r['built_peak_rss_gb']:.3f}")
    worst = max(r["peak_rss_gb"] for r in two)
    print(f"memory_ddp2_over_single_per_rank={worst / single['peak_rss_gb']:.3f}")
    print(f"memory_ddp2_over_single_lazy_per_rank={worst / lazy['peak_rss_gb']:.3f}")
    print(f"memory_single_s_per_epoch={single['s_per_epoch']:.1f}")
    print(f"memory_single_lazy_s_per_epoch={lazy['s_per_epoch']:.1f}")
    print(f"memory_ddp2_s_per_epoch={two[0]['s_per_epoch']:.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("speed", "nodes", "memory", "all"), default="all")
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--memory-cells", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=128,
                        help="cells per minibatch and process (speed and nodes parts)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="speed part: single/two-process pairs run in turn; the ratio "
                             "of the medians is the figure")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--write", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--num-nodes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--theta", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lazy", action="store_true",
                        help="open the data with open_lazy (speed/nodes parts; the memory "
                             "part always reads lazily)")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.write:
        write_dataset(Path(args.write), args.cells)
        return 0
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import machine, single_thread

    single_thread()
    print(f"# bench_distributed: {machine()}; each process 1 torch thread, gloo, "
          f"batch_size {args.batch_size} per process")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if args.part != "memory":
            speed_and_nodes(args, tmp)
        if args.part in ("memory", "all"):
            memory(args, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
