"""Scale targets of issue 6: s/epoch, peak RSS and sampling work from 10k to 1M cells.

Three targets, measured in one run and printed side by side:

1. **Linear growth.** Seconds per epoch and peak RSS of an RNA-only (NB) fit, 10 topics,
   batch 128, for 10k, 100k and 1M cells (non-spatial) and 10k and 100k cells (spatial GCN,
   kNN(6) graph from the coordinates, sampled fan-out [10]). Seconds per epoch come from a
   PARTIAL epoch: ``max_epochs=1`` with Lightning's ``limit_train_batches``; the mean time
   per batch (data loading and step, after a few warm-up batches) times the batches of a
   full epoch. Linear growth means flat s/epoch per 1,000 cells.
2. **Sampling cost flat in N**, measured by work, not time: for 128 seeds, the size of the
   subgraph ``NeighbourSampler.sample`` returns (nodes, edges) and its tracemalloc peak, on
   the 10k / 100k / 1M graphs.
3. **1M cells x 2,000 genes fit in < 12 GB peak RSS** (non-spatial).

Every size runs in a fresh child process, so its peak RSS (``ru_maxrss``, which includes
making the data) is its own. The data are cheap to make at 1M: a CSR count matrix with
~200 counts per cell over 2,000 genes, drawn in chunks from 10 topic profiles laid out in
spatial blocks of a jittered grid (realistic sparsity: ~100 non-zeros per cell).

    python benchmarks/bench_spatial_scale.py                # full run (5-10 min on 2 cores)
    python benchmarks/bench_spatial_scale.py --quick        # 10k and 100k only
    python benchmarks/bench_spatial_scale.py --sizes 10000 --spatial-sizes 10000 --batches 50

A full run also writes the printed table to ``benchmarks/results/spatial_scale.txt``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import peak_rss_gb, quiet, single_thread  # noqa: E402

FULL_SIZES = [10_000, 100_000, 1_000_000]
FULL_SPATIAL = [10_000, 100_000]
QUICK_SIZES = [10_000, 100_000]
RESULTS = Path(__file__).parent / "results" / "spatial_scale.txt"
N_TOPICS, BATCH, FAN_OUT, N_SEEDS = 10, 128, [10], 128
LINEAR_MAX_RATIO = 1.5  # s/epoch per 1k cells may grow at most this much across sizes
FLAT_MAX_RATIO = 1.25  # sampling work may differ at most this much across graph sizes
RSS_LIMIT_GB = 12.0
TAG = "RESULT "


# ---------------------------------------------------------------------- data
def grid_coords(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 2)`` cell centroids on a jittered square grid of unit spacing."""
    rng = np.random.default_rng(seed)
    side = math.ceil(math.sqrt(n))
    ids = np.arange(n)
    coords = np.stack([ids % side, ids // side], axis=1).astype(np.float64)
    coords += rng.uniform(-0.3, 0.3, size=coords.shape)
    return coords


def count_matrix(coords: np.ndarray, n_genes: int, depth: float, seed: int = 0,
                 chunk: int = 50_000) -> sp.csr_matrix:
    """Sparse CSR float32 counts: ~``depth`` counts per cell from spatially blocked topics.

    Each cell's counts come 80 % from the topic of its spatial block and 20 % from random
    topics; topic profiles share a heavy-tailed base expression and boost 50 marker genes
    each. Built ``chunk`` cells at a time, so temporaries stay small.
    """
    rng = np.random.default_rng(seed)
    n = coords.shape[0]
    base = rng.lognormal(0.0, 1.5, n_genes)
    profiles = np.tile(base, (N_TOPICS, 1))
    for k in range(N_TOPICS):
        profiles[k, rng.choice(n_genes, 50, replace=False)] *= 20.0
    cdf = np.cumsum(profiles, axis=1)
    cdf /= cdf[:, -1:]
    # topic k's cdf lives in (k, k + 1]: one searchsorted serves every topic at once
    flat_cdf = (cdf + np.arange(N_TOPICS)[:, None]).ravel()
    side = coords[:, 0].max() + 1
    block = side / math.sqrt(N_TOPICS)
    domain = ((coords[:, 0] // block) + (coords[:, 1] // block) * 7).astype(np.int64) % N_TOPICS
    indptr = np.zeros(n + 1, dtype=np.int64)
    indices, data = [], []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = stop - start
        lib = rng.poisson(depth * rng.lognormal(-0.045, 0.3, m))
        cell = np.repeat(np.arange(m, dtype=np.int64), lib)
        topic = domain[start:stop][cell]
        mixed = rng.random(cell.size) < 0.2
        topic[mixed] = rng.integers(0, N_TOPICS, int(mixed.sum()))
        gene = np.searchsorted(flat_cdf, topic + rng.random(cell.size)) - topic * n_genes
        np.clip(gene, 0, n_genes - 1, out=gene)
        keys, counts = np.unique(cell * n_genes + gene, return_counts=True)
        del cell, topic, mixed, gene
        rows = keys // n_genes
        indices.append((keys - rows * n_genes).astype(np.int32))
        data.append(counts.astype(np.float32))
        indptr[start + 1:stop + 1] = np.cumsum(np.bincount(rows, minlength=m)) + indptr[start]
        del keys, counts, rows
    return sp.csr_matrix((np.concatenate(data), np.concatenate(indices), indptr),
                         shape=(n, n_genes))


# ---------------------------------------------------------------------- children
def rss_now_gb() -> float:
    """Current resident set size of this process in GB (Linux ``/proc``; NaN elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**3
    except (OSError, ValueError, IndexError):
        return float("nan")


def _clock_callback():
    from lightning.pytorch.callbacks import Callback

    class BatchClock(Callback):
        def __init__(self):
            self.ends: list[float] = []
            self.start = 0.0

        def on_train_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.ends.append(time.perf_counter())

    return BatchClock()


def child_fit(n: int, spatial: bool, n_genes: int, depth: float, batches: int) -> dict:
    """Make the data, set up, build and partly train one model; return the figures."""
    import anndata as ad
    import pandas as pd
    import scvi

    from napari_topomics.models import MultimodalAmortizedLDA

    scvi.settings.seed = 0
    out: dict = {"mode": "spatial gcn" if spatial else "non-spatial", "cells": n}
    t = time.perf_counter()
    coords = grid_coords(n)
    X = count_matrix(coords, n_genes, depth)
    adata = ad.AnnData(X=X, obs=pd.DataFrame(index=np.arange(n).astype(str)),
                       var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    adata.obsm["spatial"] = coords
    del X
    out.update(data_s=time.perf_counter() - t, nnz_per_cell=adata.X.nnz / n,
               counts_per_cell=float(adata.X.sum()) / n, rss_data_gb=peak_rss_gb(),
               now_data_gb=rss_now_gb())
    t = time.perf_counter()
    MultimodalAmortizedLDA.setup_anndata(adata, spatial_key="spatial" if spatial else None)
    out.update(setup_s=time.perf_counter() - t, rss_setup_gb=peak_rss_gb(),
               now_setup_gb=rss_now_gb())
    t = time.perf_counter()
    kwargs = {"spatial_mode": "gcn", "gcn_fan_out": FAN_OUT} if spatial else {}
    model = MultimodalAmortizedLDA(adata, likelihoods=["nb"], n_topics=N_TOPICS, **kwargs)
    out.update(constructor_s=time.perf_counter() - t, rss_constructor_gb=peak_rss_gb(),
               now_constructor_gb=rss_now_gb(), spatial=bool(model.spatial))
    clock = _clock_callback()
    t = time.perf_counter()
    model.train(max_epochs=1, batch_size=BATCH, train_size=1.0, limit_train_batches=batches,
                enable_progress_bar=False, callbacks=[clock], logger=False)
    out["train_call_s"] = time.perf_counter() - t
    ends = np.asarray(clock.ends)
    warm = min(10, max(1, ends.size // 5))
    steps = np.diff(ends)[warm - 1:] if ends.size > warm else np.diff(np.r_[clock.start, ends])
    out.update(
        batches_run=int(ends.size), batches_timed=int(steps.size),
        s_per_batch=float(steps.mean()), s_per_batch_median=float(np.median(steps)),
        batches_per_epoch=math.ceil(n / BATCH), rss_peak_gb=peak_rss_gb(),
        now_train_gb=rss_now_gb(),
        load_1min=os.getloadavg()[0],
    )
    out["s_per_epoch"] = out["s_per_batch"] * out["batches_per_epoch"]
    out["s_per_epoch_per_1k"] = out["s_per_epoch"] / (n / 1000)
    return out


def child_sample(n: int, repeats: int) -> dict:
    """Work of ``NeighbourSampler.sample`` for 128 seeds on the kNN(6) graph of n cells."""
    import tracemalloc

    from napari_topomics.data import NeighbourSampler, build_spatial_graph

    t = time.perf_counter()
    conn, _ = build_spatial_graph(grid_coords(n), method="knn", n_neighbors=6)
    sampler = NeighbourSampler(conn)
    out: dict = {"cells": n, "graph_s": time.perf_counter() - t, "edges_total": int(conn.nnz)}
    del conn
    for label, hops, fan_out in (("1 hop [10]", 1, FAN_OUT), ("2 hops [10,10]", 2, [10, 10]),
                                 ("1 hop exact", 1, None)):
        nodes, edges, peaks, secs = [], [], [], []
        for r in range(repeats):
            seeds = np.random.default_rng(r).choice(n, N_SEEDS, replace=False)
            rng = np.random.default_rng(100 + r)
            tracemalloc.start()
            t = time.perf_counter()
            sub = sampler.sample(seeds, hops, fan_out, rng)
            secs.append(time.perf_counter() - t)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            nodes.append(sub.n_nodes)
            edges.append(sub.n_edges)
        out[label] = {"nodes": float(np.mean(nodes)), "edges": float(np.mean(edges)),
                      "peak_kib": float(np.median(peaks)) / 1024,
                      "us_per_call": float(np.median(secs)) * 1e6}
    return out


# ---------------------------------------------------------------------- parent
def run_child(args: list[str], timeout: float | None = None) -> dict:
    """Run this script as a child and return the JSON figures it prints (or an error)."""
    cmd = [sys.executable, __file__, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(TAG):
            return json.loads(line[len(TAG):])
    lines = (proc.stderr or proc.stdout or "no output").strip().splitlines()
    return {"error": f"exit {proc.returncode}: {lines[-1] if lines else 'no output'}"}


def machine_line() -> str:
    import platform

    import torch

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, {mem:.1f} GB RAM, "
            f"torch {torch.__version__} with {torch.get_num_threads()} thread(s) per process, "
            f"load average {load}")


def source_line() -> str:
    """Which package was measured: this checkout's commit (and uncommitted ``src/``), or a path."""
    import napari_topomics

    root = Path(__file__).resolve().parent.parent
    src = Path(napari_topomics.__file__).resolve().parent.parent
    if src != root / "src":
        return f"source: napari_topomics imported from {src} (not this checkout)"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"source: {src} (not a git checkout)"
    return f"source: commit {head}" + (" + uncommitted changes in src/" if dirty else "")


def fit_table(fits: list[dict]) -> list[str]:
    head = (f"{'model':<12s} {'cells':>9s} {'nnz/cell':>8s} {'setup s':>8s} {'ctor s':>7s} "
            f"{'batches':>7s} {'ms/batch':>8s} {'s/epoch':>8s} {'s/ep/1k':>8s} "
            f"{'peak RSS GB':>11s} {'load':>5s}  epoch")
    lines = [head, "-" * len(head)]
    for f in fits:
        if "error" in f:
            lines.append(f"{f['mode']:<12s} {f['cells']:>9d}  FAILED: {f['error']}")
            continue
        lines.append(
            f"{f['mode']:<12s} {f['cells']:>9d} {f['nnz_per_cell']:>8.1f} {f['setup_s']:>8.1f} "
            f"{f['constructor_s']:>7.1f} {f['batches_timed']:>7d} {1e3 * f['s_per_batch']:>8.1f} "
            f"{f['s_per_epoch']:>8.1f} {f['s_per_epoch_per_1k']:>8.3f} {f['rss_peak_gb']:>11.2f} "
            f"{f['load_1min']:>5.1f}  {_epoch_kind(f)}"
        )
    return lines


def _epoch_kind(f: dict) -> str:
    return "full" if f["batches_run"] >= f["batches_per_epoch"] else "partial"


def phase_table(fits: list[dict]) -> list[str]:
    """Seconds of the data and training phases; RSS now / peak so far after each phase."""
    head = (f"{'phases':<12s} {'cells':>9s} {'data s':>7s} {'train() s':>9s}  "
            + " ".join(f"{p:>11s}" for p in ("data", "setup", "ctor", "train")))
    lines = ["RSS after each phase, GB: now/peak so far", head, "-" * len(head)]
    for f in fits:
        if "error" in f:
            continue
        phases = " ".join(f"{f['now_' + p + '_gb']:>5.2f}/{f['rss_' + q + '_gb']:<5.2f}"
                          for p, q in (("data", "data"), ("setup", "setup"),
                                       ("constructor", "constructor"), ("train", "peak")))
        lines.append(f"{f['mode']:<12s} {f['cells']:>9d} {f['data_s']:>7.1f} "
                     f"{f['train_call_s']:>9.1f}  {phases}".rstrip())
    return lines


def sample_table(samples: list[dict]) -> list[str]:
    head = (f"{'sampling':<15s} {'cells':>9s} {'nodes':>7s} {'edges':>7s} "
            f"{'tracemalloc peak KiB':>20s} {'us/call (info)':>14s}")
    lines = [head, "-" * len(head)]
    for label in ("1 hop [10]", "2 hops [10,10]", "1 hop exact"):
        for s in samples:
            if "error" in s:
                lines.append(f"{label:<15s} {s['cells']:>9d}  FAILED: {s['error']}")
                continue
            w = s[label]
            lines.append(f"{label:<15s} {s['cells']:>9d} {w['nodes']:>7.0f} {w['edges']:>7.0f} "
                         f"{w['peak_kib']:>20.1f} {w['us_per_call']:>14.0f}")
    return lines


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("MET" if ok else "NOT MET")


def summaries(fits: list[dict], samples: list[dict]) -> list[str]:
    lines = []
    for mode in ("non-spatial", "spatial gcn"):
        rows = [f for f in fits if f["mode"] == mode and "error" not in f]
        if len(rows) < 2:
            lines.append(f"linear growth ({mode}): {_verdict(None)} (needs two sizes)")
            continue
        per_1k = [f["s_per_epoch_per_1k"] for f in rows]
        ratios = [p / per_1k[0] for p in per_1k]
        steps = ", ".join(f"{f['cells'] // 1000}k {r:.2f}" for f, r in zip(rows, ratios,
                                                                          strict=True))
        ok = max(ratios) <= LINEAR_MAX_RATIO
        lines.append(f"linear growth ({mode}): s/epoch per 1k cells relative to "
                     f"{rows[0]['cells'] // 1000}k: {steps} (<= {LINEAR_MAX_RATIO}) -> "
                     f"{_verdict(ok)}")
    plain = {f["cells"]: f for f in fits if f["mode"] == "non-spatial" and "error" not in f}
    cost = [f"{f['cells'] // 1000}k x{f['s_per_batch'] / plain[f['cells']]['s_per_batch']:.1f}"
            for f in fits if f["mode"] == "spatial gcn" and "error" not in f
            and f["cells"] in plain]
    if cost:
        lines.append(f"(info) spatial GCN / non-spatial time per batch: {', '.join(cost)}")
    good = [s for s in samples if "error" not in s]
    if len(good) >= 2:
        parts, ok = [], True
        for key, name in (("nodes", "nodes"), ("edges", "edges"), ("peak_kib", "peak")):
            vals = [s["1 hop [10]"][key] for s in good]
            ratio = max(vals) / min(vals)
            ok &= ratio <= FLAT_MAX_RATIO
            parts.append(f"{name} max/min {ratio:.2f}")
        span = f"{good[0]['cells'] // 1000}k-{good[-1]['cells'] // 1000}k"
        lines.append(f"sampling work flat in N (1 hop [10], 128 seeds, {span}): "
                     f"{', '.join(parts)} (<= {FLAT_MAX_RATIO}) -> {_verdict(ok)}")
    else:
        lines.append(f"sampling work flat in N: {_verdict(None)} (needs two sizes)")
    big = [f for f in fits if f["mode"] == "non-spatial" and f["cells"] >= 1_000_000]
    if big and "error" not in big[0]:
        rss = big[0]["rss_peak_gb"]
        lines.append(f"1M cells x {big[0]['genes']} genes peak RSS: {rss:.2f} GB "
                     f"(< {RSS_LIMIT_GB:.0f} GB) -> {_verdict(rss < RSS_LIMIT_GB)}")
    else:
        why = big[0]["error"] if big else "1M not in --sizes"
        lines.append(f"1M cells peak RSS < {RSS_LIMIT_GB:.0f} GB: {_verdict(None)} ({why})")
    return lines


def cell_counts(text: str) -> list[int]:
    """Comma-separated cell counts, e.g. ``10000,100000``."""
    return [int(x) for x in text.split(",") if x.strip()]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=cell_counts, default=None,
                   help="non-spatial cell counts, comma-separated (default 10000,100000,1000000)")
    p.add_argument("--spatial-sizes", type=cell_counts, default=None,
                   help="spatial GCN cell counts (default 10000,100000)")
    p.add_argument("--sample-sizes", type=cell_counts, default=None,
                   help="graph sizes for the sampling work (default: --sizes)")
    p.add_argument("--quick", action="store_true", help="10k and 100k only")
    p.add_argument("--batches", type=int, default=300, help="batches of the partial epoch")
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--depth", type=float, default=200.0, help="mean counts per cell")
    p.add_argument("--repeats", type=int, default=20, help="seed sets per sampling size")
    p.add_argument("--out", type=Path, default=None,
                   help=f"write the table here (default for a full run: {RESULTS})")
    p.add_argument("--child", choices=["fit", "spatial", "sample"], help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    for name, low in (("batches", 2), ("genes", 50), ("depth", 1), ("repeats", 1)):
        if getattr(args, name) < low:
            p.error(f"--{name} must be >= {low}, got {getattr(args, name)}")
    for name in ("sizes", "spatial_sizes", "sample_sizes"):
        bad = [n for n in getattr(args, name) or [] if n < 2 * BATCH]
        if bad:
            p.error(f"--{name.replace('_', '-')}: cell counts must be >= {2 * BATCH}, got {bad}")
    return args


def main() -> None:
    args = _args()
    single_thread()
    quiet()
    if args.child:
        if args.child == "sample":
            result = child_sample(args.n, args.repeats)
        else:
            result = child_fit(args.n, args.child == "spatial", args.genes, args.depth,
                               args.batches)
            result["genes"] = args.genes
        print(TAG + json.dumps(result), flush=True)
        return
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    spatial_sizes = args.spatial_sizes or (QUICK_SIZES if args.quick else FULL_SPATIAL)
    sample_sizes = args.sample_sizes or sizes
    out_path = args.out or (None if args.quick or args.sizes or args.spatial_sizes else RESULTS)
    started = time.time()
    header = [
        f"# bench_spatial_scale: {time.strftime('%Y-%m-%d %H:%M')}",
        f"# {machine_line()}",
        f"# {source_line()}",
        f"# data: CSR counts, {args.genes} genes, ~{args.depth:.0f} counts/cell, {N_TOPICS} "
        f"topic profiles in spatial blocks, jittered grid coordinates; fit: RNA only (NB), "
        f"n_topics={N_TOPICS}, batch_size={BATCH}, train_size=1.0, one torch thread",
        f"# s/epoch is estimated from a PARTIAL epoch: max_epochs=1, "
        f"limit_train_batches={args.batches}; mean wall time per batch (loading + step) after "
        f"warm-up x ceil(cells / {BATCH}) batches per epoch",
        "# peak RSS: ru_maxrss of a fresh child process per size (data making included)",
    ]
    print("\n".join(header), flush=True)
    print(fit_table([])[0], flush=True)
    fits = []
    for mode, group in (("fit", sizes), ("spatial", spatial_sizes)):
        for n in group:
            res = run_child(["--child", mode, "--n", str(n), "--batches", str(args.batches),
                             "--genes", str(args.genes), "--depth", str(args.depth)])
            res.setdefault("mode", "spatial gcn" if mode == "spatial" else "non-spatial")
            res.setdefault("cells", n)
            fits.append(res)
            print(fit_table([res])[-1], flush=True)
    samples = []
    for n in sample_sizes:
        res = run_child(["--child", "sample", "--n", str(n), "--repeats", str(args.repeats)])
        res.setdefault("cells", n)
        samples.append(res)
        print(f"sampling {n} cells done", flush=True)
    body = ["", *fit_table(fits), "", *phase_table(fits), "", *sample_table(samples), "",
            *summaries(fits, samples),
            f"# total wall time {(time.time() - started) / 60:.1f} min; load average at the "
            f"end {', '.join(f'{x:.2f}' for x in os.getloadavg())}"]
    print("\n".join(body), flush=True)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("\n".join(header + body) + "\n")
        print(f"# written to {out_path}")


if __name__ == "__main__":
    main()
