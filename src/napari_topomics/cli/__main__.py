"""``python -m napari_topomics.cli``: the same as the ``napari-topomics`` command."""

import sys

from ._main import main

sys.exit(main())
