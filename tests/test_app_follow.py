"""The App follows the data and speaks with one vocabulary: every open
Clusters panel is refreshed after an operator changes a run, with the
state the App holds for it; a panel follows its run across a rename and
leaves a deleted one; the palette labels, the README and the panel's
buttons use the same words; and every operator is driven through its own
form by a browser test."""

import os
import re

import fiftyone.operators as foo
import yaml
from fiftyone.operators.executor import ExecutionContext, Executor

import image_clustering as ic
from image_clustering.operators import OPERATORS, app
from image_clustering.operators.panel import LABELS, follow_run
from image_clustering.storage import runs as stored
from image_clustering.storage import schema

from conftest import REPO

PLUGIN = "@image-clustering/clustering"
SPACES = {
    "_cls": "Space", "component_id": "root", "children": [
        {"_cls": "Space", "component_id": "left", "children": [
            {"_cls": "Panel", "component_id": "grid", "type": "Samples"}]},
        {"_cls": "Space", "component_id": "right", "children": [
            {"_cls": "Panel", "component_id": "p1", "type": "clusters_panel",
             "state": {"state": {"run_key": "k", "sort": "size_asc"}}},
            {"_cls": "Panel", "component_id": "emb",
             "type": "embeddings"}]}]}


def _labels():
    return {cls().config.name: cls().config.label for cls in OPERATORS}


def test_every_open_clusters_panel_is_refreshed_with_its_own_state():
    ctx = ExecutionContext(
        request_params={"spaces": SPACES, "params": {}},
        executor=Executor(),
        operator_uri=f"{PLUGIN}/tag_clusters")
    messages = app.refresh_panels(ctx)
    assert len(messages) == 1
    request = ctx.executor.to_json()["requests"][0]
    assert request == {
        "operator_uri": f"{PLUGIN}/clusters_panel",
        "params": {"__method__": "on_refresh", "panel_id": "p1",
                   "panel_state": {"run_key": "k", "sort": "size_asc"}}}


def test_no_panel_no_refresh():
    ctx = ExecutionContext(request_params={"params": {}},
                           executor=Executor(),
                           operator_uri=f"{PLUGIN}/tag_clusters")
    assert app.refresh_panels(ctx) == []


def test_a_panel_follows_its_run_by_id(two_groups):
    pixels = {"name": "pixels", "size": 8}
    run = ic.compute_clusters(two_groups, "a", embedder=pixels,
                              reducer="none", method="kmeans", n_clusters=2,
                              map="none")
    def records():
        return stored.records_of(two_groups, (schema.RUN_KIND,))

    assert follow_run(records(), "a", run.run_id) == ("a", None)
    ic.rename_run(two_groups, "a", "b")
    assert follow_run(records(), "a", run.run_id) == (
        "b", "Run 'a' is now called 'b'")
    again = ic.compute_clusters(two_groups, "b", embedder=pixels,
                                reducer="none", method="kmeans",
                                n_clusters=2, map="none", overwrite=True)
    assert again.run_id != run.run_id
    assert follow_run(records(), "b", run.run_id) == (
        "b", "Run 'b' was computed again")
    ic.delete_run(two_groups, "b")
    assert follow_run(records(), "b", again.run_id) == (
        None, "Run 'b' was deleted")


def test_palette_labels_readme_and_panel_buttons_use_the_same_words():
    labels = _labels()
    with open(os.path.join(REPO, "fiftyone.yml")) as f:
        listed = yaml.safe_load(f)["operators"]
    assert sorted(listed) == sorted(labels)
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    table = readme[readme.index("| operator | does |"):]
    table = table[:table.index("\n\n")]
    in_readme = set(re.findall(r"\*\*([^*]+)\*\*", table))
    assert in_readme == set(labels.values())
    for name, label in LABELS.items():
        assert labels[name] == label


def test_every_operator_is_completed_through_its_form_in_a_browser():
    """The browser suite opens each operator of the palette by its label
    (``open_operator(page, "<label>")``) and executes its form."""
    opened = set()
    tests = os.path.join(REPO, "tests")
    for name in os.listdir(tests):
        if name.startswith("test_ui_") and name.endswith(".py"):
            with open(os.path.join(tests, name)) as f:
                opened |= set(re.findall(r'open_operator\(page, "([^"]+)"\)',
                                         f.read()))
    assert set(_labels().values()) <= opened


def _panel_event(dataset, method, state, **params):
    """Runs the Clusters panel's ``method`` as the App does: with the
    panel's id and the state the App holds for it. Returns the operations
    the panel asked the App for, by name."""
    result = foo.execute_operator(
        f"{PLUGIN}/clusters_panel", dict(dataset=dataset, params={
            "__method__": method, "panel_id": "p", "panel_state": state,
            **params}))
    assert result.error is None, result.error
    out = {}
    for r in result.executor.to_json()["requests"]:
        out.setdefault(r["operator_uri"].rsplit("/", 1)[-1], []).append(
            r["params"])
    return out


def test_panel_buttons_of_a_renamed_or_deleted_run_never_fail(two_groups):
    """Defect 4: Show on a panel whose run was renamed behind its back
    shows the cluster of the renamed run; of a deleted run, it says so and
    goes back to the list of runs."""
    run = ic.compute_clusters(two_groups, "kmeans8", embedder={
        "name": "pixels", "size": 8}, reducer="none", method="kmeans",
        n_clusters=2, map="none")
    stale = {"run_key": "kmeans8", "run_id": run.run_id}
    ic.rename_run(two_groups, "kmeans8", "renamed")
    asked = _panel_event(two_groups, "on_show_cluster", stale, cluster=1)
    view = str(asked["set_view"][0]["view"])
    assert "renamed_cluster" in view and "kmeans8" not in view
    written = asked["patch_panel_state"][0]["state"]
    assert written["run_key"] == "renamed"
    assert written["note"] == "Run 'kmeans8' is now called 'renamed'"
    # the same run: its id stays
    assert written.get("run_id", run.run_id) == run.run_id

    ic.delete_run(two_groups, "renamed")
    stale = {"run_key": "renamed", "run_id": run.run_id}
    asked = _panel_event(two_groups, "on_show_cluster", stale, cluster=1)
    assert "set_view" not in asked
    assert asked["notify"][0]["message"] == "Run 'renamed' was deleted"
    output = str(asked["show_panel_output"][0]["output"])
    assert "No clustering runs yet" in output
