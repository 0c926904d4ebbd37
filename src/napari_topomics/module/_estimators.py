"""Chunked Monte-Carlo estimators of posterior expectations (spec §5.2, §5.5).

Draws use common random numbers: draw ``s`` applies the same standard-normal vector to
every cell (or every topic), so each row is still an unbiased estimate from ``n_samples``
independent draws, while a cell's estimate does not depend on which other cells share its
minibatch, and the noise costs ``S × K`` (or ``S × F``) variates instead of ``S × N × K``.
"""

from __future__ import annotations

import torch

DRAW_CHUNK = 256
CELL_CHUNK = 256
LOGIT_CLAMP = 80.0


def draw_noise(n: int, dim: int, generator: torch.Generator, device) -> torch.Tensor:
    """``(n, dim)`` standard normals from ``generator`` (created on the CPU, then moved)."""
    return torch.randn((n, dim), generator=generator).to(device)


def expected_softmax(
    mean: torch.Tensor, var: torch.Tensor, noise: torch.Tensor | None
) -> torch.Tensor:
    """``E[softmax(z)]`` for ``z ~ N(mean, diag var)``, per row; ``noise`` is ``(S, K)``.

    ``noise=None`` gives the plug-in ``softmax(mean)``. Work is chunked over cells and draws
    (at most 256 draws × 256 cells × K values at once), laid out topic-major so that the
    reductions over topics are element-wise.
    """
    if noise is None:
        return torch.softmax(mean, dim=-1)
    n_cells, n_topics = mean.shape
    shifted = (mean - mean.amax(-1, keepdim=True)).T.contiguous()  # (K, N)
    sd = var.sqrt().T.contiguous()
    noise_t = noise.T.contiguous()  # (K, S)
    out = torch.empty((n_topics, n_cells), dtype=mean.dtype, device=mean.device)
    for start in range(0, n_cells, CELL_CHUNK):
        cells = slice(start, start + CELL_CHUNK)
        mu_c, sd_c = shifted[:, None, cells], sd[:, None, cells]
        acc = torch.zeros((n_topics, mu_c.shape[-1]), dtype=mean.dtype, device=mean.device)
        for d in range(0, noise_t.shape[1], DRAW_CHUNK):
            z = torch.addcmul(mu_c, sd_c, noise_t[:, d : d + DRAW_CHUNK, None])
            z.clamp_(-LOGIT_CLAMP, LOGIT_CLAMP).exp_()
            acc += (z * z.sum(0).reciprocal_()).sum(1)
        out[:, cells] = acc
    return (out / noise.shape[0]).T


def expected_topic_profiles(
    loc: torch.Tensor, scale: torch.Tensor, multiplier: torch.Tensor | None,
    background, n_samples: int, generator: torch.Generator,
) -> torch.Tensor:
    """``E_q[softmax_f(logits_k)]`` per topic, ``(K, F)``, from chunked draws.

    The logits of a draw are ``(loc + scale · ε) · multiplier + background`` with
    ``ε ~ N(0, I_F)`` shared by the topics. ``background`` is ``None``, a fixed ``(F,)``
    vector, or a ``(mean, scale)`` pair drawn with its own noise. The softmax numerators are
    reduced over draws with a batched matrix product, so the ``(K, S, F)`` chunk is touched
    only by the exponential and the row sums.
    """
    if multiplier is not None:
        loc, scale = loc * multiplier, scale * multiplier
    n_topics, n_features = loc.shape
    device = loc.device
    fixed_bg = background if isinstance(background, torch.Tensor) else None
    if fixed_bg is not None:
        loc = loc + fixed_bg
    shift = loc.amax(-1, keepdim=True)
    loc_c, scale_c = (loc - shift)[:, None, :], scale[:, None, :]
    acc = torch.zeros((n_topics, 1, n_features), device=device)
    for start in range(0, n_samples, DRAW_CHUNK // 4):
        s = min(DRAW_CHUNK // 4, n_samples - start)
        z = torch.addcmul(loc_c, scale_c, draw_noise(s, n_features, generator, device)[None])
        if isinstance(background, tuple):
            bg_mean, bg_scale = background
            bg = torch.addcmul(bg_mean, bg_scale, draw_noise(s, n_features, generator, device))
            z = z + bg[None]
        z.clamp_(-LOGIT_CLAMP, LOGIT_CLAMP).exp_()
        acc += torch.bmm(z.sum(-1).reciprocal_()[:, None, :], z)
    return acc[:, 0, :] / n_samples
