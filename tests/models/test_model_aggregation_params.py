"""Attention aggregation builds exactly its scoring network (spec §3.10, weakness #26).

The published design's ``test_attention_vs_moe_different_params`` expected attention to have
*more* parameters than the mixture of experts. That held there only because the unused
``weight_mode`` parameters were allocated under attention as well (weakness #26). Here the
default MoE weighting is an amortised per-cell gate (one ``n_hidden → 1`` linear map per
modality), which is larger than attention's ``W`` (K × att_dim) and ``u`` (att_dim), so the
right check is the exact parameter count of each weighting, not an ordering.
"""

from __future__ import annotations

import pytest

N_MODALITIES = 3


def _n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _weighting_names(model) -> set[str]:
    return {n for n, _ in model.module.named_parameters() if n.startswith("weighting.")}


@pytest.mark.parametrize("att_dim", [4, 32])
def test_attention_adds_exactly_its_scoring_network(build_model, att_dim):
    kw = {"n_topics": 5, "n_hidden": 16}
    equal = build_model(partial=False, train=False, weight_mode="equal", **kw)
    attention = build_model(
        partial=False, train=False, aggregation_type="attention", att_dim=att_dim, **kw
    )
    assert _weighting_names(equal) == set()
    assert _weighting_names(attention) == {"weighting.W", "weighting.u"}
    assert attention.module.weighting.W.shape == (5, att_dim)
    assert _n_params(attention.module) == _n_params(equal.module) + 5 * att_dim + att_dim


def test_moe_weightings_add_only_their_own_parameters(build_model):
    kw = {"n_topics": 5, "n_hidden": 16}
    equal = _n_params(build_model(partial=False, train=False, weight_mode="equal", **kw).module)
    universal = build_model(partial=False, train=False, weight_mode="universal", **kw)
    cell = build_model(partial=False, train=False, weight_mode="cell", **kw)
    assert _n_params(universal.module) == equal + N_MODALITIES
    # the amortised gate: a (n_hidden → 1) linear map per modality, no per-cell matrix
    assert _n_params(cell.module) == equal + N_MODALITIES * (16 + 1)
    # attention ignores weight_mode: none of its parameters is built
    att_cell = build_model(partial=False, train=False, aggregation_type="attention",
                           weight_mode="cell", att_dim=8, **kw)
    assert _weighting_names(att_cell) == {"weighting.W", "weighting.u"}
