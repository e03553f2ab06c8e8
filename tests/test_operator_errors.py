"""Every error an operator shows is in its form's words: it names the field
to change by the form's label, says how to fix it as a click, and speaks
no Python. Each case below is a real failure of a real operator, executed
as the App executes it (the error comes back as a notification)."""

import re

import pytest

import fiftyone.operators as foo

from fiftyone.operators.executor import ExecutionContext, ExecutionError

import image_clustering as ic
from image_clustering.clustering.charts import plot_run
from image_clustering.operators import OPERATORS
from image_clustering.operators.words import describe
from image_clustering.storage.runs import RunNotFound
from image_clustering.units import ParamError

PLUGIN = "@image-clustering/clustering"
FAST = {"embedder": {"name": "pixels", "size": 8}, "reducer": "none",
        "method": "kmeans", "n_clusters": 2}

# What Python says and a form does not: keyword arguments, Python's
# constants, "pass ...".
PYTHON = re.compile(r"\b\w+=|\bpass\b|\bTrue\b|\bFalse\b|\bNone\b|"
                    r"\w+\((?!s\))")


@pytest.fixture
def runs(two_groups):
    ic.compute_clusters(two_groups, "k2", map="pca", **FAST)
    ic.compute_clusters(two_groups, "flat", map="none", **FAST)
    return two_groups


def _shown(name, dataset, params):
    """What the App shows when operator ``name`` is given ``params``: the
    form's reason for refusing them, or the failure's notification."""
    try:
        result = foo.execute_operator(f"{PLUGIN}/{name}",
                                      dict(dataset=dataset, params=params))
    except ExecutionError as e:
        return str(e).split("Reason: ", 1)[-1]
    notes = [r for r in result.executor.to_json()["requests"]
             if r["operator_uri"].endswith("notify")]
    assert notes, f"{name} did not fail"
    assert notes[-1]["params"]["variant"] == "error"
    message = notes[-1]["params"]["message"]
    label = _operator(name).config.label
    assert message.startswith(f"{label} failed: ")
    return message[len(label) + len(" failed: "):]


def _operator(name):
    return next(cls() for cls in OPERATORS if cls().config.name == name)


CASES = [
    # refused by the form, under the field
    ("compute_clusters", {"run_key": "k2", "embedder": "pixels",
                          "reducer": "none", "method": "kmeans",
                          "map": "none"},
     "Run 'k2' already exists; tick 'Overwrite' to replace it"),
    ("compute_clusters", {"run_key": "new", "embedder": "pixels",
                          "reducer": "none", "method": "kmeans",
                          "method_kmeans__n_clusters": "lots"},
     "Must be an integer ≥ 1 or 'auto', got 'lots'"),
    ("find_near_duplicates", {"run_key": "nd", "threshold": 3.0},
     "Must be a finite number ≥ 0.0 and ≤ 2.0, got 3.0"),
    ("rename_clustering_run", {"run_key": "k2", "new_run_key": "flat"},
     "A run named 'flat' already exists; choose another name"),
    # failed when run, in the notification
    ("tag_clusters", {"run_key": "k2", "clusters": ["0"], "tags": " , ",
                      "of_selected": False}, "Tags: give at least one tag"),
    ("group_clusters", {"run_key": "k2", "group": "people",
                        "clusters": []},
     "Clusters: group 'people' needs at least one cluster"),
    ("name_cluster", {"run_key": "k2", "cluster": "0", "name": " "},
     "Name: give a non-empty name"),
    ("compare_clustering_runs", {"run_a": "k2", "run_b": "flat",
                                 "show_cell": "x"},
     "Show the samples of one cell: give two cluster ids as 'A,B'"),
]


@pytest.mark.parametrize("name,params,expected", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_error_names_the_field_in_the_forms_words(runs, name, params,
                                                       expected):
    message = _shown(name, runs, params)
    assert message.startswith(expected), message
    assert not PYTHON.search(message), message


def test_labelling_over_its_limits_is_refused_in_the_forms_words(runs):
    op = foo.get_operator(f"{PLUGIN}/label_clusters")
    ctx = ExecutionContext(request_params=dict(
        dataset_name=runs.name, view=runs.view()._serialize(),
        params={"run_key": "k2", "max_requests": 1,
                "namer_openai__base_url": "http://127.0.0.1:9/v1"}))
    estimate = op.resolve_input(ctx).type.properties["estimate"]
    assert estimate.invalid
    assert estimate.view.description.startswith(
        "Max requests: this would send 2 request(s)")
    assert not PYTHON.search(estimate.view.description)


def test_exporting_twice_names_the_checkbox_to_tick(runs, tmp_path):
    params = {"run_key": "k2", "path": str(tmp_path / "out")}
    foo.execute_operator(f"{PLUGIN}/export_clusters",
                         dict(dataset=runs, params=params))
    message = _shown("export_clusters", runs, params)
    assert message.endswith("; tick 'Overwrite files that exist'")
    assert not PYTHON.search(message), message


def test_a_run_renamed_or_deleted_since_the_form_opened():
    error = RunNotFound("no clustering run 'kmeans8'")
    assert describe(error, {"run_key": "Run"}) == (
        "Run: no clustering run 'kmeans8' (it was renamed or deleted since "
        "the form opened); choose another")


def test_a_chart_the_run_cannot_draw_names_the_chart(runs):
    with pytest.raises(ParamError) as e:
        plot_run(runs, "flat", kind="scatter")
    message = describe(e.value, {"kind": "Chart"})
    assert message.startswith("Chart: run 'flat' has no 2-D map")
    assert message.endswith("choose another chart (montage, axes)")
    assert not PYTHON.search(message), message


def test_a_unit_parameter_falls_back_to_the_forms_own_label():
    error = ParamError("kmeans: 'n_init' must be an integer ≥ 1, got 0",
                       "n_init", owner="kmeans")
    assert describe(error) == "N init: must be an integer ≥ 1, got 0"


def test_other_parameters_named_in_a_message_get_their_labels():
    error = ParamError("leaks: give either split_field or 'splits'",
                       "splits")
    words = {"splits": "Split tags", "split_field": "Or split field"}
    assert describe(error, words) == (
        "Split tags: give either 'Or split field' or 'Split tags'")


def test_a_choice_fix_is_said_with_the_choices_label():
    error = ParamError("brain run 'k_map' already exists", "map", "none")
    assert describe(error, {"map": "2-D map"},
                    {"map": {"none": "No map"}}) == (
        "brain run 'k_map' already exists; set '2-D map' to 'No map'")
