"""Adding a clustering method is one class and one registry line: a method
defined only here gets its App form, its command-line parameters and help,
validation, a stored run and the placing of new samples, with no other
change to the package."""

import numpy as np
import pytest

import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext

import image_clustering as ic
from image_clustering.algorithms.clusterers import CLUSTERERS, Clusterer
from image_clustering.algorithms.kmeans import nearest
from image_clustering.units import Param

PLUGIN = "@image-clustering/clustering"


class NearestSeeds(Clusterer):
    """Each sample goes to the nearest of a few samples drawn at random."""

    name = "nearest_seeds"
    label = "Nearest seeds"
    description = "Each sample joins the nearest of n random samples"
    count_params = ("n_seeds",)
    predicts = True
    PARAMS = (Param("n_seeds", "int", 3, "How many seeds", min=1),)
    FITTED = ("centres_", "seeds_")
    keeps_model = False

    def _fit(self, X, params, progress=None):
        rng = np.random.default_rng(self.random_state)
        self.seeds_ = X[rng.choice(len(X), params["n_seeds"], replace=False)]
        return nearest(X, self.seeds_)[0]

    def predict_with_strength(self, X):
        return nearest(X, self.seeds_)[0], None


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(CLUSTERERS, NearestSeeds.name, NearestSeeds)


def _inputs(dataset, params):
    op = foo.get_operator(f"{PLUGIN}/compute_clusters")
    ctx = ExecutionContext(request_params=dict(
        dataset_name=dataset.name, view=dataset.view()._serialize(),
        params=params))
    return op.resolve_input(ctx).type.properties


def test_a_method_registered_in_one_line_is_everywhere(registered,
                                                       two_groups):
    # validation, by name, before any work
    with pytest.raises(ic.ParamError, match="'n_seeds' must be an integer"):
        ic.compute_clusters(two_groups, "bad", method="nearest_seeds",
                            n_seeds=0)

    # the App's form offers it, with its parameter, checked as typed
    props = _inputs(two_groups, {})
    assert "nearest_seeds" in [c.value for c in props["method"].view.choices]
    props = _inputs(two_groups, {"method": "nearest_seeds",
                                 "method_nearest_seeds__n_seeds": 100})
    assert props["method_nearest_seeds__n_seeds"].invalid
    assert "larger than the number of samples" in \
        props["method_nearest_seeds__n_seeds"].error_message

    # the command line lists it with its parameter, and names the flag
    from image_clustering.cli import build_parser, main

    help_text = build_parser()._subparsers._group_actions[0].choices[
        "cluster"].format_help()
    assert "nearest_seeds: Each sample joins" in help_text
    assert "n_seeds: How many seeds; default 3" in help_text

    # a run through the App's operator is stored, then new samples are
    # placed through its own prediction
    fit = two_groups.take(16, seed=3)
    fit.tag_samples("fit")
    result = foo.execute_operator(f"{PLUGIN}/compute_clusters", dict(
        view=two_groups.match_tags("fit"),
        params={"run_key": "seeds", "method": "nearest_seeds",
                "method_nearest_seeds__n_seeds": 2, "reducer": "none",
                "embedder": "pixels", "embedder_pixels__size": 8,
                "map": "none", "view_target": "CURRENT_VIEW"}))
    assert result.error is None, result.error
    run = ic.load_run(two_groups, "seeds")
    assert run.config["method"] == "nearest_seeds"
    assert run.config["params"]["n_seeds"] == 2
    assert len(two_groups.exists("seeds_cluster")) == 16
    run = ic.assign_clusters(two_groups, "seeds")
    assert run.results["assigned"]["last"]["placed"] == 8
    assert len(two_groups.exists("seeds_cluster")) == 24

    # and from the command line, on the same dataset
    two_groups.persistent = True
    code = main(["cluster", "--dataset", two_groups.name, "--run-key",
                 "cli_seeds", "--method", "nearest_seeds", "--param",
                 "n_seeds=2", "--reducer", "none", "--map", "none",
                 "--quiet"])
    assert code == 0
    assert ic.load_run(two_groups, "cli_seeds").config["method"] == \
        "nearest_seeds"
