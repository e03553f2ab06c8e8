"""Operators on existing runs: info, load view, rename, delete, repair,
compare, assign and charts. Each reads the form, calls the SDK and shows
the result; every failure reaches the user (see :mod:`.base`)."""

import json

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering import record, runs
from .base import GeneratorOperator, long_run_config, run_with_progress
from .calling import call
from .forms import add_choice, add_existing_run_input


def _pct(x):
    return None if x is None else f"{x:.1%}"


def _info_rows(run):
    names = run.results.get("names") or {}
    groups = {c: g for g, cs in (run.results.get("groups") or {}).items()
              for c in cs}
    external = (run.results.get("external") or {}).get("per_cluster", {})
    rows = []
    for c in run.clusters:
        entry = external.get(str(c["id"]), {})
        rows.append({
            "cluster": c["id"],
            "name": (names.get(str(c["id"])) or {}).get("name") or "",
            "group": groups.get(c["id"], ""),
            "size": c["size"],
            "mean_dist": round(c["mean_dist"], 4),
            "top_class": entry.get("top_class", ""),
            "purity": _pct(entry.get("purity")) or "",
        })
    return rows


def run_summary(run):
    """The facts of a run as the App shows them: fractions as
    percentages, the time of each stage, the choice of k and quality."""
    m = run.metrics
    external = run.results.get("external") or {}
    sweep = run.sweep
    timings = run.results.get("timings") or {}
    changes = run.changes()
    return {
        "run_key": run.key,
        "timestamp": run.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        if run.timestamp else None,
        "method": run.config["method"],
        "n_clusters": m["n_clusters"],
        "clustered": f"{m['n_samples'] - m['n_noise']:,} of "
                     f"{m['n_samples']:,} ({_pct(m['fraction_clustered'])})",
        "noise": m["n_noise"],
        "reassigned": run.results.get("reassigned") or 0,
        "skipped": run.skipped["count"],
        "assigned": changes["assigned"],
        "deleted_since": changes["deleted"],
        "added_since": changes["added"] or 0,
        "quality": {k: round(v, 4) if isinstance(v, float) else v
                    for k, v in m.items()
                    if k in ("silhouette", "davies_bouldin",
                             "calinski_harabasz", "dbcv", "inertia", "bic")
                    and v is not None},
        "against_ground_truth": {k: round(external[k], 4) for k in
                                 ("ari", "ami", "homogeneity",
                                  "completeness", "v_measure", "purity")
                                 if external.get(k) is not None},
        "choice_of_k": (f"{sweep['parameter']} = {sweep['chosen']} by "
                        f"{sweep['criterion']} (tried "
                        f"{sweep['candidates'][0]} to "
                        f"{sweep['candidates'][-1]} on "
                        f"{sweep['fitted_on']:,} samples, "
                        f"{sweep['seconds']:.1f}s)") if sweep else
        "given",
        "sweep": [{"value": c, "score": None if s is None else round(s, 4),
                   "clusters": f}
                  for c, s, f in zip(sweep["candidates"], sweep["scores"],
                                     sweep["clusters_found"])]
        if sweep else [],
        "timings": [{"stage": k, "seconds": round(v, 2)}
                    for k, v in timings.items()],
        "sampled": ", ".join(f"{k} on {v:,}" for k, v in
                             (m.get("sampled") or {}).items()) or "nothing",
        "clusters": _info_rows(run),
        "config": json.loads(json.dumps(run.config, default=str)),
    }


class GetClusteringRunInfo(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="get_clustering_run_info",
            label="Get clustering run info",
            description="Config, quality, timings and clusters of a run",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_existing_run_input(ctx, inputs)
        return types.Property(inputs,
                              view=types.View(label="Clustering run info"))

    def execute(self, ctx):
        return run_summary(runs.load_run(ctx.dataset, ctx.params["run_key"]))

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name, label in (
            ("run_key", "Run key"),
            ("timestamp", "Created (UTC)"),
            ("method", "Method"),
            ("clustered", "Clustered"),
            ("choice_of_k", "Number of clusters"),
            ("sampled", "Computed on a sample"),
        ):
            outputs.str(name, label=label)
        for name, label in (("n_clusters", "Clusters"), ("noise", "Noise"),
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


def _run_of_view(ctx):
    keys = runs.list_runs(ctx.dataset)
    from .forms import run_on_screen

    return run_on_screen(ctx, keys)


class LoadClustersView(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="load_clusters_view",
            label="Load clusters view",
            description="Show a run's samples grouped by cluster",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is not None and key in runs.list_runs(ctx.dataset):
            run = runs.load_run(ctx.dataset, key)
            names = run.results.get("names") or {}
            choices = types.DropdownView()
            choices.add_choice("all", label="All clusters, as groups")
            for c in run.clusters:
                name = (names.get(str(c["id"])) or {}).get("name")
                choices.add_choice(
                    str(c["id"]), label=f"Cluster {c['id']}"
                    + (f" {name}" if name else "") + f" ({c['size']})")
            if run.metrics["n_noise"]:
                choices.add_choice(
                    "-1", label=f"Noise ({run.metrics['n_noise']})")
            inputs.enum("cluster", [c.value for c in choices.choices],
                        default="all", required=False, label="Clusters",
                        view=choices)
            if run.metrics["n_noise"]:
                inputs.bool("include_noise", default=True, required=False,
                            label="Include noise")
        return types.Property(inputs,
                              view=types.View(label="Load clusters view"))

    def execute(self, ctx):
        cluster = ctx.params.get("cluster", "all")
        key = ctx.params["run_key"]
        view = runs.load_run(ctx.dataset, key).clusters_view(
            cluster=None if cluster in (None, "all") else int(cluster),
            include_noise=ctx.params.get("include_noise", True),
        )
        ctx.ops.set_view(view=view)
        what = "all clusters" if cluster in (None, "all") else (
            "the noise" if cluster == "-1" else f"cluster {cluster}")
        ctx.ops.notify(f"Showing {what} of run '{key}'", variant="info")
        return {"groups_or_samples": len(view)}

    def __call__(self, sample_collection, run_key, cluster=None,
                 include_noise=True):
        params = {"run_key": run_key, "include_noise": include_noise,
                  "cluster": "all" if cluster is None else str(cluster)}
        return call(self, sample_collection, params).result


class RenameClusteringRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="rename_clustering_run",
            label="Rename clustering run",
            description="Rename a run and the fields named after it",
            dynamic=True,
            view_target=False,
        )

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
                    record.validate_run_key(new)
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

    def execute(self, ctx):
        key, new = ctx.params["run_key"], ctx.params["new_run_key"]
        on_screen = _run_of_view(ctx) == key
        runs.rename_run(ctx.dataset, key, new)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            if on_screen:
                # The view named the old fields; show the same under the new.
                ctx.ops.set_view(
                    view=runs.load_run(ctx.dataset, new).clusters_view())
            ctx.ops.notify(f"Renamed run '{key}' to '{new}'",
                           variant="success")
        return {"run_key": new}

    def __call__(self, sample_collection, run_key, new_run_key,
                 delegate=False, delegation_target=None):
        params = {"run_key": run_key, "new_run_key": new_run_key}
        return call(self, sample_collection, params, delegate,
                    delegation_target).result


class DeleteClusteringRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="delete_clustering_run",
            label="Delete clustering run",
            description="Delete a run and the fields it wrote",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is not None and key in runs.list_runs(ctx.dataset):
            fields = runs.load_run(ctx.dataset, key).fields
            inputs.view("warning", types.Warning(
                label=f"You are about to delete run '{key}'",
                description="This removes the run, its 2-D map and its "
                "fields: " + ", ".join(fields.values())))
        return types.Property(inputs,
                              view=types.View(label="Delete clustering run"))

    def execute(self, ctx):
        key = ctx.params["run_key"]
        on_screen = _run_of_view(ctx) == key
        runs.delete_run(ctx.dataset, key)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            if on_screen:
                # The view grouped by fields that no longer exist.
                ctx.ops.clear_view()
            ctx.ops.notify(f"Deleted run '{key}' and its fields",
                           variant="success")
        return {"deleted": key}

    def __call__(self, sample_collection, run_key, delegate=False,
                 delegation_target=None):
        return call(self, sample_collection, {"run_key": run_key}, delegate,
                    delegation_target).result


class RepairClusteringRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="repair_clustering_runs",
            label="Repair clustering runs",
            description="Remove what killed runs left behind",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view("about", types.Notice(
            label="Finishes or undoes writes that a stopped process left, "
            "and removes their leftovers. Runs are never touched."))
        return types.Property(inputs,
                              view=types.View(label="Repair clustering runs"))

    def execute(self, ctx):
        report = runs.repair(ctx.dataset)
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            ctx.ops.notify(
                f"Repaired: {len(report)} change(s)" if report else
                "Nothing to repair", variant="success")
        return {"report": report}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.list("report", types.String(), label="What was done")
        return types.Property(outputs, view=types.View(label="Repair"))

    def __call__(self, sample_collection):
        return call(self, sample_collection, {}).result


class CompareClusteringRuns(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compare_clustering_runs",
            label="Compare clustering runs",
            description="ARI, AMI and which clusters become which",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        a = add_existing_run_input(ctx, inputs, name="run_a", label="Run A")
        if a is None:
            return types.Property(inputs)
        keys = [k for k in runs.list_runs(ctx.dataset) if k != a]
        if not keys:
            prop = inputs.view("one_run", types.Warning(
                label="Only one clustering run", description="Compute "
                "another run to compare with"))
            prop.invalid = True
            return types.Property(inputs)
        add_choice(inputs, "run_b", {k: k for k in keys}, keys[-1], "Run B")
        b = ctx.params.get("run_b", keys[-1])
        if b in keys:
            inputs.str("show_cell", required=False,
                       label="Show the samples of one cell",
                       description="'A,B': cluster A of run A and cluster B "
                       "of run B; leave empty for the table only")
        return types.Property(inputs,
                              view=types.View(label="Compare clustering runs"))

    def execute(self, ctx):
        from ..clustering.compare import compare_runs

        c = compare_runs(ctx.dataset, ctx.params["run_a"],
                         ctx.params["run_b"])
        cell = (ctx.params.get("show_cell") or "").strip()
        if cell:
            a, b = (int(v) for v in cell.split(","))
            ctx.ops.set_view(view=c.cell_view(a, b))
        rows = [{"cluster_a": k, "size": v["size"], "best_match_b": v["match"],
                 "count": v["count"], "share": _pct(v["share"])}
                for k, v in c.best_matches("a").items()]
        return {"ari": round(c.ari, 4), "ami": round(c.ami, 4),
                "shared": c.shared, "matches": rows,
                "table": {str(a): {str(b): n for b, n in row.items()}
                          for a, row in sorted(c.table.items())}}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.float("ari", label="ARI")
        outputs.float("ami", label="AMI")
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


class AssignClusters(GeneratorOperator):
    @property
    def config(self):
        return long_run_config(
            "assign_clusters", "Place new samples into a run",
            "Put samples a run has not seen into its clusters",
            scheduled_by_default=False)

    def resolve_input(self, ctx):
        from ..clustering.assign import ASSIGNER

        inputs = types.Object()
        inputs.view_target(ctx, action_description="Place")
        add_existing_run_input(ctx, inputs)
        add_choice(inputs, "assigner", {
            "auto": "The method's own prediction",
            "knn": "A vote of the nearest clustered samples",
            "svm": "An SVM trained on the clustered samples",
        }, ASSIGNER.default, "Assigner")
        return types.Property(inputs, view=types.View(
            label="Place new samples into a run"))

    def run(self, ctx):
        from ..clustering.assign import assign_clusters
        from .forms import flat_samples

        key = ctx.params["run_key"]
        run = yield from run_with_progress(
            ctx, assign_clusters, samples=flat_samples(ctx.target_view()),
            run_key=key, assigner=ctx.params.get("assigner", "auto"))
        last = (run.results.get("assigned") or {}).get("last") or {}
        if not ctx.delegated:
            yield ctx.trigger("reload_dataset")
        yield ctx.trigger("notify", {
            "message": f"Placed {last.get('placed', 0):,} sample(s) into run "
            f"'{key}' ({last.get('noise', 0):,} as noise)",
            "variant": "success"})

    def __call__(self, sample_collection, run_key, assigner="auto",
                 delegate=False, delegation_target=None):
        return call(self, sample_collection, {
            "run_key": run_key, "assigner": assigner}, delegate,
            delegation_target)


class PlotClusteringRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="plot_clustering_run",
            label="Plot clustering run",
            description="Scatter, boundaries, montage or principal axes",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        from ..clustering.charts import KINDS

        inputs = types.Object()
        add_existing_run_input(ctx, inputs)
        add_choice(inputs, "kind", {k: k for k in KINDS}, "scatter", "Chart")
        return types.Property(inputs,
                              view=types.View(label="Plot clustering run"))

    def execute(self, ctx):
        from ..clustering.charts import plot_run

        path = plot_run(ctx.dataset, ctx.params["run_key"],
                        kind=ctx.params.get("kind", "scatter"))
        return {"path": path}

    def resolve_output(self, ctx):
        from urllib.parse import quote

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

