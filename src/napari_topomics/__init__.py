"""napari-topomics: multimodal spatial topic models for tissue.

Importing this package is cheap: the model and its heavy dependencies (torch, pyro,
scvi-tools) load only when ``napari_topomics.models`` is imported.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
