"""Meta-RDMs of second and third order against direct per-pair loops."""

import copy
import itertools

import numpy as np
import pandas as pd
import pytest

import pytorch_feature_analysis as pfa

GUIDE_SECOND_ORDER_COLUMNS = [
    "activation_type",
    "df_name",
    "dissim_metric",
    "dissim_metric_sub",
    "dissim_rankings",
    "entry_keys",
    "entry_keys_sub",
    "entry_labels",
    "entry_labels_sub",
    "entry_var_subset",
    "layer",
    "matrix",
    "model",
    "perm",
]


def random_rdm(rng, n):
    matrix = rng.random((n, n))
    matrix = matrix + matrix.T
    np.fill_diagonal(matrix, 0.0)
    return matrix


def first_order_frame(
    n_objs=4,
    colors=("000", "090", "180", "270"),
    layers=("conv1", "relu1", "fc1"),
    activation_types=("unit_level", "feature_means"),
    metrics=("corr", "euclidean_distance"),
    seed=0,
):
    """A frame shaped like get_rdms output: one RDM per obj x layer x activation x metric."""
    rng = np.random.default_rng(seed)
    rows = []
    for obj in [f"obj{i:03d}" for i in range(n_objs)]:
        for (layer_num, layer), activation_type, metric in itertools.product(
            enumerate(layers, start=1), activation_types, metrics
        ):
            matrix = random_rdm(rng, len(colors))
            rows.append(
                {
                    "df_name": "color_rdms",
                    "model": "alexnet",
                    "layer": layer,
                    "layer_num": layer_num,
                    "layer_label": (layer, layer_num),
                    "dissim_metric": metric,
                    "activation_type": activation_type,
                    "matrix": matrix,
                    "entry_keys": tuple((color,) for color in colors),
                    "entry_labels": tuple({"color": color} for color in colors),
                    "kernel_set_name": "all",
                    "kernel_inds": tuple(range(3 * layer_num)),
                    "perm": "orig_data",
                    "perm_scramble": list(range(len(colors))),
                    "dissim_rankings": tuple(pfa.get_extreme_dissims_total(matrix, "all")[1]),
                    "obj": obj,
                }
            )
    return pd.DataFrame(rows)


def pair_loop_meta(matrices, metric):
    """Reference: the original's per-pair loop, dropping rows that are all NaN off the diagonal."""
    k = len(matrices)
    out = np.zeros((k, k))
    for i, j in itertools.product(range(k), range(k)):
        if i == j:
            continue
        a, b = matrices[i], matrices[j]
        n = len(a)
        off = ~np.eye(n, dtype=bool)
        keep = [
            r
            for r in range(n)
            if not (np.all(np.isnan(a[r][off[r]])) or np.all(np.isnan(b[r][off[r]])))
        ]
        upper = np.triu_indices(len(keep), 1)
        x = a[np.ix_(keep, keep)][upper]
        y = b[np.ix_(keep, keep)][upper]
        if metric == "corr":
            out[i, j] = 1.0 - np.corrcoef(x, y)[0, 1]
        elif metric == "euclidean_distance":
            out[i, j] = np.linalg.norm(x - y)
        else:
            out[i, j] = metric(x, y)
    return out


def rows_for(frame, conditions, entry_variables, entry_keys):
    """The matrices of the frame's rows that match conditions, in entry_keys order."""
    mask = np.ones(len(frame), dtype=bool)
    for column, value in conditions.items():
        mask &= frame[column].map(lambda v: v == value).to_numpy(dtype=bool)
    selected = frame[mask]
    by_key = {
        tuple(row[v] for v in entry_variables): row["matrix"] for _, row in selected.iterrows()
    }
    assert len(by_key) == len(selected) == len(entry_keys)
    return [by_key[key] for key in entry_keys]


def assert_frames_identical(before, after):
    assert list(before.columns) == list(after.columns)
    assert before.index.equals(after.index)
    for column in before.columns:
        for x, y in zip(before[column], after[column]):
            if isinstance(x, np.ndarray):
                assert np.array_equal(x, y, equal_nan=True)
            else:
                assert x == y and type(x) is type(y)


@pytest.fixture(scope="module")
def rdm_df():
    return first_order_frame()


@pytest.fixture(scope="module")
def second_order(rdm_df):
    return pfa.get_meta_rdms(
        rdm_df,
        None,
        entry_variables=["obj"],
        grouping_variables=["model", "layer", "activation_type", "dissim_metric"],
        dissim_metrics=["corr", "euclidean_distance"],
        df_name="meta",
        verbose=False,
    )


def test_second_order_cells_match_a_pair_loop(rdm_df, second_order):
    assert list(second_order.columns) == GUIDE_SECOND_ORDER_COLUMNS
    assert len(second_order) == 3 * 2 * 2 * 2
    objs = [(f"obj{i:03d}",) for i in range(4)]
    colors = (("000",), ("090",), ("180",), ("270",))
    for _, row in second_order.iterrows():
        assert row["entry_keys"] == tuple(objs)
        assert row["entry_labels"] == tuple({"obj": key[0]} for key in objs)
        assert row["entry_keys_sub"] == colors
        assert row["entry_labels_sub"] == tuple({"color": c[0]} for c in colors)
        assert row["df_name"] == "meta"
        assert (row["perm"], row["entry_var_subset"]) == ("orig_data", "all")
        conditions = {
            "model": row["model"],
            "layer": row["layer"],
            "activation_type": row["activation_type"],
            "dissim_metric": row["dissim_metric_sub"],
        }
        matrices = rows_for(rdm_df, conditions, ["obj"], row["entry_keys"])
        expected = pair_loop_meta(matrices, row["dissim_metric"])
        np.testing.assert_allclose(row["matrix"], expected, rtol=1e-10, atol=1e-12)
        assert row["matrix"].dtype == np.float64
        rankings = row["dissim_rankings"]
        assert sorted(rankings) == list(range(4))
        assert all(type(i) is int for i in rankings)
        first_pair = np.unravel_index(np.argmax(row["matrix"]), row["matrix"].shape)
        assert set(rankings[:2]) == {int(i) for i in first_pair}


def test_third_order_cells_match_a_pair_loop(rdm_df):
    second = pfa.get_meta_rdms(
        rdm_df,
        None,
        ["obj", "layer"],
        grouping_variables=["model", "activation_type", "dissim_metric"],
        dissim_metrics=["corr", "euclidean_distance"],
        verbose=False,
    )
    assert len(second) == 2 * 2 * 2
    assert all(m.shape == (12, 12) for m in second["matrix"])
    third = pfa.get_meta_rdms(
        second,
        None,
        ["activation_type"],
        grouping_variables=["model", "dissim_metric", "dissim_metric_sub"],
        dissim_metrics=["corr", "euclidean_distance"],
        verbose=False,
    )
    assert len(third) == 8
    for column in ["dissim_metric_sub_sub", "entry_keys_sub_sub", "entry_labels_sub_sub"]:
        assert column in third.columns
    colors = (("000",), ("090",), ("180",), ("270",))
    for _, row in third.iterrows():
        assert row["entry_keys"] == (("feature_means",), ("unit_level",))
        assert row["entry_keys_sub"] == second["entry_keys"][0]
        assert row["entry_keys_sub_sub"] == colors
        conditions = {
            "model": row["model"],
            "dissim_metric": row["dissim_metric_sub"],
            "dissim_metric_sub": row["dissim_metric_sub_sub"],
        }
        matrices = rows_for(second, conditions, ["activation_type"], row["entry_keys"])
        np.testing.assert_allclose(
            row["matrix"], pair_loop_meta(matrices, row["dissim_metric"]), rtol=1e-10
        )


def test_guide_shaped_frame_gives_the_guide_row_and_column_counts():
    layers = tuple(f"layer{i}" for i in range(22))
    rdm_df = first_order_frame(layers=layers, seed=1)
    assert len(rdm_df) == 352
    second = pfa.get_meta_rdms(
        rdm_df,
        None,
        dissim_metrics=["corr", "euclidean_distance"],
        entry_variables=["obj"],
        grouping_variables=["model", "layer", "activation_type", "dissim_metric"],
        df_name="color_space_across_objects_meta_rdm",
        verbose=False,
    )
    assert second.shape == (176, 14)
    assert list(second.columns) == GUIDE_SECOND_ORDER_COLUMNS
    by_layer = pfa.get_meta_rdms(
        rdm_df,
        None,
        dissim_metrics=["corr", "euclidean_distance"],
        entry_variables=["obj", "layer"],
        grouping_variables=["model", "activation_type", "dissim_metric"],
        verbose=False,
    )
    assert len(by_layer) == 8
    assert all(m.shape == (88, 88) for m in by_layer["matrix"])
    assert by_layer["entry_labels"][0][1] == {"obj": "obj000", "layer": "layer1"}
    third = pfa.get_meta_rdms(
        by_layer,
        None,
        dissim_metrics=["corr", "euclidean_distance"],
        entry_variables=["activation_type"],
        grouping_variables=["model", "dissim_metric", "dissim_metric_sub"],
        verbose=False,
    )
    assert len(third) == 8
    assert "dissim_metric_sub_sub" in third.columns
    assert sorted(third["dissim_metric_sub_sub"].value_counts()) == [4, 4]


def test_rest_grouping_uses_the_other_condition_columns(rdm_df, second_order):
    rest = pfa.get_meta_rdms(
        rdm_df, None, ["obj"], dissim_metrics=["corr", "euclidean_distance"], verbose=False
    )
    expected_extra = {"df_name_sub", "perm_sub", "layer_num", "layer_label", "kernel_set_name"}
    assert set(rest.columns) == set(second_order.columns) | expected_extra
    assert len(rest) == len(second_order)
    merged = rest.merge(
        second_order, on=["layer", "activation_type", "dissim_metric", "dissim_metric_sub"]
    )
    assert len(merged) == len(rest)
    for left, right in zip(merged["matrix_x"], merged["matrix_y"]):
        np.testing.assert_array_equal(left, right)


def test_renaming_works_in_any_column_order(rdm_df):
    frame = rdm_df.assign(dissim_metric_sub="corr")
    reordered = frame[list(frame.columns[::-1])]
    grouping = ["layer", "activation_type", "dissim_metric", "dissim_metric_sub"]
    results = [
        pfa.get_meta_rdms(f, None, ["obj"], grouping_variables=grouping, verbose=False)
        for f in (frame, reordered)
    ]
    for result in results:
        levels = {"dissim_metric", "dissim_metric_sub", "dissim_metric_sub_sub"}
        assert levels <= set(result.columns)
        assert set(result["dissim_metric_sub"]) == {"corr", "euclidean_distance"}
        assert set(result["dissim_metric_sub_sub"]) == {"corr"}
    for left, right in zip(results[0]["matrix"], results[1]["matrix"]):
        np.testing.assert_array_equal(left, right)


def test_input_frame_is_unchanged(rdm_df):
    before = copy.deepcopy(rdm_df)
    pfa.get_meta_rdms(rdm_df, None, ["obj"], num_perms=2, verbose=False)
    assert_frames_identical(before, rdm_df)


def test_permutations_are_reproducible_and_differ(rdm_df):
    kwargs = dict(
        entry_variables=["obj"],
        grouping_variables=["layer", "activation_type", "dissim_metric"],
        num_perms=3,
        verbose=False,
    )
    first = pfa.get_meta_rdms(rdm_df, None, random_state=7, **kwargs)
    again = pfa.get_meta_rdms(rdm_df, None, random_state=7, **kwargs)
    other = pfa.get_meta_rdms(rdm_df, None, random_state=8, **kwargs)
    assert list(first["perm"][:4]) == ["orig_data", 1, 2, 3]
    assert len(first) == 12 * 4
    for a, b in zip(first["matrix"], again["matrix"]):
        np.testing.assert_array_equal(a, b)
    permuted = first["perm"] != "orig_data"
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(first["matrix"][permuted], other["matrix"][permuted])
    )
    group = first[(first["layer"] == "conv1") & (first["activation_type"] == "unit_level")]
    group = group[group["dissim_metric_sub"] == "corr"]
    matrices = list(group["matrix"])
    for a, b in itertools.combinations(matrices, 2):
        assert not np.allclose(a, b)
    assert all(np.all(np.diag(m) == 0) and np.array_equal(m, m.T) for m in matrices)
    plain = pfa.get_meta_rdms(rdm_df, None, **{**kwargs, "num_perms": 0})
    originals = first[first["perm"] == "orig_data"]
    for a, b in zip(originals["matrix"], plain["matrix"], strict=True):
        np.testing.assert_array_equal(a, b)


def one_metric_and_activation(rdm_df):
    keep = (rdm_df["dissim_metric"] == "corr") & (rdm_df["activation_type"] == "unit_level")
    return rdm_df[keep]


def test_each_permuted_cell_compares_two_entry_permutations_of_the_sub_rdms():
    rdm_df = first_order_frame(n_objs=3, colors=("a", "b", "c"), layers=("conv1",), seed=3)
    rdm_df = one_metric_and_activation(rdm_df)
    meta = pfa.get_meta_rdms(
        rdm_df, None, ["obj"], grouping_variables=["layer"], num_perms=4,
        dissim_metrics=["euclidean_distance"], random_state=1, verbose=False,
    )
    matrices = list(rdm_df["matrix"])
    orders = list(itertools.permutations(range(3)))
    upper = np.triu_indices(3, 1)
    for matrix in meta["matrix"][meta["perm"] != "orig_data"]:
        for i, j in itertools.combinations(range(3), 2):
            candidates = [
                np.linalg.norm(matrices[i][np.ix_(p, p)][upper] - matrices[j][np.ix_(q, q)][upper])
                for p in orders
                for q in orders
            ]
            assert np.min(np.abs(np.array(candidates) - matrix[i, j])) < 1e-12


def test_rows_that_are_all_nan_are_dropped_pairwise():
    rdm_df = first_order_frame(n_objs=5, colors=tuple("abcde"), layers=("conv1",), seed=4)
    rdm_df = one_metric_and_activation(rdm_df)
    matrices = [m.copy() for m in rdm_df["matrix"]]
    for index, entry in [(1, 2), (3, 2), (4, 0)]:  # entry undefined in RDMs 1, 3 and 4
        matrices[index][entry, :] = np.nan
        matrices[index][:, entry] = np.nan
        matrices[index][entry, entry] = 0.0
    matrices[2][0, 1] = matrices[2][1, 0] = np.nan  # a single undefined cell
    rdm_df = rdm_df.assign(matrix=matrices)
    meta = pfa.get_meta_rdms(
        rdm_df, None, ["obj"], grouping_variables=["layer"],
        dissim_metrics=["corr", "euclidean_distance"], verbose=False,
    )
    for _, row in meta.iterrows():
        expected = pair_loop_meta(matrices, row["dissim_metric"])
        np.testing.assert_allclose(row["matrix"], expected, rtol=1e-10, equal_nan=True)
        assert np.isnan(row["matrix"][2, 0]) and not np.isnan(row["matrix"][1, 3])


def test_custom_pairwise_metric(rdm_df):
    def l1(x, y):
        return float(np.abs(x - y).sum())

    meta = pfa.get_meta_rdms(
        rdm_df, None, ["obj"], grouping_variables=["layer", "activation_type", "dissim_metric"],
        dissim_metrics=[("l1", l1)], verbose=False,
    )
    row = meta.iloc[0]
    conditions = {
        "layer": row["layer"],
        "activation_type": row["activation_type"],
        "dissim_metric": row["dissim_metric_sub"],
    }
    matrices = rows_for(rdm_df, conditions, ["obj"], row["entry_keys"])
    np.testing.assert_allclose(row["matrix"], pair_loop_meta(matrices, l1))
    assert row["dissim_metric"] == "l1"


def test_entry_var_subsets(rdm_df):
    grouping = ["layer", "activation_type", "dissim_metric"]
    meta = pfa.get_meta_rdms(
        rdm_df, None, ["obj"], grouping_variables=grouping, verbose=False,
        entry_var_subsets=[("all", "all"), ("pair", ["obj000", ("obj002",)])],
    )
    assert list(meta["entry_var_subset"][:2]) == ["all", "pair"]
    full, pair = meta.iloc[0], meta.iloc[1]
    assert pair["entry_keys"] == (("obj000",), ("obj002",))
    np.testing.assert_array_equal(pair["matrix"], full["matrix"][np.ix_([0, 2], [0, 2])])
    two_variables = pfa.get_meta_rdms(
        rdm_df, None, ["obj", "layer"], grouping_variables=["activation_type", "dissim_metric"],
        entry_var_subsets=[("conv", [("obj001", "conv1"), ("obj003", "conv1"), ("obj003", "fc1")])],
        verbose=False,
    )
    expected = (("obj001", "conv1"), ("obj003", "conv1"), ("obj003", "fc1"))
    assert two_variables["entry_keys"][0] == expected
    with pytest.raises(ValueError, match="obj999"):
        pfa.get_meta_rdms(rdm_df, None, ["obj"], grouping_variables=grouping,
                          entry_var_subsets=[("bad", ["obj999"])], verbose=False)


def test_errors_name_the_problem(rdm_df):
    grouping = ["layer", "activation_type", "dissim_metric"]
    with pytest.raises(ValueError, match=r"\('obj000',\).*2 times.*'layer': 'conv1'"):
        pfa.get_meta_rdms(rdm_df, None, ["obj"], grouping_variables=grouping[::2], verbose=False)
    changed_keys = list(rdm_df["entry_keys"])
    changed_keys[0] = (("000",), ("090",), ("180",), ("999",))
    changed = rdm_df.assign(entry_keys=changed_keys)
    with pytest.raises(ValueError, match=r"same entries.*'999'.*'270'"):
        pfa.get_meta_rdms(changed, None, ["obj"], grouping_variables=grouping, verbose=False)
    with pytest.raises(pfa.InvalidInputError, match=r"\['shape', 'size'\]"):
        pfa.get_meta_rdms(rdm_df, None, ["shape"], grouping_variables=["size"], verbose=False)
    with pytest.raises(pfa.InvalidInputError, match=r"\['entry_labels'\]"):
        pfa.get_meta_rdms(rdm_df.drop(columns="entry_labels"), None, ["obj"], verbose=False)
    with pytest.raises(ValueError, match="'pearson'"):
        pfa.get_meta_rdms(rdm_df, None, ["obj"], dissim_metrics=["pearson"], verbose=False)
    with pytest.raises(ValueError, match="num_perms"):
        pfa.get_meta_rdms(rdm_df, None, ["obj"], num_perms=-1, verbose=False)
    with pytest.raises(ValueError, match="both"):
        pfa.get_meta_rdms(rdm_df, None, ["obj"], grouping_variables=["obj", "layer"], verbose=False)


def test_saving_and_silence(rdm_df, tmp_path, capsys):
    grouping = ["layer", "activation_type", "dissim_metric"]
    for name in ["meta.parquet", "meta.pkl"]:
        meta = pfa.get_meta_rdms(
            rdm_df, tmp_path / name, ["obj"], grouping_variables=grouping, verbose=False
        )
        loaded = pfa.load_frame(tmp_path / name, allow_pickle=name.endswith(".pkl"))
        assert list(loaded.columns) == list(meta.columns)
        assert loaded["entry_keys"][0] == meta["entry_keys"][0]
        assert loaded["dissim_rankings"][0] == meta["dissim_rankings"][0]
        for a, b in zip(loaded["matrix"], meta["matrix"]):
            np.testing.assert_array_equal(a, b)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    with pytest.raises(ValueError, match="meta.txt"):
        pfa.get_meta_rdms(
            rdm_df, tmp_path / "meta.txt", ["obj"], grouping_variables=grouping, verbose=False
        )


def test_subset_rdm_df(rdm_df):
    before = copy.deepcopy(rdm_df)
    subset = pfa.subset_rdm_df(rdm_df, ["270", ("000",)])
    assert_frames_identical(before, rdm_df)
    for (_, row), (_, original) in zip(subset.iterrows(), rdm_df.iterrows()):
        assert row["entry_keys"] == (("000",), ("270",))
        assert row["entry_labels"] == ({"color": "000"}, {"color": "270"})
        np.testing.assert_array_equal(row["matrix"], original["matrix"][np.ix_([0, 3], [0, 3])])
        assert sorted(row["dissim_rankings"]) == [0, 1]
    three = pfa.subset_rdm_df(rdm_df, ["090", "180", "270"])
    for _, row in three.iterrows():
        m = row["matrix"]
        first_pair = np.unravel_index(np.argmax(m), m.shape)
        assert set(row["dissim_rankings"][:2]) == {int(i) for i in first_pair}
    with pytest.raises(ValueError, match="'999'"):
        pfa.subset_rdm_df(rdm_df, ["999"])
    with pytest.raises(pfa.InvalidInputError, match="entry_keys"):
        pfa.subset_rdm_df(rdm_df.drop(columns="entry_keys"), ["000"])


def tolerance_loop(matrix, labels):
    """The original's loop: for each variable, distances where only it changes vs only the other."""
    variables = list(labels[0])
    out = {}
    for main, comp in [(variables[0], variables[1]), (variables[1], variables[0])]:
        same_main, diff_main = [], []
        for i, j in itertools.product(range(len(labels)), repeat=2):
            main_same = labels[i][main] == labels[j][main]
            comp_same = labels[i][comp] == labels[j][comp]
            if main_same and not comp_same:
                same_main.append(matrix[i, j])
            elif comp_same and not main_same:
                diff_main.append(matrix[i, j])
        d_diff, d_same = np.mean(diff_main), np.mean(same_main)
        out[comp + "_tolerance"] = (d_diff - d_same) / (d_diff + d_same)
    return out


def test_compute_tolerances_matches_the_original_loop():
    rng = np.random.default_rng(9)
    labels = tuple({"obj": o, "color": c} for o in "xyz" for c in ["r", "g", "b", "w"])
    frame = pd.DataFrame(
        {
            "matrix": [random_rdm(rng, 12) for _ in range(3)],
            "entry_labels": [labels] * 3,
            "layer": ["a", "b", "c"],
        }
    )
    before = copy.deepcopy(frame)
    result = pfa.compute_tolerances(frame)
    assert_frames_identical(before, frame)
    added = ["obj_tolerance", "color_tolerance"]
    assert list(result.columns) == ["matrix", "entry_labels", "layer", *added]
    for (_, row), matrix in zip(result.iterrows(), frame["matrix"]):
        expected = tolerance_loop(matrix, labels)
        assert row["obj_tolerance"] == pytest.approx(expected["obj_tolerance"])
        assert row["color_tolerance"] == pytest.approx(expected["color_tolerance"])
    one_variable = pd.DataFrame(
        {"matrix": [random_rdm(rng, 3)], "entry_labels": [({"c": 1}, {"c": 2}, {"c": 3})]}
    )
    with pytest.raises(ValueError, match="exactly two"):
        pfa.compute_tolerances(one_variable)


def test_permutations_of_a_group_do_not_depend_on_other_groups(rdm_df):
    kwargs = dict(grouping_variables=["layer", "activation_type", "dissim_metric"], num_perms=3,
                  random_state=5, verbose=False)
    whole = pfa.get_meta_rdms(rdm_df, None, ["obj"], **kwargs)
    one_layer = rdm_df[rdm_df["layer"] == rdm_df["layer"].iloc[-1]]
    alone = pfa.get_meta_rdms(one_layer, None, ["obj"], **kwargs)
    same = whole[whole["layer"] == rdm_df["layer"].iloc[-1]].reset_index(drop=True)
    assert len(same) == len(alone) > 0
    for a, b in zip(same["matrix"], alone["matrix"]):
        np.testing.assert_array_equal(a, b)


def test_a_meta_rdm_of_one_entry_is_refused(rdm_df):
    one = rdm_df[rdm_df["obj"] == rdm_df["obj"].iloc[0]]
    with pytest.raises(pfa.InvalidInputError, match=r"one entry.*at least 2"):
        pfa.get_meta_rdms(one, None, ["obj"], grouping_variables=["layer", "activation_type",
                                                                   "dissim_metric"], verbose=False)
