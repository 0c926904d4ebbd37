"""Lightning training plan: differentiable ELBO, the KL schedule of spec §3.12, logging."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyro
import torch
from scvi.train import PyroTrainingPlan
from scvi.train._trainingplans import LowLevelPyroTrainingPlan
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from ..module._spatial_prior import NeighbourhoodPrior
from ._distributed import running_buffers


def kl_schedule(
    epoch: int, max_epochs: int, kl_weight: float, warmup_fraction: float, warmup_min: float
) -> float:
    """KL weight at 0-based ``epoch``: a linear ramp over the first warm-up epochs.

    ``E_w = max(1, floor(warmup_fraction * max_epochs))``; warm-up is off when the fraction
    is ≤ 0.
    """
    if warmup_fraction <= 0:
        return float(kl_weight)
    n_warmup = max(1, math.floor(warmup_fraction * max_epochs))
    if epoch >= n_warmup:
        return float(kl_weight)
    return float(warmup_min + (kl_weight - warmup_min) * epoch / n_warmup)


STEP_PER_CELLS_PER_FEATURE = 30.0
FACTOR_RANGE = (1.5, 30.0)
#: Devices on which AdamW has a fused kernel that we use by default.
FUSED_DEVICES = ("cpu", "cuda")


def auto_global_lr_factor(n_cells: int | None, n_features: int) -> float:
    """The automatic learning-rate factor of one modality's global parameters.

    ``30 × n_cells / n_features`` within [1.5, 30]. With several training cells per
    feature, large steps form the topics within tens of epochs; when a topic has far more
    logits than there are cells (a few hundred cells, thousands of genes), large steps let
    each topic fit a handful of cells and the topics drift into each other, so the steps
    stay small. The slope 30 (10 before) comes from mixed-membership tissues, where smaller
    steps leave the topics unformed after 100 epochs and the proportions too flat
    (measured: docs/benchmarks.md, "Generalization").
    """
    low, high = FACTOR_RANGE
    if not n_cells:
        return low
    return float(min(high, max(low, STEP_PER_CELLS_PER_FEATURE * n_cells / n_features)))


class TopicTrainingPlan(PyroTrainingPlan):
    """Automatic-optimisation Pyro plan on ``TraceMeanField_ELBO.differentiable_loss``.

    It is a :class:`~scvi.train.PyroTrainingPlan` (so scvi's machinery accepts it) but
    trains the way scvi's low-level plan does: Lightning owns the optimiser and the backward
    pass, so every parameter is a registered module attribute and Lightning strategies such
    as DDP can synchronise gradients.

    Parameters
    ----------
    pyro_module
        The :class:`~napari_topomics.module.MultimodalLDAModule`.
    optim
        A torch optimiser class (or a callable ``params -> optimiser``). Default
        :class:`torch.optim.AdamW`.
    optim_kwargs
        Its keyword arguments; default ``{"lr": 1e-3, "weight_decay": 0.0}``.
    kl_warmup_fraction, kl_warmup_min
        KL warm-up (spec §3.12).
    neighbour_likelihood_weight
        Spatial models only: weight λ of each cell's neighbourhood counts in its likelihood
        (the neighbours together weigh λ cells; the default 6 makes each neighbour of a
        6-nearest-neighbour graph count as much as the cell itself; 0 turns the spatial
        smoothing of the posterior off, leaving only the graph encoder, which then learns
        to ignore the neighbours: see docs/model.md).
    lr_final_fraction
        Cosine decay of every learning rate over ``max_epochs``, ending at this fraction of
        its start (1 keeps it constant).
    global_lr_factor
        Learning-rate multiplier of the global variational parameters (topic-feature
        logits, background, dispersion, covariate effects) relative to the encoders: a
        number for every modality, or ``"auto"`` (default), which gives each modality
        :func:`auto_global_lr_factor` of its training cells per feature.
    """

    def __init__(
        self,
        pyro_module,
        optim: Callable | None = None,
        optim_kwargs: dict | None = None,
        kl_warmup_fraction: float = 0.25,
        kl_warmup_min: float = 0.01,
        global_lr_factor: float | str = "auto",
        lr_final_fraction: float = 1.0,
        neighbour_likelihood_weight: float | None = None,
        neighbourhood_prior: bool = False,
        **unused,
    ):
        # Skip PyroTrainingPlan.__init__ (it builds an SVI object and manual optimisation).
        LowLevelPyroTrainingPlan.__init__(
            self, pyro_module=pyro_module, loss_fn=pyro.infer.TraceMeanField_ELBO()
        )
        kwargs = {"lr": 1e-3, "weight_decay": 0.0}
        kwargs.update(optim_kwargs or {})
        self.optim_kwargs = kwargs
        self.optim = torch.optim.AdamW if optim is None else optim
        self.automatic_optimization = True
        self.kl_warmup_fraction = float(kl_warmup_fraction)
        self.kl_warmup_min = float(kl_warmup_min)
        if global_lr_factor != "auto" and not (
            isinstance(global_lr_factor, int | float) and global_lr_factor > 0
        ):
            raise ValueError(
                f"global_lr_factor must be 'auto' or a positive number, got {global_lr_factor!r}."
            )
        self.global_lr_factor = global_lr_factor
        self.lr_final_fraction = float(lr_final_fraction)
        if not isinstance(neighbourhood_prior, bool):
            raise ValueError(
                f"plan_kwargs['neighbourhood_prior'] must be True or False; "
                f"got {neighbourhood_prior!r}."
            )
        self.use_neighbourhood_prior = neighbourhood_prior
        if neighbour_likelihood_weight is None:
            neighbour_likelihood_weight = 0.0 if neighbourhood_prior else 6.0
        try:
            weight = float(neighbour_likelihood_weight)
        except (TypeError, ValueError):
            weight = float("nan")
        if not weight >= 0:
            raise ValueError(
                "plan_kwargs['neighbour_likelihood_weight'] must be a number >= 0; "
                f"got {neighbour_likelihood_weight!r}."
            )
        pyro_module.neighbour_weight = weight
        self.use_kl_weight = True
        self._epoch_sums: dict[str, list] = {}

    # ------------------------------------------------------------------ schedule
    @property
    def kl_weight(self) -> float:
        """β_KL of the current epoch (read by every training and validation step)."""
        max_epochs = self.trainer.max_epochs if self._trainer is not None else 1
        return kl_schedule(
            self.current_epoch, max_epochs or 1, self.module.config.kl_weight,
            self.kl_warmup_fraction, self.kl_warmup_min,
        )

    @property
    def global_lr_factors(self) -> list[float]:
        """The multiplier of each modality's global parameters: given, or automatic."""
        config = self.module.config
        if self.global_lr_factor != "auto":
            return [float(self.global_lr_factor)] * config.n_modalities
        return [auto_global_lr_factor(self.module.n_obs, f) for f in config.n_inputs]

    @property
    def n_obs_training(self):
        return self._n_obs_training

    @n_obs_training.setter
    def n_obs_training(self, n_obs: int):
        if n_obs is not None:
            self.module.n_obs = int(n_obs)
        self._n_obs_training = n_obs

    def on_train_start(self):
        module = self.module
        source = getattr(module, "graph_source", None)
        if source is not None and self.trainer.world_size > 1:
            # each rank samples its own seeds' neighbourhoods with its own stream
            source.rng = np.random.default_rng([source.seed, self.trainer.global_rank])
        module.neighbourhood_prior = None
        if self.use_neighbourhood_prior and module.config.spatial:
            source = module.graph_source
            module.neighbourhood_prior = NeighbourhoodPrior(
                source.graphs.adjacency[0], module.theta_prior_mu, module.theta_prior_sigma
            )

    def on_train_epoch_start(self):
        # scvi's runner and load() leave the module in eval mode; training needs dropout
        # and batch statistics.
        self.module.train()
        self.module.current_kl_weight = self.kl_weight
        # the same on every rank: nothing to synchronise
        self.log("kl_weight", self.kl_weight, on_step=False, on_epoch=True)

    # ------------------------------------------------------------------ steps
    def _loss(self, batch) -> torch.Tensor:
        args, kwargs = self.module._get_fn_args_from_batch(batch)
        kwargs["kl_weight"] = self.kl_weight
        # Argument validation of every distribution costs a sync per check; ours are built
        # from validated tensors, so it is switched off for this call only.
        prior = self.module.neighbourhood_prior
        if prior is not None:
            prior.active = True
        try:
            with pyro.validation_enabled(False):
                return self.differentiable_loss_fn(
                    self.module.model, self.module.guide, *args, **kwargs
                )
        finally:
            if prior is not None:
                prior.active = False

    def _accumulate(self, key: str, value: torch.Tensor) -> None:
        total = self._epoch_sums.setdefault(key, [0.0, 0])
        total[0] = total[0] + value.detach()
        total[1] += 1

    def _epoch_mean(self, key: str):
        total, count = self._epoch_sums.pop(key, (0.0, 0))
        return None if count == 0 else total / count

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(self._non_finite_message(batch))
        self._accumulate("train", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self._accumulate("validation", loss)
        if self.module.config.entropy_weight > 0 and self.module._last_entropy is not None:
            self._accumulate("entropy", self.module._last_entropy)
        if self.module.config.topic_variance_weight > 0 and self.module._last_variance is not None:
            self._accumulate("variance", self.module._last_variance)

    def on_train_epoch_end(self):
        prior = self.module.neighbourhood_prior
        metrics = {}
        if prior is not None:
            prior.refit()
            metrics["neighbourhood_rho"] = prior.rho
        mean = self._epoch_mean("train")
        if mean is not None:
            metrics["elbo_train"] = mean / self._n_per_cell()
        self._log_over_ranks(metrics, prog_bar=("elbo_train",))

    def on_validation_epoch_start(self):
        self._average_running_buffers()  # validation reads the running statistics

    def on_train_end(self):
        self._average_running_buffers()

    @property
    def _distributed(self) -> bool:
        return self._trainer is not None and self.trainer.world_size > 1

    def _average_running_buffers(self) -> None:
        """Make every rank's running statistics the mean over the ranks (one all-reduce).

        DDP does not broadcast rank 0's buffers before every step (``broadcast_buffers``
        off: a blocking collective per step); each rank updates them from its own
        minibatches, and this makes them identical again and an average over all ranks'
        data, as a single process's are over all cells.
        """
        buffers = running_buffers(self.module)
        if not (self._distributed and buffers):
            return
        mean = self.trainer.strategy.reduce(parameters_to_vector(buffers), reduce_op="mean")
        vector_to_parameters(mean, buffers)

    def on_validation_epoch_end(self):
        mean = self._epoch_mean("validation")
        if mean is None:
            return
        metrics = {"elbo_validation": mean / self._n_per_cell()}
        for key, name in (("entropy", "entropy_mean_val"), ("variance", "topic_variance_mean_val")):
            value = self._epoch_mean(key)
            if value is not None:
                metrics[name] = value
        metrics = self._log_over_ranks(metrics, prog_bar=("elbo_validation",))
        self.log("elbo_val", metrics["elbo_validation"])

    def _log_over_ranks(self, metrics: dict, prog_bar: tuple[str, ...] = ()) -> dict:
        """Log epoch metrics averaged over the ranks of a distributed fit (issue 18).

        One all-reduce for all of them, instead of one synchronisation per logged value.
        Returns the averaged values.
        """
        if not metrics:
            return metrics
        if self._distributed:
            stacked = torch.stack([
                torch.as_tensor(v, dtype=torch.float32, device=self.device).detach().reshape(())
                for v in metrics.values()
            ])
            stacked = self.trainer.strategy.reduce(stacked, reduce_op="mean")
            metrics = dict(zip(metrics, stacked.unbind(), strict=True))
        for name, value in metrics.items():
            self.log(name, value, prog_bar=name in prog_bar)
        return metrics

    def _n_per_cell(self) -> float:
        return float(self.module.n_obs or 1)

    def _non_finite_message(self, batch) -> str:
        culprit = self.module.diagnose_non_finite(batch)
        return (
            f"The training loss became non-finite at epoch {self.current_epoch} "
            f"(step {self.global_step}){culprit}. Reduce the learning rate (lr) or check the "
            "inputs for extreme values."
        )

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        global_params = list(self.module.globals.parameters())
        ids = {id(p) for p in global_params}
        local_params = [p for p in self.module.parameters() if id(p) not in ids]
        lr = self.optim_kwargs["lr"]
        groups = [{"params": local_params}] + [
            {"params": list(g.parameters()), "lr": lr * factor}
            for g, factor in zip(self.module.globals, self.global_lr_factors, strict=True)
        ]
        optimizer = self.optim(groups, **self._optimizer_kwargs(global_params + local_params))
        if self.lr_final_fraction >= 1.0:
            return optimizer
        max_epochs = max(1, self.trainer.max_epochs or 1)
        final = self.lr_final_fraction

        def factor(epoch: int) -> float:
            progress = min(epoch, max_epochs - 1) / max(1, max_epochs - 1)
            return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler,
                                                         "interval": "epoch"}}

    def _optimizer_kwargs(self, params: list[torch.Tensor]) -> dict:
        """The optimiser's kwargs; AdamW runs its fused kernel unless told otherwise.

        The fused step is one pass over each parameter instead of about ten element-wise
        operations: 6.9 -> 2.1 ms of a training step on the 5k-cell three-modality
        benchmark, on one CPU thread.
        """
        kwargs = dict(self.optim_kwargs)
        fusable = (
            self.optim is torch.optim.AdamW
            and "fused" not in kwargs and "foreach" not in kwargs
            and all(p.device.type in FUSED_DEVICES and p.dtype == torch.float32 for p in params)
        )
        if fusable:
            kwargs["fused"] = True
        return kwargs

    def optimizer_step(self, *args, **kwargs):
        return LowLevelPyroTrainingPlan.optimizer_step(self, *args, **kwargs)

    def backward(self, *args, **kwargs):
        return LowLevelPyroTrainingPlan.backward(self, *args, **kwargs)
