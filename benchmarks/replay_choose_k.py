"""Replay recommendation rules for K on stored sweeps (``bench_choose_k.py --dump``).

Choosing the rule of ``TopicSweep.recommended`` by refitting every sweep for every idea
costs an hour a try; the dumps keep what a rule may read (the frame, each fit's topic
contrasts and cell-topic proportions), so rules are compared here in seconds. Choose on
some seeds, judge the winner with ``bench_choose_k.py`` on seeds no dump holds.

Usage::

    python benchmarks/replay_choose_k.py sweeps/                  # every dump
    python benchmarks/replay_choose_k.py sweeps/ --seeds 0 1 2 3  # the seeds a rule is chosen on
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from napari_topomics.metrics import match_topics, topic_correlation_matrix
from napari_topomics.models import TopicSweep
from napari_topomics.models._sweep import _before_largest_drop as largest_drop
from napari_topomics.models._sweep_metrics import topic_redundancy

THRESHOLD = 0.95


def load(path: Path) -> dict:
    """One stored sweep: generator, seed, true K, per-K table and per-fit arrays."""
    name, seed = re.fullmatch(r"(.+)_s(\d+)", path.stem).groups()
    data = np.load(path)
    frame = pd.DataFrame({k[6:]: data[k] for k in data.files if k.startswith("frame_")})
    fits = {}
    for key in data.files:
        if key.startswith("theta_"):
            _, k, s = key.split("_")
            fits[(int(k), int(s))] = {"theta": data[key], "contrasts": data[f"contrasts_{k}_{s}"]}
    if "redundancy" not in frame:  # dumps made before the sweep measured it
        frame["redundancy"] = [topic_redundancy(fits[(int(k), int(s))]["contrasts"])
                               for k, s in zip(frame["K"], frame["seed"], strict=True)]
    per_k = frame.drop(columns="seed").groupby("K").mean()
    per_k["theta_stability"] = pd.Series(
        {k: theta_stability([f["theta"] for (kk, _), f in sorted(fits.items()) if kk == k])
         for k in per_k.index})
    per_k["min_mass"] = pd.Series(
        {k: np.mean([f["theta"].mean(0).min() * k for (kk, _), f in fits.items() if kk == k])
         for k in per_k.index})
    per_k["redundancy_top"] = per_k["redundancy"]
    per_k["redundancy"] = pd.Series(  # over every feature, not only the top contrasts
        {k: np.mean([topic_redundancy(f["contrasts"], n_top=len(f["contrasts"]))
                     for (kk, _), f in fits.items() if kk == k])
         for k in per_k.index})
    return {"name": name, "seed": int(seed), "true_k": int(data["true_k"]), "per_k": per_k,
            "frame": frame}


def library_choice(case: dict) -> int | None:
    """What ``TopicSweep.recommended`` (this checkout's rule) picks on a stored sweep."""
    ks = sorted(case["frame"]["K"].unique().tolist())
    sweep = TopicSweep([], ks, [0, 1], pd.Index([]), pd.Index([]))
    sweep.frame = case["frame"]
    return sweep.recommended


def theta_stability(thetas: list[np.ndarray]) -> float:
    """Mean over restart pairs of the mean matched correlation of θ columns over cells."""
    values = []
    for a, b in combinations(thetas, 2):
        corr = topic_correlation_matrix(b, a)
        matching = match_topics(b, a)
        values.append(corr[np.arange(len(matching)), matching].mean())
    return float(np.mean(values)) if values else float("nan")


def rule_current(t: pd.DataFrame) -> int:
    stable = t.index[t["stability"] >= THRESHOLD]
    return int(stable.max()) if len(stable) else largest_drop(t["stability"])


def rule_first_fall(t: pd.DataFrame) -> int:
    ok = (t["stability"] >= THRESHOLD).to_numpy()
    if not ok[0]:
        return largest_drop(t["stability"])
    first_bad = np.flatnonzero(~ok)
    return int(t.index[first_bad[0] - 1]) if first_bad.size else int(t.index[-1])


def rule_column(column: str, threshold: float, fallback: str = "drop") -> Callable:
    def rule(t: pd.DataFrame) -> int:
        stable = t.index[t[column] >= threshold]
        if len(stable):
            return int(stable.max())
        return largest_drop(t[column]) if fallback == "drop" else int(t[column].idxmax())
    rule.__name__ = f"{column}>={threshold:g} else {fallback}"
    return rule


def rule_both(phi: float, theta: float) -> Callable:
    def rule(t: pd.DataFrame) -> int:
        ok = (t["stability"] >= phi) & (t["theta_stability"] >= theta)
        if ok.any():
            return int(t.index[ok].max())
        return largest_drop(t["stability"])
    rule.__name__ = f"phi>={phi:g} and theta>={theta:g}"
    return rule


def rule_distinct(phi: float, limit: float, fallback: str = "drop",
                  column: str = "redundancy") -> Callable:
    def rule(t: pd.DataFrame) -> int:
        ok = (t["stability"] >= phi) & (t[column] < limit)
        if ok.any():
            return int(t.index[ok].max())
        if fallback == "drop":
            return largest_drop(t["stability"])
        distinct = t[t[column] < limit]
        return int(distinct["stability"].idxmax()) if len(distinct) else int(t.index[0])
    rule.__name__ = f"phi>={phi:g} and {column}<{limit:g} else {fallback}"
    return rule


def rules() -> list[Callable]:
    out = [rule_current, rule_first_fall]
    for th in (0.9, 0.93, 0.95, 0.97):
        out.append(rule_column("theta_stability", th))
        out.append(rule_column("theta_stability", th, "max"))
    for th in (0.8, 0.85, 0.9):
        out.append(rule_column("stability_min", th))
    for phi, theta in ((0.95, 0.9), (0.95, 0.93), (0.93, 0.93), (0.9, 0.95)):
        out.append(rule_both(phi, theta))
    for limit in (0.0, 0.2, 0.4, 0.5, 0.6):
        out.append(rule_distinct(THRESHOLD, limit))
        out.append(rule_distinct(THRESHOLD, limit, "distinct max"))
    for limit in (0.2, 0.4, 0.5, 0.6):
        out.append(rule_distinct(THRESHOLD, limit, column="redundancy_top"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--seeds", type=int, nargs="*", default=None)
    parser.add_argument("--show", action="store_true", help="print every case's table")
    args = parser.parse_args()
    cases = [load(p) for p in sorted(Path(args.folder).glob("*.npz"))]
    if args.seeds:
        cases = [c for c in cases if c["seed"] in args.seeds]
    if args.show:
        cols = ["stability", "stability_min", "theta_stability", "topics_used", "diversity",
                "min_mass", "redundancy", "perplexity"]
        for c in cases:
            print(f"{c['name']} s{c['seed']} (true {c['true_k']})")
            print(c["per_k"][cols].round(3).to_string())
    real = [c for c in cases if c["true_k"] == 0]  # real sets: no truth, show the picks
    cases = [c for c in cases if c["true_k"] > 0]
    for c in real:
        print(f"{c['name']}: this checkout -> {library_choice(c)}; " +
              ", ".join(f"{r.__name__} -> {r(c['per_k'])}" for r in rules()))
    print(f"{len(cases)} cases")
    library_choice.__name__ = "TopicSweep.recommended (this checkout)"
    for rule in [library_choice, *rules()]:
        picks = np.array([rule(c) if rule is library_choice else rule(c["per_k"])
                          for c in cases])
        truth = np.array([c["true_k"] for c in cases])
        misses = [f"{c['name']} s{c['seed']}->{p}" for c, p in zip(cases, picks, strict=True)
                  if p != c["true_k"]]
        print(f"{rule.__name__:<40} exact {np.sum(picks == truth):>2}/{len(cases)}  "
              f"within 1 {np.sum(np.abs(picks - truth) <= 1):>2}/{len(cases)}  "
              f"misses: {', '.join(misses)}")


if __name__ == "__main__":
    main()
