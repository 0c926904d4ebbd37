"""How many topics? ``sweep_topics`` fits a range of K and recommends one (``TopicSweep``)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from ._sweep_data import (
    cell_names,
    check_n_jobs,
    check_seeds,
    check_topic_range,
    holdout_split,
    model_input,
    split_kwargs,
    subset_cells,
)
from ._sweep_fits import FitPayload, FitRecord, run_fits
from ._sweep_metrics import stability, topic_redundancy

#: Default stability a K must reach to be recommended (see :attr:`TopicSweep.recommended`).
STABILITY_THRESHOLD = 0.95
#: Default redundancy at or above which a K's topics count as holding a split topic: None,
#: no veto. On the simulator (unrelated topics by construction) a limit of 0.2-0.6 helps,
#: but real related programs (CD4/CD8 T cells, neighbouring layers) correlate 0.56-0.82
#: and a limit of 0.5 lowered both real sets' choice (docs/benchmarks.md).
REDUNDANCY_LIMIT: float | None = None


class TopicSweep:
    """The fits of a topic sweep, one row per K and seed, and the K it recommends.

    Attributes
    ----------
    frame
        The tidy table (see :meth:`to_frame`).
    n_topics, seeds
        The K values and seeds asked for.
    fit_cells, heldout_cells
        The cells every fit trained on, and the cells no fit saw (one split for all).
    stopped
        True when the sweep was stopped before every fit finished.
    stability_threshold
        The stability a K needs to be recommended.
    redundancy_limit
        The redundancy (closest pair of topics) a recommended K must stay below; None: not
        used by the rule (still measured and shown).
    """

    def __init__(
        self,
        records: list[FitRecord],
        n_topics: list[int],
        seeds: list[int],
        fit_cells: pd.Index,
        heldout_cells: pd.Index,
        *,
        stopped: bool = False,
        stability_threshold: float = STABILITY_THRESHOLD,
        redundancy_limit: float | None = REDUNDANCY_LIMIT,
        folder: tempfile.TemporaryDirectory | None = None,
    ) -> None:
        self.n_topics = list(n_topics)
        self.seeds = list(seeds)
        self.fit_cells = fit_cells
        self.heldout_cells = heldout_cells
        self.stopped = stopped
        self.stability_threshold = float(stability_threshold)
        self.redundancy_limit = None if redundancy_limit is None else float(redundancy_limit)
        self._records = {(r.n_topics, r.seed): r for r in records}
        self._folder = folder  # keeps worker models on disk as long as the sweep lives
        self.frame = _frame(records)

    # ------------------------------------------------------------------ tables
    def to_frame(self) -> pd.DataFrame:
        """One row per finished fit: ``K``, ``seed``, held-out ``perplexity`` and
        ``perplexity_<modality>`` (lower is better), ``stability`` and ``stability_min``
        (mean and minimum matched topic correlation with the other seeds of that K),
        ``redundancy`` (the largest correlation between two of the fit's topics),
        ``diversity``, ``topics_used``, ``morans_i`` (NaN without coordinates) and
        ``fit_seconds``."""
        return self.frame.copy()

    def summary(self) -> pd.DataFrame:
        """Per K: the mean of every column over seeds, and ``perplexity_se`` (its standard
        error across seeds), ``n_fits`` and ``recommended``."""
        if self.frame.empty:
            return pd.DataFrame()
        grouped = self.frame.drop(columns="seed").groupby("K")
        out = grouped.mean()
        counts = grouped.size()
        out["perplexity_se"] = grouped["perplexity"].std(ddof=1) / np.sqrt(counts)
        out["n_fits"] = counts
        out["recommended"] = out.index == self.recommended
        return out

    # ------------------------------------------------------------------ the choice
    @property
    def recommended(self) -> int | None:
        """The recommended number of topics.

        Rule: **the largest K whose topics are stable** (and distinct, when
        :attr:`redundancy_limit` is set). Stable: its stability
        reaches :attr:`stability_threshold` (0.95 by default), where a K's stability is the
        mean, over pairs of its restarts, of the mean correlation of their one-to-one
        matched topics (each topic's log φ contrast to the other topics, over its top
        features). Above the true K the extra topics split real ones differently on every
        restart and the stability falls; up to it the topics are the same ones each time.
        Distinct (opt-in, off by default): its redundancy, the largest correlation between
        two topics of one fit (mean over restarts), stays below :attr:`redundancy_limit`. A
        split that happens the same way on every restart is stable, but its two halves
        share the topic's features; on simulated tissue distinct topics correlate below 0,
        but related real programs reach 0.5-0.8, so the veto is not a default. **If no K
        qualifies** (evenly mixed or shallow cells), the K after which the stability falls
        the most (the largest drop from one fitted K to the next); the largest K when it
        never falls. The fallback used to be the most stable K, which on such tissue is the
        smallest: merged topics are stable too. The held-out perplexity is reported beside
        it but does not decide: on the simulator family it moves by 0.1-1 % between K,
        within the spread of the restarts, with its minimum anywhere up to past the true K.
        ``None`` when no K has two finished restarts (stability needs ``seeds >= 2``).
        """
        return self._decision()[0]

    def _decision(self) -> tuple[int | None, str, pd.DataFrame]:
        """The recommended K, the branch of the rule that chose it (``"stable"``,
        ``"largest drop"``, ``"never falls"`` or ``"unmeasured"``) and the mean
        ``stability`` and ``redundancy`` per K (ascending, measured Ks only)."""
        columns = ["stability", "redundancy"]
        if self.frame.empty or "stability" not in self.frame:
            return None, "unmeasured", pd.DataFrame(columns=columns)
        frame = self.frame if "redundancy" in self.frame else self.frame.assign(
            redundancy=np.nan)  # no redundancy measured: no veto
        per_k = frame.groupby("K")[columns].mean().dropna(subset=["stability"])
        if per_k.empty:
            return None, "unmeasured", per_k
        chosen = per_k[self._stable(per_k) & self._distinct(per_k)]
        if not chosen.empty:
            return int(chosen.index.max()), "stable", per_k
        k = _before_largest_drop(per_k["stability"])
        return k, "largest drop" if k != per_k.index[-1] else "never falls", per_k

    def _stable(self, per_k: pd.DataFrame) -> pd.Series:
        return per_k["stability"] >= self.stability_threshold

    def _distinct(self, per_k: pd.DataFrame) -> pd.Series:
        # no limit, or a NaN redundancy (a single topic): no veto
        if self.redundancy_limit is None:
            return pd.Series(True, index=per_k.index)
        return ~(per_k["redundancy"] >= self.redundancy_limit)

    @property
    def rule(self) -> str:
        """The recommendation rule in one sentence (for reports and tables)."""
        distinct = ("" if self.redundancy_limit is None else
                    f" and distinct (no two topics correlate >= {self.redundancy_limit:g})")
        return (
            f"largest K whose topics are stable across seeds (mean matched correlation "
            f">= {self.stability_threshold:g}){distinct}; else the K after which the "
            "stability falls the most"
        )

    @property
    def reason(self) -> str:
        """Why :attr:`recommended` was picked on this sweep, with the figures that decided.

        Says when no K was stable and distinct, so a user can tell a firm choice from the
        fallback, and names a larger stable K that was passed over for a split topic.
        """
        k, branch, per_k = self._decision()
        threshold = self.stability_threshold
        vetoed = self.redundancy_limit is not None
        if branch == "unmeasured":
            return "no K has two finished seeds, so the stability is not measured"
        stability = per_k["stability"]
        split = per_k[self._stable(per_k) & ~self._distinct(per_k)]
        if branch == "stable":
            text = (f"K = {k} is the largest K whose topics are stable across seeds "
                    f"(stability {stability[k]:.3f} >= {threshold:g})"
                    f"{' and distinct' if vetoed else ''}")
            split = split[split.index > k]
            if not split.empty:
                big = int(split.index.max())
                text += (f"; K = {big} is stable too but two of its topics are near "
                         f"duplicates (correlation {split.loc[big, 'redundancy']:.2f} >= "
                         f"{self.redundancy_limit:g}): a topic split the same way each time")
            return text
        best = int(stability.idxmax())
        weak = (f"no K reached stability {threshold:g}"
                f"{' with distinct topics' if vetoed else ''} (best "
                f"{stability.max():.3f} at K = {best}): a weak choice. ")
        if branch == "never falls":
            return weak + f"The stability never falls from one K to the next, so the largest, {k}"
        after = stability[stability.index > k]
        return weak + (f"K = {k} has stability {stability[k]:.3f}; it falls to "
                       f"{after.iloc[0]:.3f} at K = {int(after.index[0])}, the largest fall "
                       "of the sweep")

    def best_model(self, n_topics: int | None = None):
        """The fitted model of ``n_topics`` (default: :attr:`recommended`), not retrained.

        Of that K's seeds, the one with the lowest held-out perplexity.
        """
        k = self.recommended if n_topics is None else n_topics
        return self._records[(self._k_of(n_topics, k), self.best_seed(n_topics))].get_model()

    def best_seed(self, n_topics: int | None = None) -> int:
        """The seed of the fit :meth:`best_model` returns for ``n_topics``."""
        k = self._k_of(n_topics, self.recommended if n_topics is None else n_topics)
        rows = self.frame[self.frame["K"] == k]
        return int(rows.sort_values(["perplexity", "seed"]).iloc[0]["seed"])

    def _k_of(self, asked: int | None, k: int | None) -> int:
        if k is None or self.frame.empty or not (self.frame["K"] == k).any():
            fitted = sorted(self.frame["K"].unique().tolist()) if not self.frame.empty else []
            raise ValueError(
                f"n_topics={asked!r} was not fitted in this sweep; fitted: {fitted}."
            )
        return int(k)

    def plot(self):
        """Curves of the sweep's measures against K with the recommended K marked.

        Returns the matplotlib ``Figure`` (four panels: held-out perplexity, stability with
        its threshold, diversity and topics used, Moran's I when measured).
        """
        from ._sweep_plot import plot_sweep

        return plot_sweep(self)

    def __repr__(self) -> str:
        return (
            f"TopicSweep(K={self.n_topics}, seeds={self.seeds}, fits={len(self.frame)}, "
            f"recommended={self.recommended}{', stopped' if self.stopped else ''})"
        )


def _before_largest_drop(per_k: pd.Series) -> int:
    """The K (index, ascending) after which the value falls the most; the last K when it
    never falls."""
    drops = per_k.to_numpy()[:-1] - per_k.to_numpy()[1:]
    if drops.size == 0 or drops.max() <= 0:
        return int(per_k.index[-1])
    return int(per_k.index[int(np.argmax(drops))])


def _frame(records: list[FitRecord]) -> pd.DataFrame:
    by_k: dict[int, list[FitRecord]] = {}
    for r in records:
        by_k.setdefault(r.n_topics, []).append(r)
    rows = []
    for k in sorted(by_k):
        group = by_k[k]
        mean, low = stability([r.contrasts for r in group])
        for r, s, s_min in zip(group, mean, low, strict=True):
            rows.append({"K": k, "seed": r.seed, **r.metrics, "stability": s,
                         "stability_min": s_min, "redundancy": topic_redundancy(r.contrasts),
                         "fit_seconds": r.seconds})
    return pd.DataFrame(rows)


def sweep_topics(
    data,
    n_topics: Iterable[int] = (4, 6, 8, 10, 12, 16),
    *,
    seeds: int | Iterable[int] = 2,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    holdout: float = 0.2,
    holdout_seed: int = 0,
    stability_threshold: float = STABILITY_THRESHOLD,
    redundancy_limit: float | None = REDUNDANCY_LIMIT,
    **kwargs: Any,
) -> TopicSweep:
    """Fit every K in ``n_topics`` with several seeds and recommend a number of topics.

    A seeded fraction ``holdout`` of the cells is set aside once; every fit is built and
    trained on the other cells only and scored on the held-out ones.

    Parameters
    ----------
    data
        Anything :meth:`MultimodalAmortizedLDA.from_data` accepts (AnnData, MuData,
        ``dict[str, AnnData]``, SpatialData: its table ``table_key``).
    n_topics
        The K values to fit (e.g. ``range(4, 17, 2)``); each at least 2 and below the
        number of cells.
    seeds
        Restarts per K (the seeds ``0 .. seeds-1``), or a list of seeds. The stability
        needs at least 2.
    n_jobs
        Worker processes (spawned, one torch thread each; ``-1``: every core). ``None`` or
        1 fits one after another in this process.
    progress
        Called as ``progress(done, total)`` after every finished fit.
    should_stop
        Polled during and between fits; when it returns True the sweep ends, keeping the
        fits finished so far (``TopicSweep.stopped`` is True).
    holdout, holdout_seed
        Fraction of the cells held out, and the seed of that split.
    stability_threshold
        The stability a K needs to be recommended (see :attr:`TopicSweep.recommended`).
    redundancy_limit
        The correlation between two topics of a fit at which a K counts as holding a split
        topic and is not recommended; None (default): the redundancy is measured and shown
        but does not decide.
    **kwargs
        Setup and constructor arguments (``modalities``, ``likelihoods``,
        ``spatial_keys``, ``n_hidden``...) go to ``from_data``; training arguments
        (``max_epochs``, ``batch_size``, ``plan_kwargs``, Lightning options) to ``train``.

    Returns
    -------
    TopicSweep

    Raises
    ------
    ValueError
        For an empty or invalid ``n_topics``, a K below 2 or not below the cell count,
        ``seeds`` below 1, a bad ``n_jobs`` or ``holdout``; the message names the option.
    """
    setup, train = split_kwargs(kwargs)
    source = model_input(data, setup)
    names = cell_names(source)
    ks = check_topic_range(n_topics, len(names))
    seed_list = check_seeds(seeds)
    workers = check_n_jobs(n_jobs)
    for option, value in (("stability_threshold", stability_threshold),
                          ("redundancy_limit", redundancy_limit)):
        if option == "redundancy_limit" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
            value
        ):
            raise ValueError(f"{option} must be a number, got {value!r}.")
    fit_cells, heldout_cells = holdout_split(names, holdout, holdout_seed)
    payload = FitPayload(
        subset_cells(source, fit_cells), subset_cells(source, heldout_cells), setup, train
    )
    jobs = [(k, s) for k in ks for s in seed_list]
    folder = tempfile.TemporaryDirectory(prefix="topomics_sweep_") if workers > 1 else None
    records, stopped = run_fits(
        payload, jobs, n_jobs=workers, folder=None if folder is None else folder.name,
        progress=progress, should_stop=should_stop,
    )
    return TopicSweep(
        records, ks, seed_list, fit_cells, heldout_cells, stopped=stopped,
        stability_threshold=stability_threshold, redundancy_limit=redundancy_limit,
        folder=folder,
    )
