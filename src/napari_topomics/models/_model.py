"""The user-facing class ``MultimodalAmortizedLDA``: constructor, training and summary."""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext

import numpy as np
from anndata import AnnData
from scvi import REGISTRY_KEYS
from scvi.model.base import BaseModelClass, PyroSviTrainMixin

from ..data import INDICES_KEY
from ..data import _stats as stats
from ..data._modalities import normalize_likelihood
from ..data._registered_graphs import has_registered_graph
from ..module import ModuleConfig, MultimodalLDAModule
from ..module._graph_encoders import require_graph_layers
from . import _options as opt
from ._cache import MetricCache
from ._cells import CellQueriesMixin
from ._constructor import (
    check_blocks,
    data_constants,
    modality_layout,
    registered_anndata,
    resolve_likelihoods,
)
from ._distributed import (
    failure,
    launch_rank,
    parse_distributed,
    stop_local_ranks,
    trainer_arguments,
)
from ._graph_source import graph_source_for
from ._heap import retained_heap
from ._legacy import LegacyInputMixin
from ._row_shares import registered_matrix_is_lazy, share_for, training_rows
from ._setup_methods import SetupMixin
from ._spatial_queries import SpatialQueriesMixin
from ._splitter import ValidationBatchingSplitter
from ._topic_start import TOPIC_INITS, start_topics_from_clusters
from ._topics import TopicQueriesMixin
from ._training_plan import TopicTrainingPlan

logger = logging.getLogger(__name__)


class MultimodalAmortizedLDA(
    PyroSviTrainMixin,
    BaseModelClass,
    SetupMixin,
    CellQueriesMixin,
    TopicQueriesMixin,
    SpatialQueriesMixin,
    LegacyInputMixin,
):
    """Amortized LDA over several modalities, mixed by a mixture of experts.

    Cells are documents, features are words and modalities are chapters that share each
    cell's topic mixture θ. Every modality has its own encoder and likelihood
    (``"multinomial"``, ``"gamma_poisson"``/``"nb"``, ``"bernoulli"``, ``"gaussian"``).
    See ``docs/model.md`` for the maths and the full parameter list.

    Parameters
    ----------
    adata
        AnnData registered by a ``setup_*`` method (or a MuData on which setup ran).
    n_inputs_modalities
        Feature count of each modality; ``None`` reads the setup metadata.
    likelihoods
        One likelihood per modality; ``None`` infers them (rna → NB, binary chromatin →
        Bernoulli, otherwise multinomial).
    n_topics
        Number of topics K.

    Notes
    -----
    ``weight_mode="cell"`` (the default) is amortised: a gate on each encoder's hidden layer
    gives every cell, query cells included, its own modality weights. The first training
    starts each topic from a k-means cluster of the cells (with registered categorical
    covariates divided out first), and global variational parameters take larger steps than
    the encoders, more with more cells per feature (``plan_kwargs["topic_init"]`` and
    ``plan_kwargs["global_lr_factor"]``): topics form reliably at the default learning rate
    on thousands of cells and do not collapse on a few hundred.
    """

    _training_plan_cls = TopicTrainingPlan
    _data_splitter_cls = ValidationBatchingSplitter
    spatial: bool = False
    #: The rows the last ``train`` call held in memory when the registered matrix is read
    #: lazily (a :class:`~napari_topomics.data._lazy.RowShare`); None otherwise.
    training_share = None
    # BaseModelClass declares setup_anndata abstract and precedes the mixins in the MRO.
    setup_anndata = SetupMixin.__dict__["setup_anndata"]

    def __init__(
        self,
        adata,
        n_inputs_modalities: list[int] | None = None,
        likelihoods: list[str] | None = None,
        n_topics: int = 20,
        n_hidden: int = 128,
        cell_topic_prior: float | list[float] | None = None,
        topic_feature_prior: float | list[float] | None = None,
        topic_feature_prior_type: str = "logistic_normal",
        use_feature_background: bool = True,
        dispersion_rna: float = 1.0,
        learnable_dispersion: bool = False,
        global_dispersion: bool = True,
        modality_names: list[str] | None = None,
        weight_mode: str = "cell",
        likelihood_weight_mode: str = "none",
        likelihood_weight_ref: str = "mean",
        gcn_n_layers: int = 1,
        gcn_n_pre_layers: int = 0,
        gcn_conv_type: str = "GATv2Conv",
        gcn_hidden_dims: list[int] | None = None,
        gcn_alpha_init: float = 0.7,
        gcn_use_learned_alpha: bool = True,
        normalize_encoder_inputs: bool = True,
        encoder_scale_factor: float | None = 1000000.0,
        entropy_weight: float = 0.01,
        topic_variance_weight: float = 1.0,
        kl_weight: float = 1.0,
        encode_covariates: bool = True,
        bg_offset: float = 1e-15,
        learnable_bg: bool = True,
        aggregation_type: str = "moe",
        att_dim: int = 32,
        spatial_mode: str = "gcn",
        sgc_n_layers: int = 1,
        gcn_sampling: str = "approx",
        gcn_fan_out: list[int] | None = None,
        gcn_conv_first: bool = False,
    ):
        adata = registered_anndata(adata)
        # ---- argument validation: everything before any tensor is allocated
        self.n_topics = opt.integer("n_topics", n_topics, 2)
        self.n_hidden = opt.integer("n_hidden", n_hidden, 1)
        self.topic_feature_prior_type = opt.choice(
            "topic_feature_prior_type", topic_feature_prior_type, opt.PRIOR_TYPES
        )
        self.use_feature_background = opt.flag("use_feature_background", use_feature_background)
        self.dispersion_rna = opt.real("dispersion_rna", dispersion_rna, 0.0, strict=True)
        self.learnable_dispersion = opt.flag("learnable_dispersion", learnable_dispersion)
        self.global_dispersion = opt.flag("global_dispersion", global_dispersion)
        self.weight_mode = opt.choice("weight_mode", weight_mode, opt.WEIGHT_MODES)
        self.likelihood_weight_mode = opt.choice(
            "likelihood_weight_mode", likelihood_weight_mode, opt.LIKELIHOOD_WEIGHT_MODES
        )
        self.likelihood_weight_ref = opt.choice(
            "likelihood_weight_ref", likelihood_weight_ref, opt.LIKELIHOOD_WEIGHT_REFS
        )
        self.gcn_n_layers = opt.integer("gcn_n_layers", gcn_n_layers, 1)
        self.gcn_n_pre_layers = opt.integer("gcn_n_pre_layers", gcn_n_pre_layers, 0)
        self.gcn_conv_type = opt.choice("gcn_conv_type", gcn_conv_type, opt.CONV_TYPES)
        self.gcn_hidden_dims = opt.int_list(
            "gcn_hidden_dims", gcn_hidden_dims, self.gcn_n_layers
        ) or [self.n_hidden] * self.gcn_n_layers
        self.gcn_alpha_init = opt.real("gcn_alpha_init", gcn_alpha_init, 0.0, 1.0)
        self.gcn_use_learned_alpha = opt.flag("gcn_use_learned_alpha", gcn_use_learned_alpha)
        self.normalize_encoder_inputs = opt.flag(
            "normalize_encoder_inputs", normalize_encoder_inputs
        )
        self.encoder_scale_factor = (
            None if encoder_scale_factor is None
            else opt.real("encoder_scale_factor", encoder_scale_factor, 0.0, strict=True)
        )
        self.entropy_weight = opt.real("entropy_weight", entropy_weight, 0.0)
        self.topic_variance_weight = opt.real("topic_variance_weight", topic_variance_weight, 0.0)
        self.kl_weight = opt.real("kl_weight", kl_weight, 0.0)
        self.encode_covariates = opt.flag("encode_covariates", encode_covariates)
        self.bg_offset = opt.real("bg_offset", bg_offset, 0.0)
        self.learnable_bg = opt.flag("learnable_bg", learnable_bg)
        self.aggregation_type = opt.choice("aggregation_type", aggregation_type, opt.AGGREGATIONS)
        self.att_dim = opt.integer("att_dim", att_dim, 1)
        self.spatial_mode = opt.choice("spatial_mode", spatial_mode, opt.SPATIAL_MODES)
        self.sgc_n_layers = opt.integer("sgc_n_layers", sgc_n_layers, 1)
        self.gcn_sampling = opt.choice("gcn_sampling", gcn_sampling, opt.SAMPLING_MODES)
        self.gcn_fan_out = opt.int_list(
            "gcn_fan_out", gcn_fan_out, self.gcn_n_layers
        ) or [10] * self.gcn_n_layers
        self.gcn_conv_first = opt.flag("gcn_conv_first", gcn_conv_first)
        self.cell_topic_prior = opt.concentration(
            "cell_topic_prior", cell_topic_prior, self.n_topics, "topic"
        ) or (1.0 / self.n_topics,) * self.n_topics
        counts, names = modality_layout(adata, n_inputs_modalities, modality_names)
        self.topic_feature_prior = opt.concentration(
            "topic_feature_prior", topic_feature_prior, len(counts), "modality"
        ) or (1.0 / self.n_topics,) * len(counts)

        super().__init__(adata)
        X = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        self.n_inputs_modalities = counts
        self.modality_names = names
        self.likelihoods = resolve_likelihoods(likelihoods, counts, names, X)
        check_blocks(X, counts, names, self.likelihoods)
        self.n_modalities = len(counts)
        self._canonical_likelihoods = [normalize_likelihood(v) for v in self.likelihoods]

        self.spatial = has_registered_graph(self.adata.uns)
        if self.spatial and self.spatial_mode != "sgc":
            require_graph_layers()  # a clear ImportError naming the extra, before training
        registry = self.adata_manager.data_registry
        self.n_cats_per_cov = self._categorical_levels()
        continuous = None
        if REGISTRY_KEYS.CONT_COVS_KEY in registry:
            continuous = np.asarray(
                self.adata_manager.get_from_registry(REGISTRY_KEYS.CONT_COVS_KEY), dtype=float
            )
        self.n_continuous_cov = 0 if continuous is None else int(continuous.shape[1])
        extra = (
            self.adata_manager.get_from_registry("encoder_extra")
            if "encoder_extra" in registry else None
        )
        self.n_extra_encoder_features = 0 if extra is None else int(np.shape(extra)[1])
        constants, lib = data_constants(
            X, counts, self.likelihoods, self.bg_offset, self.use_feature_background, continuous
        )
        # median library size per modality: the encoder's depth when encoder_scale_factor
        # is None, and the SGC normalisation of spatial models (§3.9, §3.11.3)
        library_medians = tuple(stats.median_library(lib[:, m]) for m in range(len(counts)))
        if self.encoder_scale_factor is None:
            encoder_scale = library_medians
        else:
            encoder_scale = (self.encoder_scale_factor,) * len(counts)
        config = ModuleConfig(
            n_inputs=tuple(counts),
            likelihoods=tuple(self._canonical_likelihoods),
            modality_names=tuple(names),
            n_topics=self.n_topics,
            n_hidden=self.n_hidden,
            cell_topic_prior=tuple(self.cell_topic_prior),
            topic_feature_prior=tuple(self.topic_feature_prior),
            prior_type=self.topic_feature_prior_type,
            use_feature_background=self.use_feature_background,
            dispersion=self.dispersion_rna,
            learnable_dispersion=self.learnable_dispersion,
            global_dispersion=self.global_dispersion,
            weight_mode=self.weight_mode,
            aggregation_type=self.aggregation_type,
            att_dim=self.att_dim,
            normalize_encoder_inputs=self.normalize_encoder_inputs,
            encoder_scale=encoder_scale,
            entropy_weight=self.entropy_weight,
            topic_variance_weight=self.topic_variance_weight,
            kl_weight=self.kl_weight,
            encode_covariates=self.encode_covariates,
            learnable_bg=self.learnable_bg,
            n_cats_per_cov=tuple(self.n_cats_per_cov or ()),
            n_continuous_cov=self.n_continuous_cov,
            n_extra_encoder_features=self.n_extra_encoder_features,
            likelihood_weights=tuple(
                opt.likelihood_weights(
                    counts, self.likelihood_weight_mode, self.likelihood_weight_ref
                )
            ),
            **self._spatial_config(library_medians),
        )
        self.module = MultimodalLDAModule(config, constants)
        self.module.graph_source = graph_source_for(self)
        self._metric_cache = MetricCache()
        self._model_summary_string = self._summary()
        self.init_params_ = self._get_init_params(locals())

    def _spatial_config(self, library_medians: tuple[float, ...]) -> dict:
        """The spatial fields of the module configuration (§3.11)."""
        if not self.spatial:
            return {}
        mode = "sgc" if self.spatial_mode in ("sgc", "simplified") else "gcn"
        return {
            "spatial": True,
            "spatial_mode": mode,
            "gcn_n_layers": self.gcn_n_layers,
            "gcn_n_pre_layers": self.gcn_n_pre_layers,
            "gcn_conv_type": self.gcn_conv_type,
            "gcn_hidden_dims": tuple(self.gcn_hidden_dims),
            "gcn_alpha_init": self.gcn_alpha_init,
            "gcn_use_learned_alpha": self.gcn_use_learned_alpha,
            "gcn_sampling": self.gcn_sampling,
            "gcn_fan_out": tuple(self.gcn_fan_out),
            "gcn_conv_first": self.gcn_conv_first,
            "sgc_n_layers": self.sgc_n_layers,
            "sgc_scale": library_medians if mode == "sgc" else (),
        }

    # ------------------------------------------------------------------ attributes
    @property
    def modalities(self) -> list[str]:
        """Alias of :attr:`modality_names`."""
        return self.modality_names

    def _categorical_levels(self) -> list[int] | None:
        registry = self.adata_manager.data_registry
        if REGISTRY_KEYS.CAT_COVS_KEY not in registry:
            return None
        state = self.adata_manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY)
        levels = [len(state.mappings[key]) for key in state.field_keys]
        return levels or None

    def _summary(self) -> str:
        parts = ", ".join(
            f"{name} ({f} features, {lik})"
            for name, f, lik in zip(
                self.modality_names, self.n_inputs_modalities, self.likelihoods, strict=True
            )
        )
        agg = (
            "attention" if self.aggregation_type == "attention"
            else f"moe ({self.weight_mode} weights)"
        )
        spatial = f"spatial {self.spatial_mode}" if self.spatial else "non-spatial"
        return (
            f"MultimodalAmortizedLDA with {self.n_topics} topics; modalities: {parts}; "
            f"topic-feature prior: {self.topic_feature_prior_type}; aggregation: {agg}; "
            f"{spatial}."
        )

    # ------------------------------------------------------------------ training
    def train(self, *args, validation_size: float | None = None, **kwargs):
        """Train with SVI (spec §5.1); arguments as scvi's ``PyroSviTrainMixin.train``.

        Defaults: ``train_size=0.9`` (the rest is validation), ``lr=1e-3`` merged into the
        optimiser kwargs, KL warm-up over the first quarter of the epochs, validation
        metrics every epoch. ``plan_kwargs`` may also hold ``topic_init``: ``"kmeans"``
        (default: the first training starts each topic's ``q(β)`` mean from the profile of
        one k-means cluster of the cells, registered categorical covariates divided out) or
        ``"zero"`` (the all-zero start of spec §3.8).

        ``strategy="ddp"``, ``devices=N`` and ``num_nodes=M`` train on ``N × M`` processes
        with Lightning's DDP (gloo on CPU, NCCL on GPU; ``distributed_timeout`` seconds,
        default 600, bound every wait for another rank). Every rank ends with the same
        parameters; a failure anywhere raises :class:`DistributedTrainingError`. See
        ``docs/distributed.md``.
        """
        distributed = parse_distributed(
            kwargs.pop("strategy", None), kwargs.pop("devices", None),
            kwargs.pop("num_nodes", None), kwargs.pop("distributed_timeout", None),
            kwargs.get("accelerator", args[1] if len(args) > 1 else "auto"),
        )
        if distributed is not None:  # launch_rank() reads it before Lightning sets the ranks
            os.environ["_TOPOMICS_DEVICES"] = str(distributed.devices)
        names = [
            "max_epochs", "accelerator", "device", "train_size", "validation_size",
            "shuffle_set_split", "batch_size", "early_stopping", "lr", "training_plan",
            "datasplitter_kwargs", "plan_config", "plan_kwargs", "trainer_config",
        ]
        if len(args) > len(names):
            raise TypeError(f"train() takes at most {len(names)} positional arguments.")
        for name, value in zip(names, args, strict=False):
            if name in kwargs or (name == "validation_size" and validation_size is not None):
                raise TypeError(f"train() got multiple values for argument {name!r}.")
            kwargs[name] = value
        if validation_size is not None:
            kwargs["validation_size"] = validation_size
        if kwargs.get("train_size") is None:
            kwargs["train_size"] = 0.9
        plan_kwargs = dict(kwargs.pop("plan_kwargs", None) or {})
        topic_init = plan_kwargs.pop("topic_init", "kmeans")
        if topic_init not in TOPIC_INITS:
            raise ValueError(
                f"plan_kwargs['topic_init'] must be one of {list(TOPIC_INITS)}, "
                f"got {topic_init!r}."
            )
        lr = kwargs.pop("lr", None)
        if lr is not None and "optim" not in plan_kwargs:
            optim_kwargs = dict(plan_kwargs.get("optim_kwargs") or {})
            optim_kwargs["lr"] = opt.real("lr", lr, 0.0, strict=True)
            plan_kwargs["optim_kwargs"] = optim_kwargs
        kwargs["plan_kwargs"] = plan_kwargs
        has_validation = kwargs["train_size"] < 1.0 or (kwargs.get("validation_size") or 0) > 0
        if has_validation:
            kwargs.setdefault("check_val_every_n_epoch", 1)
        kwargs.setdefault("batch_size", 128)
        share = self._row_share(distributed)
        if distributed is not None:
            kwargs.update(trainer_arguments(distributed, kwargs.get("accelerator", "auto")))
            splitter = dict(kwargs.get("datasplitter_kwargs") or {})
            if share is None:
                splitter["distributed_sampler"] = True
            else:  # a lazy matrix: each rank trains on the share it holds
                splitter["row_share"] = share
            kwargs["datasplitter_kwargs"] = splitter
            kwargs.setdefault("use_distributed_sampler", False)
        # freed step tensors are reused instead of faulted in afresh (see _heap)
        with retained_heap():
            if topic_init == "kmeans" and not self.is_trained_:
                start_topics_from_clusters(self)
            with training_rows(self, share) if share is not None else nullcontext():
                if distributed is None:
                    return self._run_training(**kwargs)
                return self._run_distributed(distributed, kwargs)

    def _row_share(self, distributed):
        """This process's rows of a lazily read matrix (None when it is in memory, or in a
        backed AnnData, whose minibatches are read from the file)."""
        if self.adata.isbacked or not registered_matrix_is_lazy(self):
            return None
        if distributed is None:
            return share_for(self, 0, 1)
        return share_for(self, launch_rank(), distributed.world_size)

    def _run_distributed(self, settings, kwargs):
        """Train under DDP; any rank's failure becomes one ``DistributedTrainingError``."""
        try:
            out = self._run_training(**kwargs)
        except KeyboardInterrupt:
            raise
        except Exception as err:
            stop_local_ranks(kwargs["strategy"])
            raise failure(err, settings) from err
        # scvi moves the trained model to the first listed device; each rank keeps its own
        self.to_device(self.trainer.strategy.root_device)
        return out

    def _run_training(self, **kwargs):
        self._metric_cache.clear()
        try:
            return super().train(**kwargs)
        finally:
            self._metric_cache.clear()
            self.module.current_kl_weight = self.kl_weight

    def fit(self, data=None, **train_kwargs):
        """Train on the registered data and return ``self`` (spec §5.1)."""
        allowed = data is None or data is self.adata or data is getattr(self, "_source", None)
        if not allowed:
            raise ValueError(
                "fit() trains on the data this model was built from. A new dataset needs a "
                "new model: MultimodalAmortizedLDA.from_data(new_data, ...).fit()."
            )
        self.train(**train_kwargs)
        return self

    def _validate_anndata(self, adata=None, copy_if_view: bool = True):
        """scvi's registry check, accepting a set-up MuData and a query without ``_indices``."""
        if adata is not None and not isinstance(adata, AnnData):
            adata = registered_anndata(adata)
        if adata is not None and INDICES_KEY not in adata.obs:
            adata.obs[INDICES_KEY] = np.arange(adata.n_obs, dtype=np.int64)
        return super()._validate_anndata(adata, copy_if_view=copy_if_view)

    def clear_metric_cache(self) -> None:
        """Empty the cache of query results (spec §5.10)."""
        self._metric_cache.clear()

    def get_normalized_expression(self, *args, **kwargs):
        """Not defined for topic models."""
        raise NotImplementedError("get_normalized_expression is not defined for topic models.")

    def differential_abundance(self, *args, **kwargs):
        """Not defined for topic models."""
        raise NotImplementedError("differential_abundance is not defined for topic models.")
