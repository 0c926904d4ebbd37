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
from ._graph_encoders import GraphEncoder, GraphInputs, SGCEncoder
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
        self.register_buffer(
            "sgc_scale", torch.tensor(config.sgc_scale or (1.0,) * config.n_modalities)
        )
        self.encoders = build_encoders(config)
        #: Graph inputs of the data being encoded (spatial models; set by the user class).
        self.graph_source = None
        #: Weight λ of each cell's neighbourhood counts in its likelihood (spatial models;
        #: set by the training plan).
        self.neighbour_weight = 0.0
        #: Learned neighbourhood prior of a spatial model (set by the training plan; used
        #: only while its ``active`` flag is on, i.e. inside the plan's loss).
        self.neighbourhood_prior = None
        self.weighting = build_weighting(
            config.aggregation_type, config.weight_mode, config.n_modalities, k,
            config.n_hidden, config.att_dim,
        )
        self.globals = nn.ModuleList(
            ModalityGlobals(m, config, constants.background_init.get(m))
            for m in range(config.n_modalities)
        )
        self._batch_cache: tuple | None = None
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
        appended = self.appended_inputs(cont, extra)
        codes = []
        if cfg.encode_covariates and cfg.n_cats_per_cov:
            codes = [cat[:, i : i + 1].long() for i in range(cat.shape[1])]
        inputs = []
        counts, totals, _ = self._batch_view(x)
        for m in range(cfg.n_modalities):
            block = x[:, cfg.block(m)]
            if cfg.normalize_encoder_inputs and cfg.is_count(m):
                block = counts[m]
                lib = totals[m].unsqueeze(-1).clamp_min(1.0)
                if cfg.likelihoods[m] == "bernoulli":
                    # binary data: log1p(x s / l) = x log1p(s / l), one log per cell
                    block = block * torch.log1p(self.encoder_scale[m] / lib)
                else:
                    block = torch.log1p(block * (self.encoder_scale[m] / lib))
            inputs.append(torch.cat([block, *appended], dim=-1) if appended else block)
        return inputs, codes

    def standardise(self, cont: torch.Tensor) -> torch.Tensor:
        """Standardise continuous covariates with the stored registered-cell statistics."""
        return (cont.float() - self.continuous_mean) / self.continuous_scale

    def observed_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each modality's block as the likelihood scores it: counts clamped at 0."""
        return self._batch_view(x)[0]

    def modality_mask(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` float mask: 1 where the cell's block has any non-zero value.

        Count blocks are read after clamping at 0 (as the encoders and likelihoods read
        them): present means a positive total.
        """
        return self._batch_view(x)[2]

    def _batch_view(self, x: torch.Tensor) -> tuple[list, list, torch.Tensor]:
        """Observed blocks, count totals (``None`` for Gaussian blocks) and modality mask.

        Encoders, likelihoods, model and guide of a step all read the same ``x``: the last
        result is reused.
        """
        cached = self._batch_cache
        if cached is not None and cached[0] is x:
            return cached[1]
        cfg = self.config
        clamped = x.clamp_min(0)  # one pass over the batch; Gaussian blocks read x itself
        counts = [cfg.is_count(m) for m in range(cfg.n_modalities)]
        blocks = [(clamped if c else x)[:, sl] for c, sl in zip(counts, cfg.blocks, strict=True)]
        totals = [b.sum(-1) if c else None for c, b in zip(counts, blocks, strict=True)]
        # max |x| > 0 per Gaussian block: one reduction, ~8x cheaper than (x != 0).any()
        present = [
            x[:, sl].abs().amax(-1) > 0 if total is None else total > 0
            for sl, total in zip(cfg.blocks, totals, strict=True)
        ]
        view = (blocks, totals, torch.stack(present, dim=-1).float())
        self._batch_cache = (x, view)
        return view

    def appended_inputs(self, cont, extra) -> list[torch.Tensor]:
        """Encoder-only extra features and standardised continuous covariates (§3.9)."""
        cfg = self.config
        appended = []
        if extra is not None and cfg.n_extra_encoder_features:
            appended.append(extra.float())
        if cfg.encode_covariates and cfg.n_continuous_cov:
            appended.append(self.standardise(cont))
        return appended

    def one_hot_codes(self, cat, first: int = 0) -> list[torch.Tensor]:
        """One-hot codes of the categorical keys from ``first`` on (encoder covariates)."""
        cfg = self.config
        if not (cfg.encode_covariates and cfg.n_cats_per_cov) or cat is None:
            return []
        return [
            torch.nn.functional.one_hot(cat[:, i].long(), n).float()
            for i, n in enumerate(cfg.n_cats_per_cov) if i >= first
        ]

    def experts(self, x, cat=None, cont=None, extra=None, ind=None) -> list[tuple]:
        """``(μ, σ², hidden)`` of every modality's expert for the cells of the batch."""
        cfg = self.config
        if not cfg.spatial:
            inputs, codes = self.encoder_inputs(x, cat, cont, extra)
            return [enc(inp, codes) for enc, inp in zip(self.encoders, inputs, strict=True)]
        source = self.graph_source
        if source is None or ind is None:
            raise RuntimeError(
                "A spatial model needs the cells' global indices and a graph source to encode."
            )
        device = x.device
        if cfg.spatial_mode == "sgc":
            features = source.smoothed_inputs(ind, device)
            appended = self.appended_inputs(cont, extra) + self.one_hot_codes(cat, first=1)
            level = cat[:, 0] if cfg.sgc_level_norm else None
            return [
                enc(torch.cat([f, *appended], dim=-1) if appended else f, level)
                for enc, f in zip(self.encoders, features, strict=True)
            ]
        subgraphs = source.graph_inputs(ind, self.training, device)
        node_inputs = [self._node_inputs(sub) for sub in subgraphs]
        outs = []
        for m, enc in enumerate(self.encoders):
            g = source.graphs.assignment[m]
            sub = subgraphs[g]
            outs.append(enc(node_inputs[g][m], sub.edge_index, sub.edge_weight, sub.n_seeds))
        return outs

    def _node_inputs(self, sub: GraphInputs) -> list[torch.Tensor]:
        inputs, _ = self.encoder_inputs(sub.x, sub.cat, sub.cont, sub.extra)
        codes = self.one_hot_codes(sub.cat)
        return [torch.cat([inp, *codes], dim=-1) for inp in inputs] if codes else inputs

    def encode(self, x, cat=None, cont=None, extra=None, ind=None) -> EncodedCells:
        """Run every modality encoder and aggregate the experts (training and inference)."""
        outs = self.experts(x, cat, cont, extra, ind)
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

    @staticmethod
    def topic_logits(g: dict) -> torch.Tensor:
        """Topic-feature logits ``(K, F)`` with the feature background, if any."""
        return g["beta"] + g["background"] if "background" in g else g["beta"]

    def feature_frequencies(self, m: int, theta: torch.Tensor, g: dict, cat, cont):
        """Expected feature frequencies ``r_nm`` (count modalities) or Gaussian means."""
        logits = self.topic_logits(g)
        offset = self.covariate_offset(g, cat, cont)
        if not self.config.is_count(m):
            if offset is None:
                return theta @ logits
            return torch.einsum("bk,bkf->bf", theta, logits + offset)
        if offset is None:
            return theta @ torch.softmax(logits, dim=-1)
        return torch.einsum("bk,bkf->bf", theta, torch.softmax(logits + offset, dim=-1))

    def observation_frequencies(self, m: int, theta: torch.Tensor, g: dict, cat, cont):
        """``r_nm`` for the training likelihood: Bernoulli modalities without covariate
        offsets keep it as its factors ``θ φ``, which they score without the dense matrix.
        """
        has_offset = "cat_tau" in g or "cont_tau" in g  # the keys covariate_offset reads
        if self.config.likelihoods[m] == "bernoulli" and not has_offset:
            return lik.TopicFactors(theta, torch.softmax(self.topic_logits(g), dim=-1))
        return self.feature_frequencies(m, theta, g, cat, cont)

    def observation(
        self, m: int, block: torch.Tensor, theta: torch.Tensor, g: dict, cat, cont, r=None
    ):
        """The observation distribution of modality ``m`` and the data it scores.

        A count ``block`` must be non-negative (:meth:`observed_blocks`); ``r`` (the expected
        frequencies) is computed from ``theta`` unless given.
        """
        r = self.feature_frequencies(m, theta, g, cat, cont) if r is None else r
        kind = self.config.likelihoods[m]
        if kind == "gaussian":
            return lik.gaussian_obs(r, g["sigma"]).to_event(1), block
        if kind == "bernoulli":
            return lik.bernoulli_obs(r, block.sum(-1)), block
        counts = torch.round(block)
        if kind == "multinomial":
            return lik.multinomial_obs(r), counts
        fixed = None if self.config.learnable_dispersion else self.config.dispersion
        return lik.negative_binomial_obs(r, counts.sum(-1), g["size"], fixed), counts

    # ------------------------------------------------------------------ Pyro model/guide
    def cell_plate(self, x: torch.Tensor):
        """The cells plate: size N_train, the minibatch as an explicit subsample.

        Passing the subsample keeps Pyro from drawing ``randperm(N)`` on every step, which
        made each step cost O(N) (41 ms per step at a million cells).
        """
        batch = x.shape[0]
        return pyro.plate(
            "cells", size=self.n_obs or batch,
            subsample=torch.arange(batch, device=x.device),
        )

    def _kl(self, kl_weight):
        return self.current_kl_weight if kl_weight is None else float(kl_weight)

    def model(self, x, ind, cat=None, cont=None, extra=None, kl_weight=None):
        """Generative model (spec §3); ``kl_weight`` scales every latent site."""
        cfg, beta_kl = self.config, self._kl(kl_weight)
        batch = x.shape[0]
        with poutine.scale(scale=beta_kl):
            globals_ = [g.sample(guide=False) for g in self.globals]
        mask = self.modality_mask(x) > 0
        blocks = self.observed_blocks(x)
        with self.cell_plate(x):
            with poutine.scale(scale=beta_kl):
                z = pyro.sample("log_cell_topic_dist", self.cell_prior(ind, batch))
            theta = torch.softmax(z, dim=-1)
            frequencies = []
            for m in range(cfg.n_modalities):
                frequencies.append(
                    self.observation_frequencies(m, theta, globals_[m], cat, cont)
                )
                obs_dist, data = self.observation(
                    m, blocks[m], theta, globals_[m], cat, cont, frequencies[m]
                )
                with poutine.scale(scale=self.likelihood_weights[m]):
                    pyro.sample(f"feature_counts_{m}", obs_dist.mask(mask[:, m]), obs=data)
            if cfg.spatial and self.neighbour_weight > 0:
                self.neighbourhood_likelihood(ind, theta, globals_, cat, cont, frequencies)
            if cfg.entropy_weight > 0:
                pyro.factor("entropy_bonus", cfg.entropy_weight * topic_entropy(theta))
        if cfg.topic_variance_weight > 0 and batch >= 2:
            variance = theta.var(0, unbiased=False).sum()
            pyro.factor("topic_variance_bonus", cfg.topic_variance_weight * variance)

    def cell_prior(self, ind, batch: int) -> dist.Distribution:
        """Prior of the batch's ``z_n``: the contract's, or the learned neighbourhood prior."""
        prior = self.neighbourhood_prior
        if prior is not None and prior.active and ind is not None:
            loc = prior.loc(ind, self.theta_prior_mu.device)
            return dist.Normal(loc, self.theta_prior_sigma.expand_as(loc)).to_event(1)
        plain = dist.Normal(self.theta_prior_mu, self.theta_prior_sigma)
        return plain.expand([batch, self.config.n_topics]).to_event(1)

    def neighbourhood_likelihood(self, ind, theta, globals_, cat, cont, frequencies) -> None:
        """Spatial smoothing of the posterior: cell n's θ also explains its neighbours.

        The summed counts of the neighbours enter cell n's likelihood with weight
        ``λ / degree`` (so the whole neighbourhood weighs ``λ`` cells; isolated cells get
        none). Without this term a graph encoder cannot help: the ELBO optimum of an
        i.i.d. prior is the posterior given the cell's own data alone.
        """
        cfg = self.config
        sums = self.graph_source.neighbour_counts(ind, theta.device)
        for m in range(cfg.n_modalities):
            if not cfg.is_count(m):
                continue
            block, degree = sums[self.graph_source.graphs.assignment[m]]
            block = block[:, cfg.block(m)].clamp_min(0)
            has_neighbours = (degree > 0).float()
            if cfg.likelihoods[m] == "bernoulli":
                # the neighbours' open fraction, a soft target of weight λ
                block = block / degree.clamp_min(1.0).unsqueeze(-1)
                per_cell = has_neighbours
            else:
                # summed counts, weight λ / degree
                per_cell = has_neighbours / degree.clamp_min(1.0)
            obs_dist, data = self.observation(
                m, block, theta, globals_[m], cat, cont, frequencies[m]
            )
            weight = self.neighbour_weight * self.likelihood_weights[m] * per_cell
            pyro.factor(f"neighbour_counts_{m}", weight * obs_dist.log_prob(data))

    def guide(self, x, ind, cat=None, cont=None, extra=None, kl_weight=None):
        """Mean-field guide: global factors and the amortised, aggregated ``q(z_n)``."""
        cfg, beta_kl = self.config, self._kl(kl_weight)
        batch = x.shape[0]
        with poutine.scale(scale=beta_kl):
            for g in self.globals:
                g.sample(guide=True)
        with self.cell_plate(x):
            enc = self.encode(x, cat, cont, extra, ind)
            prior = self.neighbourhood_prior
            if prior is not None and prior.active and ind is not None:
                prior.record(ind, enc.mean, enc.var)
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
        (x, ind, cat, cont, extra), _ = self._get_fn_args_from_batch(batch)
        names = self.config.modality_names
        if not self.config.spatial:
            inputs, _ = self.encoder_inputs(x, cat, cont, extra)
            for m, inp in enumerate(inputs):
                if not torch.isfinite(inp).all():
                    return f" in the encoder input of modality {names[m]!r}"
        for m, (mu, var, _) in enumerate(self.experts(x, cat, cont, extra, ind)):
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


def build_encoders(config: ModuleConfig) -> nn.ModuleList:
    """One encoder per modality: plain (§3.9), graph (GCN mode) or SGC (§3.11)."""
    k, hidden = config.n_topics, config.n_hidden
    n_cont = config.n_continuous_cov if config.encode_covariates else 0
    extra_in = config.n_extra_encoder_features + n_cont
    cats = list(config.n_cats_per_cov) if config.encode_covariates else []
    if not config.spatial:
        return nn.ModuleList(
            ModalityEncoder(f + extra_in, k, hidden, cats) for f in config.n_inputs
        )
    if config.spatial_mode == "sgc":
        width = extra_in + sum(cats[1:])
        levels = config.n_cats_per_cov[0] if config.sgc_level_norm else 1
        return nn.ModuleList(
            SGCEncoder(f * (config.sgc_n_layers + 1) + width, k, hidden, levels)
            for f in config.n_inputs
        )
    return nn.ModuleList(
        GraphEncoder(
            f + extra_in + sum(cats), k, hidden, config.gcn_n_layers, config.gcn_n_pre_layers,
            config.gcn_conv_type, config.gcn_hidden_dims, config.gcn_alpha_init,
            config.gcn_use_learned_alpha, config.gcn_conv_first,
        )
        for f in config.n_inputs
    )


def topic_entropy(theta: torch.Tensor) -> torch.Tensor:
    """Per-cell topic entropy ``−Σ_k θ log(θ + 1e-5)``."""
    return -(theta * torch.log(theta + ENTROPY_EPS)).sum(-1)
