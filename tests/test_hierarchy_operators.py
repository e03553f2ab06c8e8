"""The operators on a layered run's tree (Move cut, Merge suggestions, and
naming a cluster above the cut) through FiftyOne's own executor, forms
included, on a real dataset of grey images whose six shades pair up into
three coarser clusters."""

import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionContext, ExecutionError

import image_clustering as ic
from conftest import write_gray
from image_clustering.operators.panel import INDENT

PLUGIN = "@image-clustering/clustering"
SHADES = (20, 50, 120, 150, 215, 245)


def _execute(name, dataset, params):
    result = foo.execute_operator(f"{PLUGIN}/{name}",
                                  dict(dataset=dataset, params=params))
    result.raise_exceptions()
    return result.result


def _inputs(name, dataset, params):
    op = foo.get_operator(f"{PLUGIN}/{name}")
    ctx = ExecutionContext(request_params=dict(
        dataset_name=dataset.name, view=dataset.view()._serialize(),
        params=params))
    return op.resolve_input(ctx).type.properties


def _choices(prop):
    return {c.value: c.label for c in prop.view.choices}


@pytest.fixture
def shades(make_dataset, tmp_path):
    """90 grey images in six shades, a layered run ``h`` of them (six
    clusters by default, under three parents) and a flat run ``flat``."""
    dataset = make_dataset([
        write_gray(tmp_path / f"{i}.png", SHADES[i % 6], size=32, noise=10,
                   seed=i) for i in range(90)])
    fast = dict(embedder={"name": "pixels", "size": 8}, reducer="none",
                map="none")
    ic.compute_clusters(dataset, "h", method="hierarchy", cut=6, **fast)
    ic.compute_clusters(dataset, "flat", method="kmeans", n_clusters=3,
                        **fast)
    return dataset


def _cut_in_fields(dataset, key="h"):
    dataset.reload()
    return sorted(dataset.distinct(f"{key}_cluster"))


def test_move_cut_lists_layers_with_counts_and_moves_to_one(shades):
    run = ic.load_run(shades, "h")
    props = _inputs("move_cut", shades, {"run_key": "h"})
    layers = _choices(props["layer"])
    assert layers == {
        str(e["layer"]): f"Layer {e['layer']}: {e['n_clusters']} clusters"
        + (" (now)" if e["layer"] == run.tree.layer_of(run.cut) else "")
        for e in run.layers}
    assert f"Run 'h' shows layer {run.tree.layer_of(run.cut)}" in \
        props["now"].view.label

    out = _execute("move_cut", shades, {"run_key": "h", "action": "layer",
                                         "layer": "0"})
    finest = sorted(run.layers[0]["nodes"])
    assert sorted(out["cut"]) == finest and out["layer"] == 0
    assert _cut_in_fields(shades) == finest


def test_coarser_finer_expand_and_collapse_move_the_cut_as_the_tree_says(
        shades):
    run = ic.load_run(shades, "h")
    tree, cut = run.tree, run.cut
    op = foo.get_operator(f"{PLUGIN}/move_cut")

    coarser = op(shades, "h", action="coarser")["cut"]
    assert sorted(coarser) == sorted(tree.coarser(cut))
    assert _cut_in_fields(shades) == sorted(coarser)
    assert sorted(op(shades, "h", action="finer")["cut"]) == \
        sorted(tree.finer(coarser))

    run = ic.load_run(shades, "h")
    parent = next(c for c in run.cut if tree.children(c))
    expanded = op(shades, "h", action="expand", cluster=parent)["cut"]
    assert set(tree.children(parent)) <= set(expanded)
    assert parent not in expanded

    collapsed = op(shades, "h", action="collapse",
                   clusters=tree.children(parent))["cut"]
    assert parent in collapsed
    assert _cut_in_fields(shades) == sorted(collapsed)


def test_the_app_colours_every_cluster_of_a_moved_cut(shades):
    """Node ids of a moved cut are not 0 to k-1; each still gets its
    colour, not one from the App's pool."""
    cut = foo.get_operator(f"{PLUGIN}/move_cut")(shades, "h",
                                                  action="coarser")["cut"]
    assert max(cut) >= len(cut)
    shades.reload()
    entry = next(f for f in shades.app_config.color_scheme.fields
                 if f["path"] == "h_cluster")
    colored = {v["value"] for v in entry["valueColors"]}
    assert {str(c) for c in cut} <= colored


def test_move_cut_refuses_a_flat_run_in_the_form_and_from_python(shades):
    props = _inputs("move_cut", shades, {"run_key": "flat"})
    assert props["flat"].invalid
    message = props["flat"].view.description
    assert message.startswith("Run: run 'flat' is flat")
    assert "method 'hierarchy'" in message
    assert "action" not in props
    with pytest.raises(ExecutionError, match="run 'flat' is flat"):
        foo.get_operator(f"{PLUGIN}/move_cut")(shades, "flat",
                                               action="coarser")


def test_the_form_says_why_a_move_cannot_be_made_before_execute(shades):
    last = len(ic.load_run(shades, "h").layers) - 1
    _execute("move_cut", shades, {"run_key": "h", "action": "layer",
                                  "layer": str(last)})
    props = _inputs("move_cut", shades, {"run_key": "h",
                                         "action": "coarser"})
    assert props["cannot"].invalid
    assert props["cannot"].view.description == \
        "Move: the cut is already the coarsest layer"
    props = _inputs("move_cut", shades, {"run_key": "h", "action": "finer"})
    assert not any(p.invalid for p in props.values())
    assert props["preview"].view.label.startswith("Will show ")
    assert _cut_in_fields(shades) == sorted(
        ic.load_run(shades, "h").layers[last]["nodes"])


def test_merge_suggestions_are_listed_and_one_is_accepted(shades):
    run = ic.load_run(shades, "h")
    top = run.suggest_merges(n=10, per_cluster=0)
    props = _inputs("merge_suggestions", shades, {"run_key": "h"})
    pair = ",".join(map(str, top[0]["clusters"]))
    assert list(_choices(props["suggestion"]))[0] == pair
    assert top[0]["reason"] in props["table"].default
    # The six shades pair up: the best pair is all of one parent's
    # children, so accepting shows that parent in their place.
    parent = int(run.tree.parent[top[0]["clusters"][0]])
    assert props["outcome"].view.label.startswith(
        f"Clusters {pair.replace(',', ' and ')} become their parent, "
        f"Cluster {parent}")
    out = _execute("merge_suggestions", shades, {
        "run_key": "h", "suggestion": pair, "decision": "accept"})
    assert parent in out["cut"]
    assert not set(top[0]["clusters"]) & set(out["cut"])
    assert parent in _cut_in_fields(shades)


def test_a_rejected_merge_leaves_the_list(shades):
    top = ic.load_run(shades, "h").suggest_merges(n=10, per_cluster=0)
    pair = ",".join(map(str, top[0]["clusters"]))
    foo.get_operator(f"{PLUGIN}/merge_suggestions")(
        shades, "h", top[0]["clusters"], decision="reject")
    props = _inputs("merge_suggestions", shades, {"run_key": "h"})
    assert pair not in _choices(props["suggestion"])
    assert _cut_in_fields(shades) == sorted(ic.load_run(shades, "h").cut)


def test_a_cluster_above_the_cut_is_offered_and_named(shades):
    run = ic.load_run(shades, "h")
    child = run.cut[0]
    parent = int(run.tree.parent[child])
    held = sorted(c for c in run.cut if run.tree.parent[c] == parent)
    props = _inputs("name_cluster", shades, {"run_key": "h"})
    label = _choices(props["cluster"])[str(parent)]
    assert label == (f"Cluster {parent} ({run.node(parent)['size']}) · "
                     "holds " + ", ".join(map(str, held)))
    foo.get_operator(f"{PLUGIN}/name_cluster")(shades, "h", parent, "dark")
    assert ic.load_run(shades, "h").name_of(parent) == "dark"
    # The name shows on the samples once the cut is moved to the parent.
    foo.get_operator(f"{PLUGIN}/move_cut")(shades, "h", action="collapse",
                                           clusters=held)
    shades.reload()
    assert set(shades.match({"h_cluster": parent}).distinct("h_label")) == \
        {"dark"}


def _panel_event(dataset, method, state, **params):
    """Runs the Clusters panel's ``method`` as the App does; returns the
    operations it asked the App for, by name."""
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


def _shown(output):
    """Every text of a rendered panel, and the names of its parts."""
    return "\n".join(_strings(output))


def _strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_the_panel_shows_the_cut_as_a_tree_and_the_merge_queue(shades):
    run = ic.load_run(shades, "h")
    state = {"run_key": "h", "run_id": run.run_id}
    output = _shown(_panel_event(shades, "on_load", state)[
        "show_panel_output"][-1]["output"])
    tree = run.tree
    above = {a for c in run.cut for a in tree.ancestors(c)[1:]}
    assert above
    for node in above:
        held = sorted(c for c in run.cut if node in tree.ancestors(c))
        line = (INDENT * tree.depth(node) + f"▾ **Cluster {node} "
                f"({run.node(node)['size']})** · holds "
                + ", ".join(map(str, held)))
        assert line in output
        for c in held:
            # each cluster of the cut is indented under every one above it
            row = INDENT * tree.depth(c) + f"└ **Cluster {c}**"
            assert output.index(row) > output.index(line)
    top = run.suggest_merges(n=1, per_cluster=0)[0]
    assert top["reason"] in output
    for c in top["clusters"]:
        assert f"side_{c}" in output
    assert "merge_0_buttons" in output


def test_a_flat_run_keeps_its_panel(shades):
    run = ic.load_run(shades, "flat")
    output = _shown(_panel_event(shades, "on_load", {
        "run_key": "flat", "run_id": run.run_id})["show_panel_output"][-1][
            "output"])
    assert "Merge suggestions" not in output and "holds" not in output
    assert "**Cluster 0** ·" in output


def test_the_panel_buttons_run_move_cut_and_merge_suggestions(shades):
    run = ic.load_run(shades, "h")
    state = {"run_key": "h", "run_id": run.run_id}
    asked = _panel_event(shades, "on_accept_merge", state, clusters="0,3")
    assert asked["merge_suggestions"] == [{
        "run_key": "h", "decision": "accept", "suggestion": "0,3"}]
    asked = _panel_event(shades, "on_collapse", state, clusters=[0, 3])
    assert asked["move_cut"] == [{
        "run_key": "h", "action": "collapse", "clusters": ["0", "3"]}]
    asked = _panel_event(shades, "on_coarser", state)
    assert asked["move_cut"] == [{"run_key": "h", "action": "coarser"}]


def test_carry_decisions_over_names_the_clusters_of_the_other_run(shades):
    ic.name_cluster(shades, "flat", 0, "darkest pair")
    props = _inputs("carry_decisions", shades, {"from_key": "flat"})
    assert _choices(props["to_key"]) == {"h": "h"}

    out = _execute("carry_decisions", shades, {"from_key": "flat",
                                                "to_key": "h"})
    assert out["summary"].startswith("from run 'flat':")
    run = ic.load_run(shades, "h")
    assert "darkest pair" in run.results["carried"]["lines"][1]
    # The flat run's cluster is a pair of shades: the parent of two
    # clusters of the cut takes its name.
    (carried,) = run.results["carried"]["carried"]
    node = carried["to"]
    assert run.name_of(node) == "darkest pair"
    assert node not in run.cut and run.node(node)["size"] == 30
    collapsed = run.collapse(run.tree.children(node))
    assert shades.count_values("h_label")["darkest pair"] == 30
    assert node in collapsed.cut


def test_the_compute_form_offers_to_carry_decisions_from_a_run(shades):
    props = _inputs("compute_clusters", shades, {"run_key": "again"})
    assert set(_choices(props["carry_from"])) == {"", "flat", "h"}
    ic.name_cluster(shades, "flat", 0, "darkest pair")
    from image_clustering.operators.compute import ComputeClusters  # noqa
    run = foo.get_operator(f"{PLUGIN}/compute_clusters")(
        shades, "again", method="kmeans", n_clusters=3,
        embedder={"name": "pixels", "size": 8}, reducer="none", map="none",
        carry_from="flat")
    assert run.results["carried"]["from"] == "flat"
    assert "darkest pair" in {v["name"] for v in run.names.values()}


def test_the_label_form_names_a_layer(shades):
    props = _inputs("label_clusters", shades, {"run_key": "h"})
    assert "layer" in props and "tell_apart" in props
