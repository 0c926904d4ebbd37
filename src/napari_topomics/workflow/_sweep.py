"""The topic sweep on a tissue (CLI ``sweep`` and ``fit --topics auto``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._device import resolve_device
from ._fit import FitConfig, _quiet_lightning, default_threads, model_arguments, prepare_tissue
from ._spatial import build_cell_graph

if TYPE_CHECKING:
    from ..io._inputs import TissueInput
    from ..models import TopicSweep

#: The K values ``fit --topics auto`` sweeps.
AUTO_TOPICS = (4, 6, 8, 10, 12, 16)


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
