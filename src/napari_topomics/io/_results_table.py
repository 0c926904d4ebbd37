"""``TopicResults`` ⇄ AnnData table in the layout napari-spatialdata and squidpy read.

Layout: ``X`` and ``obsm["topic_proportions"]`` hold the float32 proportions
(``var_names`` = topic names); ``obsm["modality_weights"]`` the weights;
``obs`` the region/instance columns, ``dominant_topic``, ``topic_entropy`` and
``weight_<modality>``; ``obsm["spatial"]`` the ``x, y`` coordinates when known; and
``uns["topomics"]`` the run name, modalities, topic names, top features, ELBO history
and the provenance as a JSON string. The spatial coherence (Moran's I per topic), when
measured, is ``uns["topomics"]["spatial_coherence"]`` (float64, topic order) and the ``var``
column ``morans_i``; tables without it (older runs) load with ``spatial_coherence=None``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._errors import TopomicsInputError

if TYPE_CHECKING:
    from anndata import AnnData

    from ._results import TopicResults

UNS_KEY = "topomics"
PROPORTIONS_KEY = "topic_proportions"
WEIGHTS_KEY = "modality_weights"
SPATIAL_KEY = "spatial"
COHERENCE_KEY = "spatial_coherence"
COHERENCE_VAR = "morans_i"


def _str_array(values) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=object)


def results_to_table(r: TopicResults) -> AnnData:
    """Build the run's table (TableModel-parsed when ``r.region`` is set)."""
    import anndata as ad

    n = len(r.proportions)
    X = r.proportions.to_numpy(dtype=np.float32, copy=True)
    weights = r.modality_weights.to_numpy(dtype=np.float32, copy=True)
    obs = pd.DataFrame(index=pd.Index(r.proportions.index, dtype=object))
    if r.region is not None:
        obs[r.region_key] = pd.Categorical([r.region] * n, categories=[r.region])
    if r.instance_ids is not None:
        obs[r.instance_key] = r.instance_ids.copy()
    obs["dominant_topic"] = pd.Categorical(r.dominant_topic.array)
    obs["topic_entropy"] = r.topic_entropy.to_numpy()
    for m, name in enumerate(r.modality_names):
        obs[f"weight_{name}"] = weights[:, m].copy()
    obsm = {PROPORTIONS_KEY: X.copy(), WEIGHTS_KEY: weights}
    if r.coordinates is not None:
        obsm[SPATIAL_KEY] = r.coordinates.to_numpy(dtype=np.float64, copy=True)
    uns = {
        UNS_KEY: {
            "run_name": r.run_name,
            "modalities": _str_array(r.modality_names),
            "topic_names": _str_array(r.topic_names),
            "top_features": {
                mod: {
                    "topic": _str_array(frame["topic"]),
                    "rank": frame["rank"].to_numpy(dtype=np.int64, copy=True),
                    "feature": _str_array(frame["feature"]),
                    "score": frame["score"].to_numpy(dtype=np.float64, copy=True),
                }
                for mod, frame in r.top_features.items()
            },
            "elbo_history": {
                "epoch": r.elbo_history.index.to_numpy(dtype=np.int64, copy=True),
                **{
                    str(c): r.elbo_history[c].to_numpy(dtype=np.float64, copy=True)
                    for c in r.elbo_history.columns
                },
            },
            "provenance": json.dumps(r.provenance, allow_nan=False),
            "region_key": r.region_key,
            "instance_key": r.instance_key,
        }
    }
    var = pd.DataFrame(index=pd.Index(r.topic_names, dtype=object))
    if r.spatial_coherence is not None:
        values = r.spatial_coherence.to_numpy(dtype=np.float64, copy=True)
        uns[UNS_KEY][COHERENCE_KEY] = values
        var[COHERENCE_VAR] = values.copy()
    table = ad.AnnData(X=X, obs=obs, var=var, obsm=obsm, uns=uns)
    if r.region is not None:
        from spatialdata.models import TableModel

        table = TableModel.parse(
            table, region=r.region, region_key=r.region_key, instance_key=r.instance_key
        )
    return table


def _obs_index(names: pd.Index) -> pd.Index:
    """The obs names as an object-string index (no per-cell conversion when already so)."""
    if names.dtype == object and pd.api.types.infer_dtype(names, skipna=False) == "string":
        return names  # the same object: pandas keeps its uniqueness check cached
    return pd.Index([str(v) for v in names], dtype=object)


def _need(mapping, key: str, where: str):
    if key not in mapping:
        raise TopomicsInputError(
            f"Topomics table is missing {where}[{key!r}]; present: {sorted(map(str, mapping))}."
        )
    return mapping[key]


def _dense(value) -> np.ndarray:
    if hasattr(value, "toarray"):
        value = value.toarray()
    return np.asarray(value)


def _region_attrs(table, uns: dict) -> tuple[str | None, str, str]:
    attrs = table.uns.get("spatialdata_attrs")
    region_key = str(uns.get("region_key", "region"))
    instance_key = str(uns.get("instance_key", "instance_id"))
    if not attrs:
        return None, region_key, instance_key
    region = attrs.get("region")
    if isinstance(region, np.ndarray):
        region = region.tolist()
    if isinstance(region, list):
        if len(region) != 1:
            raise TopomicsInputError(
                f"A topomics run annotates one element; this table annotates {region}."
            )
        region = region[0]
    keys = (attrs.get("region_key") or region_key, attrs.get("instance_key") or instance_key)
    return (None if region is None else str(region)), str(keys[0]), str(keys[1])


def _top_frame(columns, mod: str) -> pd.DataFrame:
    where = f"uns[{UNS_KEY!r}]['top_features'][{mod!r}]"
    names = ["topic", "rank", "feature", "score"]
    return pd.DataFrame({k: np.asarray(_need(columns, k, where)) for k in names})


def _coherence(table, uns) -> np.ndarray | None:
    """Moran's I per topic from ``uns`` (or the ``var`` column), None when absent."""
    if COHERENCE_KEY in uns and uns[COHERENCE_KEY] is not None:
        return np.asarray(uns[COHERENCE_KEY], dtype=np.float64).reshape(-1)
    if COHERENCE_VAR in table.var:
        return table.var[COHERENCE_VAR].to_numpy(dtype=np.float64)
    return None


def table_to_fields(table: Any, run_name: str | None) -> dict[str, Any]:
    """The ``TopicResults`` constructor arguments stored in ``table``."""
    from anndata import AnnData

    from ._results_read import RunTableParts

    if not isinstance(table, AnnData | RunTableParts):
        raise TopomicsInputError(f"from_table needs an AnnData table; got {type(table).__name__}.")
    if UNS_KEY not in table.uns:
        raise TopomicsInputError(
            f"This table is not a topomics run: uns has no {UNS_KEY!r} key "
            f"(uns keys: {sorted(map(str, table.uns))})."
        )
    uns = table.uns[UNS_KEY]
    recorded = str(_need(uns, "run_name", f"uns[{UNS_KEY!r}]"))
    if run_name is not None and run_name != recorded:
        raise TopomicsInputError(
            f"The table holds run {recorded!r}, not the requested run {run_name!r}."
        )
    topics = [str(t) for t in _need(uns, "topic_names", f"uns[{UNS_KEY!r}]")]
    mods = [str(m) for m in _need(uns, "modalities", f"uns[{UNS_KEY!r}]")]
    index = _obs_index(table.obs_names)
    props = table.obsm[PROPORTIONS_KEY] if PROPORTIONS_KEY in table.obsm else table.X
    weights = _need(table.obsm, WEIGHTS_KEY, "obsm")
    top = _need(uns, "top_features", f"uns[{UNS_KEY!r}]")
    elbo = dict(_need(uns, "elbo_history", f"uns[{UNS_KEY!r}]"))
    epochs = np.asarray(elbo.pop("epoch", np.arange(len(elbo.get("elbo_train", [])))))
    region, region_key, instance_key = _region_attrs(table, uns)
    instance_ids = table.obs[instance_key].to_numpy() if instance_key in table.obs else None
    coords = table.obsm.get(SPATIAL_KEY)
    return {
        "run_name": recorded,
        "proportions": pd.DataFrame(_dense(props), index=index, columns=topics),
        "modality_weights": pd.DataFrame(_dense(weights), index=index, columns=mods),
        "top_features": {str(mod): _top_frame(top[mod], str(mod)) for mod in top},
        "elbo_history": pd.DataFrame(
            {str(k): np.asarray(v) for k, v in elbo.items()},
            index=pd.Index(epochs.astype(np.int64), name="epoch"),
        ),
        "provenance": json.loads(str(_need(uns, "provenance", f"uns[{UNS_KEY!r}]"))),
        "region": region,
        "region_key": region_key,
        "instance_key": instance_key,
        "instance_ids": instance_ids,
        "coordinates": None if coords is None else pd.DataFrame(
            _dense(coords)[:, :2], index=index, columns=["x", "y"]
        ),
        "spatial_coherence": _coherence(table, uns),
    }
