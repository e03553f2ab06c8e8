"""Operators on existing runs: info, load view, rename, delete, repair,
compare, assign and charts. Each reads the form, calls the SDK and shows
the result; every failure reaches the user in the form's words (see
:mod:`.base`)."""

from urllib.parse import quote

import fiftyone.operators.types as types

from ..algorithms.fitted import ASSIGNER
from ..clustering import api
from ..clustering.assign import samples_to_place
from ..clustering.charts import available_kinds, plot_run
from ..storage import runs as stored
from ..storage import schema
from ..units import ParamError
from . import app
from .base import (
    ActionOperator,
    failed_output,
    GeneratorOperator,
    long_run_config,
    quick_config,
    run_with_progress,
)
from .calling import call
from .forms import (
    add_choice,
    add_existing_run_input,
    cluster_choices,
    flat_samples,
    run_on_screen,
)


def run_of_view(ctx):
    """The clustering run the App shows now, if any."""
    return run_on_screen(ctx, stored.records_of(ctx.dataset,
                                                (schema.RUN_KIND,)))


class GetClusteringRunInfo(ActionOperator):
    words = {"run_key": "Run"}

    @property
    def config(self):
        return quick_config("get_clustering_run_info",
                            "Get clustering run info",
                            "Config, quality, timings and clusters of a run")

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_existing_run_input(ctx, inputs)
        return types.Property(inputs,
                              view=types.View(label="Clustering run info"))

    def act(self, ctx):
        summary = api.load_run(ctx.dataset, ctx.params["run_key"]).summary()
        return {**summary,
                "timings": [{"stage": k, "seconds": v}
                            for k, v in summary["timings"].items()]}

    def resolve_output(self, ctx):
        failed = failed_output(ctx)
        if failed is not None:
            return failed
        outputs = types.Object()
        for name, label in (
            ("run_key", "Run key"),
            ("timestamp", "Created (UTC)"),
            ("method", "Method"),
            ("source", "Clustered space"),
            ("headline", "Result"),
            ("clustered", "Clustered"),
            ("choice_of_k", "Number of clusters"),
            ("sampled", "Computed on a sample"),
        ):
            outputs.str(name, label=label)
        for name, label in (("n_clusters", "Clusters"), ("n_noise", "Noise"),
                            ("reassigned", "Noise assigned to a cluster"),
                            ("skipped", "Could not be read"),
                            ("assigned", "Placed into the run since"),
                            ("deleted_since", "Deleted since"),
                            ("added_since", "Added to its view since")):
            outputs.int(name, label=label)
        outputs.obj("quality", label="Quality", view=types.JSONView())
        outputs.obj("against_ground_truth", label="Against ground truth",
                    view=types.JSONView())
        table = types.TableView()
        for column, label in (("cluster", "Cluster"), ("name", "Name"),
                              ("group", "Group"), ("size", "Size"),
                              ("mean_dist", "Mean distance to centre"),
                              ("top_class", "Top class"),
                              ("purity", "Purity")):
            table.add_column(column, label=label)
        outputs.list("clusters", types.Object(), label="Clusters",
                     view=table)
        sweep = types.TableView()
        for column, label in (("value", "Candidate"), ("score", "Score"),
                              ("clusters", "Clusters found")):
            sweep.add_column(column, label=label)
        outputs.list("sweep", types.Object(), label="Choice of k",
                     view=sweep)
        timings = types.TableView()
        timings.add_column("stage", label="Stage")
        timings.add_column("seconds", label="Seconds")
        outputs.list("timings", types.Object(), label="Time per stage",
                     view=timings)
        outputs.obj("config", label="Config", view=types.JSONView())
        return types.Property(outputs,
                              view=types.View(label="Clustering run"))

    def __call__(self, sample_collection, run_key):
        return call(self, sample_collection, {"run_key": run_key}).result


class LoadClustersView(ActionOperator):
    words = {"run_key": "Run", "cluster": "Clusters",
             "include_noise": "Include noise"}

    @property
    def config(self):
        return quick_config("load_clusters_view", "Load clusters view",
                            "Show a run's samples grouped by cluster")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is not None:
            run = api.load_run(ctx.dataset, key)
            choices = {"all": "All clusters, as groups",
                       **cluster_choices(run)}
            add_choice(inputs, "cluster", choices, "all", "Clusters")
            if run.metrics["n_noise"]:
                inputs.bool("include_noise", default=True, required=False,
                            label="Include noise")
        return types.Property(inputs,
                              view=types.View(label="Load clusters view"))

    def act(self, ctx):
        cluster = ctx.params.get("cluster", "all")
        key = ctx.params["run_key"]
        run = api.load_run(ctx.dataset, key)
        chosen = None if cluster in (None, "all") else \
            run.check_clusters([cluster], "cluster")[0]
        view = run.clusters_view(
            cluster=chosen, include_noise=ctx.params.get("include_noise",
                                                         True))
        ctx.ops.set_view(view=view)
        app.show_on_tiles(ctx, add=app.tile_fields(run))
        what = "all clusters" if chosen is None else (
            "the noise" if chosen < 0 else f"cluster {chosen}")
        ctx.ops.notify(f"Showing {what} of run '{key}'", variant="info")
        return {"groups_or_samples": len(view)}

    def __call__(self, sample_collection, run_key, cluster=None,
                 include_noise=True):
        params = {"run_key": run_key, "include_noise": include_noise,
                  "cluster": "all" if cluster is None else str(cluster)}
        return call(self, sample_collection, params).result


class RenameClusteringRun(ActionOperator):
    words = {"run_key": "Run", "new_run_key": "New run key"}

    @property
    def config(self):
        return quick_config("rename_clustering_run", "Rename clustering run",
                            "Rename a run and the fields named after it")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is not None:
            prop = inputs.str("new_run_key", required=True,
                              label="New run key")
            new = ctx.params.get("new_run_key")
            if new:
                message = None
                try:
                    schema.validate_run_key(new)
                except ValueError:
                    message = ("Run keys must be valid variable names "
                               "(letters, digits, underscores; not starting "
                               "with a digit or '_')")
                else:
                    if ctx.dataset.has_run(new):
                        message = (f"A run named '{new}' already exists; "
                                   "choose another name")
                if message:
                    prop.invalid = True
                    prop.error_message = message
        return types.Property(inputs,
                              view=types.View(label="Rename clustering run"))

    def act(self, ctx):
        key, new = ctx.params["run_key"], ctx.params["new_run_key"]
        on_screen = run_of_view(ctx) == key
        fields_before = app.field_names(ctx.dataset)
        api.rename_run(ctx.dataset, key, new)
        if not ctx.delegated:
            run = api.load_run(ctx.dataset, new)
            app.reload(ctx, ctx.dataset, fields_before,
                       keep_filters=False)
            app.show_colors(ctx, ctx.dataset)
            if on_screen:
                # The view named the old fields; show the same under the new.
                ctx.ops.set_view(view=run.clusters_view())
            app.show_on_tiles(ctx, add=app.tile_fields(run) if on_screen
                              else (),
                              remove=app.removed_fields(ctx.dataset,
                                                        fields_before))
            app.refresh_panels(ctx)
            app.notify(ctx, f"Renamed run '{key}' to '{new}'")
        return {"run_key": new, "renamed_from": key}

    def __call__(self, sample_collection, run_key, new_run_key,
                 delegate=False, delegation_target=None):
        params = {"run_key": run_key, "new_run_key": new_run_key}
        return call(self, sample_collection, params, delegate,
                    delegation_target).result


class DeleteClusteringRun(ActionOperator):
    words = {"run_key": "Run"}

    @property
    def config(self):
        return quick_config("delete_clustering_run", "Delete clustering run",
                            "Delete a run and the fields it wrote")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is not None:
            fields = stored.records_of(
                ctx.dataset, (schema.RUN_KIND,))[key][1].get("fields", {})
            inputs.view("warning", types.Warning(
                label=f"You are about to delete run '{key}'",
                description="This removes the run, its 2-D map and its "
                "fields: " + ", ".join(fields.values())))
        return types.Property(inputs,
                              view=types.View(label="Delete clustering run"))

    def act(self, ctx):
        key = ctx.params["run_key"]
        on_screen = run_of_view(ctx) == key
        fields_before = app.field_names(ctx.dataset)
        api.delete_run(ctx.dataset, key)
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, fields_before,
                       keep_filters=False)
            app.show_colors(ctx, ctx.dataset)
            if on_screen:
                # The view grouped by fields that no longer exist.
                ctx.ops.clear_view()
            app.show_on_tiles(ctx, remove=app.removed_fields(
                ctx.dataset, fields_before))
            app.refresh_panels(ctx)
            app.notify(ctx, f"Deleted run '{key}' and its fields")
        return {"deleted": key}

    def __call__(self, sample_collection, run_key, delegate=False,
                 delegation_target=None):
        return call(self, sample_collection, {"run_key": run_key}, delegate,
                    delegation_target).result


NOTHING_TO_REPAIR = "Nothing to repair: every run is whole"


class RepairClusteringRuns(ActionOperator):
    @property
    def config(self):
        return quick_config("repair_clustering_runs", "Repair clustering runs",
                            "Remove what killed runs left behind")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view("about", types.Notice(
            label="Finishes or undoes writes that a stopped process left, "
            "and removes their leftovers. Runs are never touched."))
        return types.Property(inputs,
                              view=types.View(label="Repair clustering runs"))

    def act(self, ctx):
        fields_before = app.field_names(ctx.dataset)
        report = api.repair(ctx.dataset)
        summary = (f"Repaired: {len(report)} change(s)" if report else
                   NOTHING_TO_REPAIR)
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, fields_before,
                       keep_filters=False)
            app.show_colors(ctx, ctx.dataset)
            app.refresh_panels(ctx)
            app.notify(ctx, summary)
        return {"summary": summary, "report": report}

    def resolve_output(self, ctx):
        failed = failed_output(ctx)
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("summary", label="Result")
        if (ctx.results or {}).get("report"):
            outputs.list("report", types.String(), label="What was done")
        return types.Property(outputs, view=types.View(label="Repair"))

    def __call__(self, sample_collection):
        return call(self, sample_collection, {}).result


class CompareClusteringRuns(ActionOperator):
    words = {"run_key": "Run A", "run_a": "Run A", "run_b": "Run B",
             "show_cell": "Show the samples of one cell"}

    @property
    def config(self):
        return quick_config("compare_clustering_runs",
                            "Compare clustering runs",
                            "ARI, AMI and which clusters become which")

    def resolve_input(self, ctx):
        inputs = types.Object()
        a = add_existing_run_input(ctx, inputs, name="run_a", label="Run A")
        if a is None:
            return types.Property(inputs)
        keys = [k for k in api.list_runs(ctx.dataset) if k != a]
        if not keys:
            prop = inputs.view("one_run", types.Warning(
                label="Only one clustering run", description="Compute "
                "another run to compare with"))
            prop.invalid = True
            return types.Property(inputs)
        add_choice(inputs, "run_b", {k: k for k in keys}, keys[-1], "Run B")
        inputs.str("show_cell", required=False,
                   label=self.words["show_cell"],
                   description="'A,B': cluster A of run A and cluster B of "
                   "run B; leave empty for the table only")
        return types.Property(inputs,
                              view=types.View(label="Compare clustering runs"))

    def act(self, ctx):
        c = api.compare_runs(ctx.dataset, ctx.params["run_a"],
                             ctx.params["run_b"])
        cell = (ctx.params.get("show_cell") or "").strip()
        if cell:
            try:
                a, b = (int(v) for v in cell.split(","))
            except ValueError:
                raise ParamError(f"show_cell: give two cluster ids as "
                                 f"'A,B', got {cell!r}", "show_cell")
            ctx.ops.set_view(view=c.cell_view(a, b))
        rows = [{"cluster_a": k, "size": v["size"], "best_match_b": v["match"],
                 "count": v["count"], "share": f"{v['share']:.1%}"}
                for k, v in c.best_matches("a").items()]
        facts = c.to_dict()
        return {"summary": c.describe(), "ari": facts["ari"],
                "ami": facts["ami"], "shared": c.shared, "matches": rows,
                "table": facts["table"]}

    def resolve_output(self, ctx):
        failed = failed_output(ctx)
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("summary", label="Agreement")
        outputs.int("shared", label="Samples both runs clustered")
        table = types.TableView()
        for column, label in (("cluster_a", "Cluster of A"), ("size", "Size"),
                              ("best_match_b", "Best match in B"),
                              ("count", "In common"), ("share", "Share")):
            table.add_column(column, label=label)
        outputs.list("matches", types.Object(), label="Which clusters "
                     "become which", view=table)
        outputs.obj("table", label="Contingency table",
                    view=types.JSONView())
        return types.Property(outputs, view=types.View(label="Comparison"))

    def __call__(self, sample_collection, run_a, run_b, show_cell=None):
        return call(self, sample_collection, {
            "run_a": run_a, "run_b": run_b, "show_cell": show_cell}).result


def assign_problem(run):
    """Why the App cannot place new samples into ``run``, or ``None``."""
    if run.patches_field:
        return (f"Run '{run.key}' clustered objects; new objects cannot be "
                "placed into it")
    if not (run.results.get("fitted") or {}).get("file"):
        return (f"Run '{run.key}' was computed before runs kept their fitted "
                "stages; compute it again")
    spec = run.config.get("embedder") or {}
    if any(isinstance(v, str) and v.startswith("<")
           for v in (spec.get("params") or {}).values()):
        return (f"Run '{run.key}' embedded with a Python object, which the "
                "App cannot load; place new samples from Python with "
                "ic.assign_clusters and the same embedder")
    return None


class AssignClusters(GeneratorOperator):
    words = {"run_key": "Run", "assigner": "Assigner", "embedder": "Run"}

    @property
    def config(self):
        return long_run_config(
            "assign_clusters", "Assign clusters",
            "Place samples a run has not seen into its clusters",
            scheduled_by_default=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Place")
        key = add_existing_run_input(ctx, inputs)
        add_choice(inputs, "assigner", {
            "auto": "The method's own prediction",
            "knn": "A vote of the nearest clustered samples",
            "svm": "An SVM trained on the clustered samples",
        }, ASSIGNER.default, "Assigner")
        if key is not None:
            run = api.load_run(ctx.dataset, key)
            problem = assign_problem(run)
            if problem:
                prop = inputs.view("cannot", types.Error(
                    label="This run cannot place new samples here",
                    description=problem))
                prop.invalid = True
                return types.Property(inputs,
                                      view=types.View(label="Assign clusters"))
            todo = len(samples_to_place(flat_samples(ctx.target_view()),
                                        run))
            inputs.view("todo", types.Notice(
                label=f"{todo:,} sample(s) to place" if todo else
                "Nothing to place: every sample here already has a cluster "
                f"of run '{key}'"))
        return types.Property(inputs, view=types.View(label="Assign clusters"))

    def run(self, ctx):
        key = ctx.params["run_key"]
        fields_before = app.field_names(ctx.dataset)
        run = yield from run_with_progress(
            ctx, api.assign_clusters, samples=flat_samples(ctx.target_view()),
            run_key=key, assigner=ctx.params.get("assigner", "auto"))
        last = (run.results.get("assigned") or {}).get("last") or {}
        if not ctx.delegated:
            # The view and the sidebar's filters stay.
            yield from app.reload(ctx, ctx.dataset, fields_before)
            yield from app.refresh_panels(ctx)
        yield from app.notify(
            ctx, f"Placed {last.get('placed', 0):,} sample(s) into run "
            f"'{key}' ({last.get('noise', 0):,} as noise)")

    def __call__(self, sample_collection, run_key, assigner="auto",
                 delegate=False, delegation_target=None):
        return call(self, sample_collection, {
            "run_key": run_key, "assigner": assigner}, delegate,
            delegation_target)


CHART_LABELS = {
    "scatter": "Scatter: the 2-D map, coloured by cluster",
    "boundaries": "Boundaries: where new samples would be placed",
    "montage": "Montage: the images nearest each centre",
    "axes": "Axes: images along the principal components",
}


class PlotClusteringRun(ActionOperator):
    words = {"run_key": "Run", "kind": "Chart"}

    @property
    def config(self):
        return quick_config("plot_clustering_run", "Plot clustering run",
                            "Scatter, boundaries, montage or principal axes")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is not None:
            kinds = available_kinds(api.load_run(ctx.dataset, key))
            add_choice(inputs, "kind", {k: CHART_LABELS[k] for k in kinds},
                       kinds[0], "Chart")
        return types.Property(inputs,
                              view=types.View(label="Plot clustering run"))

    def act(self, ctx):
        path = plot_run(ctx.dataset, ctx.params["run_key"],
                        kind=ctx.params.get("kind", "scatter"))
        if not ctx.delegated:
            app.refresh_panels(ctx)
        return {"path": path}

    def resolve_output(self, ctx):
        failed = failed_output(ctx)
        if failed is not None:
            return failed
        outputs = types.Object()
        path = (ctx.results or {}).get("path")
        if path:
            outputs.view("chart", types.ImageView(), default=
                         f"/media?filepath={quote(path)}")
        outputs.str("path", label="Saved as")
        return types.Property(outputs, view=types.View(label="Chart"))

    def __call__(self, sample_collection, run_key, kind="scatter"):
        return call(self, sample_collection,
                    {"run_key": run_key, "kind": kind}).result
