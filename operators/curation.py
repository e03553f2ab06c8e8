"""Operators that name and curate clusters: label, name by hand, tag,
group, export. The cluster pickers list the run's clusters by id, name and
size. The OpenAI key comes from FiftyOne's secrets (``OPENAI_API_KEY``,
declared in ``fiftyone.yml``), never from the form: form values are stored
with delegated operations."""

import fiftyone.operators.types as types

from ..clustering import api
from ..curation.export import EXPORT_PARAMS
from ..curation.groups import moves as group_moves
from ..curation.tags import clusters_of
from ..labeling.namers import NAMERS
from ..labeling.naming import (
    LABEL_PARAMS,
    MAX_IMAGES,
    MAX_REQUESTS,
    check_limits,
    estimate,
)
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
    add_multi_choice,
    add_unit_inputs,
    cluster_choices,
    node_choices,
    read_unit_params,
)
from .words import unit_param_label


def _secret(ctx, name):
    """A FiftyOne secret, or ``None`` when it is not set."""
    getter = getattr(ctx, "secret", None)
    value = getter(name) if getter is not None else None
    return value or None


def _clusters(params, name="clusters"):
    return [int(c) for c in params.get(name) or []]


def _tags(value):
    if isinstance(value, str):
        value = value.split(",")
    return [t.strip() for t in value or [] if t and t.strip()]


class LabelClusters(GeneratorOperator):
    words = {"run_key": "Run", "namer": "Namer", "clusters": "Clusters",
             **{p.name: unit_param_label(p.name) for p in LABEL_PARAMS},
             **{p.name: unit_param_label(p.name) for cls in NAMERS.values()
                for p in cls.PARAMS}}

    @property
    def config(self):
        return long_run_config(
            "label_clusters", "Label clusters",
            "Name clusters with a vision LLM or zero-shot CLIP",
            scheduled_by_default=False, view_target=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        add_choice(inputs, "namer", {n: cls.label for n, cls in
                                     NAMERS.items()}, "openai", "Namer")
        namer = ctx.params.get("namer", "openai")
        cls = NAMERS.get(namer, NAMERS["openai"])
        add_unit_inputs(ctx, inputs, f"namer_{cls.name}", cls,
                        heading=cls.label)
        if cls.name == "openai" and not _secret(ctx, "OPENAI_API_KEY") and \
                not ctx.params.get("namer_openai__base_url"):
            prop = inputs.view("no_key", types.Warning(
                label="No OPENAI_API_KEY secret",
                description="Set it as a FiftyOne secret (an environment "
                "variable of the App server in open source), or give the "
                "URL of a local server in 'Base url'"))
            prop.invalid = True
        for p in LABEL_PARAMS:
            _add_param(inputs, p)
        run = api.load_run(ctx.dataset, key)
        add_multi_choice(inputs, "clusters", cluster_choices(run), "Clusters",
                         "Empty: every cluster but the noise")
        try:
            est = estimate(run, **self._namer_kwargs(ctx))
            limits = [ctx.params.get(p.name) for p in (MAX_REQUESTS,
                                                       MAX_IMAGES)]
            check_limits(est["requests"], est["images"], *(
                p.default if v is None else v
                for p, v in zip((MAX_REQUESTS, MAX_IMAGES), limits)))
            more = (f", and up to {est['tell_apart']} more to tell apart "
                    "siblings named alike" if est["tell_apart"] else "")
            inputs.view("estimate", types.Notice(
                label=f"Will send {est['requests']} request(s) with "
                f"{est['images']} image(s){more}; {est['cached']} "
                "cluster(s) are unchanged since they were named"))
        except Exception as e:
            prop = inputs.view("estimate", types.Error(
                label="Cannot label", description=self.render_error(e)))
            prop.invalid = True
        return types.Property(inputs, view=types.View(label="Label clusters"))

    def _namer_kwargs(self, ctx):
        p = ctx.params
        namer = p.get("namer", "openai")
        kwargs = {"namer": namer,
                  **read_unit_params(p, f"namer_{namer}", NAMERS[namer])}
        kwargs = {k: v for k, v in kwargs.items() if v not in (None, "")}
        for param in LABEL_PARAMS:
            if p.get(param.name) is not None:
                kwargs[param.name] = p[param.name]
        if p.get("clusters"):
            kwargs["clusters"] = _clusters(p)
        return kwargs

    def run(self, ctx):
        key = ctx.params["run_key"]
        kwargs = self._namer_kwargs(ctx)
        if kwargs["namer"] == "openai":
            kwargs["api_key"] = _secret(ctx, "OPENAI_API_KEY")
        fields_before = app.field_names(ctx.dataset)
        out = yield from run_with_progress(
            ctx, api.label_clusters, samples=ctx.dataset, run_key=key,
            **kwargs)
        if not ctx.delegated:
            yield from app.reload(ctx, ctx.dataset, fields_before)
            yield from app.show_colors(ctx, ctx.dataset)
            yield from app.refresh_panels(ctx)
        message = f"Named {len(out['named'])} cluster(s) of run '{key}'"
        if out["cached"]:
            message += f"; {len(out['cached'])} unchanged"
        if out["failed"]:
            first = next(iter(out["failed"].items()))
            message += (f"; {len(out['failed'])} failed (cluster "
                        f"{first[0]}: {first[1]})")
        if out["alike"]:
            first = next(iter(out["alike"].items()))
            message += (f"; {len(out['alike'])} set(s) of siblings keep "
                        f"names alike (clusters {first[0]}: {first[1]})")
        yield ctx.trigger("notify", {
            "message": message,
            "variant": "warning" if out["failed"] or out["alike"]
            else "success"})

    def __call__(self, sample_collection, run_key, namer="openai",
                 clusters=None, delegate=False, delegation_target=None,
                 **params):
        """``params``: the namer's parameters (``model``, ``base_url``,
        ...) and those of a labelling (``per_cluster``, ...)."""
        own = {p.name for p in NAMERS[namer].PARAMS}
        form = {"run_key": run_key, "namer": namer,
                "clusters": [str(c) for c in clusters] if clusters else None}
        for k, v in params.items():
            form[f"namer_{namer}__{k}" if k in own else k] = v
        return call(self, sample_collection,
                    {k: v for k, v in form.items() if v is not None},
                    delegate, delegation_target)


def _add_param(inputs, p):
    label = unit_param_label(p.name)
    if p.kind == "bool":
        inputs.bool(p.name, default=p.default, required=False, label=label,
                    description=p.description)
    else:
        inputs.int(p.name, default=p.default, required=False, label=label,
                   description=p.description)


class NameCluster(ActionOperator):
    words = {"run_key": "Run", "cluster": "Cluster", "name": "Name",
             "description": "Description"}

    @property
    def config(self):
        return quick_config("name_cluster", "Name a cluster",
                            "Name or rename one cluster by hand")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        choices = node_choices(api.load_run(ctx.dataset, key))
        add_choice(inputs, "cluster", choices, next(iter(choices), None),
                   "Cluster", "A layered run's clusters above the current "
                   "cut can be named too")
        inputs.str("name", required=True, label="Name")
        inputs.str("description", required=False, label="Description")
        return types.Property(inputs, view=types.View(label="Name a cluster"))

    def act(self, ctx):
        p = ctx.params
        fields_before = app.field_names(ctx.dataset)
        api.name_cluster(ctx.dataset, p["run_key"], int(p["cluster"]),
                         p["name"], p.get("description"))
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, fields_before)
            app.show_colors(ctx, ctx.dataset)
            app.refresh_panels(ctx)
            app.notify(ctx, f"Cluster {p['cluster']} is now '{p['name']}'")
        return {"name": p["name"]}

    def __call__(self, sample_collection, run_key, cluster, name,
                 description=None):
        return call(self, sample_collection, {
            "run_key": run_key, "cluster": str(cluster), "name": name,
            "description": description}).result


class TagClusters(ActionOperator):
    words = {"run_key": "Run", "clusters": "Clusters", "tags": "Tags",
             "remove": "Remove these tags instead"}

    @property
    def config(self):
        return quick_config("tag_clusters", "Tag clusters",
                            "Tag (or untag) every sample of chosen clusters")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run = api.load_run(ctx.dataset, key)
        if ctx.selected:
            inputs.bool("of_selected", default=True, required=False,
                        label=f"The clusters of the {len(ctx.selected)} "
                        "selected samples")
        if not ctx.params.get("of_selected", bool(ctx.selected)):
            add_multi_choice(inputs, "clusters", cluster_choices(run),
                             "Clusters", required=True)
        inputs.str("tags", required=True, label="Tags",
                   description="One tag, or several separated by commas")
        inputs.bool("remove", default=False, required=False,
                    label="Remove these tags instead")
        return types.Property(inputs, view=types.View(label="Tag clusters"))

    def act(self, ctx):
        p = ctx.params
        run = api.load_run(ctx.dataset, p["run_key"])
        if p.get("of_selected", bool(ctx.selected)) and ctx.selected:
            clusters = clusters_of(run, ctx.selected)
        else:
            clusters = _clusters(p)
        tags = _tags(p.get("tags"))
        fields_before = app.field_names(ctx.dataset)
        n = run.tag(clusters, tags, remove=p.get("remove", False))
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, fields_before)
            app.refresh_panels(ctx)
            app.notify(
                ctx, f"{'Untagged' if p.get('remove') else 'Tagged'} {n:,} "
                f"sample(s) of cluster(s) {', '.join(map(str, clusters))}: "
                f"{', '.join(tags)}")
        return {"count": n, "clusters": clusters}

    def __call__(self, sample_collection, run_key, clusters, tags,
                 remove=False):
        return call(self, sample_collection, {
            "run_key": run_key, "clusters": [str(c) for c in clusters],
            "tags": ", ".join(_tags(tags)), "remove": remove,
            "of_selected": False}).result


class GroupClusters(ActionOperator):
    words = {"run_key": "Run", "action": "Action", "clusters": "Clusters",
             "group": "Group name", "groups": "Group"}

    @property
    def config(self):
        return quick_config("group_clusters", "Group clusters",
                            "Merge clusters under a named group, or remove "
                            "a group")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run = api.load_run(ctx.dataset, key)
        if run.groups:
            inputs.view("groups_now", types.Notice(label="Groups now: " +
                        "; ".join(f"{g}: {', '.join(map(str, cs))}"
                                  for g, cs in run.groups.items())))
        actions = {"group": "Put clusters in a group"}
        if run.groups:
            actions["ungroup"] = "Remove a group (its clusters stay)"
        add_choice(inputs, "action", actions, "group", "Action")
        if ctx.params.get("action", "group") == "ungroup" and run.groups:
            add_choice(inputs, "group", {g: g for g in run.groups},
                       next(iter(run.groups)), "Group")
            return types.Property(inputs,
                                  view=types.View(label="Group clusters"))
        inputs.str("group", required=True, label="Group name")
        add_multi_choice(inputs, "clusters", cluster_choices(run), "Clusters",
                         "Clusters to put in this group", required=True)
        chosen = _clusters(ctx.params)
        name = (ctx.params.get("group") or "").strip()
        moved = group_moves(run, {name: chosen}) if name and chosen else []
        if moved:
            inputs.view("moves", types.Notice(label="; ".join(
                f"Cluster {c} will leave group '{old}'"
                for c, old, _ in moved)))
        inputs.bool("show", default=True, required=False,
                    label="Show the group afterwards")
        return types.Property(inputs, view=types.View(label="Group clusters"))

    def act(self, ctx):
        p = ctx.params
        run = api.load_run(ctx.dataset, p["run_key"])
        group = (p.get("group") or "").strip()
        fields_before = app.field_names(ctx.dataset)
        if p.get("action", "group") == "ungroup":
            run.ungroup([group])
            message = f"Removed group '{group}'"
            clusters = []
        else:
            clusters = _clusters(p)
            moved = group_moves(run, {group: clusters})
            run = run.group({group: clusters})
            message = f"Group '{group}': " + ", ".join(map(str, clusters))
            if moved:
                message += " (" + "; ".join(
                    f"cluster {c} left '{old}'" for c, old, _ in moved) + ")"
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, fields_before)
            if clusters and p.get("show", True):
                ctx.ops.set_view(view=run.groups_view([group]))
                app.show_on_tiles(ctx, add=app.tile_fields(run))
            app.refresh_panels(ctx)
            app.notify(ctx, message)
        return {"group": group, "clusters": clusters}

    def __call__(self, sample_collection, run_key, group, clusters=None,
                 action="group"):
        return call(self, sample_collection, {
            "run_key": run_key, "group": group, "action": action,
            "clusters": [str(c) for c in clusters or []],
            "show": False}).result


class ExportClusters(ActionOperator):
    words = {"run_key": "Run", "path": "Folder on the server",
             "overwrite": "Overwrite files that exist",
             "clusters": "Clusters", "groups": "Groups", "images": "Images",
             "folders": "Folders"}

    @property
    def config(self):
        return quick_config("export_clusters", "Export clusters",
                            "A CSV of cluster members, and their images",
                            allow_immediate_execution=True,
                            allow_delegated_execution=True)

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs)
        if key is None:
            return types.Property(inputs)
        run = api.load_run(ctx.dataset, key)
        inputs.str("path", required=True, label=self.words["path"],
                   description="The CSV and any images go in here")
        add_multi_choice(inputs, "clusters", cluster_choices(run), "Clusters",
                         "Empty: every cluster")
        if run.groups:
            add_multi_choice(inputs, "groups", {g: g for g in run.groups},
                             "Groups", "Their clusters are exported too")
        images, folders = EXPORT_PARAMS
        add_choice(inputs, "images", {
            "none": "Only the CSV", "copy": "Copy the images",
            "symlink": "Link the images"}, images.default, "Images")
        if ctx.params.get("images", "none") != "none":
            add_choice(inputs, "folders", {
                "cluster": "One folder per cluster",
                "group": "One folder per group"}, folders.default, "Folders")
        inputs.bool("overwrite", default=False, required=False,
                    label=self.words["overwrite"])
        return types.Property(inputs, view=types.View(label="Export clusters"))

    def act(self, ctx):
        p = ctx.params
        out = api.export_clusters(
            ctx.dataset, p["run_key"], p["path"],
            clusters=_clusters(p) or None, groups=p.get("groups") or None,
            images=p.get("images", "none"),
            folders=p.get("folders", "cluster"),
            overwrite=p.get("overwrite", False))
        if not ctx.delegated:
            failed = out["failed"]
            message = f"Exported {out['rows']:,} row(s) to {out['csv']}"
            if out["images"]:
                message += f" and {out['images']:,} image(s)"
            if failed:
                first = next(iter(failed.items()))
                message += (f"; {len(failed):,} image(s) could not be "
                            f"written ({first[0]}: {first[1]})")
            ctx.ops.notify(message,
                           variant="warning" if failed else "success")
        return {**out, "failed": [f"{k}: {v}" for k, v in
                                  out["failed"].items()]}

    def resolve_output(self, ctx):
        failed = failed_output(ctx)
        if failed is not None:
            return failed
        outputs = types.Object()
        outputs.str("csv", label="CSV")
        outputs.int("rows", label="Rows")
        outputs.int("images", label="Images")
        if (ctx.results or {}).get("failed"):
            outputs.list("failed", types.String(),
                         label="Could not be written")
        return types.Property(outputs, view=types.View(label="Export"))

    def __call__(self, sample_collection, run_key, path, clusters=None,
                 groups=None, images="none", folders="cluster",
                 overwrite=False):
        return call(self, sample_collection, {
            "run_key": run_key, "path": path,
            "clusters": [str(c) for c in clusters] if clusters else None,
            "groups": groups, "images": images, "folders": folders,
            "overwrite": overwrite}).result
