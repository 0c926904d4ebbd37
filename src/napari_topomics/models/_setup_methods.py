"""Setup class methods (spec §4): containers → one registered AnnData → scvi registry."""

from __future__ import annotations

import warnings

from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager
from scvi.data.fields import (
    CategoricalJointObsField,
    LayerField,
    NumericalJointObsField,
    NumericalObsField,
    ObsmField,
)

from .. import data as input_data

ENCODER_EXTRA_KEY = "encoder_extra"


def _merge(new_name: str, new, old_name: str, old):
    """Merge an old and a new spelling of one argument; the new one wins, with a warning."""
    if old is None:
        return new
    if new is None:
        return old
    if new != old:
        warnings.warn(
            f"Both {old_name}={old!r} and {new_name}={new!r} were given; using {new_name}.",
            UserWarning,
            stacklevel=3,
        )
    return new


class SetupMixin:
    """The ``setup_*`` and ``from_*`` class methods of the model."""

    @classmethod
    def _register_prepared(
        cls, prepared, categorical_covariate_keys, continuous_covariate_keys,
        encoder_extra_obsm_key, **kwargs,
    ) -> AnnData:
        """Register a prepared AnnData with an scvi ``AnnDataManager``.

        The recorded setup method is always ``setup_anndata`` on the registered AnnData with
        its layer, so that scvi's ``load`` can re-run it on the saved (flattened) AnnData.
        """
        adata = prepared.adata
        setup_args = {
            "layer": prepared.layer,
            "categorical_covariate_keys": categorical_covariate_keys,
            "continuous_covariate_keys": continuous_covariate_keys,
            "encoder_extra_obsm_key": encoder_extra_obsm_key,
        }
        graph = adata.uns.get(input_data.GRAPH_KEY)
        if isinstance(graph, dict) and graph.get("key") is not None:
            # re-running setup at load time must find the graph again (§5.11)
            setup_args["spatial_key"] = str(graph["key"])
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, prepared.layer, is_count_data=False),
            NumericalObsField(REGISTRY_KEYS.INDICES_KEY, input_data.INDICES_KEY),
            CategoricalJointObsField(REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys),
            NumericalJointObsField(REGISTRY_KEYS.CONT_COVS_KEY, continuous_covariate_keys),
        ]
        if encoder_extra_obsm_key is not None:
            fields.append(ObsmField(ENCODER_EXTRA_KEY, encoder_extra_obsm_key))
        manager = AnnDataManager(
            fields=fields,
            setup_method_args={
                "model_name": cls.__name__,
                "setup_method_name": "setup_anndata",
                "setup_args": setup_args,
            },
        )
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)
        return adata

    @classmethod
    def setup_anndata(
        cls, adata: AnnData, layer: str | None = None, spatial_key: str | None = None,
        modalities=None, layers=None, spatial_keys=None, categorical_covariate_keys=None,
        continuous_covariate_keys=None, encoder_extra_obsm_key=None, **kwargs,
    ) -> AnnData:
        """Register one AnnData as one modality (old ``layer``/``spatial_key`` or new names).

        Returns the AnnData passed in. Giving both spellings of one argument raises. A MuData
        on which ``setup_mudata`` ran (as scvi's ``load(adata=mdata)`` passes it) stands for
        its flattened AnnData, which is registered again and returned.
        """
        if not isinstance(adata, AnnData) and hasattr(adata, "mod"):
            from ._constructor import registered_anndata

            adata = registered_anndata(adata)  # the flattened AnnData, or ValueError
        if layer is not None and layers is not None:
            raise ValueError("Give either layer= (old spelling) or layers= (new), not both.")
        if spatial_key is not None and spatial_keys is not None:
            raise ValueError(
                "Give either spatial_key= (old spelling) or spatial_keys= (new), not both."
            )
        if modalities is not None:
            names = [modalities] if isinstance(modalities, str) else list(modalities)
            if len(names) > 1:
                raise ValueError(
                    f"setup_anndata registers one modality but modalities={names} names "
                    f"{len(names)}. Use from_data(adata, modalities=..., n_inputs_modalities="
                    "...) for a pre-concatenated AnnData, or a MuData / dict of AnnData."
                )
            modality = names[0]
        else:
            modality = "rna"
        prepared = input_data.prepare_anndata(
            adata, modality=modality, layer=layers if layers is not None else layer,
            spatial_key=spatial_keys if spatial_keys is not None else spatial_key,
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
            encoder_extra_obsm_key=encoder_extra_obsm_key,
        )
        return cls._register_prepared(
            prepared, categorical_covariate_keys, continuous_covariate_keys,
            encoder_extra_obsm_key, **kwargs,
        )

    @classmethod
    def setup_mudata(
        cls, mdata, modality_order=None, layer_dict=None, spatial_key=None,
        spatial_modality_keys=None, modalities=None, layers=None, spatial_keys=None,
        categorical_covariate_keys=None, continuous_covariate_keys=None, **kwargs,
    ):
        """Concatenate a MuData's modalities into one registered AnnData (spec §4.3).

        Returns ``(mdata, modality_names, feature_counts)``; the registered AnnData is
        ``mdata.uns["_flattened_ann_data"]`` (remove it with ``strip_setup_state`` before
        writing the MuData).
        """
        modalities = _merge("modalities", modalities, "modality_order", modality_order)
        layers = _merge("layers", layers, "layer_dict", layer_dict)
        old_spatial = spatial_modality_keys if spatial_modality_keys is not None else spatial_key
        spatial_keys = _merge("spatial_keys", spatial_keys, "spatial_modality_keys", old_spatial)
        extra_key = kwargs.pop("encoder_extra_obsm_key", None)
        prepared = input_data.prepare_mudata(
            mdata, modalities=modalities, layers=layers, spatial_keys=spatial_keys,
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
            encoder_extra_obsm_key=extra_key,
        )
        cls._register_prepared(
            prepared, categorical_covariate_keys, continuous_covariate_keys, extra_key, **kwargs
        )
        mdata.uns["_flattened_ann_data"] = prepared.adata
        return mdata, list(prepared.modality_names), list(prepared.feature_counts)

    @classmethod
    def setup_adata_dict(
        cls, adata_dict, layers=None, spatial_keys=None, categorical_covariate_keys=None,
        continuous_covariate_keys=None, **kwargs,
    ) -> AnnData:
        """Concatenate a ``dict[str, AnnData]`` (one entry per modality); spec §4.4."""
        extra_key = kwargs.pop("encoder_extra_obsm_key", None)
        prepared = input_data.prepare_adata_dict(
            adata_dict, modalities=kwargs.pop("modalities", None), layers=layers,
            spatial_keys=spatial_keys, categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys, encoder_extra_obsm_key=extra_key,
        )
        return cls._register_prepared(
            prepared, categorical_covariate_keys, continuous_covariate_keys, extra_key, **kwargs
        )

    @classmethod
    def setup_spatialdata(
        cls, sdata, table_key: str = "table", modalities=None, layers=None, spatial_keys=None,
        categorical_covariate_keys=None, continuous_covariate_keys=None, **kwargs,
    ) -> AnnData:
        """Register a SpatialData table (spec §4.5)."""
        extra_key = kwargs.pop("encoder_extra_obsm_key", None)
        prepared = input_data.prepare_spatialdata(
            sdata, table_key=table_key, modalities=modalities, layers=layers,
            spatial_keys=spatial_keys, categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys, encoder_extra_obsm_key=extra_key,
        )
        return cls._register_prepared(
            prepared, categorical_covariate_keys, continuous_covariate_keys, extra_key, **kwargs
        )

    @classmethod
    def setup_data(
        cls, data, modalities=None, layers=None, spatial_keys=None, table_key: str = "table",
        categorical_covariate_keys=None, continuous_covariate_keys=None, **kwargs,
    ):
        """Detect the input type and dispatch to the matching setup method (spec §4.6)."""
        kind = input_data.detect_input_type(data)
        common = dict(
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys, **kwargs,
        )
        if kind == "anndata":
            return cls.setup_anndata(
                data, modalities=modalities, layers=layers, spatial_keys=spatial_keys, **common
            )
        if kind == "mudata":
            return cls.setup_mudata(
                data, modalities=modalities, layers=layers, spatial_keys=spatial_keys, **common
            )
        if kind == "spatialdata":
            return cls.setup_spatialdata(
                data, table_key=table_key, modalities=modalities, layers=layers,
                spatial_keys=spatial_keys, **common,
            )
        return cls.setup_adata_dict(
            data, modalities=modalities, layers=layers, spatial_keys=spatial_keys, **common
        )

    @classmethod
    def from_data(
        cls, data, modalities=None, layers=None, spatial_keys=None, table_key: str = "table",
        categorical_covariate_keys=None, continuous_covariate_keys=None, **model_kwargs,
    ):
        """Run setup and the constructor in one call (spec §4.7)."""
        extra_key = model_kwargs.pop("encoder_extra_obsm_key", None)
        n_inputs = model_kwargs.get("n_inputs_modalities")
        pre_concatenated = (
            input_data.detect_input_type(data) == "anndata" and n_inputs is not None
            and modalities is not None and not isinstance(modalities, str)
            and len(modalities) > 1
        )
        setup_modalities = [modalities[0]] if pre_concatenated else modalities
        if pre_concatenated and len(modalities) != len(n_inputs):
            raise ValueError(
                f"modalities has {len(modalities)} names but n_inputs_modalities has "
                f"{len(n_inputs)} entries."
            )
        registered = cls.setup_data(
            data, modalities=setup_modalities, layers=layers, spatial_keys=spatial_keys,
            table_key=table_key, categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
            encoder_extra_obsm_key=extra_key,
        )
        if isinstance(registered, tuple):
            registered = registered[0].uns["_flattened_ann_data"]
        if pre_concatenated:
            model_kwargs.setdefault("modality_names", list(modalities))
            meta = dict(registered.uns[input_data.MODALITY_SETUP_KEY])
            meta["modality_names"] = list(model_kwargs["modality_names"])
            meta["feature_counts"] = [int(n) for n in n_inputs]
            registered.uns[input_data.MODALITY_SETUP_KEY] = meta
        model = cls(registered, **model_kwargs)
        model._source = data
        return model

    @classmethod
    def from_mudata(
        cls, mdata, modality_order=None, layer_dict=None, spatial_key=None,
        spatial_modality_keys=None, categorical_covariate_keys=None,
        continuous_covariate_keys=None, **model_kwargs,
    ):
        """Set up a MuData with the old argument names and build the model (spec §4.7)."""
        extra_key = model_kwargs.pop("encoder_extra_obsm_key", None)
        cls.setup_mudata(
            mdata, modality_order=modality_order, layer_dict=layer_dict,
            spatial_key=spatial_key, spatial_modality_keys=spatial_modality_keys,
            categorical_covariate_keys=categorical_covariate_keys,
            continuous_covariate_keys=continuous_covariate_keys,
            encoder_extra_obsm_key=extra_key,
        )
        model = cls(mdata.uns["_flattened_ann_data"], **model_kwargs)
        model._source = mdata
        return model
