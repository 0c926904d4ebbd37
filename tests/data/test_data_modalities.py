"""Modality kinds, name resolution and likelihood inference (spec §4.8)."""

import numpy as np
import pytest
import scipy.sparse as sp

from napari_topomics.data import (
    VALID_LIKELIHOODS,
    block_stats,
    canonical_kind,
    infer_likelihood,
    is_nb,
    normalize_likelihood,
    resolve_modality,
)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("rna", "rna"),
        ("RNA", "rna"),
        ("Genes", "rna"),
        ("transcripts", "rna"),
        ("ADT", "protein"),
        ("prot", "protein"),
        ("Proteins", "protein"),
        ("proteomics", "protein"),
        ("protein", "protein"),
        ("atac", "chromatin"),
        ("Chromatin", "chromatin"),
        ("harmony", "other"),
        ("spliced", "other"),
        ("rna2", "other"),
    ],
)
def test_canonical_kind(name, kind):
    assert canonical_kind(name) == kind


def test_canonical_kind_rejects_non_str():
    with pytest.raises(TypeError):
        canonical_kind(3)


def test_resolve_verbatim_then_kind():
    names = ["RNA", "ADT", "atac"]
    assert resolve_modality("RNA", names) == 0
    assert resolve_modality("rna", names) == 0
    assert resolve_modality("genes", names) == 0
    assert resolve_modality("protein", names) == 1
    assert resolve_modality("chromatin", names) == 2
    assert resolve_modality(2, names) == 2
    assert resolve_modality(np.int64(1), names) == 1


def test_resolve_verbatim_wins_over_kind():
    # "rna" is verbatim the second modality even though "genes" has the same kind
    assert resolve_modality("rna", ["genes", "rna"]) == 1


def test_resolve_ambiguous_kind_lists_matches():
    with pytest.raises(ValueError, match="ambiguous") as err:
        resolve_modality("RNA", ["rna_a", "genes", "transcripts"])
    assert "genes" in str(err.value) and "transcripts" in str(err.value)


def test_resolve_unknown_name_lists_valid():
    with pytest.raises(ValueError, match="'foo'") as err:
        resolve_modality("foo", ["rna", "adt"])
    assert "['rna', 'adt']" in str(err.value)


def test_resolve_kind_absent_is_unknown():
    with pytest.raises(ValueError, match="Valid modality names"):
        resolve_modality("atac", ["rna", "adt"])


@pytest.mark.parametrize("bad", [2, -1, 10])
def test_resolve_int_out_of_range(bad):
    with pytest.raises(KeyError, match=str(bad)):
        resolve_modality(bad, ["rna", "adt"])


def test_normalize_likelihood():
    assert normalize_likelihood("Gamma_Poisson") == "gamma_poisson"
    assert normalize_likelihood("NB") == "nb"
    for lik in VALID_LIKELIHOODS:
        assert normalize_likelihood(lik.upper()) == lik
    with pytest.raises(ValueError, match="'poisson'") as err:
        normalize_likelihood("poisson", index=1)
    assert "multinomial" in str(err.value) and "modality 1" in str(err.value)
    with pytest.raises(TypeError):
        normalize_likelihood(None)


def test_is_nb():
    assert is_nb("gamma_poisson") and is_nb("nb") and is_nb("NB")
    assert not is_nb("multinomial") and not is_nb("bernoulli") and not is_nb("gaussian")


def _stats(values):
    return block_stats(sp.csr_matrix(np.asarray(values, dtype=np.float32)), slice(0, 3))


def test_infer_likelihood_rules():
    counts = _stats([[0, 3, 1], [2, 0, 0]])
    binary = _stats([[0, 1, 1], [1, 0, 0]])
    assert infer_likelihood("RNA", counts) == "gamma_poisson"
    assert infer_likelihood("genes", binary) == "gamma_poisson"
    assert infer_likelihood("atac", binary) == "bernoulli"
    assert infer_likelihood("ATAC", counts) == "multinomial"
    assert infer_likelihood("ADT", counts) == "multinomial"
    assert infer_likelihood("harmony", counts) == "multinomial"


@pytest.mark.parametrize(
    ("values", "word"),
    [([[0, -1, 2], [1, 0, 0]], "negative"), ([[0, 0.5, 2], [1, 0, 0]], "non-integer")],
)
@pytest.mark.parametrize("name", ["rna", "atac", "ADT", "harmony"])
def test_infer_likelihood_never_counts_for_continuous(values, word, name):
    with pytest.raises(ValueError, match=word) as err:
        infer_likelihood(name, _stats(values))
    msg = str(err.value)
    assert name in msg and "likelihoods" in msg and "gaussian" in msg
