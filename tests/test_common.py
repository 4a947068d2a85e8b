"""One set of checks run over every public function (as scikit-learn's test_public_functions).

Every public function whose signature has one of the checked parameters must be
in the registry below, so a new function cannot slip past these checks.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

import pytorch_feature_analysis as pfa
from tiny import tiny_model, to_tensor64

INT_PARAMETERS = {"num_perms": 0, "batch_size": 1, "num_cores": 1}
FRAME_PARAMETERS = ("rdm_df", "df", "input_df")
LAYER_PARAMETERS = ("which_layers", "which_layer_dict")


def images(count=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 1, size=(16, 16, 3)) for _ in range(count)]


def image_sets():
    pictures = images()
    return [({"obj": "a"}, {(str(i),): p for i, p in enumerate(pictures[:2])}, ("color",), []),
            ({"obj": "b"}, {(str(i),): p for i, p in enumerate(pictures[2:])}, ("color",), [])]


def design():
    pictures = images(4)
    cells = [(a, b) for a in ("x", "y") for b in ("u", "v")]
    return ({"study": "t"}, dict(zip(cells, pictures)), ("f1", "f2"))


def image_list():
    pictures = images(8)
    return [{"path": p, "colour": "rg"[i % 2], "shape": "ab"[(i // 2) % 2]}
            for i, p in enumerate(pictures)]


def rdm_frame():
    rng = np.random.default_rng(1)
    rows = []
    for layer in ("conv1", "fc1"):
        for obj in ("a", "b", "c"):
            matrix = rng.random((3, 3))
            matrix = matrix + matrix.T
            np.fill_diagonal(matrix, 0)
            rows.append({"layer": layer, "obj": obj, "matrix": matrix,
                         "entry_keys": (("r",), ("g",), ("b",)),
                         "entry_labels": ({"color": "r"}, {"color": "g"}, {"color": "b"}),
                         "dissim_rankings": (0, 1, 2)})
    return pd.DataFrame(rows)


MODEL = tiny_model()
CALLS = {
    "get_rdms": lambda **kw: pfa.get_rdms(
        image_sets(), {"tiny": MODEL}, None, transform=to_tensor64, verbose=False,
        **{"which_layers": ["fc1"], **kw}),
    "plan_rdms": lambda **kw: pfa.plan_rdms(
        image_sets(), {"tiny": MODEL}, transform=to_tensor64, **{"which_layers": ["fc1"], **kw}),
    "get_activations": lambda **kw: pfa.get_activations(
        images(), MODEL, ["fc1"], transform=to_tensor64, verbose=False, **kw),
    "iter_activations": lambda **kw: list(pfa.iter_activations(
        images(), MODEL, ["fc1"], transform=to_tensor64, verbose=False, **kw)),
    "unit_anova": lambda **kw: pfa.unit_anova(
        design(), ("tiny", MODEL), **{"which_layer_dict": ["fc1"], **kw},
        transform=to_tensor64, verbose=False),
    "run_2way_svm_analysis": lambda **kw: pfa.run_2way_svm_analysis(
        image_list(), "colour", "shape", [], {"tiny": MODEL}, kw.pop("which_layers", ["fc1"]),
        "t", None, transform=to_tensor64, verbose=False, **kw),
    "fit_encoding_models": lambda **kw: pfa.fit_encoding_models(
        images(), {"tiny": MODEL}, pd.DataFrame({"v": np.arange(4.0)}),
        kw.pop("which_layers", ["fc1"]), cv=2, transform=to_tensor64, verbose=False, **kw),
    "get_meta_rdms": lambda **kw: pfa.get_meta_rdms(
        kw.pop("rdm_df", rdm_frame()), None, ["obj"], grouping_variables=["layer"],
        verbose=False, **kw),
    "parallel_process": lambda **kw: pfa.parallel_process(pow, [{"base": 2, "exp": 3}], **kw),
    "subset_rdm_df": lambda **kw: pfa.subset_rdm_df(kw.get("df", rdm_frame()), ["r", "g"]),
    "compute_tolerances": lambda **kw: pfa.compute_tolerances(kw["input_df"]),
    "rdm_mds": lambda **kw: pfa.rdm_mds(kw["rdm_df"]),
    "plot_rdm": lambda **kw: pfa.plot_rdm(kw["rdm_df"]),
    "plot_rdm_grid": lambda **kw: pfa.plot_rdm_grid(kw["rdm_df"], col="layer"),
    "to_rsatoolbox": lambda **kw: pfa.to_rsatoolbox(kw["rdm_df"]),
    "compare_to_targets": lambda **kw: pfa.compare_to_targets(kw["rdm_df"], rdm_frame()),
    "compare_models": lambda **kw: pfa.compare_models(kw["rdm_df"], rdm_frame(), bootstrap=5),
    "attribution_maps": lambda **kw: pfa.attribution_maps(
        images(2), MODEL, "conv2", [0], transform=to_tensor64, verbose=False, **kw),
    "empirical_receptive_fields": lambda **kw: pfa.empirical_receptive_fields(
        images(2), MODEL, "conv2", [0], transform=to_tensor64, verbose=False, **kw),
    "minimal_parcel_images": lambda **kw: pfa.minimal_parcel_images(
        images(1), MODEL, "conv2", [0], parcel_options={"n_segments": 4},
        transform=to_tensor64, verbose=False, **kw),
    "minimal_component_images": lambda **kw: pfa.minimal_component_images(
        images(1), MODEL, "conv2", [0], n_components=2, transform=to_tensor64, verbose=False,
        **kw),
}
ALIASES = {"compute_etas_for_model_and_imageset_fast": "unit_anova", "my_mds": "rdm_mds"}
# Generic frame helpers and writers take any frame: no column is required of them.
ANY_FRAME = {"df_subset", "df_filter", "df_filtsort", "df_agg", "df_pivot", "df_inds2cols",
             "save_frame"}


def public_functions_with(parameters):
    found = {}
    for name in pfa.__all__:
        obj = getattr(pfa, name)
        if callable(obj) and not inspect.isclass(obj):
            taken = [p for p in inspect.signature(obj).parameters if p in parameters]
            if taken:
                found[name] = taken
    return found


def test_every_function_with_a_checked_parameter_is_in_the_registry():
    wanted = set(public_functions_with([*INT_PARAMETERS, *FRAME_PARAMETERS, *LAYER_PARAMETERS]))
    missing = {name for name in wanted - ANY_FRAME if ALIASES.get(name, name) not in CALLS}
    assert missing == set()


INT_CASES = [(ALIASES.get(name, name), parameter)
             for name, parameters in public_functions_with(INT_PARAMETERS).items()
             if name not in ALIASES for parameter in parameters]


@pytest.mark.parametrize("function, parameter", INT_CASES)
@pytest.mark.parametrize("bad", [-1, True, 1.5, "2", None])
def test_bad_ints_name_the_called_function(function, parameter, bad):
    if bad == -1 and INT_PARAMETERS[parameter] < 0:
        pytest.skip("no lower bound")
    with pytest.raises(pfa.InvalidInputError, match=rf"'{parameter}' parameter of {function}\b"):
        CALLS[function](**{parameter: bad})


@pytest.mark.parametrize("function, parameter", INT_CASES)
def test_good_ints_are_accepted_including_numpy_ints(function, parameter):
    CALLS[function](**{parameter: np.int64(INT_PARAMETERS[parameter] + 1)})


FRAME_CASES = [(name, parameters[0])
               for name, parameters in public_functions_with(FRAME_PARAMETERS).items()
               if name not in ALIASES and name not in ANY_FRAME]


@pytest.mark.parametrize("function, parameter", FRAME_CASES)
def test_a_missing_column_is_the_one_exception_naming_it(function, parameter):
    frame = rdm_frame().iloc[:1].drop(columns=["matrix"])
    with pytest.raises(pfa.InvalidInputError, match=rf"{parameter}.*{function}.*'matrix'"):
        CALLS[function](**{parameter: frame})


@pytest.mark.parametrize("function, parameter", FRAME_CASES)
def test_a_non_frame_is_the_one_exception(function, parameter):
    with pytest.raises(pfa.InvalidInputError, match=rf"'{parameter}' parameter of {function}"):
        CALLS[function](**{parameter: [[0.0, 1.0], [1.0, 0.0]]})


LAYER_FORMS = [["fc1"], "fc1", ("fc1", 7), {"tiny": ["fc1"]}, {"tiny": "fc1"}]


def chosen_layers(function, form):
    if function == "get_rdms":
        frame = CALLS[function](which_layers=form)
        return sorted(set(frame["layer_label"]) - {("original_rgb", 0)})
    if function == "unit_anova":
        return list(CALLS[function](which_layer_dict=form).units)
    if function in ("run_2way_svm_analysis", "fit_encoding_models"):
        return sorted(set(CALLS[function](which_layers=form)["layer_label"]))
    return None


@pytest.mark.parametrize("function", ["get_rdms", "unit_anova", "run_2way_svm_analysis",
                                      "fit_encoding_models"])
def test_which_layers_forms_mean_the_same_in_every_analysis(function):
    chosen = [chosen_layers(function, form) for form in LAYER_FORMS]
    assert chosen == [[("fc1", 7)]] * len(LAYER_FORMS)
    everything = chosen_layers(function, None)
    assert ("fc1", 7) in everything and ("conv1", 1) in everything


@pytest.mark.parametrize("function", ["get_rdms", "unit_anova", "run_2way_svm_analysis",
                                      "fit_encoding_models"])
def test_which_layers_naming_an_unknown_model_or_layer_is_the_one_exception(function):
    parameter = "which_layer_dict" if function == "unit_anova" else "which_layers"
    with pytest.raises(pfa.InvalidInputError, match=rf"'{parameter}' parameter of {function}"):
        CALLS[function](**{parameter: {"other": ["fc1"]}})
    with pytest.raises(pfa.InvalidInputError, match="Unknown layer 'fc9'"):
        CALLS[function](**{parameter: ["fc9"]})
