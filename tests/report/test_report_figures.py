"""Painting cells, fetching rasters and the report figures (matplotlib, no Qt)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_topomics.io._errors import TopomicsInputError
from napari_topomics.io._results import TopicResults
from napari_topomics.report import (
    labels_raster,
    paint_cells,
    plot_dominant_topic,
    plot_elbo,
    plot_modality_weights,
    plot_top_features,
    plot_topic_maps,
)
from napari_topomics.report._canvas import make_canvas
from napari_topomics.report._figures import _heatmap_matrix, elbo_curves, topic_palette

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IDS = np.array([3, 7, 9, 12, 15, 20])  # label ids, deliberately not 1..n


def _labels() -> np.ndarray:
    """A 40 x 60 raster: six 10 x 18 cells (ids IDS), background and an unknown id 25."""
    lab = np.zeros((40, 60), dtype=np.uint32)
    for i, cid in enumerate(IDS):
        r, c = divmod(i, 3)
        lab[2 + 20 * r : 12 + 20 * r, 2 + 20 * c : 20 + 20 * c] = cid
    lab[14:18, 40:58] = 25  # a segmented object the table does not know
    return lab


def make_results(with_ids: bool = True, with_coords: bool = True) -> TopicResults:
    """Six cells, three topics: cell 0 is pure topic_0, cell 1 has none of it."""
    obs = [f"cell_{i}" for i in IDS]
    theta = np.array(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0], [0.2, 0.2, 0.6], [0.6, 0.3, 0.1]], float
    )
    topics = ["topic_0", "topic_1", "topic_2"]
    props = pd.DataFrame(theta, index=obs, columns=topics)
    weights = pd.DataFrame(
        np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.7, 0.3], [0.4, 0.6], [0.1, 0.9]]),
        index=obs, columns=["rna", "protein"],
    )
    feats = {"rna": ["GeneA", "GeneB", "GeneC", "GeneD"], "protein": ["CD_1", "CD_2", "CD_3"]}
    top = {}
    for mod, names in feats.items():
        rows = []
        for k, t in enumerate(topics):
            order = np.roll(names, -k)[:3]
            rows += [(t, r, f, 0.5 / (r + 1) + 0.1 * k) for r, f in enumerate(order)]
        top[mod] = pd.DataFrame(rows, columns=["topic", "rank", "feature", "score"])
    hist = pd.DataFrame(
        {"elbo_train": [900.0, 700.0, 650.0, 640.0]}, index=pd.RangeIndex(4, name="epoch")
    )
    centres = [(11.0 + 20 * (i % 3), 7.0 + 20 * (i // 3)) for i in range(6)]
    prov = {
        "run_name": "tiny", "date": "2030-01-02T03:04:05+00:00", "seed": 1234,
        "source": "/data/tissue.zarr", "table": "table", "element": "cells",
        "modalities": ["rna", "protein"], "likelihoods": {"rna": "nb", "protein": "gamma_poisson"},
        "n_topics": 3, "n_epochs": 4, "model_params": {}, "device": "cpu",
        "versions": {"napari-topomics": "0.1.0", "torch": "9.9.9-test"},
    }
    return TopicResults(
        run_name="tiny", proportions=props, modality_weights=weights, top_features=top,
        elbo_history=hist, provenance=prov, region="cells" if with_ids else None,
        instance_ids=IDS.copy() if with_ids else None,
        coordinates=pd.DataFrame(centres, index=obs, columns=["x", "y"]) if with_coords else None,
    )


def _assert_png(path, min_side: int = 200) -> np.ndarray:
    from matplotlib.image import imread

    assert path.exists() and path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    assert min(img.shape[:2]) >= min_side and max(img.shape[:2]) < 6000
    return img


def _has_colour(img: np.ndarray, rgb, tol: float = 0.03) -> bool:
    return bool((np.abs(img[..., :3] - np.asarray(rgb)[:3]) < tol).all(axis=-1).any())


# ------------------------------------------------------------------------- painting
def test_paint_cells_maps_ids_to_values_and_hides_unknown():
    lab = _labels()
    vals = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    out = paint_cells(lab, IDS, vals)
    assert out.shape == lab.shape and out.dtype == np.float64
    for cid, v in zip(IDS, vals, strict=True):
        assert np.all(out[lab == cid] == v)
    assert np.isnan(out[lab == 0]).all()
    assert np.isnan(out[lab == 25]).all()  # absent from instance_ids: transparent

    two = paint_cells(lab, IDS, np.column_stack([vals, -vals]))
    assert two.shape == (*lab.shape, 2)
    assert np.all(two[lab == 9] == [2.0, -2.0])


def test_paint_cells_strides_large_rasters():
    lab = np.repeat(np.repeat(_labels(), 10, axis=0), 10, axis=1)  # 400 x 600
    out = paint_cells(lab, IDS, np.arange(6.0), max_size=100)
    assert out.shape == (67, 100)  # stride 6
    assert np.array_equal(np.isnan(out), ~np.isin(lab[::6, ::6], IDS))


def test_paint_cells_huge_ids_match_the_lookup_table():
    lab = _labels().astype(np.int64)
    big = lab.copy()
    big[big > 0] += 2**40
    ref = paint_cells(lab, IDS, np.arange(6.0))
    out = paint_cells(big, IDS + 2**40, np.arange(6.0))
    assert np.array_equal(np.isnan(ref), np.isnan(out))
    assert np.array_equal(ref[~np.isnan(ref)], out[~np.isnan(out)])


@pytest.mark.parametrize(
    ("ids", "values", "match"),
    [
        (IDS, np.arange(5.0), "do not match"),
        (np.array([3, 3, 9, 12, 15, 20]), np.arange(6.0), "unique"),
        (np.array([-1, 7, 9, 12, 15, 20]), np.arange(6.0), "non-negative"),
    ],
)
def test_paint_cells_rejects_bad_input(ids, values, match):
    with pytest.raises(TopomicsInputError, match=match):
        paint_cells(_labels(), ids, values)


def test_labels_raster_picks_full_or_coarse_scale():
    spatialdata = pytest.importorskip("spatialdata")
    from spatialdata.models import Labels2DModel

    lab = np.repeat(np.repeat(_labels(), 4, axis=0), 4, axis=1)  # 160 x 240
    sdata = spatialdata.SpatialData(
        labels={
            "pyramid": Labels2DModel.parse(lab, dims=("y", "x"), scale_factors=[2, 2]),
            "flat": Labels2DModel.parse(lab, dims=("y", "x")),
        }
    )
    full = labels_raster(sdata, "pyramid")
    assert isinstance(full, np.ndarray) and np.array_equal(full, lab)
    assert labels_raster(sdata, "pyramid", max_size=130).shape == (80, 120)
    assert labels_raster(sdata, "pyramid", max_size=10).shape == (40, 60)  # coarsest
    assert np.array_equal(labels_raster(sdata, "flat", max_size=10), lab)
    with pytest.raises(TopomicsInputError, match=r"'nope'.*flat.*pyramid"):
        labels_raster(sdata, "nope")


# -------------------------------------------------------------------------- figures
def test_canvas_paints_the_proportions_of_each_cell():
    res = make_results()
    lab = _labels()
    canvas = make_canvas(res, lab)
    painted = canvas.paint(res.proportions["topic_0"].to_numpy())
    one, zero = painted[lab == IDS[0]], painted[lab == IDS[1]]
    assert np.all(one[~np.isnan(one)] == 1.0) and np.all(zero[~np.isnan(zero)] == 0.0)
    assert np.isnan(painted[lab == 0]).all() and np.isnan(painted[lab == 25]).all()
    # big cells get a one-pixel border (last row and column) so neighbours stay apart
    assert np.isnan(one).sum() == 10 + 18 - 1
    assert np.isnan(painted[11, 2:20]).all() and not np.isnan(painted[10, 2:19]).any()


def test_a_foreign_segmentation_falls_back_to_the_coordinates():
    res = make_results()
    foreign = _labels() + 1000 * (_labels() > 0)  # no id matches the run's cells
    canvas = make_canvas(res, foreign)
    assert not canvas.painted
    assert np.array_equal(canvas.coords, res.coordinates[["x", "y"]].to_numpy())
    with pytest.raises(TopomicsInputError, match=r"no label id of run 'tiny'.*'cells'"):
        make_canvas(make_results(with_coords=False), foreign)


def test_small_cells_are_not_outlined():
    res = make_results()
    lab = _labels()[::3, ::3]  # cells of ~4 x 6 pixels
    painted = make_canvas(res, lab).paint(np.arange(6.0))
    assert np.array_equal(np.isnan(painted), ~np.isin(lab, IDS))


def test_drawn_colours_differ_between_proportion_one_and_zero():
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    res, lab = make_results(), _labels()
    fig = Figure(figsize=(6, 4), dpi=10)  # 60 x 40 px: one figure pixel per raster pixel
    ax = fig.add_axes((0, 0, 1, 1))
    cmap = colormaps["viridis"].with_extremes(bad=(0, 0, 0, 0))
    make_canvas(res, lab).draw(ax, res.proportions["topic_0"].to_numpy(), cmap, Normalize(0, 1))
    agg = FigureCanvasAgg(fig)
    agg.draw()
    rgba = np.asarray(agg.buffer_rgba())[..., :3] / 255.0
    one, zero = rgba[7, 11], rgba[7, 31]  # centres of the cells with id 3 and id 7
    assert np.allclose(one, cmap(1.0)[:3], atol=0.02)
    assert np.allclose(zero, cmap(0.0)[:3], atol=0.02)
    assert np.allclose(rgba[16, 30], 1.0)  # background shows the white figure
    assert np.allclose(rgba[15, 49], 1.0)  # so does the unknown label 25


def test_topic_maps_png_shows_both_ends_of_the_scale(tmp_path):
    from matplotlib import colormaps

    path = plot_topic_maps(make_results(), tmp_path, labels=_labels(), image=_labels() * 10)
    assert path == tmp_path / "topic_maps.png"
    img = _assert_png(path)
    viridis = colormaps["viridis"]
    assert _has_colour(img, viridis(1.0)) and _has_colour(img, viridis(0.0))


def test_maps_fall_back_to_a_scatter_of_coordinates(tmp_path):
    from matplotlib import colormaps

    res = make_results(with_ids=False)
    img = _assert_png(plot_topic_maps(res, tmp_path))
    assert _has_colour(img, colormaps["viridis"](1.0), tol=0.05)
    _assert_png(plot_modality_weights(res, tmp_path))
    with pytest.raises(TopomicsInputError, match="coordinates"):
        plot_topic_maps(make_results(with_ids=False, with_coords=False), tmp_path)


def test_dominant_topic_uses_one_palette_colour_per_topic(tmp_path):
    img = _assert_png(plot_dominant_topic(make_results(), tmp_path, labels=_labels()))
    for colour in topic_palette(3):
        assert _has_colour(img, colour, tol=0.02)
    assert topic_palette(12) != topic_palette(12)[:10] and len(set(topic_palette(25))) == 25


def test_modality_weights_png(tmp_path):
    path = plot_modality_weights(make_results(), tmp_path, labels=_labels())
    assert path.name == "modality_weights.png"
    _assert_png(path)


def test_top_feature_heatmap_matrix_and_png(tmp_path):
    res = make_results()
    mat = _heatmap_matrix(res.top_features["rna"], res.topic_names, n_top=2)
    assert list(mat.index) == res.topic_names
    assert list(mat.columns) == ["GeneA", "GeneB", "GeneC", "GeneD"]  # topic by topic
    assert mat.loc["topic_0", "GeneA"] == pytest.approx(0.5)
    assert mat.loc["topic_1", "GeneC"] == pytest.approx(0.25 + 0.1)
    assert np.isnan(mat.loc["topic_0", "GeneC"])  # outside topic_0's top 2
    path = plot_top_features(res, tmp_path, "protein", n_top=3)
    assert path.name == "top_features_protein.png"
    _assert_png(path)
    with pytest.raises(TopomicsInputError, match=r"'atac'.*protein.*rna"):
        plot_top_features(res, tmp_path, "atac")


def test_elbo_is_the_negated_loss(tmp_path):
    res = make_results()
    curves = elbo_curves(res.elbo_history)
    assert list(curves) == ["train"]
    assert np.array_equal(curves["train"].to_numpy(), -res.elbo_history["elbo_train"].to_numpy())
    assert curves["train"].is_monotonic_increasing  # the loss fell, so the ELBO rose
    hist = res.elbo_history.assign(elbo_validation=[950.0, 720.0, 690.0, 700.0])
    assert list(elbo_curves(hist)) == ["train", "validation"]
    _assert_png(plot_elbo(res, tmp_path))


def test_figures_leave_the_results_untouched(tmp_path):
    res = make_results()
    before = (res.proportions.copy(), res.modality_weights.copy(), res.instance_ids.copy())
    lab = _labels()
    lab0 = lab.copy()
    plot_topic_maps(res, tmp_path, labels=lab)
    plot_dominant_topic(res, tmp_path, labels=lab)
    pd.testing.assert_frame_equal(res.proportions, before[0])
    pd.testing.assert_frame_equal(res.modality_weights, before[1])
    assert np.array_equal(res.instance_ids, before[2]) and np.array_equal(lab, lab0)
