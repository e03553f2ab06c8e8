"""Operators on existing runs: info, load view, rename, delete."""

import json

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering import record, runs
from .calling import call
from .forms import add_existing_run_input


def _info_rows(run):
    return [
        {
            "cluster": c["id"],
            "size": c["size"],
            "mean_dist": round(c["mean_dist"], 4),
        }
        for c in run.clusters
    ]


class GetClusteringRunInfo(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="get_clustering_run_info",
            label="Get clustering run info",
            description="Config, metrics and clusters of a clustering run",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_existing_run_input(ctx, inputs)
        return types.Property(inputs, view=types.View(label="Clustering run info"))

    def execute(self, ctx):
        run = runs.load_run(ctx.dataset, ctx.params["run_key"])
        m = run.metrics
        return {
            "run_key": run.key,
            "timestamp": run.timestamp.strftime("%Y-%m-%d %H:%M:%S")
            if run.timestamp else None,
            "method": run.config["method"],
            "n_clusters": m["n_clusters"],
            "fraction_clustered": round(m["fraction_clustered"], 4),
            "skipped": run.skipped["count"],
            "metrics": m,
            "clusters": _info_rows(run),
            "config": json.loads(json.dumps(run.config, default=str)),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        for name, label in (
            ("run_key", "Run key"),
            ("timestamp", "Created (UTC)"),
            ("method", "Method"),
        ):
            outputs.str(name, label=label)
        outputs.int("n_clusters", label="Clusters")
        outputs.float("fraction_clustered", label="Fraction clustered")
        outputs.int("skipped", label="Skipped samples")
        table = types.TableView()
        table.add_column("cluster", label="Cluster")
        table.add_column("size", label="Size")
        table.add_column("mean_dist", label="Mean distance to centre")
        outputs.list("clusters", types.Object(), label="Clusters", view=table)
        outputs.obj("metrics", label="Metrics", view=types.JSONView())
        outputs.obj("config", label="Config", view=types.JSONView())
        return types.Property(outputs, view=types.View(label="Clustering run"))

    def __call__(self, sample_collection, run_key):
        return call(self, sample_collection, {"run_key": run_key}).result


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
        if key is not None and ctx.dataset.has_run(key):
            run = runs.load_run(ctx.dataset, key)
            choices = types.DropdownView()
            choices.add_choice("all", label="All clusters, as groups")
            for c in run.clusters:
                choices.add_choice(
                    str(c["id"]), label=f"Cluster {c['id']} ({c['size']})"
                )
            if run.metrics["n_noise"]:
                choices.add_choice(
                    "-1", label=f"Noise ({run.metrics['n_noise']})"
                )
            inputs.enum(
                "cluster",
                [c.value for c in choices.choices],
                default="all",
                required=False,
                label="Clusters",
                view=choices,
            )
            inputs.bool(
                "include_noise", default=True, required=False,
                label="Include noise",
            )
        return types.Property(inputs, view=types.View(label="Load clusters view"))

    def execute(self, ctx):
        cluster = ctx.params.get("cluster", "all")
        view = runs.load_run(ctx.dataset, ctx.params["run_key"]).clusters_view(
            cluster=None if cluster in (None, "all") else int(cluster),
            include_noise=ctx.params.get("include_noise", True),
        )
        ctx.ops.set_view(view=view)
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
            prop = inputs.str("new_run_key", required=True, label="New run key")
            new = ctx.params.get("new_run_key")
            if new:
                try:
                    record.validate_run_key(new)
                    if ctx.dataset.has_run(new):
                        raise ValueError(
                            f"A run with key '{new}' already exists")
                except ValueError as e:
                    prop.invalid = True
                    prop.error_message = str(e)
        return types.Property(inputs, view=types.View(label="Rename clustering run"))

    def execute(self, ctx):
        runs.rename_run(
            ctx.dataset, ctx.params["run_key"], ctx.params["new_run_key"]
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return {"run_key": ctx.params["new_run_key"]}

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
        if key is not None and ctx.dataset.has_run(key):
            fields = runs.load_run(ctx.dataset, key).fields
            inputs.view(
                "warning",
                types.Warning(
                    label=f"You are about to delete run '{key}'",
                    description="This removes the run, its 2-D map and its "
                    "fields: " + ", ".join(fields.values()),
                ),
            )
        return types.Property(inputs, view=types.View(label="Delete clustering run"))

    def execute(self, ctx):
        key = ctx.params["run_key"]
        runs.delete_run(ctx.dataset, key)
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return {"deleted": key}

    def __call__(self, sample_collection, run_key, delegate=False,
                 delegation_target=None):
        return call(self, sample_collection, {"run_key": run_key}, delegate,
                    delegation_target).result
