"""Operators that name and curate clusters: label, name by hand, tag,
group, export. The OpenAI key comes from FiftyOne's secrets
(``OPENAI_API_KEY``, declared in ``fiftyone.yml``), never from the form:
form values are stored with delegated operations."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering import runs
from .base import GeneratorOperator, long_run_config, run_with_progress
from .calling import call
from .forms import add_choice, add_existing_run_input


def _cluster_choices(ctx, key):
    run = runs.load_run(ctx.dataset, key)
    names = run.results.get("names") or {}
    out = {}
    for c in run.clusters:
        name = (names.get(str(c["id"])) or {}).get("name")
        out[str(c["id"])] = f"Cluster {c['id']}" + \
            (f": {name}" if name else "") + f" ({c['size']})"
    if run.metrics["n_noise"]:
        out["-1"] = f"Noise ({run.metrics['n_noise']})"
    return run, out


def _add_cluster_list(inputs, name, choices, label, description=None,
                      required=False):
    inputs.list(name, types.Enum(list(choices)), required=required,
                label=label, description=description,
                view=types.DropdownView(multiple=True))


def _secret(ctx, name):
    try:
        value = ctx.secret(name)
    except Exception:
        value = None
    return value or None


class LabelClusters(GeneratorOperator):
    @property
    def config(self):
        return long_run_config(
            "label_clusters", "Label clusters",
            "Name clusters with a vision LLM or zero-shot CLIP",
            scheduled_by_default=False, view_target=False)

    def resolve_input(self, ctx):
        from ..labeling.label import estimate

        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        add_choice(inputs, "namer", {
            "openai": "Vision LLM (any OpenAI-compatible API)",
            "zero_shot": "Zero-shot CLIP/SigLIP (no API)",
        }, "openai", "Namer")
        namer = ctx.params.get("namer", "openai")
        if namer == "openai":
            inputs.str("model", default="gpt-4o-mini", required=False,
                       label="Model")
            inputs.str("base_url", required=False, label="Server URL",
                       description="Empty for OpenAI; e.g. "
                       "http://localhost:11434/v1 for Ollama")
            if not _secret(ctx, "OPENAI_API_KEY") and \
                    not ctx.params.get("base_url"):
                inputs.view("no_key", types.Warning(
                    label="No OPENAI_API_KEY secret",
                    description="Set it as a FiftyOne secret (an "
                    "environment variable of the App server in open "
                    "source), or give the URL of a local server"))
        else:
            inputs.str("model", default="openai/clip-vit-base-patch32",
                       required=False, label="CLIP/SigLIP model")
            inputs.str("vocabulary", required=False, label="Vocabulary",
                       description="Comma-separated concepts (default: a "
                       "built-in list)")
        inputs.int("per_cluster", default=8, required=False,
                   label="Images per cluster",
                   description="Half nearest the centre, half spread")
        run, choices = _cluster_choices(ctx, key)
        _add_cluster_list(inputs, "clusters", choices, "Clusters",
                          "Empty: every cluster but the noise")
        try:
            est = estimate(ctx.dataset, key, **self._namer_kwargs(ctx))
            inputs.view("estimate", types.Notice(
                label=f"Will send {est['requests']} request(s) with "
                f"{est['images']} image(s); {est['cached']} cluster(s) "
                "are unchanged since they were named"))
        except Exception as e:
            prop = inputs.view("estimate", types.Error(
                label="Cannot label", description=str(e)))
            prop.invalid = True
        return types.Property(inputs, view=types.View(label="Label clusters"))

    def _namer_kwargs(self, ctx):
        p = ctx.params
        namer = p.get("namer", "openai")
        kwargs = {"namer": namer, "per_cluster": p.get("per_cluster") or 8}
        if p.get("clusters"):
            kwargs["clusters"] = [int(c) for c in p["clusters"]]
        if p.get("model"):
            kwargs["model"] = p["model"]
        if namer == "openai" and p.get("base_url"):
            kwargs["base_url"] = p["base_url"]
        if namer == "zero_shot" and p.get("vocabulary"):
            kwargs["vocabulary"] = p["vocabulary"]
        return kwargs

    def run(self, ctx):
        from ..labeling.label import label_clusters

        key = ctx.params["run_key"]
        kwargs = self._namer_kwargs(ctx)
        if kwargs["namer"] == "openai":
            kwargs["api_key"] = _secret(ctx, "OPENAI_API_KEY")
        out = yield from run_with_progress(
            ctx, label_clusters, samples=ctx.dataset, run_key=key, **kwargs)
        if not ctx.delegated:
            yield ctx.trigger("reload_dataset")
        message = f"Named {len(out['named'])} cluster(s) of run '{key}'"
        if out["cached"]:
            message += f"; {len(out['cached'])} unchanged"
        if out["failed"]:
            first = next(iter(out["failed"].items()))
            message += (f"; {len(out['failed'])} failed (cluster "
                        f"{first[0]}: {first[1]})")
        yield ctx.trigger("notify", {
            "message": message,
            "variant": "warning" if out["failed"] else "success"})

    def __call__(self, sample_collection, run_key, namer="openai",
                 delegate=False, delegation_target=None, **params):
        return call(self, sample_collection,
                    {"run_key": run_key, "namer": namer, **params}, delegate,
                    delegation_target)


class NameCluster(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="name_cluster",
            label="Name a cluster",
            description="Name or rename one cluster by hand",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run, choices = _cluster_choices(ctx, key)
        add_choice(inputs, "cluster", choices, next(iter(choices)),
                   "Cluster")
        inputs.str("name", required=True, label="Name")
        inputs.str("description", required=False, label="Description")
        return types.Property(inputs, view=types.View(label="Name a cluster"))

    def execute(self, ctx):
        from ..labeling.label import name_cluster

        p = ctx.params
        name_cluster(ctx.dataset, p["run_key"], int(p["cluster"]), p["name"],
                     p.get("description"))
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            ctx.ops.notify(f"Cluster {p['cluster']} is now '{p['name']}'",
                           variant="success")
        return {"name": p["name"]}

    def __call__(self, sample_collection, run_key, cluster, name,
                 description=None):
        return call(self, sample_collection, {
            "run_key": run_key, "cluster": str(cluster), "name": name,
            "description": description}).result


class TagClusters(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="tag_clusters",
            label="Tag clusters",
            description="Tag (or untag) every sample of chosen clusters",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run, choices = _cluster_choices(ctx, key)
        if ctx.selected:
            inputs.bool("of_selected", default=True, required=False,
                        label=f"The clusters of the {len(ctx.selected)} "
                        "selected samples")
        if not ctx.params.get("of_selected", bool(ctx.selected)):
            _add_cluster_list(inputs, "clusters", choices, "Clusters",
                              required=True)
        inputs.list("tags", types.String(), required=True, label="Tags",
                    view=types.TagsView())
        inputs.bool("remove", default=False, required=False,
                    label="Remove these tags instead")
        return types.Property(inputs, view=types.View(label="Tag clusters"))

    def execute(self, ctx):
        from ..curation.tags import clusters_of, tag_clusters

        p = ctx.params
        if p.get("of_selected", bool(ctx.selected)) and ctx.selected:
            clusters = clusters_of(ctx.dataset, p["run_key"], ctx.selected)
        else:
            clusters = [int(c) for c in p.get("clusters") or []]
        n = tag_clusters(ctx.dataset, p["run_key"], clusters, p["tags"],
                         remove=p.get("remove", False))
        if not ctx.delegated:
            ctx.ops.reload_samples()
            ctx.ops.notify(
                f"{'Untagged' if p.get('remove') else 'Tagged'} {n:,} "
                f"sample(s) of cluster(s) {', '.join(map(str, clusters))}",
                variant="success")
        return {"count": n, "clusters": clusters}

    def __call__(self, sample_collection, run_key, clusters, tags,
                 remove=False):
        return call(self, sample_collection, {
            "run_key": run_key, "clusters": [str(c) for c in clusters],
            "tags": list(tags), "remove": remove,
            "of_selected": False}).result


class GroupClusters(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="group_clusters",
            label="Group clusters",
            description="Merge clusters under a named group",
            dynamic=True,
            view_target=False,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run, choices = _cluster_choices(ctx, key)
        existing = run.results.get("groups") or {}
        if existing:
            inputs.view("groups_now", types.Notice(label="Groups now: " +
                        "; ".join(f"{g}: {', '.join(map(str, cs))}"
                                  for g, cs in existing.items())))
        inputs.str("group", required=True, label="Group name")
        _add_cluster_list(inputs, "clusters", choices, "Clusters",
                          "Clusters to put in this group (empty: remove "
                          "the group)")
        inputs.bool("show", default=True, required=False,
                    label="Show the group afterwards")
        return types.Property(inputs, view=types.View(label="Group clusters"))

    def execute(self, ctx):
        from ..curation.groups import (
            group_clusters,
            groups_view,
            ungroup_clusters,
        )

        p = ctx.params
        clusters = [int(c) for c in p.get("clusters") or []]
        if clusters:
            group_clusters(ctx.dataset, p["run_key"], {p["group"]: clusters})
        else:
            ungroup_clusters(ctx.dataset, p["run_key"], [p["group"]])
        if not ctx.delegated:
            ctx.ops.reload_dataset()
            if clusters and p.get("show", True):
                ctx.ops.set_view(view=groups_view(ctx.dataset, p["run_key"],
                                                  [p["group"]]))
            ctx.ops.notify(
                f"Group '{p['group']}': " + (", ".join(map(str, clusters))
                                             if clusters else "removed"),
                variant="success")
        return {"group": p["group"], "clusters": clusters}

    def __call__(self, sample_collection, run_key, group, clusters):
        return call(self, sample_collection, {
            "run_key": run_key, "group": group,
            "clusters": [str(c) for c in clusters], "show": False}).result


class ExportClusters(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="export_clusters",
            label="Export clusters",
            description="A CSV of cluster members, and their images",
            dynamic=True,
            view_target=False,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run, choices = _cluster_choices(ctx, key)
        inputs.str("path", required=True, label="Folder on the server",
                   description="The CSV and any images go in here")
        _add_cluster_list(inputs, "clusters", choices, "Clusters",
                          "Empty: every cluster")
        groups = list((run.results.get("groups") or {}))
        if groups:
            inputs.list("groups", types.Enum(groups), required=False,
                        label="Groups", view=types.DropdownView(
                            multiple=True))
        add_choice(inputs, "images", {
            "none": "Only the CSV", "copy": "Copy the images",
            "symlink": "Link the images"}, "none", "Images")
        if ctx.params.get("images", "none") != "none":
            add_choice(inputs, "folders", {
                "cluster": "One folder per cluster",
                "group": "One folder per group"}, "cluster", "Folders")
        inputs.bool("overwrite", default=False, required=False,
                    label="Overwrite files that exist")
        return types.Property(inputs, view=types.View(label="Export clusters"))

    def execute(self, ctx):
        from ..curation.export import export_clusters

        p = ctx.params
        out = export_clusters(
            ctx.dataset, p["run_key"], p["path"],
            clusters=[int(c) for c in p["clusters"]] if p.get("clusters")
            else None,
            groups=p.get("groups") or None, images=p.get("images", "none"),
            folders=p.get("folders", "cluster"),
            overwrite=p.get("overwrite", False))
        if not ctx.delegated:
            ctx.ops.notify(f"Exported {out['rows']:,} row(s) to "
                           f"{out['csv']}", variant="success")
        return out

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("csv", label="CSV")
        outputs.int("rows", label="Rows")
        outputs.int("images", label="Images")
        return types.Property(outputs, view=types.View(label="Export"))

    def __call__(self, sample_collection, run_key, path, clusters=None,
                 groups=None, images="none", folders="cluster",
                 overwrite=False):
        return call(self, sample_collection, {
            "run_key": run_key, "path": path,
            "clusters": [str(c) for c in clusters] if clusters else None,
            "groups": groups, "images": images, "folders": folders,
            "overwrite": overwrite}).result
