"""The Pyro module of MultimodalAmortizedLDA: generative model, guide and encoders."""

from __future__ import annotations

import itertools

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from scvi import REGISTRY_KEYS
from scvi.module.base import PyroBaseModuleClass
from torch import nn

from . import _likelihoods as lik
from ._config import DataConstants, ModuleConfig
from ._globals import ModalityGlobals
from ._networks import ModalityEncoder, build_weighting, masked_softmax, moment_match
from ._priors import logistic_normal_approximation

ENTROPY_EPS = 1e-5
_instance_counter = itertools.count()


class EncodedCells:
    """Per-cell output of the encoders: aggregated Gaussian, weights and modality mask."""

    __slots__ = ("mean", "var", "weights", "mask", "expert_mean", "expert_var")

    def __init__(self, mean, var, weights, mask, expert_mean, expert_var):
        self.mean, self.var, self.weights, self.mask = mean, var, weights, mask
        self.expert_mean, self.expert_var = expert_mean, expert_var


class MultimodalLDAModule(PyroBaseModuleClass):
    """Amortized multimodal LDA: one encoder and likelihood per modality, mixed by MoE.

    Parameters
    ----------
    config
        Validated model configuration.
    constants
        Data-dependent constants (background initialisation, covariate standardisation).
    """

    def __init__(self, config: ModuleConfig, constants: DataConstants):
        super().__init__()
        self.config = config
        self.instance_name = f"multimodal_lda_{next(_instance_counter)}"
        self.n_obs: int | None = None
        self.current_kl_weight = float(config.kl_weight)
        k = config.n_topics
        mu, sigma = logistic_normal_approximation(torch.tensor(config.cell_topic_prior))
        self.register_buffer("theta_prior_mu", mu)
        self.register_buffer("theta_prior_sigma", sigma)
        self.register_buffer(
            "likelihood_weights", torch.tensor(config.likelihood_weights, dtype=torch.float32)
        )
        self.register_buffer("encoder_scale", torch.tensor(config.encoder_scale))
        n_cont = config.n_continuous_cov
        mean = constants.continuous_mean if n_cont else torch.zeros(0)
        scale = constants.continuous_scale if n_cont else torch.ones(0)
        self.register_buffer("continuous_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("continuous_scale", torch.as_tensor(scale, dtype=torch.float32))
        cat_list = list(config.n_cats_per_cov) if config.encode_covariates else []
        extra_in = config.n_extra_encoder_features + (n_cont if config.encode_covariates else 0)
        self.encoders = nn.ModuleList(
            ModalityEncoder(f + extra_in, k, config.n_hidden, cat_list) for f in config.n_inputs
        )
        self.weighting = build_weighting(
            config.aggregation_type, config.weight_mode, config.n_modalities, k,
            config.n_hidden, config.att_dim,
        )
        self.globals = nn.ModuleList(
            ModalityGlobals(m, config, constants.background_init.get(m))
            for m in range(config.n_modalities)
        )
        self._mask_cache: tuple | None = None
        self._last_entropy: torch.Tensor | None = None
        self._last_variance: torch.Tensor | None = None

    # ------------------------------------------------------------------ batches
    @staticmethod
    def _get_fn_args_from_batch(tensor_dict: dict[str, torch.Tensor]):
        x = tensor_dict[REGISTRY_KEYS.X_KEY]
        ind = tensor_dict[REGISTRY_KEYS.INDICES_KEY].long().reshape(-1)
        cat = tensor_dict.get(REGISTRY_KEYS.CAT_COVS_KEY)
        cont = tensor_dict.get(REGISTRY_KEYS.CONT_COVS_KEY)
        extra = tensor_dict.get("encoder_extra")
        return (x, ind, cat, cont, extra), {}

    # ------------------------------------------------------------------ encoder path
    def encoder_inputs(self, x, cat, cont, extra) -> tuple[list[torch.Tensor], list]:
        """Normalised per-modality encoder inputs and the categorical codes to inject."""
        cfg = self.config
        appended = []
        if extra is not None and cfg.n_extra_encoder_features:
            appended.append(extra.float())
        if cfg.encode_covariates and cfg.n_continuous_cov:
            appended.append(self.standardise(cont))
        codes = []
        if cfg.encode_covariates and cfg.n_cats_per_cov:
            codes = [cat[:, i : i + 1].long() for i in range(cat.shape[1])]
        inputs = []
        for m in range(cfg.n_modalities):
            block = x[:, cfg.block(m)]
            if cfg.normalize_encoder_inputs and cfg.is_count(m):
                block = block.clamp_min(0)
                lib = block.sum(-1, keepdim=True).clamp_min(1.0)
                block = torch.log1p(block * (self.encoder_scale[m] / lib))
            inputs.append(torch.cat([block, *appended], dim=-1) if appended else block)
        return inputs, codes

    def standardise(self, cont: torch.Tensor) -> torch.Tensor:
        """Standardise continuous covariates with the stored registered-cell statistics."""
        return (cont.float() - self.continuous_mean) / self.continuous_scale

    def modality_mask(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` float mask: 1 where the cell's block has any non-zero value.

        Model and guide see the same ``x`` in a step, so the last result is reused.
        """
        cached = self._mask_cache
        if cached is not None and cached[0] is x:
            return cached[1]
        nonzero = x != 0
        mask = torch.stack(
            [nonzero[:, sl].any(-1) for sl in self.config.blocks], dim=-1
        ).float()
        self._mask_cache = (x, mask)
        return mask

    def encode(self, x, cat=None, cont=None, extra=None) -> EncodedCells:
        """Run every modality encoder and aggregate the experts (training and inference)."""
        inputs, codes = self.encoder_inputs(x, cat, cont, extra)
        outs = [enc(inp, codes) for enc, inp in zip(self.encoders, inputs, strict=True)]
        mu = torch.stack([o[0] for o in outs], dim=1)
        var = torch.stack([o[1] for o in outs], dim=1)
        mask = self.modality_mask(x)
        if self.weighting is None:
            logits = torch.zeros_like(mask)
        else:
            logits = self.weighting(mu, [o[2] for o in outs], mask)
        weights = masked_softmax(logits, mask)
        mean, agg_var = moment_match(mu, var, weights)
        return EncodedCells(mean, agg_var, weights, mask, mu, var)

    # ------------------------------------------------------------------ decoder path
    def covariate_offset(self, g: dict, cat, cont) -> torch.Tensor | None:
        """Per-cell covariate offset ``o_nmk`` of shape ``(B, K, F_m)``, or ``None``."""
        offset = None
        if "cat_tau" in g:
            for c, (tau, delta) in enumerate(zip(g["cat_tau"], g["cat_delta"], strict=True)):
                term = tau[None, :, None] * delta[cat[:, c].long()][:, None, :]
                offset = term if offset is None else offset + term
        if "cont_tau" in g:
            u = self.standardise(cont)
            per_feature = torch.einsum("bj,jk,jf->bkf", u, g["cont_tau"], g["cont_gamma"])
            offset = per_feature if offset is None else offset + per_feature
        return offset

    def feature_frequencies(self, m: int, theta: torch.Tensor, g: dict, cat, cont):
        """Expected feature frequencies ``r_nm`` (count modalities) or Gaussian means."""
        logits = g["beta"]
        if "background" in g:
            logits = logits + g["background"]
        offset = self.covariate_offset(g, cat, cont)
        if not self.config.is_count(m):
            if offset is None:
                return theta @ logits
            return torch.einsum("bk,bkf->bf", theta, logits + offset)
        if offset is None:
            return theta @ torch.softmax(logits, dim=-1)
        return torch.einsum("bk,bkf->bf", theta, torch.softmax(logits + offset, dim=-1))

    def observation(self, m: int, block: torch.Tensor, theta: torch.Tensor, g: dict, cat, cont):
        """The observation distribution of modality ``m`` and the data it scores."""
        r = self.feature_frequencies(m, theta, g, cat, cont)
        kind = self.config.likelihoods[m]
        if kind == "gaussian":
            return lik.gaussian_obs(r, g["sigma"]).to_event(1), block
        counts = block.clamp_min(0)
        if kind == "bernoulli":
            return lik.bernoulli_obs(r, counts.sum(-1)), counts
        counts = torch.round(counts)
        if kind == "multinomial":
            return lik.multinomial_obs(r), counts
        fixed = None if self.config.learnable_dispersion else self.config.dispersion
        return lik.negative_binomial_obs(r, counts.sum(-1), g["size"], fixed), counts

    # ------------------------------------------------------------------ Pyro model/guide
    def _kl(self, kl_weight):
        return self.current_kl_weight if kl_weight is None else float(kl_weight)

    def model(self, x, ind, cat=None, cont=None, extra=None, kl_weight=None):
        """Generative model (spec §3); ``kl_weight`` scales every latent site."""
        cfg, beta_kl = self.config, self._kl(kl_weight)
        batch = x.shape[0]
        with poutine.scale(scale=beta_kl):
            globals_ = [g.sample(guide=False) for g in self.globals]
        mask = self.modality_mask(x) > 0
        with pyro.plate("cells", size=self.n_obs or batch, subsample_size=batch):
            with poutine.scale(scale=beta_kl):
                prior = dist.Normal(self.theta_prior_mu, self.theta_prior_sigma)
                z = pyro.sample(
                    "log_cell_topic_dist", prior.expand([batch, cfg.n_topics]).to_event(1)
                )
            theta = torch.softmax(z, dim=-1)
            for m in range(cfg.n_modalities):
                obs_dist, data = self.observation(
                    m, x[:, cfg.block(m)], theta, globals_[m], cat, cont
                )
                with poutine.scale(scale=self.likelihood_weights[m]):
                    pyro.sample(f"feature_counts_{m}", obs_dist.mask(mask[:, m]), obs=data)
            if cfg.entropy_weight > 0:
                pyro.factor("entropy_bonus", cfg.entropy_weight * topic_entropy(theta))
        if cfg.topic_variance_weight > 0 and batch >= 2:
            variance = theta.var(0, unbiased=False).sum()
            pyro.factor("topic_variance_bonus", cfg.topic_variance_weight * variance)

    def guide(self, x, ind, cat=None, cont=None, extra=None, kl_weight=None):
        """Mean-field guide: global factors and the amortised, aggregated ``q(z_n)``."""
        cfg, beta_kl = self.config, self._kl(kl_weight)
        batch = x.shape[0]
        with poutine.scale(scale=beta_kl):
            for g in self.globals:
                g.sample(guide=True)
        with pyro.plate("cells", size=self.n_obs or batch, subsample_size=batch):
            enc = self.encode(x, cat, cont, extra)
            with poutine.scale(scale=beta_kl):
                z = pyro.sample(
                    "log_cell_topic_dist", dist.Normal(enc.mean, enc.var.sqrt()).to_event(1)
                )
        if cfg.entropy_weight > 0 or cfg.topic_variance_weight > 0:
            with torch.no_grad():
                theta = torch.softmax(z, dim=-1)
                if cfg.entropy_weight > 0:
                    self._last_entropy = topic_entropy(theta).mean()
                if cfg.topic_variance_weight > 0 and batch >= 2:
                    self._last_variance = theta.var(0, unbiased=False).mean()

    @torch.no_grad()
    def diagnose_non_finite(self, batch: dict) -> str:
        """Name the first modality or site whose values are not finite (after a bad loss)."""
        (x, _, cat, cont, extra), _ = self._get_fn_args_from_batch(batch)
        inputs, codes = self.encoder_inputs(x, cat, cont, extra)
        names = self.config.modality_names
        for m, (enc, inp) in enumerate(zip(self.encoders, inputs, strict=True)):
            if not torch.isfinite(inp).all():
                return f" in the encoder input of modality {names[m]!r}"
            mu, var, _ = enc(inp, codes)
            if not (torch.isfinite(mu).all() and torch.isfinite(var).all()):
                return f" in the encoder output of modality {names[m]!r}"
        for m, g in enumerate(self.globals):
            for pname, p in g.named_parameters():
                if not torch.isfinite(p).all():
                    return f" in the global parameter {pname!r} of modality {names[m]!r}"
        return " (encoders and parameters are finite: a likelihood term overflowed)"

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before likelihood weights were saved: recompute them (§3.7).
        key = prefix + "likelihood_weights"
        if key not in state_dict:
            state_dict[key] = self.likelihood_weights.clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def on_load(self, model, **kwargs):
        """Load hook: every parameter is in the state dict, so nothing else is restored.

        scvi's default clears Pyro's global store, trains a step and restores the saved
        store, which could hijack the parameters of other live models (spec §5.11).
        """


def topic_entropy(theta: torch.Tensor) -> torch.Tensor:
    """Per-cell topic entropy ``−Σ_k θ log(θ + 1e-5)``."""
    return -(theta * torch.log(theta + ENTROPY_EPS)).sum(-1)
