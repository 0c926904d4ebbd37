"""Compatibility utilities (``check_input``, ``check_modalities_names``) and query set-up."""

from __future__ import annotations

import logging
import warnings

from anndata import AnnData
from scvi import REGISTRY_KEYS

from .. import data as input_data
from ..data import canonical_kind

logger = logging.getLogger(__name__)


class LegacyInputMixin:
    """Input helpers kept from the published design, working on a fresh model too."""

    def check_input(self, mdata, modalities=None) -> None:
        """Fill ``self.data_dict`` (name → matrix) and ``self.modalities_input`` (spec §4.9).

        Accepts a MuData, a ``dict[str, AnnData]``, a list of AnnData with a ``modalities``
        list of the same length, or one AnnData (``modalities=None`` means ``"rna"``, with a
        warning).
        """
        kind = None
        try:
            kind = input_data.detect_input_type(mdata)
        except TypeError:
            if not isinstance(mdata, list):
                raise
        if kind == "mudata":
            names = list(modalities) if modalities is not None else list(mdata.mod)
            self.data_dict = {n: mdata.mod[n].X for n in names}
        elif kind == "dict":
            self.data_dict = {str(k): v.X for k, v in mdata.items()}
        elif isinstance(mdata, list):
            if modalities is None or len(modalities) != len(mdata):
                raise ValueError(
                    "A list of AnnData needs a modalities list of the same length; got "
                    f"{len(mdata)} AnnData and modalities={modalities!r}."
                )
            if not all(isinstance(a, AnnData) for a in mdata):
                raise TypeError("Every element of the list must be an AnnData.")
            self.data_dict = {str(n): a.X for n, a in zip(modalities, mdata, strict=True)}
        elif kind == "anndata":
            if modalities is None:
                warnings.warn("No modality name given for the AnnData; using 'rna'.", UserWarning,
                              stacklevel=2)
                modalities = ["rna"]
            names = [modalities] if isinstance(modalities, str) else list(modalities)
            if len(names) != 1:
                raise ValueError(f"One AnnData is one modality; got modalities={names}.")
            self.data_dict = {names[0]: mdata.X}
        else:
            raise TypeError(f"check_input does not accept {type(mdata).__name__}.")
        self.modalities_input = list(self.data_dict)

    def check_modalities_names(self) -> None:
        """Re-key ``self.data_dict`` by canonical kind (rna, protein, chromatin)."""
        data_dict = getattr(self, "data_dict", None)
        if not data_dict:
            raise ValueError("check_modalities_names needs a non-empty data_dict (check_input).")
        renamed, seen = {}, {}
        for key, value in data_dict.items():
            if not isinstance(key, str):
                raise ValueError(f"Modality names must be strings; got {key!r}.")
            kind = canonical_kind(key)
            new_key = key if kind == "other" else kind
            if new_key in seen:
                raise ValueError(
                    f"Modalities {seen[new_key]!r} and {key!r} are both of kind {new_key!r}."
                )
            seen[new_key] = key
            renamed[new_key] = value
        self.data_dict = renamed

    def _query_graph_keys(self) -> str | None:
        """The graph key new data is set up with (a spatial model needs the query's graph)."""
        if not self.spatial:
            return None
        graph = self.adata.uns.get(input_data.GRAPH_KEY)
        if isinstance(graph, dict) and graph.get("key") is not None:
            return str(graph["key"])
        return input_data.CONNECTIVITIES_KEY

    def _prepare_query(self, data) -> AnnData:
        """Set up new data like the registered data and return the AnnData to query."""
        meta = self.adata.uns.get(input_data.MODALITY_SETUP_KEY, {})
        layer_dict = dict(meta.get("layer_dict") or {})
        registry = self.adata_manager.data_registry
        cat_keys = cont_keys = None
        if REGISTRY_KEYS.CAT_COVS_KEY in registry:
            cat_keys = list(
                self.adata_manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY).field_keys
            )
        if REGISTRY_KEYS.CONT_COVS_KEY in registry:
            cont_keys = list(
                self.adata_manager.get_state_registry(REGISTRY_KEYS.CONT_COVS_KEY).columns
            )
        kind = input_data.detect_input_type(data)
        modalities = list(self.modality_names)
        if kind in ("anndata", "spatialdata"):
            modalities = modalities[:1] if self.n_modalities == 1 else None
        layers = {m: layer_dict.get(m) for m in self.modality_names} if layer_dict else None
        if kind in ("anndata", "spatialdata"):
            layers = layer_dict.get(self.modality_names[0]) if self.n_modalities == 1 else None
        prepared = input_data.prepare_data(
            data, modalities=modalities, layers=layers, spatial_keys=self._query_graph_keys(),
            categorical_covariate_keys=cat_keys, continuous_covariate_keys=cont_keys,
        )
        query = prepared.adata
        if list(query.var_names) != list(self.adata.var_names):
            missing = [v for v in self.adata.var_names if v not in set(query.var_names)]
            if missing:
                raise ValueError(
                    f"The query data lacks {len(missing)} registered features, e.g. "
                    f"{missing[:5]}; it needs the same features as the training data."
                )
            query = query[:, self.adata.var_names].copy()
        return query
