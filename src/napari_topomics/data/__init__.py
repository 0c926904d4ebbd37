"""Input handling: containers to one registered AnnData, modality kinds, sparse statistics.

Nothing here imports scvi-tools or torch; ``spatialdata`` is imported only for SpatialData
inputs.
"""

from ._graph import (
    CONNECTIVITIES_KEY,
    DISTANCES_KEY,
    build_spatial_graph,
    symmetrize_graph,
    validate_graph,
)
from ._modalities import (
    COUNT_LIKELIHOODS,
    KIND_SYNONYMS,
    VALID_LIKELIHOODS,
    canonical_kind,
    infer_likelihood,
    is_nb,
    normalize_likelihood,
    resolve_modality,
)
from ._neighbour_sampler import NeighbourSampler, Subgraph
from ._setup import (
    PreparedInput,
    detect_input_type,
    prepare_adata_dict,
    prepare_anndata,
    prepare_data,
    prepare_mudata,
    prepare_spatialdata,
    strip_setup_state,
)
from ._setup_common import (
    ADATA_DICT_SETUP_KEY,
    GRAPH_KEY,
    GRAPHS_KEY,
    INDICES_KEY,
    MODALITY_SETUP_KEY,
    MULTIMODAL_SETUP_KEY,
    SPATIALDATA_SETUP_KEY,
)
from ._setup_multi import concatenate_modalities
from ._smoothing import library_median, normalized_adjacency, sgc_features
from ._stats import (
    BlockStats,
    block_slices,
    block_stats,
    check_finite,
    feature_background_init,
    library_sizes,
    median_library,
    modality_mask,
    standardise_continuous,
)

__all__ = [
    "ADATA_DICT_SETUP_KEY",
    "BlockStats",
    "CONNECTIVITIES_KEY",
    "COUNT_LIKELIHOODS",
    "DISTANCES_KEY",
    "GRAPHS_KEY",
    "GRAPH_KEY",
    "INDICES_KEY",
    "KIND_SYNONYMS",
    "MODALITY_SETUP_KEY",
    "MULTIMODAL_SETUP_KEY",
    "NeighbourSampler",
    "PreparedInput",
    "SPATIALDATA_SETUP_KEY",
    "Subgraph",
    "VALID_LIKELIHOODS",
    "block_slices",
    "block_stats",
    "build_spatial_graph",
    "canonical_kind",
    "check_finite",
    "concatenate_modalities",
    "detect_input_type",
    "feature_background_init",
    "infer_likelihood",
    "is_nb",
    "library_median",
    "library_sizes",
    "median_library",
    "modality_mask",
    "normalize_likelihood",
    "normalized_adjacency",
    "prepare_adata_dict",
    "prepare_anndata",
    "prepare_data",
    "prepare_mudata",
    "prepare_spatialdata",
    "resolve_modality",
    "sgc_features",
    "standardise_continuous",
    "strip_setup_state",
    "symmetrize_graph",
    "validate_graph",
]
