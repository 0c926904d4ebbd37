"""The whole fitting job on a tissue: read, prepare, train, summarise.

The CLI and the napari plugin both run this, so a tissue fitted from either gives the same
results for the same options and seed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..io._errors import TopomicsInputError
from ._device import resolve_device
from ._spatial import (
    MODEL_GRAPH_KEY,
    build_cell_graph,
    check_graph_options,
    measure_coherence,
    require_graph,
)

if TYPE_CHECKING:
    from ..io._inputs import TissueInput
    from ..io._results import TopicResults
    from ..models import MultimodalAmortizedLDA
    from ._progress import ProgressEvent


@dataclass
class FitConfig:
    """Options of one fitting run (what the CLI flags and the plugin's widget set).

    Attributes
    ----------
    table, element, coordinate_system
        Which table of the store, which spatial element it annotates, and in which
        coordinate system cell positions are taken (None: the only/default choice).
    modalities, modality_key, layers, mudata
        How the table's features split into modalities (see
        :func:`napari_topomics.io.load_tissue_input`).
    likelihoods
        ``{modality: likelihood}`` overrides; the rest are inferred from the data.
    n_topics, n_epochs, batch_size
        Topics to find, training epochs, cells per minibatch.
    spatial, spatial_mode
        Fit the spatial model, whose encoders also read each cell's neighbours:
        ``"gcn"`` (graph convolutions over sampled neighbourhoods) or ``"sgc"`` (features
        smoothed over the graph once, before training).
    graph, n_neighbors, radius
        The cell-neighbour graph, built from the cells' centroids in ``coordinate_system``:
        ``"knn"`` (each cell and its ``n_neighbors`` nearest cells), ``"radius"`` (cells
        closer than ``radius``, in coordinate units) or ``"delaunay"``. Every run, spatial or
        not, reports its topics' spatial coherence (Moran's I) over this graph.
    device, seed, threads
        ``"auto"``/``"cpu"``/``"cuda"``/``"mps"``; random seed; torch CPU threads (None:
        :func:`default_threads`).
    devices, strategy, num_nodes, distributed_timeout
        Distributed training (``docs/distributed.md``): processes per node, ``"auto"``
        (DDP when more than one process) or ``"ddp"``, machines, and the seconds a process
        waits for the others before the fit fails.
    lazy
        Leave the table's matrix on disk (a SpatialData store whose var blocks are the
        modalities in order, ``X``, one element): the model reads it in chunks and each
        training process loads only the rows it trains on (``docs/distributed.md``).
    run_name, n_top
        Name of the run in the store; top features kept per topic and modality.
    model_kwargs
        Further :class:`~napari_topomics.models.MultimodalAmortizedLDA` arguments.
    """

    table: str | None = None
    element: str | None = None
    coordinate_system: str | None = None
    modalities: Sequence[str] | Mapping[str, str] | None = None
    modality_key: str | None = None
    layers: Mapping[str, str] | None = None
    mudata: str | Path | None = None
    likelihoods: Mapping[str, str] | None = None
    n_topics: int = 10
    n_epochs: int = 100
    batch_size: int = 128
    spatial: bool = False
    spatial_mode: str = "gcn"
    graph: str = "knn"
    n_neighbors: int = 6
    radius: float | None = None
    device: str = "auto"
    seed: int = 0
    threads: int | None = None
    devices: int | str = 1
    strategy: str = "auto"
    num_nodes: int | str = 1
    distributed_timeout: float | None = None
    lazy: bool = False
    run_name: str = "topomics"
    n_top: int = 20
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Check the plain option values before any data is read."""
        for name in ("n_topics", "n_epochs", "batch_size", "n_top"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise TopomicsInputError(f"{name} must be a positive integer, got {value!r}.")
        if self.n_topics < 2:
            raise TopomicsInputError(f"n_topics must be at least 2, got {self.n_topics}.")
        if self.threads is not None and self.threads < 1:
            raise TopomicsInputError(f"threads must be at least 1, got {self.threads}.")
        check_graph_options(self.spatial_mode, self.graph, self.n_neighbors, self.radius)
        if self.lazy:
            self._check_lazy()
        device = resolve_device(self.device)
        self.distributed_settings(device.accelerator)
        from ..io._results import check_run_name

        check_run_name(self.run_name)

    def _check_lazy(self) -> None:
        given = [name for name, value in (
            ("mudata", self.mudata), ("layers", self.layers),
            ("modalities as a table mapping", isinstance(self.modalities, Mapping) or None),
        ) if value]
        if given:
            raise TopomicsInputError(
                f"lazy reading fits one table's X as stored; it cannot be combined with "
                f"{', '.join(given)}. Drop --lazy or those options."
            )
        if self.spatial and self.spatial_mode == "sgc":
            raise TopomicsInputError(
                "spatial_mode 'sgc' smooths every cell's features up front, which needs "
                "the matrix in memory; use --spatial-mode gcn with --lazy."
            )

    def distributed_settings(self, accelerator: str = "auto"):
        """The checked multi-process options (None for one process).

        Raises
        ------
        DistributedOptionError
            A ``ValueError`` naming ``devices``, ``strategy``, ``num_nodes`` or
            ``distributed_timeout``.
        """
        from ..models._distributed import parse_distributed

        return parse_distributed(self.strategy, self.devices, self.num_nodes,
                                 self.distributed_timeout, accelerator)

    def distributed_kwargs(self) -> dict:
        """``model.train`` arguments of the multi-process options (empty for one process)."""
        if self.distributed_settings(resolve_device(self.device).accelerator) is None:
            return {}
        return {"strategy": self.strategy, "devices": self.devices,
                "num_nodes": self.num_nodes, "distributed_timeout": self.distributed_timeout}


@dataclass
class FitOutcome:
    """What a fitting run produced.

    Attributes
    ----------
    results
        The run's :class:`~napari_topomics.io.TopicResults`; None in the processes of a
        distributed fit other than rank 0 (which summarises and writes the run).
    model
        The trained model.
    tissue
        The model input and where it came from.
    stopped
        True when training was stopped on request before the last epoch.
    """

    results: TopicResults | None
    model: MultimodalAmortizedLDA
    tissue: TissueInput
    stopped: bool


def prepare_tissue(source, config: FitConfig, source_label: str | None = None) -> TissueInput:
    """Read ``source`` (a path or a SpatialData object) and build the model input.

    ``source_label`` names where the data came from in the provenance (default: the path,
    or the SpatialData object's store path).
    """
    from ..io._inputs import check_count_modalities, load_tissue_input
    from ..io._read import read_tissue

    is_path = isinstance(source, str | Path)
    if config.lazy:
        return _prepare_lazy(source, config, source_label)
    sdata = read_tissue(source) if is_path else source
    if source_label is None:
        where = source if is_path else getattr(sdata, "path", None)
        source_label = None if where is None else str(where)
    tissue = load_tissue_input(
        sdata,
        config.table,
        element=config.element,
        modalities=config.modalities,
        layers=config.layers,
        modality_key=config.modality_key,
        mudata=config.mudata,
        coordinate_system=config.coordinate_system,
        source=source_label,
    )
    check_count_modalities(tissue.data, config.likelihoods)
    return tissue


def _prepare_lazy(source, config: FitConfig, source_label: str | None) -> TissueInput:
    from ..io._inputs import check_count_modalities
    from ..io._lazy_input import load_lazy_tissue_input

    if not isinstance(source, str | Path):
        raise TopomicsInputError("lazy reading needs the path of a SpatialData zarr store.")
    tissue = load_lazy_tissue_input(
        source, config.table, element=config.element, modalities=config.modalities,
        modality_key=config.modality_key, coordinate_system=config.coordinate_system,
    )
    if source_label is not None:
        tissue.source = source_label
    edges = np.cumsum([0, *tissue.model_setup["n_inputs_modalities"]])
    blocks = {m: slice(int(a), int(b))
              for m, a, b in zip(tissue.modalities, edges[:-1], edges[1:], strict=True)}
    check_count_modalities(tissue.data, config.likelihoods, blocks)
    return tissue


def fit_tissue(
    source,
    config: FitConfig,
    *,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    source_label: str | None = None,
) -> FitOutcome:
    """Fit the topic model on a tissue and summarise the run.

    Parameters
    ----------
    source
        A SpatialData store or vendor folder path, or a SpatialData object.
    config
        The run's options.
    on_progress
        Called after every minibatch with a :class:`ProgressEvent`.
    should_stop
        Polled after every minibatch; returning True ends training early (the results
        describe the model as trained so far).

    Returns
    -------
    FitOutcome
    """
    import scvi
    import torch

    from ..io._results import TopicResults
    from ..models import MultimodalAmortizedLDA
    from ..models._distributed import is_global_zero
    from ._progress import TrainingMonitor

    config.validate()
    device = resolve_device(config.device)
    distributed = config.distributed_kwargs()
    tissue = prepare_tissue(source, config, source_label)
    torch.set_num_threads(config.threads or default_threads())
    scvi.settings.seed = config.seed
    graph = build_cell_graph(tissue.coordinates, config, tissue.coordinate_system)
    model_kwargs = model_arguments(tissue, config, graph)
    model = MultimodalAmortizedLDA.from_data(
        tissue.data, n_topics=config.n_topics, **model_kwargs
    )
    monitor = TrainingMonitor(on_progress=on_progress, should_stop=should_stop)
    _quiet_lightning()
    model.train(
        max_epochs=config.n_epochs,
        batch_size=config.batch_size,
        callbacks=[monitor],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **device.train_kwargs(),
        **distributed,
    )
    if distributed and not is_global_zero():
        return FitOutcome(results=None, model=model, tissue=tissue, stopped=monitor.stopped)
    results = TopicResults.from_model(
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
        seed=config.seed,
        device=device.name,
        spatial_coherence=measure_coherence(model, graph),
        extra_provenance=graph.provenance,
    )
    return FitOutcome(results=results, model=model, tissue=tissue, stopped=monitor.stopped)


def model_arguments(tissue: TissueInput, config: FitConfig, graph) -> dict[str, Any]:
    """The ``from_data`` arguments of a run besides ``n_topics`` (likelihoods, spatial).

    A spatial run puts ``graph`` on the in-memory model input (a MuData of copies), never
    on the user's table.
    """
    model_kwargs = dict(config.model_kwargs)
    model_kwargs.update(tissue.model_setup)
    if config.likelihoods:
        # one entry per modality; None entries are inferred by the model
        model_kwargs["likelihoods"] = [config.likelihoods.get(m) for m in tissue.modalities]
    if config.spatial:
        tissue.data.obsp[MODEL_GRAPH_KEY] = require_graph(graph)
        model_kwargs.update(spatial_keys=MODEL_GRAPH_KEY, spatial_mode=config.spatial_mode)
    return model_kwargs


def default_threads() -> int:
    """Torch CPU threads when none are asked for: half the cores, between 1 and 4.

    Minibatches of a few hundred cells gain little from more threads, and on a small
    machine a second thread competes with everything else (napari's painting included).
    """
    import os

    return max(1, min(4, (os.cpu_count() or 2) // 2))


def _quiet_lightning() -> None:
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
