"""The demo job: fit on the generated demo tissue, print topics and modality weights."""

from __future__ import annotations

import logging


def run_demo(n_epochs: int = 60, n_topics: int = 6, n_top: int = 8, seed: int = 0) -> None:
    """Fit ``MultimodalAmortizedLDA`` on :func:`~napari_topomics.datasets.demo_tissue`."""
    import scvi

    from ..datasets import demo_tissue
    from ..models import MultimodalAmortizedLDA

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    scvi.settings.seed = seed
    mdata = demo_tissue(seed=seed)
    print(f"Demo tissue: {mdata.n_obs} cells; modalities "
          + ", ".join(f"{k} ({v.n_vars} features)" for k, v in mdata.mod.items()))
    model = MultimodalAmortizedLDA.from_data(mdata, n_topics=n_topics)
    print(model._model_summary_string)
    model.train(max_epochs=n_epochs, enable_progress_bar=False, enable_model_summary=False)
    print(f"Trained {n_epochs} epochs; final ELBO per cell: "
          f"{float(model.history['elbo_train'].iloc[-1, 0]):.1f}\n")
    for name in model.modality_names:
        print(f"Top {n_top} {name} features per topic:")
        for topic, features in model.get_top_features_per_topic(name, n_top).items():
            print(f"  {topic}: {', '.join(features)}")
        print()
    weights = model.get_modality_weights()
    print("Mean modality weight per cell (how much each modality informs the topics):")
    for name, value in weights.mean().items():
        print(f"  {name}: {value:.3f}")
    theta = model.get_cell_topic_dist(return_dataframe=True)
    print("\nCells per dominant topic:")
    for topic, count in theta.idxmax(axis=1).value_counts().sort_index().items():
        print(f"  {topic}: {count}")
