"""Operators on a layered run's tree: move its cut (a whole layer, one
layer coarser or finer, one cluster into its children, clusters into
their parent), act on its merge suggestions, and carry one run's
decisions onto another. Each reads the form,
calls the run's own method and shows the new clusters; the form says
beforehand what the move will give, or why it cannot be made."""

import fiftyone.operators.types as types

from ..clustering import api
from ..clustering.hierarchy import check_layered, merge_plan
from ..units import ParamError
from . import app
from .base import ActionOperator, failed_output, quick_config
from .calling import call
from .forms import (
    add_choice,
    add_existing_run_input,
    add_multi_choice,
    cluster_label,
)

MOVES = {
    "layer": "A whole layer",
    "coarser": "Coarser: one layer up",
    "finer": "Finer: one layer down",
    "expand": "Expand one cluster into its children",
    "collapse": "Collapse clusters into their parent",
}

DECISIONS = {
    "accept": "Accept: merge them",
    "reject": "Reject: never suggest them again",
}

#: Suggestions the form lists.
SUGGESTIONS = 10


def cut_description(run):
    """Where the cut is: ``layer 2 of 0-4 · 6 clusters``, or the count of a
    cut that mixes layers."""
    layer = run.tree.layer_of(run.cut)
    where = f"layer {layer} of 0-{len(run.layers) - 1}" if layer is not \
        None else "between layers"
    return f"{where} · {len(run.cut)} clusters"


def layer_choices(run):
    """Layer (a string) -> ``Layer 2: 6 clusters``, finest first."""
    now = run.tree.layer_of(run.cut)
    return {str(entry["layer"]): f"Layer {entry['layer']}: "
            f"{entry['n_clusters']} clusters"
            + (" (now)" if entry["layer"] == now else "")
            for entry in run.layers}


def expandable_choices(run):
    """The clusters of the cut that have finer clusters, as pickers show
    them."""
    tree = run.tree
    return {str(c["id"]): cluster_label(run, c["id"]) for c in run.clusters
            if tree.children(c["id"])}


def planned_cut(run, action, params):
    """The cut that ``action`` would give (raises what the run's method
    would raise), to show before Execute."""
    tree, cut = run.tree, run.cut
    if action == "layer":
        return run.layers[int(params.get("layer"))]["nodes"]
    if action == "coarser":
        return tree.coarser(cut)
    if action == "finer":
        return tree.finer(cut)
    if action == "expand":
        return tree.expand(cut, int(params["cluster"]))
    new_cut, _, _ = tree.collapse(cut, chosen_clusters(params))
    return new_cut


def move(run, action, params):
    """Moves the run's cut as ``action`` says; returns the updated run."""
    if action == "layer":
        return run.set_cut(layer=int(params["layer"]))
    if action == "coarser":
        return run.coarser()
    if action == "finer":
        return run.finer()
    if action == "expand":
        return run.expand(int(params["cluster"]))
    if action == "collapse":
        return run.collapse(chosen_clusters(params))
    raise ParamError(f"action: no move {action!r}; choose one of "
                     + ", ".join(MOVES), "action")


def chosen_clusters(params, name="clusters"):
    return [int(c) for c in params.get(name) or []]


def show_new_clusters(ctx, run, message):
    """The grid shows ``run``'s clusters as they are now, in their
    colours; open panels follow."""
    if ctx.delegated:
        return
    app.reload(ctx, ctx.dataset, app.field_names(ctx.dataset))
    app.show_colors(ctx, ctx.dataset)
    ctx.ops.set_view(view=run.clusters_view())
    app.show_on_tiles(ctx, add=app.tile_fields(run))
    app.refresh_panels(ctx)
    app.notify(ctx, message)


class MoveCut(ActionOperator):
    words = {"run_key": "Run", "action": "Move", "layer": "Layer",
             "cluster": "Cluster to expand",
             "clusters": "Clusters to collapse", "cut": "Move"}
    choices = {"action": MOVES}

    @property
    def config(self):
        return quick_config("move_cut", "Move cut",
                            "Show a layered run's clusters one layer finer "
                            "or coarser, or expand or collapse clusters")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run = api.load_run(ctx.dataset, key)
        view = types.View(label="Move cut")
        try:
            check_layered(run)
        except ParamError as e:
            prop = inputs.view("flat", types.Error(
                label="This run has one layer",
                description=self.render_error(e)))
            prop.invalid = True
            # What a call from Python reports.
            prop.error_message = self.render_error(e)
            return types.Property(inputs, view=view)
        inputs.view("now", types.Notice(
            label=f"Run '{key}' shows {cut_description(run)}"))
        add_choice(inputs, "action", MOVES, "layer", "Move")
        action = ctx.params.get("action") or "layer"
        if action == "layer":
            layer = run.tree.layer_of(run.cut)
            add_choice(inputs, "layer", layer_choices(run),
                       str(run.results["hierarchy"]["default_layer"]
                           if layer is None else layer), "Layer")
        elif action == "expand":
            options = expandable_choices(run)
            if options:
                add_choice(inputs, "cluster", options, next(iter(options)),
                           "Cluster to expand")
        elif action == "collapse":
            add_multi_choice(
                inputs, "clusters", {str(c["id"]): cluster_label(run, c["id"])
                                     for c in run.clusters},
                "Clusters to collapse", "One cluster: it joins its "
                "parent's other clusters; several: they and every cluster "
                "beside them under their common parent become that parent",
                required=True)
        self._preview(ctx, inputs, run, action)
        return types.Property(inputs, view=view)

    def _preview(self, ctx, inputs, run, action):
        params = {"layer": ctx.params.get("layer") or str(
            run.results["hierarchy"]["default_layer"]),
            **{k: ctx.params.get(k) for k in ("cluster", "clusters")}}
        if action == "expand" and not params["cluster"]:
            params["cluster"] = next(iter(expandable_choices(run)), None)
        if action == "expand" and params["cluster"] is None:
            self._cannot(inputs, "Every cluster of the cut is as fine as the "
                         "tree goes; move to a finer layer instead")
            return
        if action == "collapse" and not params["clusters"]:
            return
        try:
            cut = planned_cut(run, action, params)
        except ParamError as e:
            self._cannot(inputs, self.render_error(e))
            return
        added = sorted(set(cut) - set(run.cut))
        inputs.view("preview", types.Notice(
            label=f"Will show {len(cut)} clusters"
            + (": new " + ", ".join(cluster_label(run, c) for c in added[:6])
               + (" ..." if len(added) > 6 else "") if added else "")))

    @staticmethod
    def _cannot(inputs, message):
        prop = inputs.view("cannot", types.Error(label="Cannot move the cut",
                                                 description=message))
        prop.invalid = True
        prop.error_message = message

    def act(self, ctx):
        p = ctx.params
        key = p["run_key"]
        run = api.load_run(ctx.dataset, key)
        check_layered(run)
        run = move(run, p.get("action") or "layer", p)
        show_new_clusters(ctx, run, f"Run '{key}' now shows "
                          f"{cut_description(run)}")
        return {"cut": run.cut, "n_clusters": len(run.cut),
                "layer": run.tree.layer_of(run.cut)}

    def __call__(self, sample_collection, run_key, action="layer", layer=None,
                 cluster=None, clusters=None):
        return call(self, sample_collection, {
            "run_key": run_key, "action": action,
            "layer": None if layer is None else str(layer),
            "cluster": None if cluster is None else str(cluster),
            "clusters": [str(c) for c in clusters] if clusters else None,
        }).result


def suggestion_value(suggestion):
    return ",".join(str(c) for c in suggestion["clusters"])


def suggestion_label(run, suggestion):
    """``Cluster 3: cats (41) + Cluster 5 (12) · score 0.48``."""
    return " + ".join(cluster_label(run, c) for c in suggestion["clusters"]) \
        + f" · score {suggestion['score']:.2f}"


def suggestions_table(run, suggestions):
    """The suggestions as a markdown table: the pair, score and reason."""
    lines = ["| Clusters | Score | Why |", "|---|---|---|"]
    for s in suggestions:
        pair = " + ".join(cluster_label(run, c) for c in s["clusters"])
        lines.append(f"| {pair} | {s['score']:.2f} | {s['reason']} |")
    return "\n".join(lines)


def merge_outcome(run, clusters, name=None):
    """What accepting the merge of ``clusters`` does, in a sentence."""
    how, parent = merge_plan(run, clusters)
    pair = " and ".join(map(str, clusters))
    if how == "collapse" and run.results.get("hierarchy"):
        return f"Clusters {pair} become their parent, " + \
            cluster_label(run, parent)
    return f"Clusters {pair} go into one group" + (
        f", '{name}'" if name else "")


class MergeSuggestions(ActionOperator):
    words = {"run_key": "Run", "suggestion": "Suggestion",
             "clusters": "Suggestion", "decision": "Decision",
             "name": "Group name"}
    choices = {"decision": DECISIONS}

    @property
    def config(self):
        return quick_config("merge_suggestions", "Merge suggestions",
                            "Pairs of clusters that are probably one "
                            "concept: accept or reject one")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        view = types.View(label="Merge suggestions")
        run = api.load_run(ctx.dataset, key)
        try:
            suggestions = run.suggest_merges(n=SUGGESTIONS, per_cluster=0)
        except Exception as e:
            prop = inputs.view("cannot", types.Error(
                label="Cannot suggest merges",
                description=self.render_error(e)))
            prop.invalid = True
            return types.Property(inputs, view=view)
        if not suggestions:
            prop = inputs.view("none", types.Notice(
                label=f"No merges to suggest for run '{key}'"))
            prop.invalid = True
            return types.Property(inputs, view=view)
        inputs.md(suggestions_table(run, suggestions), name="table")
        options = {suggestion_value(s): suggestion_label(run, s)
                   for s in suggestions}
        add_choice(inputs, "suggestion", options, next(iter(options)),
                   "Suggestion")
        add_choice(inputs, "decision", DECISIONS, "accept", "Decision")
        chosen = ctx.params.get("suggestion") or next(iter(options))
        if (ctx.params.get("decision") or "accept") == "accept" and \
                chosen in options:
            clusters = [int(c) for c in chosen.split(",")]
            if merge_plan(run, clusters)[0] == "group" or \
                    not run.results.get("hierarchy"):
                inputs.str("name", required=False, label="Group name",
                           description="Empty: the clusters' names (or "
                           "ids) joined")
            inputs.view("outcome", types.Notice(label=merge_outcome(
                run, clusters, ctx.params.get("name"))))
        return types.Property(inputs, view=view)

    def act(self, ctx):
        p = ctx.params
        key = p["run_key"]
        clusters = [int(c) for c in str(p["suggestion"]).split(",")]
        run = api.load_run(ctx.dataset, key)
        pair = " and ".join(map(str, clusters))
        if (p.get("decision") or "accept") == "reject":
            run.reject_merge(clusters)
            if not ctx.delegated:
                app.refresh_panels(ctx)
                app.notify(ctx, f"Clusters {pair} will not be suggested "
                           "again")
            return {"clusters": clusters, "decision": "reject"}
        outcome = merge_outcome(run, clusters, p.get("name"))
        run = run.accept_merge(clusters, name=p.get("name") or None)
        show_new_clusters(ctx, run, f"Merged: {outcome}")
        return {"clusters": clusters, "decision": "accept",
                "cut": run.cut, "groups": run.groups}

    def __call__(self, sample_collection, run_key, clusters,
                 decision="accept", name=None):
        return call(self, sample_collection, {
            "run_key": run_key, "decision": decision, "name": name,
            "suggestion": ",".join(str(c) for c in clusters)}).result


class CarryDecisions(ActionOperator):
    words = {"run_key": "From run", "from_key": "From run",
             "to_key": "To run", "carry_from": "From run"}

    @property
    def config(self):
        return quick_config("carry_decisions", "Carry decisions over",
                            "Carry the names, groups and rejected merges of "
                            "one run onto another's clusters, by member "
                            "overlap")

    def resolve_input(self, ctx):
        inputs = types.Object()
        source = add_existing_run_input(ctx, inputs, name="from_key",
                                        label=self.words["from_key"])
        if source is None:
            return types.Property(inputs)
        keys = [k for k in api.list_runs(ctx.dataset) if k != source]
        if not keys:
            prop = inputs.view("one_run", types.Warning(
                label="Only one clustering run", description="Compute "
                "another run to carry its decisions onto"))
            prop.invalid = True
            return types.Property(inputs)
        add_choice(inputs, "to_key", {k: k for k in keys}, keys[-1],
                   self.words["to_key"])
        return types.Property(inputs, view=types.View(
            label="Carry decisions over"))

    def act(self, ctx):
        p = ctx.params
        report = api.carry_over(ctx.dataset, p["from_key"], p["to_key"])
        run = api.load_run(ctx.dataset, p["to_key"])
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, app.field_names(ctx.dataset))
            app.refresh_panels(ctx)
            app.notify(ctx, "Decisions carried " + report["lines"][0])
        return {"summary": report["lines"][0],
                "lines": "\n".join(report["lines"][1:]),
                "names": len(run.names)}

    def resolve_output(self, ctx):
        failed = failed_output(ctx)
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("summary", label="Carried")
        outputs.str("lines", label="Cluster by cluster",
                    view=types.TextView())
        return types.Property(outputs, view=types.View(
            label="Decisions carried over"))

    def __call__(self, sample_collection, from_key, to_key):
        return call(self, sample_collection, {
            "from_key": from_key, "to_key": to_key}).result
