"""``TopicResults``: everything a fitted run paints back onto the tissue, in one object.

The object is plain data (pandas/numpy) so it can be built from a trained model
(:meth:`TopicResults.from_model`), turned into a SpatialData table (:meth:`to_table`) and
rebuilt from such a table (:meth:`from_table`), including one read back by plain
``spatialdata.read_zarr``. Construction validates and normalises dtypes (float32
proportions and weights, object-string indices), so ``from_table(r.to_table()) == r``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import _results_check as check
from ._errors import TopomicsInputError

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_run_name(run_name: Any) -> str:
    """Return ``run_name`` if it matches ``^[A-Za-z0-9][A-Za-z0-9_-]*$``, else raise."""
    if not isinstance(run_name, str) or not RUN_NAME_PATTERN.fullmatch(run_name):
        raise TopomicsInputError(
            f"Invalid run name {run_name!r}: use letters, digits, '_' and '-', starting with a "
            "letter or digit (pattern ^[A-Za-z0-9][A-Za-z0-9_-]*$)."
        )
    return run_name


@dataclass(eq=False)
class TopicResults:
    """Topic proportions, modality weights, top features and provenance of one run.

    Parameters
    ----------
    run_name
        Name of the run (``^[A-Za-z0-9][A-Za-z0-9_-]*$``); its table is ``topomics_<run_name>``.
    proportions
        Cells × ``topic_0..topic_{K-1}``, indexed by the table's obs names; rows sum to 1.
    modality_weights
        Cells × modality names, same index; rows sum to 1.
    top_features
        Modality → long frame with columns ``topic, rank, feature, score`` (``rank`` starts
        at 1; ``score`` is the feature's weight in the topic's profile, the value the
        model ranks by).
    elbo_history
        Index ``epoch`` (0, 1, ...), column ``elbo_train`` and ``elbo_validation`` if any.
    provenance
        JSON-serialisable facts about the run (normalised on construction).
    region, region_key, instance_key, instance_ids, coordinates
        The annotated spatial element, the obs column names used to link rows to it, the
        element instance ids and ``x, y`` coordinates aligned with the rows.
    spatial_coherence
        Moran's I of each topic's proportion over the cell-neighbour graph (index the topic
        names, name ``"morans_i"``; NaN for a topic constant over the cells), or None when
        not measured (runs written before it existed). The graph is described in the
        provenance (``graph``, ``n_neighbors``, ``radius``, ``spatial``, ``spatial_mode``).
    """

    run_name: str
    proportions: pd.DataFrame
    modality_weights: pd.DataFrame
    top_features: dict[str, pd.DataFrame]
    elbo_history: pd.DataFrame
    provenance: dict = field(default_factory=dict)
    region: str | None = None
    region_key: str = "region"
    instance_key: str = "instance_id"
    instance_ids: np.ndarray | None = None
    coordinates: pd.DataFrame | None = None
    spatial_coherence: pd.Series | None = None

    def __post_init__(self) -> None:
        check_run_name(self.run_name)
        self.proportions = check.proportions(self.proportions)
        index = self.proportions.index
        self.modality_weights = check.modality_weights(self.modality_weights, index)
        self.top_features = check.top_features(
            self.top_features, list(self.modality_weights.columns), self.topic_names
        )
        self.elbo_history = check.elbo_history(self.elbo_history)
        self.provenance = check.provenance(self.provenance)
        self.region = check.region(self.region)
        self.region_key, self.instance_key = check.keys(
            self.region_key, self.instance_key, self.modality_names
        )
        self.instance_ids = check.instance_ids(self.instance_ids, len(index))
        self.coordinates = check.coordinates(self.coordinates, index)
        self.spatial_coherence = check.spatial_coherence(self.spatial_coherence, self.topic_names)
        if self.region is not None and self.instance_ids is None:
            raise TopomicsInputError(
                f"TopicResults annotating element {self.region!r} needs instance_ids "
                "(the element's instance/label id of every row); pass instance_ids= or region=None."
            )

    # ------------------------------------------------------------------ derived
    @property
    def topic_names(self) -> list[str]:
        """``["topic_0", ..., "topic_{K-1}"]``."""
        return [str(c) for c in self.proportions.columns]

    @property
    def modality_names(self) -> list[str]:
        """The modalities, in the order of :attr:`modality_weights`' columns."""
        return [str(c) for c in self.modality_weights.columns]

    @property
    def n_topics(self) -> int:
        """Number of topics K."""
        return self.proportions.shape[1]

    @property
    def dominant_topic(self) -> pd.Series:
        """The most abundant topic of each cell (categorical, categories in topic order)."""
        names = self.topic_names
        codes = np.argmax(self.proportions.to_numpy(), axis=1)
        values = pd.Categorical.from_codes(codes, categories=names)
        return pd.Series(values, index=self.proportions.index, name="dominant_topic")

    @property
    def topic_entropy(self) -> pd.Series:
        """Per-cell topic entropy ``-sum p log p`` in nats (``0 log 0 = 0``)."""
        p = self.proportions.to_numpy(dtype=np.float64)
        logp = np.log(p, out=np.zeros_like(p), where=p > 0)
        entropy = -np.einsum("ij,ij->i", p, logp)
        return pd.Series(entropy, index=self.proportions.index, name="topic_entropy")

    # ------------------------------------------------------------------ equality
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TopicResults):
            return NotImplemented
        return not self.differences(other)

    __hash__ = None  # mutable container of frames

    def differences(self, other: TopicResults) -> list[str]:
        """Names of the fields that differ from ``other`` (empty when equal)."""
        out = []
        for name in ("run_name", "provenance", "region", "region_key", "instance_key"):
            if getattr(self, name) != getattr(other, name):
                out.append(name)
        for name in ("proportions", "modality_weights", "elbo_history", "coordinates"):
            if not check.frames_equal(getattr(self, name), getattr(other, name)):
                out.append(name)
        if (self.instance_ids is None) != (other.instance_ids is None) or (
            self.instance_ids is not None
            and not np.array_equal(self.instance_ids, other.instance_ids)
        ):
            out.append("instance_ids")
        if not check.series_equal(self.spatial_coherence, other.spatial_coherence):
            out.append("spatial_coherence")
        if list(self.top_features) != list(other.top_features) or any(
            not check.frames_equal(frame, other.top_features[mod])
            for mod, frame in self.top_features.items()
        ):
            out.append("top_features")
        return out

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_model(
        cls,
        model,
        *,
        run_name: str,
        n_top: int = 20,
        region: str | None = None,
        region_key: str = "region",
        instance_key: str = "instance_id",
        instance_ids=None,
        coordinates=None,
        source=None,
        table: str | None = None,
        seed: int | None = None,
        device: str | None = None,
        spatial_coherence=None,
        extra_provenance: dict | None = None,
        cells=None,
    ) -> TopicResults:
        """Collect a trained ``MultimodalAmortizedLDA``'s results.

        ``cells``, when given, is the data whose cells the per-cell results describe (set
        up like the training data, the same features; e.g. every cell of a tissue when the
        model was fitted on a part of it, as in a topic sweep); by default the model's
        training cells.
        ``top_features`` uses the model's distinctive ranking
        (``get_top_features_per_topic(..., ranking="distinctive")``) and keeps its score;
        ``n_top`` is capped at each modality's feature count.
        ``spatial_coherence`` (e.g. ``model.get_spatial_coherence(graph=...)``) is kept as
        given; ``extra_provenance`` entries (such as the graph description) are added to
        the provenance.
        """
        from ._results_model import collect

        parts = collect(
            model, run_name=check_run_name(run_name), n_top=n_top, region=region,
            source=source, table=table, seed=seed, device=device, cells=cells,
        )
        parts["provenance"].update(extra_provenance or {})
        return cls(
            run_name=run_name, region=region, region_key=region_key,
            instance_key=instance_key, instance_ids=instance_ids, coordinates=coordinates,
            spatial_coherence=spatial_coherence, **parts,
        )

    def to_table(self):
        """The run as an AnnData table (TableModel-parsed when :attr:`region` is set)."""
        from ._results_table import results_to_table

        return results_to_table(self)

    @classmethod
    def from_table(cls, table, run_name: str | None = None) -> TopicResults:
        """Rebuild results from a table made by :meth:`to_table` (or read back from a store).

        ``run_name``, if given, must match the run recorded in the table.
        """
        from ._results_table import table_to_fields

        return cls(**table_to_fields(table, run_name))
