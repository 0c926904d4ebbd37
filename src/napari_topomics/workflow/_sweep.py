"""The topic sweep on a tissue (CLI ``sweep`` and ``fit --topics auto``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ..io._errors import TopomicsInputError
from ._device import resolve_device
from ._fit import (
    FitConfig,
    FitOutcome,
    _quiet_lightning,
    default_threads,
    model_arguments,
    prepare_tissue,
)
from ._spatial import build_cell_graph

if TYPE_CHECKING:
    from ..io._inputs import TissueInput
    from ..models import TopicSweep

#: The K values ``fit --topics auto`` sweeps.
AUTO_TOPICS = (4, 6, 8, 10, 12, 16)


def parse_topic_range(value: str, option: str = "--topics") -> list[int]:
    """``"4:16:2"`` → ``[4, 6, ..., 16]`` (the end included); ``"4,6,9"`` and ``"8"`` too."""
    text = str(value).strip()
    example = f"(examples: {option} 4:16:2, {option} 4,6,8)"
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1
        else:
            values = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise TopomicsInputError(
            f"{option} expects START:END[:STEP] or a comma-separated list of numbers of "
            f"topics, got '{text}' {example}."
        ) from None
    if ":" in text:
        if step < 1 or stop < start:
            raise TopomicsInputError(
                f"{option} {text}: needs START <= END and a STEP >= 1 {example}."
            )
        values = list(range(start, stop + 1, step))
    if not values:
        raise TopomicsInputError(f"{option} '{text}' names no number of topics {example}.")
    low = min(values)
    if low < 2:
        raise TopomicsInputError(
            f"{option} {text}: every number of topics must be >= 2, got {low}."
        )
    return sorted(set(values))


def sweep_tissue(
    source,
    config: FitConfig,
    n_topics: Sequence[int] = AUTO_TOPICS,
    *,
    seeds: int = 2,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source_label: str | None = None,
) -> tuple[TopicSweep, TissueInput]:
    """Run :func:`napari_topomics.models.sweep_topics` on a tissue with a run's options.

    Parameters
    ----------
    source
        A SpatialData store or vendor folder path, or a SpatialData object.
    config
        The run's options; ``n_topics`` is ignored (the sweep's ``n_topics`` is used),
        ``n_epochs``, ``batch_size``, ``likelihoods``, the spatial options, ``device`` and
        ``threads`` apply to every fit (``threads`` in this process; workers use one each).
    n_topics, seeds, n_jobs, progress, should_stop
        As in :func:`~napari_topomics.models.sweep_topics`; the seeds are
        ``config.seed, config.seed + 1, ...``.

    Returns
    -------
    The sweep and the model input it was run on.
    """
    import scvi
    import torch

    from ..models import sweep_topics

    config.validate()
    device = resolve_device(config.device)
    tissue = prepare_tissue(source, config, source_label)
    torch.set_num_threads(config.threads or default_threads())
    scvi.settings.seed = config.seed
    graph = build_cell_graph(tissue.coordinates, config, tissue.coordinate_system)
    kwargs = model_arguments(tissue, config, graph)
    _quiet_lightning()
    seed_list = [config.seed + i for i in range(seeds)] if seeds >= 1 else seeds
    sweep = sweep_topics(
        tissue.data, n_topics, seeds=seed_list, n_jobs=n_jobs, progress=progress,
        should_stop=should_stop, max_epochs=config.n_epochs, batch_size=config.batch_size,
        **device.train_kwargs(), **kwargs,
    )
    return sweep, tissue


def sweep_outcome(
    sweep: TopicSweep, tissue: TissueInput, config: FitConfig, n_topics: int | None = None
) -> FitOutcome:
    """One of a sweep's fits as a finished run on every cell of the tissue, without a refit.

    The fit of ``n_topics`` (default: the recommended K) with the lowest held-out
    perplexity infers the proportions of all the tissue's cells, the held-out ones
    included; its topics, weights and ELBO history are those of the sweep's fit.

    Parameters
    ----------
    sweep, tissue
        What :func:`sweep_tissue` returned.
    config
        The options the sweep ran with (run name, number of top features, graph).
    n_topics
        Which fitted K (``ValueError`` naming the fitted ones otherwise).
    """
    import scvi

    model = sweep.best_model(n_topics)
    seed = sweep.best_seed(n_topics)
    graph = build_cell_graph(tissue.coordinates, config, tissue.coordinate_system)
    before = scvi.settings.seed
    scvi.settings.seed = seed  # the seed of the proportions' Monte Carlo noise, as in the fit
    try:
        results = _results_on_every_cell(sweep, tissue, config, model, seed, graph)
    finally:
        scvi.settings.seed = before
    return FitOutcome(results=results, model=model, tissue=tissue, stopped=False)


def _results_on_every_cell(sweep, tissue, config, model, seed, graph):
    from ..io._results import TopicResults
    from ._spatial import measure_coherence

    return TopicResults.from_model(
        model,
        run_name=config.run_name,
        n_top=config.n_top,
        region=tissue.element.name,
        region_key=tissue.element.region_key,
        instance_key=tissue.element.instance_key,
        instance_ids=tissue.instance_ids,
        coordinates=tissue.coordinates,
        source=tissue.source,
        table=tissue.table,
        seed=seed,
        device=resolve_device(config.device).name,
        spatial_coherence=measure_coherence(model, graph, cells=tissue.data),
        extra_provenance={**graph.provenance, "topic_sweep": {
            "n_topics": list(sweep.n_topics), "seeds": list(sweep.seeds),
            "recommended": sweep.recommended, "rule": sweep.rule, "reason": sweep.reason,
            "fit_cells": len(sweep.fit_cells), "heldout_cells": len(sweep.heldout_cells),
        }},
        cells=tissue.data,
    )
