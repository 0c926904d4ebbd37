"""Topic-level queries: topic-feature distributions, top features, diversity, dispersion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..data import resolve_modality
from ..module._estimators import expected_topic_profiles
from ._inference import seeded_generator

MAX_CROSS_ENTRIES = 5 * 10**8


TOP_RANKINGS = ("weight", "distinctive")


class TopicQueriesMixin:
    """Results about topics rather than cells."""

    # ------------------------------------------------------------------ helpers
    def _modality_index(self, modality) -> int:
        return resolve_modality(modality, list(self.modality_names))

    def _feature_names(self, m: int) -> pd.Index:
        """The user's feature names of modality ``m`` (collision prefixes removed)."""
        block = self.module.config.block(m)
        names = pd.Index(self.adata.var_names[block])
        prefix = f"{self.modality_names[m]}:"
        if "feature_name" in self.adata.var:
            return pd.Index(self.adata.var["feature_name"].iloc[block].astype(str))
        return pd.Index([n[len(prefix):] if n.startswith(prefix) else n for n in names])

    def _topic_profile(self, m: int, n_samples, include_background: bool) -> np.ndarray:
        """``(F_m, K)`` expected topic profiles of modality ``m`` (cached)."""

        def compute():
            g = self.module.globals[m]
            with self._inference():
                if not self.module.config.is_count(m):
                    return g.beta_mean().T.cpu().numpy().astype(np.float32)
                if n_samples is None:
                    profile = torch.softmax(g.mean_logits(include_background), dim=-1)
                else:
                    profile = expected_topic_profiles(
                        *g.logit_posterior(include_background), int(n_samples),
                        seeded_generator(),
                    )
                return profile.T.cpu().numpy().astype(np.float32)

        return self._cached(
            "topic_profile", compute, m=m, n_samples=n_samples,
            include_background=include_background,
        )

    def _profile_frame(self, m: int, n_samples, include_background: bool) -> pd.DataFrame:
        return pd.DataFrame(
            self._topic_profile(m, n_samples, include_background),
            index=self._feature_names(m),
            columns=self._topic_columns(),
        )

    # ------------------------------------------------------------------ public API
    def get_feature_topic_dist(
        self, modality=None, n_samples: int | None = 5000, as_dict: bool = False, *,
        include_background: bool = False,
    ) -> pd.DataFrame | dict[int, pd.DataFrame]:
        """Topic-feature distributions ``E_q[softmax(β_mk)]`` (spec §5.5).

        One ``(F_m, K)`` DataFrame per modality, indexed by that modality's feature names.
        ``modality=None, as_dict=False`` stacks all modalities (index: the registered,
        collision-free names); ``as_dict=True`` keys by modality index. Gaussian modalities
        return ``E_q[β]`` without a softmax.
        """
        if n_samples is not None and (
            isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer)
            or n_samples < 1
        ):
            raise ValueError(f"n_samples must be a positive integer or None; got {n_samples!r}.")
        selected = range(self.n_modalities) if modality is None else [
            self._modality_index(modality)
        ]
        frames = {m: self._profile_frame(m, n_samples, include_background) for m in selected}
        if as_dict:
            return frames
        if modality is not None:
            return frames[selected[0]]
        stacked = pd.concat([frames[m] for m in selected])
        stacked.index = pd.Index(self.adata.var_names)
        return stacked

    def get_top_features_per_topic(
        self, modality, n_features: int = 10, return_scores: bool = False, *,
        ranking: str = "weight",
    ) -> dict[str, list]:
        """The ``n_features`` top features of each topic, in descending order of score.

        ``ranking="weight"`` (spec §5.5) scores a feature by its weight in the topic's
        profile. ``ranking="distinctive"`` (count modalities) scores it by its contribution
        ``φ_kf log(φ_kf / p̄_f)`` to the topic's divergence from the average profile, with
        ``φ`` the profile the likelihood uses (background included) and ``p̄`` its mean
        over topics weighted by topic usage: features both frequent in the topic and
        specific to it rank first, while rare features (whose weights drift with little
        data) and features shared by every topic rank last.
        """
        if ranking not in TOP_RANKINGS:
            raise ValueError(
                f"ranking={ranking!r} is not valid. Allowed values: {list(TOP_RANKINGS)}."
            )
        frame = self._ranking_scores(modality, ranking)
        names = np.asarray(frame.index)
        out = {}
        for column in frame.columns:
            values = frame[column].to_numpy()
            order = np.argsort(-values, kind="stable")[:n_features]
            out[column] = (
                [(str(names[i]), float(values[i])) for i in order] if return_scores
                else [str(names[i]) for i in order]
            )
        return out

    def _ranking_scores(self, modality, ranking: str) -> pd.DataFrame:
        m = self._modality_index(modality)
        if ranking == "weight" or not self.module.config.is_count(m):
            return self.get_feature_topic_dist(modality)
        full = self.get_feature_topic_dist(modality, include_background=True)
        phi = full.to_numpy(dtype=np.float64)
        usage = self.get_cell_topic_dist().astype(np.float64).mean(0)
        usage = usage / usage.sum() if usage.sum() > 0 else np.full(len(usage), 1 / len(usage))
        average = phi @ usage
        with np.errstate(divide="ignore", invalid="ignore"):
            score = phi * np.log(np.maximum(phi, 1e-30) / np.maximum(average, 1e-30)[:, None])
        return pd.DataFrame(score, index=full.index, columns=full.columns)

    def get_topic_diversity(self, modality=None) -> float:
        """``1 − mean pairwise cosine similarity`` of the topics' feature profiles."""
        if modality is None:
            return float(np.mean([self.get_topic_diversity(m) for m in range(self.n_modalities)]))
        phi = self.get_feature_topic_dist(modality).to_numpy(dtype=np.float64).T
        norms = np.maximum(np.linalg.norm(phi, axis=1, keepdims=True), 1e-12)
        unit = phi / norms
        cos = unit @ unit.T
        upper = np.triu_indices(phi.shape[0], k=1)
        return float(1.0 - cos[upper].mean())

    def cross_modality_score(
        self, mod_a, mod_b, *, normalise: bool = True, return_df: bool = True,
        features_a=None, features_b=None,
    ) -> np.ndarray | pd.DataFrame:
        """Feature interactions between two modalities through shared topics (spec §5.5)."""
        if self.n_modalities < 2:
            raise ValueError("cross_modality_score needs a model with at least two modalities.")
        frames = []
        for mod, subset in ((mod_a, features_a), (mod_b, features_b)):
            m = self._modality_index(mod)
            if not self.module.config.is_count(m):
                raise ValueError(
                    f"cross_modality_score is defined for count modalities only; "
                    f"{self.modality_names[m]!r} is Gaussian."
                )
            frame = self.get_feature_topic_dist(m)
            if subset is not None:
                missing = [f for f in subset if f not in frame.index]
                if missing:
                    raise KeyError(f"Features not in modality {mod!r}: {missing[:10]}")
                frame = frame.loc[list(subset)]
            frames.append(frame)
        fa, fb = frames
        if fa.shape[0] * fb.shape[0] > MAX_CROSS_ENTRIES:
            raise ValueError(
                f"cross_modality_score would build a {fa.shape[0]} x {fb.shape[0]} matrix "
                f"(> {MAX_CROSS_ENTRIES:.0e} entries); pass features_a / features_b subsets."
            )
        strength = self.get_cell_topic_dist().mean(0).astype(np.float32)

        def across_topics(frame):
            values = frame.to_numpy(dtype=np.float32).T
            return values / np.maximum(values.sum(0, keepdims=True), 1e-12)

        score = across_topics(fa).T @ (strength[:, None] * across_topics(fb))
        if normalise and score.max() > 0:
            score = score / score.max()
        return pd.DataFrame(score, index=fa.index, columns=fb.index) if return_df else score

    def get_learned_dispersion(self, modality=None, n_samples: int = 1000):
        """NB size ``ρ`` (``Var = μ + μ²/ρ``) per NB modality (spec §5.8)."""
        if modality is None:
            return {
                name: self.get_learned_dispersion(m)
                for m, name in enumerate(self.modality_names)
                if self.module.config.is_nb(m)
            }
        m = self._modality_index(modality)
        if not self.module.config.is_nb(m):
            raise ValueError(
                f"Modality {self.modality_names[m]!r} uses {self.likelihoods[m]!r}; dispersion "
                "exists only for negative-binomial modalities."
            )
        with torch.no_grad():
            return self.module.globals[m].size_mean().cpu().numpy().astype(np.float64)

    def get_likelihood_weights(self, return_format: str = "dataframe"):
        """The per-modality likelihood weights ``w_m`` (spec §3.7)."""
        weights = self.module.likelihood_weights.cpu().numpy().astype(float)
        if return_format == "dict":
            return dict(zip(self.modality_names, map(float, weights), strict=True))
        if return_format != "dataframe":
            raise ValueError(
                f"return_format={return_format!r} is not valid. Allowed: ['dataframe', 'dict']."
            )
        return pd.DataFrame([weights], columns=list(self.modality_names))

    def get_entropy_weight(self) -> float:
        """λ_H, the weight of the per-cell entropy bonus."""
        return float(self.entropy_weight)

    def get_topic_variance_weight(self) -> float:
        """λ_V, the weight of the across-cell topic-variance bonus."""
        return float(self.topic_variance_weight)

    def get_last_entropy(self) -> float | None:
        """Mean minibatch entropy at the last guide pass (``None`` before one or if λ_H = 0)."""
        value = self.module._last_entropy
        return None if value is None or self.entropy_weight == 0 else float(value)

    def get_last_topic_variance(self) -> float | None:
        """Mean topic variance at the last guide pass (``None`` before one or if λ_V = 0)."""
        value = self.module._last_variance
        return None if value is None or self.topic_variance_weight == 0 else float(value)
