"""A written run is usable by squidpy and plain spatialdata with our package not imported.

squidpy is not in the test extra: installing it into a fresh environment makes pip's resolver
fall back to spatialdata 0.7.0, whose xarray-schema needs the removed ``pkg_resources``. The
test runs wherever squidpy is installed beside spatialdata ≥ 0.7.3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

READER = textwrap.dedent(
    """
    import json, sys
    import spatialdata, squidpy as sq
    sdata = spatialdata.read_zarr(sys.argv[1])
    table = sdata.tables["topomics_compat"]
    values = spatialdata.get_values(value_key="topic_1", sdata=sdata,
                                    element_name="demo_cells", table_name="topomics_compat")
    sq.gr.spatial_neighbors(table, spatial_key="spatial", coord_type="generic", n_neighs=6)
    sq.gr.spatial_autocorr(table, mode="moran", genes=list(table.var_names), n_perms=None)
    assert "napari_topomics" not in sys.modules
    print(json.dumps({
        "moran": table.uns["moranI"]["I"].reindex(table.var_names).tolist(),
        "graph": table.obsp["spatial_connectivities"].nnz,
        "topic_1": values["topic_1"].tolist()[:20],
        "dominant": table.obs["dominant_topic"].astype(str).tolist()[:20],
    }))
    """
)


def test_squidpy_and_spatialdata_read_the_run_without_our_package(tmp_path):
    pytest.importorskip("squidpy")
    from napari_topomics.datasets import demo
    from napari_topomics.io import write_run
    from napari_topomics.metrics import morans_i
    from napari_topomics.workflow import FitConfig, fit_tissue

    store = tmp_path / "demo.zarr"
    demo(seed=2, n_cells=250).write(store)
    outcome = fit_tissue(store, FitConfig(n_topics=3, n_epochs=2, run_name="compat", threads=1))
    write_run(store, outcome.results)
    done = subprocess.run([sys.executable, "-c", READER, str(store)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    results = outcome.results
    np.testing.assert_allclose(found["topic_1"], results.proportions["topic_1"][:20], atol=1e-6)
    assert found["dominant"] == results.dominant_topic.astype(str).tolist()[:20]
    # squidpy's Moran's I on its own graph equals ours on the same graph
    import scipy.sparse as sp
    from sklearn.neighbors import kneighbors_graph

    coords = results.coordinates[["x", "y"]].to_numpy()
    graph = kneighbors_graph(coords, 6, include_self=False)
    graph = sp.csr_matrix(graph)
    assert found["graph"] == graph.nnz
    ours = morans_i(results.proportions.to_numpy(), graph)
    np.testing.assert_allclose(found["moran"], ours, atol=1e-3)
