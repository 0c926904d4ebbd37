"""The reader and the sample: real layers, affines, metadata; stored runs reopen coloured."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import colormaps

from napari_topomics.io._results import TopicResults
from napari_topomics.plugin._reader import get_reader
from napari_topomics.plugin._sample import demo_tissue_sample

pytestmark = pytest.mark.gui
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
VISIUM = SHARED_DATA / "visium_mouse_brain_seurat"


def _add(viewer, layer_data):
    out = []
    for data, kwargs, layer_type in layer_data:
        added = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
        out.extend(added if isinstance(added, list) else [added])
    return out


def test_get_reader_declines_what_it_cannot_read(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("not tissue")
    zarr_group = tmp_path / "group.zarr"
    zarr_group.mkdir()
    (zarr_group / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    for path in (plain, plain / "notes.txt", tmp_path / "missing", zarr_group,
                 [str(plain), str(zarr_group)], 42, None):
        assert get_reader(path) is None, path
    if VISIUM.is_dir():  # a Space Ranger folder is taken, as one path or a list of one
        assert get_reader(str(VISIUM)).keywords == {"vendor": "visium"}
        assert get_reader([VISIUM]) is not None


def test_sample_gives_image_channels_and_labels_with_their_table(make_napari_viewer):
    viewer = make_napari_viewer()
    if _registered():  # through napari's File > Open Sample, as a user would
        layers = list(viewer.open_sample("napari-topomics", "demo_tissue"))
    else:
        layers = _add(viewer, demo_tissue_sample())
    assert [(ly.name, type(ly).__name__) for ly in layers] == [
        ("demo_image [DAPI]", "Image"), ("demo_image [membrane]", "Image"),
        (layers[2].name, "Image"), ("demo_cells", "Labels"),
    ]
    labels = viewer.layers["demo_cells"]
    meta = labels.metadata
    assert meta["topomics_tables"] == ["table"]
    assert meta["adata"] is meta["sdata"].tables["table"]
    assert (meta["region_key"], meta["instance_key"]) == ("region", "cell_id")
    assert meta["topomics_coordinate_system"] == "global"
    np.testing.assert_array_equal(labels.affine.affine_matrix, np.eye(3))
    ids = np.unique(np.asarray(labels.data))
    assert set(ids[ids > 0]) == set(meta["adata"].obs["cell_id"])


@pytest.fixture(scope="module")
def visium_store(tmp_path_factory):
    if not VISIUM.is_dir():
        pytest.skip(f"shared data folder absent: {VISIUM}")
    from napari_topomics.io._read import read_tissue

    path = tmp_path_factory.mktemp("visium") / "v.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_tissue(VISIUM).write(path)
    return path


def test_real_visium_store_opens_with_affines_and_metadata(make_napari_viewer, visium_store):
    reader = get_reader(str(visium_store))
    assert reader is not None
    viewer = make_napari_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _registered():  # through napari's File > Open, as a user would
            layers = viewer.open(str(visium_store), plugin="napari-topomics")
        else:
            layers = _add(viewer, reader(str(visium_store)))
    element = "visium_mouse_brain_seurat"
    kinds = {ly.name: type(ly).__name__ for ly in layers}
    assert kinds == {f"{element}_hires_image": "Image", f"{element}_lowres_image": "Image",
                     element: "Points"}
    # the images are drawn in full-resolution pixels: affine = 1 / Space Ranger's scale factor
    factors = json.loads((VISIUM / "spatial" / "scalefactors_json.json").read_text())
    for res in ("hires", "lowres"):
        layer = viewer.layers[f"{element}_{res}_image"]
        scale = 1.0 / factors[f"tissue_{res}_scalef"]
        np.testing.assert_allclose(layer.affine.affine_matrix, np.diag([scale, scale, 1.0]),
                                   rtol=1e-6)
        assert layer.rgb and not isinstance(layer.data, np.ndarray)  # lazy dask data
        assert layer.metadata["topomics_source"] == str(visium_store)
        assert layer.metadata["topomics_coordinate_system"] == element
    spots = viewer.layers[element]
    positions = pd.read_csv(VISIUM / "spatial" / "tissue_positions_list.csv", header=None)
    barcodes = spots.metadata["adata"].obs_names
    expected = positions.set_index(0).loc[list(barcodes), [4, 5]].to_numpy(float)  # row, col
    np.testing.assert_allclose(np.sort(spots.data, axis=0), np.sort(expected, axis=0))
    np.testing.assert_allclose(spots.size, 2 * 44.736242, rtol=1e-5)  # spot diameter
    assert spots.metadata["topomics_element"] == element
    assert spots.metadata["topomics_tables"] == ["table"]
    assert spots.axis_labels == ("y", "x")


def test_every_element_kind_opens_lazily_in_its_coordinate_system(make_napari_viewer, tmp_path):
    from spatialdata.datasets import blobs

    path = tmp_path / "blobs.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata = blobs()
        sdata.write(path)
        layer_data = get_reader(str(path))(str(path))
    viewer = make_napari_viewer()
    _add(viewer, layer_data)
    image = viewer.layers["blobs_multiscale_image [0]"]
    assert image.multiscale and len(image.data) == 3
    assert all(not isinstance(level, np.ndarray) for level in image.data)  # dask, not loaded
    assert image.data[0].shape == (512, 512) and image.data[2].shape == (128, 128)
    labels = viewer.layers["blobs_multiscale_labels"]
    assert type(labels).__name__ == "Labels" and labels.multiscale
    polygons = viewer.layers["blobs_polygons"]
    assert type(polygons).__name__ == "Shapes" and polygons.nshapes == 5
    first = np.asarray(sdata.shapes["blobs_polygons"].geometry.iloc[0].exterior.coords)[:-1]
    np.testing.assert_allclose(polygons.data[0], first[:, ::-1])  # (x, y) -> (y, x)
    multi = viewer.layers["blobs_multipolygons"]
    assert multi.nshapes > 2 and set(multi.features["index"]) == {0, 1}
    circles = viewer.layers["blobs_circles"]
    np.testing.assert_allclose(circles.size, 2 * sdata.shapes["blobs_circles"]["radius"])
    points = viewer.layers["blobs_points"]
    assert {"index", "genes", "instance_id"} <= set(points.features.columns)
    assert labels.metadata["topomics_tables"] == []
    assert viewer.layers["blobs_labels"].metadata["topomics_tables"] == ["table"]

    # a run on polygons paints the shapes in place, one colour per polygon
    from napari_topomics.plugin._result_layers import add_result_layers

    ids = np.array([0, 1, 2, 3, 4])
    props = pd.DataFrame(np.eye(5, 3)[[0, 1, 2, 0, 1]] * 0.8 + 0.2 / 3,
                         index=[f"p{i}" for i in ids], columns=["topic_0", "topic_1", "topic_2"])
    props = props.div(props.sum(axis=1), axis=0)
    run = TopicResults(
        run_name="poly", proportions=props.iloc[1:],
        modality_weights=pd.DataFrame({"rna": np.ones(4)}, index=props.index[1:]),
        top_features={"rna": pd.DataFrame({"topic": ["topic_0", "topic_1", "topic_2"],
                                           "rank": [1, 1, 1], "feature": ["a", "b", "c"],
                                           "score": [1.0, 1.0, 1.0]})},
        elbo_history=pd.DataFrame({"elbo_train": [1.0]}, index=pd.Index([0], name="epoch")),
        region="blobs_polygons", instance_ids=ids[1:],
    )
    add_result_layers(viewer, run, polygons)
    expected = colormaps["tab10"]([1, 2, 0, 1])
    np.testing.assert_allclose(polygons.face_color[1:], expected, atol=1e-6)
    assert polygons.face_color[0][3] == 0  # polygon 0 is not in the run
    assert list(polygons.features["dominant_topic"].iloc[1:]) == ["topic_1", "topic_2",
                                                                    "topic_0", "topic_1"]


def _fake_visium_run(sdata, element):
    """A synthetic one-modality run on the Visium spots (random topic mixes)."""
    table = sdata.tables["table"]
    n = table.n_obs
    rng = np.random.default_rng(0)
    topics = [f"topic_{k}" for k in range(3)]
    index = pd.Index(table.obs_names.astype(str))
    props = pd.DataFrame(rng.dirichlet(np.ones(3), n), index=index, columns=topics)
    top = pd.DataFrame({"topic": np.repeat(topics, 2), "rank": [1, 2] * 3,
                        "feature": list(table.var_names[:6]), "score": np.linspace(1, 0.5, 6)})
    return TopicResults(
        run_name="fake", proportions=props,
        modality_weights=pd.DataFrame({"rna": np.ones(n)}, index=index),
        top_features={"rna": top},
        elbo_history=pd.DataFrame({"elbo_train": [3.0, 2.0]},
                                  index=pd.Index([0, 1], name="epoch")),
        region=element, region_key="region", instance_key="spot_id",
        instance_ids=table.obs["spot_id"].to_numpy(),
    )


def test_stored_runs_reopen_as_coloured_layers(make_napari_viewer, visium_store,
                                               tiny_demo, tiny_results, tmp_path):
    import spatialdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        demo_path = tmp_path / "demo.zarr"
        tiny_demo.write(demo_path)
        stored = spatialdata.read_zarr(demo_path)
        stored.tables["topomics_tiny"] = tiny_results.to_table()
        stored.write_element("topomics_tiny")
        layer_data = get_reader(str(demo_path))(str(demo_path))
    viewer = make_napari_viewer()
    _add(viewer, layer_data)
    run_layer = viewer.layers["tiny: demo_cells"]
    assert not viewer.layers["demo_cells"].visible  # the plain labels hide under the run
    assert run_layer.metadata["topomics_results"] == tiny_results
    assert run_layer.metadata["topomics_tables"] == ["table", "topomics_tiny"]
    ids = tiny_results.instance_ids[:25]
    codes = tiny_results.proportions.to_numpy().argmax(axis=1)[:25]
    got = np.array([run_layer.get_color(int(i)) for i in ids])
    np.testing.assert_allclose(got, colormaps["tab10"](codes), atol=1e-6)
    np.testing.assert_array_equal(run_layer.features["index"], tiny_results.instance_ids)

    # a run on Visium circles reopens as coloured spots; absent spots are transparent
    element = "visium_mouse_brain_seurat"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        visium = spatialdata.read_zarr(visium_store)
        fake = _fake_visium_run(visium, element)
        keep = np.arange(len(fake.proportions)) >= 10
        fake = TopicResults(**{**vars(fake), "proportions": fake.proportions[keep],
                               "modality_weights": fake.modality_weights[keep],
                               "instance_ids": fake.instance_ids[keep]})
        copy_path = tmp_path / "visium_run.zarr"
        visium.subset([element, "table"]).write(copy_path)  # spots and table, no images
        again = spatialdata.read_zarr(copy_path)
        again.tables["topomics_fake"] = fake.to_table()
        again.write_element("topomics_fake")
        layer_data = get_reader(str(copy_path))(str(copy_path))
    _add(viewer, layer_data)
    spots = viewer.layers[f"fake: {element}"]
    order = pd.Index(fake.instance_ids).get_indexer(spots.features["index"])
    inside = order >= 0
    assert inside.sum() == len(fake.proportions) and (~inside).sum() == 10
    expected = colormaps["tab10"](fake.proportions.to_numpy().argmax(axis=1)[order[inside]])
    np.testing.assert_allclose(spots.face_color[inside], expected, atol=1e-6)
    assert (spots.face_color[~inside][:, 3] == 0).all()
    assert spots.features.loc[inside, "dominant_topic"].notna().all()


def test_manifest_declares_reader_sample_widgets_and_preferences():
    from npe2 import PluginManifest

    if _registered():
        manifest = PluginManifest.from_distribution("napari-topomics")
    else:
        manifest = PluginManifest.from_file(_manifest_path())
    contributions = manifest.contributions
    assert [s.key for s in contributions.sample_data] == ["demo_tissue"]
    assert contributions.sample_data[0].display_name == "Demo tissue (topomics)"
    titles = {w.display_name for w in contributions.widgets}
    assert {"Topic model", "Topic colours", "Topic inspector", "Cell readout"} <= titles
    classify = [item.command for item in contributions.menus["napari/layers/classify"]]
    assert classify == ["napari-topomics.topic_model_widget"]
    props = contributions.configurations["fitting"].properties
    assert props["default_device"].enum == ["auto", "cpu", "cuda", "mps"]
    assert props["torch_threads"].default == 1
    commands = {c.id: c.python_name for c in contributions.commands}
    import importlib

    for cid, target in commands.items():
        module, _, attr = target.partition(":")
        assert hasattr(importlib.import_module(module), attr), cid


def _manifest_path():
    from importlib.resources import files

    return files("napari_topomics") / "napari.yaml"


def _registered() -> bool:
    from importlib.metadata import entry_points

    return any(ep.value.startswith("napari_topomics")
               for ep in entry_points(group="napari.manifest"))
