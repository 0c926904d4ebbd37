"""Global latent variables of one modality: priors, mean-field guide factors, plug-ins.

Each modality owns a :class:`ModalityGlobals`; all its variational parameters are
registered ``nn.Parameter`` attributes (nothing lives only in Pyro's parameter store).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn.functional import softplus

from ._config import ModuleConfig
from ._priors import LogitBeta, logistic_normal_approximation, regularised_horseshoe_scale


def inverse_softplus(value: float) -> float:
    """``softplus⁻¹(value)``."""
    return math.log(math.expm1(value))


INIT_RHO = inverse_softplus(0.1)


def _param(shape, value: float) -> nn.Parameter:
    return nn.Parameter(torch.full(tuple(shape), float(value)))


def _lognormal_mean(loc: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
    return torch.exp(loc + softplus(rho) ** 2 / 2)


class ModalityGlobals(nn.Module):
    """Topic-feature logits, background, dispersion, noise scale and covariate effects."""

    def __init__(self, m: int, config: ModuleConfig, background_init=None):
        super().__init__()
        self.m = m
        k, f = config.n_topics, config.n_inputs[m]
        self.n_topics, self.n_features = k, f
        self.prior_type = config.prior_type
        if self.prior_type == "logistic_normal":
            gamma = torch.full((f,), float(config.topic_feature_prior[m]))
            mu, sigma = logistic_normal_approximation(gamma)
            self.register_buffer("beta_prior_mu", mu)
            self.register_buffer("beta_prior_sigma", sigma)
            self.beta_loc = _param((k, f), 0.0)
            self.beta_rho = _param((k, f), math.sqrt(1.0 - 1.0 / f))
        else:
            self.hs_c_loc, self.hs_c_rho = _param((1,), 0.1), _param((1,), INIT_RHO)
            self.hs_tau_loc, self.hs_tau_rho = _param((k,), 0.0), _param((k,), INIT_RHO)
            self.hs_delta_loc, self.hs_delta_rho = _param((f,), 0.0), _param((f,), INIT_RHO)
            self.hs_lambda_loc, self.hs_lambda_rho = _param((k, f), 0.0), _param((k, f), INIT_RHO)
            self.hs_eta_loc, self.hs_eta_rho = _param((k, f), 0.0), _param((k, f), INIT_RHO)
        self.has_background = config.has_background(m)
        self.learnable_bg = self.has_background and config.learnable_bg
        if self.has_background:
            self.register_buffer("bg_init", torch.as_tensor(background_init, dtype=torch.float32))
            if self.learnable_bg:
                self.bg_loc, self.bg_rho = _param((f,), 0.0), _param((f,), INIT_RHO)
        self.is_nb = config.is_nb(m)
        self.learn_dispersion = self.is_nb and config.learnable_dispersion
        if self.learn_dispersion:
            shape = (1,) if config.global_dispersion else (f,)
            self.disp_loc, self.disp_rho = _param(shape, 0.0), _param(shape, INIT_RHO)
        self.register_buffer("fixed_size", torch.tensor(float(config.dispersion)))
        self.is_gaussian = config.likelihoods[m] == "gaussian"
        if self.is_gaussian:
            self.sigma_loc, self.sigma_rho = _param((f,), 0.0), _param((f,), INIT_RHO)
        self.n_levels = list(config.n_cats_per_cov)
        self.n_cont = config.n_continuous_cov
        if self.n_levels:
            self.cat_tau_loc = nn.ParameterList(_param((k,), 0.0) for _ in self.n_levels)
            self.cat_tau_rho = nn.ParameterList(_param((k,), INIT_RHO) for _ in self.n_levels)
            self.cat_delta_loc = nn.ParameterList(_param((s, f), 0.0) for s in self.n_levels)
            self.cat_delta_rho = nn.ParameterList(_param((s, f), INIT_RHO) for s in self.n_levels)
        if self.n_cont:
            self.cont_tau_loc, self.cont_tau_rho = _param((self.n_cont, k), 0.0), _param(
                (self.n_cont, k), INIT_RHO
            )
            self.cont_gamma_loc, self.cont_gamma_rho = _param((self.n_cont, f), 0.0), _param(
                (self.n_cont, f), INIT_RHO
            )

    # ------------------------------------------------------------------ sampling
    def sample(self, guide: bool) -> dict[str, torch.Tensor]:
        """Sample every global site of this modality from the prior (model) or q (guide)."""
        m, k, f = self.m, self.n_topics, self.n_features
        out: dict[str, torch.Tensor] = {}

        def site(name, prior, loc=None, rho=None, q_family=dist.Normal):
            if guide:
                return pyro.sample(name, q_family(loc, softplus(rho)).to_event(loc.dim()))
            return pyro.sample(name, prior)

        if self.prior_type == "logistic_normal":
            prior = dist.Normal(
                self.beta_prior_mu.expand(k, f), self.beta_prior_sigma.expand(k, f)
            ).to_event(2)
            out["beta"] = site(f"log_topic_feature_dist_{m}", prior, self.beta_loc, self.beta_rho)
        else:
            ones = self.hs_eta_loc.new_ones
            c = site(f"caux_{m}", dist.InverseGamma(0.5 * ones(1), 0.5 * ones(1)).to_event(1),
                     self.hs_c_loc, self.hs_c_rho, dist.LogNormal)
            tau = site(f"tau_{m}", dist.HalfCauchy(ones(k)).to_event(1),
                       self.hs_tau_loc, self.hs_tau_rho, dist.LogNormal)
            delta = site(f"delta_{m}", dist.HalfCauchy(ones(f)).to_event(1),
                         self.hs_delta_loc, self.hs_delta_rho, dist.LogNormal)
            lam = site(f"lambda_{m}", dist.HalfCauchy(ones(k, f)).to_event(2),
                       self.hs_lambda_loc, self.hs_lambda_rho, dist.LogNormal)
            eta = site(f"beta_{m}", dist.Normal(0 * ones(k, f), ones(k, f)).to_event(2),
                       self.hs_eta_loc, self.hs_eta_rho)
            out["beta"] = eta * regularised_horseshoe_scale(c.squeeze(-1), tau, delta, lam)
        if self.learnable_bg:
            zeros = self.bg_loc.new_zeros(f)
            eps = site(f"bg_{m}", dist.Normal(zeros, zeros + 1).to_event(1),
                       self.bg_loc, self.bg_rho)
            out["background"] = self.bg_init + eps
        elif self.has_background:
            out["background"] = self.bg_init
        if self.learn_dispersion:
            shape = self.disp_loc.shape
            d = site(f"disp_{m}", dist.HalfCauchy(self.disp_loc.new_ones(shape)).to_event(1),
                     self.disp_loc, self.disp_rho, dist.LogNormal)
            out["size"] = 1.0 / (d**2 + 1e-8)
        elif self.is_nb:
            out["size"] = self.fixed_size
        if self.is_gaussian:
            out["sigma"] = site(f"gaussian_sigma_{m}",
                                dist.HalfCauchy(self.sigma_loc.new_ones(f)).to_event(1),
                                self.sigma_loc, self.sigma_rho, dist.LogNormal)
        if self.n_levels:
            taus, deltas = [], []
            for c, s in enumerate(self.n_levels):
                t = site(f"batch_tau_{m}_{c}", LogitBeta(0.5, 0.5, (k,)).to_event(1),
                         self.cat_tau_loc[c], self.cat_tau_rho[c])
                zeros = self.cat_delta_loc[c].new_zeros(s, f)
                prior = dist.StudentT(10.0, zeros, zeros + 0.01).to_event(2)
                deltas.append(site(f"batch_delta_{m}_{c}", prior,
                                   self.cat_delta_loc[c], self.cat_delta_rho[c]))
                taus.append(torch.sigmoid(t))
            out["cat_tau"], out["cat_delta"] = taus, deltas
        if self.n_cont:
            taus, gammas = [], []
            for j in range(self.n_cont):
                t = site(f"cont_tau_{m}_{j}", LogitBeta(0.5, 0.5, (k,)).to_event(1),
                         self.cont_tau_loc[j], self.cont_tau_rho[j])
                zeros = self.cont_gamma_loc.new_zeros(f)
                prior = dist.StudentT(10.0, zeros, zeros + 0.01).to_event(1)
                gammas.append(site(f"cont_gamma_{m}_{j}", prior,
                                   self.cont_gamma_loc[j], self.cont_gamma_rho[j]))
                taus.append(torch.sigmoid(t))
            out["cont_tau"], out["cont_gamma"] = torch.stack(taus), torch.stack(gammas)
        return out

    # ------------------------------------------------------------------ plug-in values
    def posterior_point(self) -> dict[str, torch.Tensor]:
        """Point estimates of every global (spec §5.4), in the layout of :meth:`sample`."""
        out: dict[str, torch.Tensor] = {"beta": self.beta_mean()}
        if self.has_background:
            out["background"] = self.bg_init + (self.bg_loc if self.learnable_bg else 0.0)
        if self.is_nb:
            out["size"] = self.size_mean()
        if self.is_gaussian:
            out["sigma"] = _lognormal_mean(self.sigma_loc, self.sigma_rho)
        if self.n_levels:
            out["cat_tau"] = [torch.sigmoid(t) for t in self.cat_tau_loc]
            out["cat_delta"] = list(self.cat_delta_loc)
        if self.n_cont:
            out["cont_tau"] = torch.sigmoid(self.cont_tau_loc)
            out["cont_gamma"] = self.cont_gamma_loc
        return out

    def beta_mean(self) -> torch.Tensor:
        """Posterior mean of the topic-feature logits ``(K, F)`` (horseshoe: plug-in scales)."""
        if self.prior_type == "logistic_normal":
            return self.beta_loc
        return self.hs_eta_loc * self.shrinkage_mean()

    def shrinkage_mean(self) -> torch.Tensor:
        """Horseshoe scale ``λ̃`` at the posterior means of ``c, τ, δ, λ``, ``(K, F)``."""
        return regularised_horseshoe_scale(
            _lognormal_mean(self.hs_c_loc, self.hs_c_rho).squeeze(-1),
            _lognormal_mean(self.hs_tau_loc, self.hs_tau_rho),
            _lognormal_mean(self.hs_delta_loc, self.hs_delta_rho),
            _lognormal_mean(self.hs_lambda_loc, self.hs_lambda_rho),
        )

    def logit_posterior(self, include_background: bool):
        """Pieces of the topic-logit posterior for :func:`expected_topic_profiles`.

        Returns ``(loc, scale, multiplier, background)``. Under the horseshoe the shrinkage
        scales are held at their posterior means (``multiplier``) and only ``η`` is drawn
        (documented choice, spec §5.5). ``background`` is ``None``, a fixed vector, or a
        ``(mean, scale)`` pair of the learned background.
        """
        if self.prior_type == "logistic_normal":
            loc, scale, multiplier = self.beta_loc, softplus(self.beta_rho), None
        else:
            loc, scale = self.hs_eta_loc, softplus(self.hs_eta_rho)
            multiplier = self.shrinkage_mean()
        background = None
        if include_background and self.has_background:
            if self.learnable_bg:
                background = (self.bg_init + self.bg_loc, softplus(self.bg_rho))
            else:
                background = self.bg_init
        return loc, scale, multiplier, background

    def mean_logits(self, include_background: bool) -> torch.Tensor:
        """Posterior-mean topic logits ``(K, F)`` for the plug-in (``n_samples=None``) mode."""
        logits = self.beta_mean()
        if include_background and self.has_background:
            logits = logits + self.bg_init + (self.bg_loc if self.learnable_bg else 0.0)
        return logits

    def size_mean(self) -> torch.Tensor:
        """NB size ``ρ``: fixed, or the posterior mean of ``1/d²`` under the LogNormal."""
        if not self.learn_dispersion:
            return self.fixed_size.reshape(1)
        return torch.exp(-2 * self.disp_loc + 2 * softplus(self.disp_rho) ** 2)
