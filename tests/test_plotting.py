"""MDS plots and RDM heatmaps: what is drawn, checked against independent computations."""

import inspect

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.offsetbox import AnnotationBbox
from PIL import Image
from sklearn.manifold import MDS

from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis.plotting import (
    MDSResult,
    alphatize_image,
    my_mds,
    plot_rdm,
    plot_rdm_grid,
    rdm_mds,
)

COLORS = ("000", "090", "180", "270", "045")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _rdm_row(points, keys, variables, layer="conv1", layer_num=1, metric="euclidean_distance"):
    """One row of an RDM frame; the matrix holds distances between ``points``."""
    points = np.asarray(points, dtype=float)
    matrix = np.linalg.norm(points[:, None] - points[None], axis=-1)
    n = len(keys)
    return {
        "df_name": "test_rdms",
        "model": "alexnet",
        "layer": layer,
        "layer_num": layer_num,
        "layer_label": (layer, layer_num),
        "dissim_metric": metric,
        "activation_type": "unit_level",
        "matrix": matrix,
        "entry_keys": tuple(keys),
        "entry_labels": tuple(dict(zip(variables, key)) for key in keys),
        "kernel_set_name": "all",
        "kernel_inds": (0, 1, 2),
        "perm": "orig_data",
        "perm_scramble": list(range(n)),
        "dissim_rankings": tuple(range(n)[::-1]),
        "obj": "obj001",
    }


def _color_rdm(n=5, seed=0, space_dims=2, **kwargs):
    """RDM of points in a plane (or space), so that MDS converges quickly."""
    rng = np.random.default_rng(seed)
    keys = [(c,) for c in COLORS[:n]]
    points = rng.normal(size=(n, space_dims))
    return pd.DataFrame([_rdm_row(points, keys, ["color"], **kwargs)])


def _meta_rdm(seed=1):
    rng = np.random.default_rng(seed)
    keys = [(obj, layer) for obj in ("obj001", "obj002") for layer in ("conv1", "conv2", "fc1")]
    return pd.DataFrame([_rdm_row(rng.normal(size=(6, 2)), keys, ["obj", "layer"])])


def _direct_mds(matrix, dims=2, random_state=0):
    """Metric MDS as documented for rdm_mds, run directly, coordinates rescaled to [0, 1]."""
    params = dict(n_components=dims, n_init=4, max_iter=3000, eps=1e-9, n_jobs=1,
                  random_state=random_state, normalized_stress=False)
    if "metric_mds" in inspect.signature(MDS).parameters:
        params.update(metric="precomputed", metric_mds=True, init="random")
    else:
        params.update(dissimilarity="precomputed", metric=True)
    mds = MDS(**params).fit(matrix)
    pos = mds.embedding_
    return (pos - pos.min()) / (pos.max() - pos.min()), mds.stress_


def _tiny_picture(color=(200, 30, 30), size=(8, 6)):
    pixels = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    pixels[1:-1, 2:-2] = color
    return Image.fromarray(pixels)


# ---------------------------------------------------------------------------
# rdm_mds: positions, stress, return values
# ---------------------------------------------------------------------------


def test_mds_coords_reproduce_sklearn_and_match_the_dots():
    rdm = _color_rdm()
    result = rdm_mds(rdm, show=False, return_result=True)
    expected_coords, expected_stress = _direct_mds(rdm["matrix"].iloc[0])
    assert isinstance(result, MDSResult)
    np.testing.assert_allclose(result.coords, expected_coords, atol=1e-12)
    assert result.stress == pytest.approx(expected_stress, rel=1e-12)
    (dots,) = result.ax.collections
    np.testing.assert_allclose(np.asarray(dots.get_offsets()), result.coords)
    assert result.fig is result.ax.figure


def test_mds_is_reproducible_and_seeded():
    rdm = _color_rdm(seed=3)
    first = rdm_mds(rdm, show=False, return_result=True)
    second = rdm_mds(rdm, show=False, return_result=True)
    np.testing.assert_array_equal(first.coords, second.coords)
    other = rdm_mds(rdm, show=False, return_result=True, random_state=5)
    expected_coords, _ = _direct_mds(rdm["matrix"].iloc[0], random_state=5)
    np.testing.assert_allclose(other.coords, expected_coords, atol=1e-12)


def test_mds_returns_stress_float_and_prints_only_when_verbose(capsys):
    rdm = _color_rdm()
    stress = rdm_mds(rdm, show=False)
    assert type(stress) is float
    assert stress == pytest.approx(_direct_mds(rdm["matrix"].iloc[0])[1], rel=1e-12)
    assert capsys.readouterr().out == ""
    rdm_mds(rdm, show=False, verbose=True)
    assert capsys.readouterr().out == f"Stress = {stress}\n"


def test_mds_title_shows_title_and_stress():
    result = rdm_mds(_color_rdm(), fig_title="conv1", show=False, return_result=True)
    assert result.ax.get_title() == f"conv1\nstress = {result.stress:.4g}"
    quiet = rdm_mds(_color_rdm(), fig_title="conv1", show_stress=False, show=False,
                    return_result=True)
    assert quiet.ax.get_title() == "conv1"


def test_my_mds_is_rdm_mds_and_accepts_a_series():
    assert my_mds is rdm_mds
    rdm = _color_rdm()
    from_series = my_mds(rdm.iloc[0], show=False, return_result=True)
    from_frame = my_mds(rdm, show=False, return_result=True)
    np.testing.assert_array_equal(from_series.coords, from_frame.coords)


def test_mds_show_true_is_harmless_headless():
    assert isinstance(rdm_mds(_color_rdm(), show=True), float)


def test_mds_does_not_modify_inputs():
    rdm = _color_rdm()
    matrix_before = rdm["matrix"].iloc[0].copy()
    plot_opts = {"s": 30}
    rdm_mds(rdm, plot_opts=plot_opts, cond_colors={("000",): "red"}, show=False)
    assert plot_opts == {"s": 30}
    np.testing.assert_array_equal(rdm["matrix"].iloc[0], matrix_before)


# ---------------------------------------------------------------------------
# rdm_mds: labels, colours, per-dot options, trajectories, pictures
# ---------------------------------------------------------------------------


def test_labels_are_drawn_at_offset_positions():
    rdm = _color_rdm()
    labels = {("000",): "zero", "180": "one-eighty"}
    result = rdm_mds(rdm, cond_labels=labels, label_offset=0.05, label_opts={"fontsize": 9},
                     show=False, return_result=True)
    drawn = {text.get_text(): text for text in result.ax.texts}
    assert set(drawn) == {"zero", "one-eighty"}
    for text, position in (("zero", 0), ("one-eighty", 2)):
        x, y = result.coords[position]
        assert drawn[text].xy == pytest.approx((x - 0.05, y + 0.05))
        assert drawn[text].get_fontsize() == 9


def test_cond_colors_colour_listed_dots_and_leave_others_black():
    result = rdm_mds(_color_rdm(), cond_colors={("090",): "red", "270": "blue"},
                     show=False, return_result=True)
    facecolors = result.ax.collections[0].get_facecolors()
    expected = ["black", "red", "black", "blue", "black"]
    np.testing.assert_allclose(facecolors, [to_rgba(c) for c in expected])


def test_other_dot_opts_set_per_entry_values():
    sizes = {(c,): 10.0 * (i + 1) for i, c in enumerate(COLORS)}
    result = rdm_mds(_color_rdm(), other_dot_opts={"s": sizes}, show=False, return_result=True)
    np.testing.assert_array_equal(result.ax.collections[0].get_sizes(), [10, 20, 30, 40, 50])
    del sizes[("180",)]
    with pytest.raises(InvalidInputError, match=r"'other_dot_opts'.*no 's' value for \('180',\)"):
        rdm_mds(_color_rdm(), other_dot_opts={"s": sizes}, show=False)


def test_no_dots_when_plot_dots_is_false():
    result = rdm_mds(_color_rdm(), plot_dots=False, show=False, return_result=True)
    assert len(result.ax.collections) == 0


def test_line_trajectories_follow_the_listed_entries():
    rdm = _meta_rdm()
    keys = rdm["entry_keys"].iloc[0]
    trajectories = [
        ([("obj001", layer) for layer in ("conv1", "conv2", "fc1")], {"linewidth": 2, "c": "black"}),
        ([("obj002", "fc1"), ("obj002", "conv1")], {"color": "red"}),
    ]
    result = rdm_mds(rdm, line_trajectories=trajectories, show=False, return_result=True)
    lines = result.ax.get_lines()
    assert len(lines) == 2
    for line, (entries, opts) in zip(lines, trajectories):
        positions = [keys.index(entry) for entry in entries]
        np.testing.assert_allclose(line.get_xdata(), result.coords[positions, 0])
        np.testing.assert_allclose(line.get_ydata(), result.coords[positions, 1])
    assert lines[0].get_linewidth() == 2
    assert to_rgba(lines[1].get_color()) == to_rgba("red")


def test_pictures_are_placed_one_per_entry(tmp_path):
    path = tmp_path / "pic.png"
    _tiny_picture((20, 200, 20)).save(path)
    pics = {("000",): _tiny_picture(), "090": str(path), ("270",): path}
    result = rdm_mds(_color_rdm(), cond_pics=pics, pic_offset=(0.01, -0.02),
                     show=False, return_result=True)
    boxes = [artist for artist in result.ax.artists if isinstance(artist, AnnotationBbox)]
    assert len(boxes) == len(pics)
    for box, position in zip(boxes, (0, 1, 3)):
        x, y = result.coords[position]
        assert box.xybox == pytest.approx((x + 0.01, y - 0.02))
    # White background made transparent by default (alphatize_pics=True).
    data = np.asarray(boxes[0].offsetbox.get_data())
    assert data.shape == (6, 8, 4)
    assert (data[0, 0] == [255, 255, 255, 0]).all()
    assert (data[2, 3] == [200, 30, 30, 255]).all()


def test_picture_size_spans_pic_size_in_data_units():
    pic = _tiny_picture(size=(20, 10))
    result = rdm_mds(_color_rdm(), cond_pics={"000": pic}, pic_size=0.2, plot_limits=(0, 1),
                     show=False, return_result=True)
    fig, ax = result.fig, result.ax
    fig.canvas.draw()
    (box,) = ax.artists
    extent = box.get_window_extent(fig.canvas.get_renderer())
    axes_extent = ax.get_window_extent()
    assert extent.width / axes_extent.width == pytest.approx(0.2, rel=0.05)
    assert extent.height / extent.width == pytest.approx(0.5, rel=0.1)


def test_picture_options_alphatize_off_and_border():
    pics = {"000": _tiny_picture()}
    result = rdm_mds(_color_rdm(), cond_pics=pics, alphatize_pics=False, add_pic_border=True,
                     show=False, return_result=True)
    (box,) = result.ax.artists
    assert (np.asarray(box.offsetbox.get_data())[0, 0] == [255, 255, 255, 255]).all()
    assert box.patch.get_visible()


def test_three_dimensional_mds_with_labels():
    rdm = _color_rdm(space_dims=3)
    result = rdm_mds(rdm, dims=3, cond_labels={"000": "zero", "090": "ninety"},
                     line_trajectories=[(["000", "090"], {})], show=False, return_result=True)
    expected_coords, _ = _direct_mds(rdm["matrix"].iloc[0], dims=3)
    assert result.coords.shape == (5, 3)
    np.testing.assert_allclose(result.coords, expected_coords, atol=1e-12)
    assert result.ax.name == "3d"
    texts = {text.get_text(): text for text in result.ax.texts}
    assert set(texts) == {"zero", "ninety"}
    x, y, z = result.coords[0] + 0.02
    assert texts["zero"].get_position() == pytest.approx((x, y))
    xs, ys, zs = result.ax.collections[0]._offsets3d
    np.testing.assert_allclose(np.column_stack([xs, ys, zs]), result.coords)
    (line,) = result.ax.get_lines()
    np.testing.assert_allclose(line.get_data_3d()[2], result.coords[:2, 2])
    assert result.ax.get_title().startswith("stress = ")


def test_saving_png_and_pdf(tmp_path):
    rdm = _color_rdm()
    png, pdf = tmp_path / "mds.png", tmp_path / "mds.pdf"
    rdm_mds(rdm, save_opts={"fname": png, "dpi": 50}, show=False)
    rdm_mds(rdm, save_opts=pdf, cond_pics={"000": _tiny_picture()}, show=False)
    assert png.stat().st_size > 0 and pdf.stat().st_size > 0
    with Image.open(png) as saved:
        assert saved.size == (350, 350)  # fig_size=7 inches at 50 dpi
    assert pdf.read_bytes().startswith(b"%PDF")


# ---------------------------------------------------------------------------
# rdm_mds: errors
# ---------------------------------------------------------------------------


def test_more_than_one_row_is_an_error():
    two = pd.concat([_color_rdm(layer="conv1"), _color_rdm(layer="fc1", seed=2)])
    message = (r"'rdm_df' parameter of rdm_mds must be exactly one RDM .*"
               r"pfa.df_filter\(rdm_df, \[\('layer', 'conv1'\)\]\).*"
               r"got 2 rows \(they differ in layer\) instead")
    with pytest.raises(InvalidInputError, match=message):
        rdm_mds(two, show=False)
    with pytest.raises(InvalidInputError, match=r"must be exactly one RDM .*; got 0 rows instead"):
        plot_rdm(two.iloc[:0])


def test_missing_columns_are_named():
    with pytest.raises(InvalidInputError, match=r"'rdm_df' parameter of rdm_mds .*\['entry_keys'\]"):
        rdm_mds(_color_rdm().drop(columns="entry_keys"), show=False)
    with pytest.raises(InvalidInputError, match=r"'rdm_df' parameter of plot_rdm .*\['matrix'\]"):
        plot_rdm(_color_rdm().iloc[0].drop("matrix"))
    with pytest.raises(InvalidInputError, match=r"plot_rdm .*\['dissim_rankings'\]"):
        plot_rdm(_color_rdm().drop(columns="dissim_rankings"), order="dissim_rankings")


@pytest.mark.parametrize(
    "option, value",
    [
        ("cond_labels", {("blue",): "x"}),
        ("cond_colors", {"blue": "red"}),
        ("cond_pics", {"blue": None}),
        ("line_trajectories", [(["000", "blue"], {})]),
    ],
)
def test_keys_that_are_not_entries_are_errors(option, value):
    message = rf"'{option}' parameter of rdm_mds must be made of entry keys.*\('000',\).*\('blue',\)"
    with pytest.raises(InvalidInputError, match=message):
        rdm_mds(_color_rdm(), show=False, **{option: value})


def _color_rdm_with(value, i, j):
    """The colour RDM with ``value`` in cells (i, j) and (j, i)."""
    rdm = _color_rdm()
    matrix = rdm["matrix"].iloc[0].copy()
    matrix[i, j] = matrix[j, i] = value
    rdm.at[0, "matrix"] = matrix
    return rdm


def test_nan_in_matrix_is_an_error_naming_entries():
    rdm = _color_rdm_with(np.nan, 1, 3)
    with pytest.raises(InvalidInputError, match=r"without NaN.*got NaN for \('090',\)-\('270',\)"):
        rdm_mds(rdm, show=False)


def test_negative_dissimilarities_are_refused_naming_the_smallest():
    rdm = _color_rdm()
    matrix = rdm["matrix"].iloc[0].copy()
    matrix[2, 4] = matrix[4, 2] = -0.3
    matrix[0, 1] = matrix[1, 0] = -0.1
    rdm.at[0, "matrix"] = matrix
    message = (r"'rdm_df' parameter of rdm_mds must be an RDM of non-negative dissimilarities.*"
               r"got a smallest value of -0\.3 \(for \('180',\)-\('045',\)\)")
    with pytest.raises(InvalidInputError, match=message):
        rdm_mds(rdm, show=False)


def test_a_non_symmetric_matrix_is_refused_naming_the_pair():
    rdm = _color_rdm()
    matrix = rdm["matrix"].iloc[0].copy()
    matrix[1, 3] += 0.5
    rdm.at[0, "matrix"] = matrix
    message = (rf"symmetric matrix.*got matrix\[1, 3\] = {matrix[1, 3]:.6g} but matrix\[3, 1\] = "
               rf"{matrix[3, 1]:.6g} \(for \('090',\)-\('270',\)\)")
    with pytest.raises(InvalidInputError, match=message):
        rdm_mds(rdm, show=False)
    # rounding-level asymmetry (as float32 arithmetic leaves) is no error
    matrix = rdm["matrix"].iloc[0].copy()
    matrix[1, 3] = matrix[3, 1] * (1 + 1e-7)
    rdm.at[0, "matrix"] = matrix
    assert isinstance(rdm_mds(rdm, show=False), float)


def test_infinite_dissimilarities_and_single_entries_are_refused():
    rdm = _color_rdm_with(np.inf, 0, 4)
    with pytest.raises(InvalidInputError, match=r"got NaN or inf for \('000',\)-\('045',\)"):
        rdm_mds(rdm, show=False)
    one = pd.DataFrame({"matrix": [np.zeros((1, 1))], "entry_keys": [(("a",),)]})
    with pytest.raises(InvalidInputError, match="at least 2 entries; got 1 entries"):
        rdm_mds(one, show=False)


def test_nan_only_matrices_are_refused_by_every_plot():
    rdm = _color_rdm()
    rdm.at[0, "matrix"] = np.full((5, 5), np.nan)
    message = (r"'rdm_df' parameter of {} must be an RDM with at least one defined \(finite\) "
               r"dissimilarity; got a 5 x 5 matrix whose dissimilarities are all NaN")
    with pytest.raises(InvalidInputError, match=message.format("plot_rdm")):
        plot_rdm(rdm)
    with pytest.raises(InvalidInputError, match=message.format("rdm_mds")):
        rdm_mds(rdm, show=False)
    # a zero diagonal does not make the dissimilarities defined
    only_diagonal = np.full((5, 5), np.nan)
    np.fill_diagonal(only_diagonal, 0)
    rdm.at[0, "matrix"] = only_diagonal
    with pytest.raises(InvalidInputError, match=message.format("plot_rdm")):
        plot_rdm(rdm)
    grid = pd.concat([_color_rdm(seed=0), rdm], ignore_index=True)
    with pytest.raises(InvalidInputError, match=message.format("plot_rdm_grid") + " in row 1"):
        plot_rdm_grid(grid)


def test_matrix_and_entry_keys_must_agree():
    rdm = _color_rdm()
    rdm.at[0, "matrix"] = np.zeros((4, 4))
    with pytest.raises(InvalidInputError, match=r"one row per entry key \(5\); got a matrix of "
                       r"shape \(4, 4\)"):
        plot_rdm(rdm)
    with pytest.raises(InvalidInputError, match="one-row RDM frame or one row of it .*; got list"):
        plot_rdm([np.zeros((2, 2))])


def test_pictures_in_3d_and_bad_dims_are_errors():
    with pytest.raises(InvalidInputError,
                       match="'cond_pics' parameter of rdm_mds must be empty when dims=3"):
        rdm_mds(_color_rdm(), dims=3, cond_pics={"000": _tiny_picture()}, show=False)
    for dims in (4, 2.0, True):
        with pytest.raises(InvalidInputError,
                           match=f"'dims' parameter of rdm_mds must be 2 or 3; got {dims}"):
            rdm_mds(_color_rdm(), dims=dims, show=False)


# ---------------------------------------------------------------------------
# alphatize_image
# ---------------------------------------------------------------------------


def test_alphatize_image_matches_per_pixel_rule():
    rng = np.random.default_rng(0)
    pixels = rng.integers(200, 256, size=(12, 10, 3)).astype(np.uint8)
    image = Image.fromarray(pixels)
    out = np.asarray(alphatize_image(image, alpha_target=(250, 250, 250), alpha_range=20))
    for i in range(pixels.shape[0]):
        for j in range(pixels.shape[1]):
            close = all(abs(int(v) - 250) < 20 for v in pixels[i, j])
            expected = (255, 255, 255, 0) if close else (*pixels[i, j], 255)
            assert tuple(out[i, j]) == expected
    assert np.asarray(image).shape == (12, 10, 3)


# ---------------------------------------------------------------------------
# Heatmaps
# ---------------------------------------------------------------------------


def test_plot_rdm_draws_matrix_with_labels_and_colorbar():
    rdm = _meta_rdm()
    ax = plot_rdm(rdm)
    matrix = rdm["matrix"].iloc[0]
    (image,) = ax.images
    np.testing.assert_array_equal(image.get_array(), matrix)
    expected = ["obj001, conv1", "obj001, conv2", "obj001, fc1",
                "obj002, conv1", "obj002, conv2", "obj002, fc1"]
    assert [t.get_text() for t in ax.get_xticklabels()] == expected
    assert [t.get_text() for t in ax.get_yticklabels()] == expected
    assert len(ax.figure.axes) == 2
    assert ax.figure.axes[1].get_ylabel() == "euclidean_distance"
    assert image.get_clim() == (matrix.min(), matrix.max())


def test_plot_rdm_orders_by_rankings_or_keys():
    rdm = _color_rdm()
    matrix = rdm["matrix"].iloc[0]
    ax = plot_rdm(rdm, order="dissim_rankings", colorbar=False)
    ranking = list(rdm["dissim_rankings"].iloc[0])
    np.testing.assert_array_equal(ax.images[0].get_array(), matrix[np.ix_(ranking, ranking)])
    assert [t.get_text() for t in ax.get_xticklabels()] == [COLORS[i] for i in ranking]
    assert len(ax.figure.axes) == 1

    _, ax = plt.subplots()
    returned = plot_rdm(rdm, ax=ax, order=["270", ("000",)], vmin=0, vmax=5, title="subset")
    assert returned is ax
    np.testing.assert_array_equal(ax.images[0].get_array(), matrix[np.ix_([3, 0], [3, 0])])
    assert ax.images[0].get_clim() == (0, 5)
    assert ax.get_title() == "subset"
    with pytest.raises(InvalidInputError,
                       match="'order' parameter of plot_rdm must be made of entry keys"):
        plot_rdm(rdm, order=["000", "blue"])
    with pytest.raises(InvalidInputError, match=r"each entry at most once; got \['000', \('000',\)\]"):
        plot_rdm(rdm, order=["000", ("000",)])


def test_plot_rdm_leaves_nan_cells_blank():
    rdm = _color_rdm()
    matrix = rdm["matrix"].iloc[0].copy()
    matrix[0, 1] = matrix[1, 0] = np.nan
    rdm.at[0, "matrix"] = matrix
    data = plot_rdm(rdm).images[0].get_array()
    assert np.ma.getmaskarray(data)[0, 1] and not np.ma.getmaskarray(data)[0, 2]


def test_plot_rdm_grid_shares_one_colour_scale():
    layers = ["conv1", "conv2", "conv3", "fc1", "fc2"]
    frame = pd.concat(
        [_color_rdm(seed=i, layer=layer, layer_num=i + 1) for i, layer in enumerate(layers)],
        ignore_index=True,
    )
    fig = plot_rdm_grid(frame, col="layer")
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 5
    assert len(fig.axes) == 6  # one shared colour bar, unused grid cells removed
    low = min(m.min() for m in frame["matrix"])
    high = max(m.max() for m in frame["matrix"])
    for ax, matrix, layer in zip(panels, frame["matrix"], layers):
        np.testing.assert_array_equal(ax.images[0].get_array(), matrix)
        assert ax.images[0].get_clim() == (low, high)
        assert ax.get_title() == layer
    assert fig.axes[-1].get_ylabel() == "euclidean_distance"


def test_plot_rdm_grid_default_titles_and_errors():
    frame = pd.concat(
        [_color_rdm(seed=0, layer="conv1"), _color_rdm(seed=1, layer="fc1", metric="corr")],
        ignore_index=True,
    )
    fig = plot_rdm_grid(frame, col_wrap=1, vmax=10)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["conv1, euclidean_distance", "fc1, corr"]
    assert fig.axes[0].images[0].get_clim()[1] == 10
    assert fig.axes[-1].get_ylabel() == ""
    with pytest.raises(InvalidInputError, match=r"'rdm_df' parameter of plot_rdm_grid.*\['area'\]"):
        plot_rdm_grid(frame, col="area")
    with pytest.raises(InvalidInputError, match="at least one row; got 0 rows"):
        plot_rdm_grid(frame.iloc[:0])


def test_default_titles_name_only_columns_that_describe_conditions():
    """Per-RDM content (the contract's columns, at any level) never titles a panel."""
    frame = pd.concat([_color_rdm(seed=0, layer="conv1"), _color_rdm(seed=1, layer="fc1")],
                      ignore_index=True)
    frame["kernel_inds"] = [(0, 1), (2, 3)]
    frame["perm_scramble"] = [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]]
    frame["entry_keys_sub"] = [(("x",),), (("y",),)]
    frame["dissim_rankings"] = [(0, 1, 2, 3, 4), (4, 3, 2, 1, 0)]
    fig = plot_rdm_grid(frame)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["conv1", "fc1"]
    with pytest.raises(InvalidInputError, match="'col_wrap' parameter of plot_rdm_grid"):
        plot_rdm_grid(frame, col_wrap=0)


def test_order_by_dissim_rankings_must_index_the_entries():
    rdm = _color_rdm()
    rdm.at[0, "dissim_rankings"] = (0, 7, 1)
    with pytest.raises(InvalidInputError, match=r"dissim_rankings are distinct entry positions "
                       r"\(0 to 4\); got \(0, 7, 1\)"):
        plot_rdm(rdm, order="dissim_rankings")
    with pytest.raises(InvalidInputError, match="'order' parameter of plot_rdm must be None, "
                       "'dissim_rankings' or a list of entry keys; got 'ranked'"):
        plot_rdm(_color_rdm(), order="ranked")


def test_other_errors_are_invalid_input_errors():
    with pytest.raises(InvalidInputError, match="'alpha_target' parameter of alphatize_image must "
                       "be an RGB triplet"):
        alphatize_image(_tiny_picture(), alpha_target=(255, 255))
    with pytest.raises(InvalidInputError, match="'cond_pics' parameter of rdm_mds .*; got a "
                       "NoneType value"):
        rdm_mds(_color_rdm(), cond_pics={"000": None}, show=False)
    with pytest.raises(InvalidInputError, match="'cond_labels' parameter of rdm_mds must be a dict"):
        rdm_mds(_color_rdm(), cond_labels=["000"], show=False)


def test_figures_save_to_png_and_pdf(tmp_path):
    fig = plot_rdm_grid(pd.concat([_color_rdm(seed=0), _color_rdm(seed=1, layer="fc1")]))
    for name in ("grid.png", "grid.pdf"):
        fig.savefig(tmp_path / name)
        assert (tmp_path / name).stat().st_size > 0
