"""Operators for uniqueness and duplicates: compute, view, tag or delete
(after a confirmation that shows the counts), and delete a run. Each reads
the form, calls the SDK and shows the result."""

import fiftyone as fo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from ..analysis import duplicates as dups
from ..analysis import results as analysis
from ..analysis.uniqueness import compute_uniqueness
from ..clustering.presets import DEFAULT_PRESET, PRESETS
from ..embedders import EMBEDDERS
from ..storage import schema as record
from ..units import ParamError
from . import app
from .base import (
    ActionOperator,
    GeneratorOperator,
    long_run_config,
    quick_config,
    run_with_progress,
)
from .calling import call
from .words import field_error
from .forms import (
    FROM_FIELD,
    add_choice,
    add_executor_inputs,
    add_existing_run_input,
    add_run_key_input,
    add_unit_inputs,
    check_model,
    embedder_choices,
    executor_kwargs,
    flat_samples,
    param_name,
    read_unit_params,
    vector_fields,
)

# What each choice of the view shows, as a sentence names it.
DUPLICATE_NOUNS = {
    "groups": "group of more than one sample",
    "duplicates": "duplicate",
    "representatives": "representative",
    "leaks": "group that crosses splits",
}

#: Form labels of the inputs the compute forms share.
SOURCE_WORDS = {"run_key": "Run key", "overwrite": "Overwrite",
                "embedder": "Embedder", "embeddings_field": "Embeddings field",
                "executor": "Embed on", "ray_address": "Ray address"}

DUPLICATE_ACTIONS = {
    "groups": "Every duplicate group (representative first)",
    "duplicates": "The duplicates only (what tagging or deleting acts on)",
    "representatives": "The representatives only",
    "leaks": "Groups that cross splits",
}


# -- the source of the vectors ------------------------------------------------


def add_source_inputs(ctx, inputs, default):
    """Embedder (with its parameters) or an existing vector field."""
    params = ctx.params
    fields = vector_fields(ctx.dataset)
    add_choice(inputs, "embedder", embedder_choices(ctx.dataset),
               default["name"], "Embedder",
               "How images become vectors (cached and shared with "
               "clustering runs)")
    embedder = params.get("embedder", default["name"])
    if embedder == FROM_FIELD and not fields:
        prop = inputs.view("no_fields", types.Error(
            label="This dataset has no embeddings field"))
        prop.invalid = True
    elif embedder == FROM_FIELD:
        add_choice(inputs, "embeddings_field", {f: f for f in fields},
                   fields[0], "Embeddings field", "No model is run")
    elif embedder in EMBEDDERS:
        cls = EMBEDDERS[embedder]
        own = {k: v for k, v in default.items() if k != "name"} \
            if embedder == default["name"] else {}
        add_unit_inputs(ctx, inputs, f"embedder_{embedder}", cls, own,
                        heading=cls.label)
        check_model(ctx, inputs, param_name(f"embedder_{embedder}", "model"),
                    embedder)
        add_executor_inputs(ctx, inputs)
    return embedder


def source_kwargs(params, default):
    embedder = params.get("embedder", default["name"])
    if embedder == FROM_FIELD:
        return {"embeddings_field": params["embeddings_field"]}
    own = {k: v for k, v in default.items() if k != "name"} \
        if embedder == default["name"] else {}
    return {"embedder": {"name": embedder, **read_unit_params(
        params, f"embedder_{embedder}", EMBEDDERS[embedder], own)},
        **executor_kwargs(params)}


def split_fields(dataset):
    """Fields that can hold a sample's split: strings and
    Classifications."""
    strings = dataset.get_field_schema(ftype=fo.StringField)
    labels = dataset.get_field_schema(ftype=fo.EmbeddedDocumentField,
                                      embedded_doc_type=fo.Classification)
    return sorted(f for f in {**strings, **labels} if f != "filepath")


def _split_tags(text):
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _target_notice(ctx, inputs, what):
    n = len(flat_samples(ctx.target_view()))
    inputs.view("target_count", types.Notice(
        label=f"{what} {n:,} sample{'s' if n != 1 else ''}"))


def _source_call_params(embedder, embeddings_field, embedder_params):
    params = {"embedder": FROM_FIELD if embeddings_field and not embedder
              else embedder, "embeddings_field": embeddings_field}
    name = params["embedder"]
    for k, v in (embedder_params or {}).items():
        params[f"embedder_{name}__{k}"] = v
    return params


# -- compute ------------------------------------------------------------------


class ComputeUniqueness(GeneratorOperator):
    words = SOURCE_WORDS

    @property
    def config(self):
        return long_run_config(
            "compute_uniqueness", "Compute uniqueness",
            "Score how unique each image is, from its "
            "embedding's nearest neighbours")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Score")
        _target_notice(ctx, inputs, "Scores")
        add_run_key_input(ctx, inputs, kind=record.UNIQUENESS_KIND,
                          base="uniqueness",
                          description="Names the run; the score is in "
                          "<run key>_score")
        add_source_inputs(ctx, inputs, PRESETS[DEFAULT_PRESET]["embedder"])
        return types.Property(inputs,
                              view=types.View(label="Compute uniqueness"))

    def run(self, ctx):
        key = ctx.params["run_key"]
        fields_before = app.field_names(ctx.dataset)
        run = yield from run_with_progress(
            ctx, compute_uniqueness, samples=flat_samples(ctx.target_view()),
            key=key, overwrite=ctx.params.get("overwrite", False),
            **source_kwargs(ctx.params, PRESETS[DEFAULT_PRESET]["embedder"]))
        if not ctx.delegated:
            yield from app.reload(ctx, ctx.dataset, fields_before,
                                  keep_filters=False)
            yield ctx.trigger("set_view", {
                "view": run.most_unique()._serialize()})
            yield from app.show_on_tiles(ctx, add=(run.field,))
        yield from app.notify(
            ctx, f"Run '{key}': {run.results['samples']:,} samples scored in "
            f"'{run.field}', most unique first")

    def __call__(self, sample_collection, run_key="uniqueness",
                 embedder=None, embeddings_field=None, embedder_params=None,
                 overwrite=False, delegate=False, delegation_target=None):
        params = {"run_key": run_key, "overwrite": overwrite,
                  **_source_call_params(embedder, embeddings_field,
                                        embedder_params)}
        result = call(self, sample_collection, params, delegate,
                      delegation_target)
        return result if delegate else analysis.load_uniqueness(
            sample_collection, run_key)


class FindNearDuplicates(GeneratorOperator):
    words = {**SOURCE_WORDS, "threshold": "Threshold",
             "representative": "Representative"}

    @property
    def config(self):
        return long_run_config(
            "find_near_duplicates", "Find near-duplicates",
            "Group images whose embeddings are within a cosine "
            "distance")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Search")
        _target_notice(ctx, inputs, "Searches")
        add_run_key_input(ctx, inputs, kind=record.DUPLICATES_KIND,
                          base="near_dups",
                          description="Names the run; its fields are "
                          "<run key>_group, _dist and _rep")
        add_source_inputs(ctx, inputs, dups.DEFAULT_EMBEDDER)
        prop = inputs.float("threshold", label="Threshold",
                            description="Distance under which two images "
                            "are duplicates; leave empty to calibrate it on "
                            "the data (as the SDK and the command line do)")
        value = ctx.params.get("threshold")
        if value is not None:
            try:
                dups.THRESHOLD.clean("find_near_duplicates", value)
            except ParamError as e:
                prop.invalid = True
                prop.error_message = field_error(e)
        add_choice(inputs, "representative", {
            "centre": "The one nearest the group's centre",
            "largest": "The largest file",
        }, "centre", "Representative", "Kept when duplicates are tagged or "
                   "deleted")
        return types.Property(inputs,
                              view=types.View(label="Find near-duplicates"))

    def run(self, ctx):
        key = ctx.params["run_key"]
        fields_before = app.field_names(ctx.dataset)
        run = yield from run_with_progress(
            ctx, dups.find_near_duplicates,
            samples=flat_samples(ctx.target_view()), key=key,
            threshold=ctx.params.get("threshold"),
            representative=ctx.params.get("representative") or "centre",
            overwrite=ctx.params.get("overwrite", False),
            **source_kwargs(ctx.params, dups.DEFAULT_EMBEDDER))
        yield from _show_duplicates(ctx, run, fields_before)

    def __call__(self, sample_collection, run_key="near_dups",
                 threshold=None, representative=None, embedder=None,
                 embeddings_field=None, embedder_params=None,
                 overwrite=False, delegate=False, delegation_target=None):
        params = {"run_key": run_key, "threshold": threshold,
                  "representative": representative, "overwrite": overwrite,
                  **_source_call_params(embedder, embeddings_field,
                                        embedder_params)}
        result = call(self, sample_collection, params, delegate,
                      delegation_target)
        return result if delegate else analysis.load_duplicates(
            sample_collection, run_key)


class FindExactDuplicates(GeneratorOperator):
    words = {"run_key": "Run key", "overwrite": "Overwrite"}

    @property
    def config(self):
        return long_run_config(
            "find_exact_duplicates", "Find exact duplicates",
            "Group files with identical contents",
            scheduled_by_default=False)

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Search")
        _target_notice(ctx, inputs, "Hashes")
        add_run_key_input(ctx, inputs, kind=record.DUPLICATES_KIND,
                          base="exact_dups",
                          description="Names the run; its fields are "
                          "<run key>_group, _dist and _rep")
        return types.Property(inputs,
                              view=types.View(label="Find exact duplicates"))

    def run(self, ctx):
        key = ctx.params["run_key"]
        fields_before = app.field_names(ctx.dataset)
        run = yield from run_with_progress(
            ctx, dups.find_exact_duplicates,
            samples=flat_samples(ctx.target_view()), key=key,
            overwrite=ctx.params.get("overwrite", False))
        yield from _show_duplicates(ctx, run, fields_before)

    def __call__(self, sample_collection, run_key="exact_dups",
                 overwrite=False, delegate=False, delegation_target=None):
        result = call(self, sample_collection,
                      {"run_key": run_key, "overwrite": overwrite}, delegate,
                      delegation_target)
        return result if delegate else analysis.load_duplicates(
            sample_collection, run_key)


def _show_duplicates(ctx, run, fields_before):
    r = run.results
    if not ctx.delegated:
        yield from app.reload(ctx, ctx.dataset, fields_before,
                              keep_filters=False)
        if r["groups"]:
            yield ctx.trigger("set_view", {
                "view": duplicate_groups_view(run)._serialize()})
    message = (f"Run '{run.key}': {r['duplicates']:,} duplicate(s) in "
               f"{r['groups']:,} group(s) among {r['samples']:,} samples")
    skipped = (r.get("skipped") or {}).get("count")
    if skipped:
        message += f" ({skipped:,} could not be read)"
    yield from app.notify(ctx, message)


def duplicate_groups_view(run):
    """The run's duplicate groups as the grid shows them: only groups that
    still have more than one member (deleting the duplicates leaves each
    representative alone in its group)."""
    view = run.view()
    if run.labels_path:
        return view
    group = run.fields["group"]
    counts = run.dataset.count_values(group)
    kept = [g for g, n in counts.items() if g is not None and n > 1]
    return run.dataset.match(F(group).is_in(kept)).group_by(
        group, order_by=run.fields["dist"])


def duplicates_on_screen(ctx, run):
    """Whether the App shows the groups of duplicates run ``run``."""
    view = ctx.view
    return view is not None and run.fields["group"] in \
        str(view._serialize())


# -- existing runs ------------------------------------------------------------


class LoadDuplicatesView(ActionOperator):
    words = {"run_key": "Run", "show": "Show", "splits": "Split tags",
             "split_field": "Or split field"}

    @property
    def config(self):
        return quick_config(
            "load_duplicates_view", "Load duplicates view",
            "Show a duplicates run's groups, its duplicates, its "
            "representatives, or the groups that cross splits")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs,
                                     run_class=analysis.DuplicatesResults)
        if key is None:
            return types.Property(inputs)
        add_choice(inputs, "show", DUPLICATE_ACTIONS, "groups", "Show")
        if ctx.params.get("show") == "leaks":
            self._split_inputs(ctx, inputs)
        return types.Property(inputs,
                              view=types.View(label="Load duplicates view"))

    def _split_inputs(self, ctx, inputs):
        """Split tags (at least two) or a split field (a dropdown of the
        string and Classification fields), checked as the user types."""
        prop = inputs.str("splits", required=False,
                          label=self.words["splits"],
                          description="Comma-separated sample tags, e.g. "
                          "train, test")
        fields = split_fields(ctx.dataset)
        if fields:
            add_choice(inputs, "split_field", {"": "No split field",
                                               **{f: f for f in fields}},
                       "", self.words["split_field"],
                       "A field holding each sample's split (a string or a "
                       "Classification)")
        tags = _split_tags(ctx.params.get("splits"))
        if ctx.params.get("split_field"):
            return
        if len(tags) < 2:
            prop.invalid = True
            prop.error_message = (
                "Give at least two tags" + (", or choose a split field"
                                            if fields else ""))

    def act(self, ctx):
        run = analysis.load_duplicates(ctx.dataset, ctx.params["run_key"])
        show = ctx.params.get("show") or "groups"
        if show == "leaks":
            splits = _split_tags(ctx.params.get("splits")) or None
            split_field = ctx.params.get("split_field") or None
            if split_field is None and len(splits or []) < 2:
                raise ParamError("splits: give at least two tags, or a "
                                 "split field", "splits")
            leaks = run.leaks(split_field=split_field, splits=splits)
            view = leaks.view()
            report = leaks.report()
            ctx.ops.notify(
                f"{report['leaking_groups']:,} group(s) cross splits"
                + "".join(f"; {pair.replace('/', ' and ')}: {n:,}"
                          for pair, n in sorted(report["pairs"].items())))
        else:
            view = {"groups": lambda: duplicate_groups_view(run),
                    "duplicates": run.duplicates_view,
                    "representatives": run.representatives_view}[show]()
        count = len(view)
        if count:
            ctx.ops.set_view(view)
        else:
            ctx.ops.notify(f"Nothing to show: no {DUPLICATE_NOUNS[show]} "
                           f"of run '{run.key}' is left; the grid stays as "
                           "it is", variant="info")
        return {"count": count}

    def __call__(self, sample_collection, run_key, show="groups",
                 splits=None, split_field=None):
        return call(self, sample_collection, {
            "run_key": run_key, "show": show, "split_field": split_field,
            "splits": ", ".join(splits) if splits else None}, False, None)


class ActOnDuplicates(ActionOperator):
    words = {"run_key": "Run", "action": "Action",
             "confirm": "Type the count to confirm", "tag": "Tag"}

    @property
    def config(self):
        return quick_config(
            "act_on_duplicates", "Tag or delete duplicates",
            "Tag, or delete from the dataset, every duplicate but each "
            "group's representative")

    def resolve_input(self, ctx):
        inputs = types.Object()
        key = add_existing_run_input(ctx, inputs,
                                     run_class=analysis.DuplicatesResults)
        if key is None:
            return types.Property(inputs)
        add_choice(inputs, "action", {
            "tag": "Tag them",
            "delete": "Delete them from the dataset (files stay on disk)",
        }, "tag", "Action")
        counts = analysis.load_duplicates(ctx.dataset, key).counts()
        action = ctx.params.get("action", "tag")
        if action == "tag":
            inputs.str("tag", default="duplicate", required=True, label="Tag")
        verb = "tagged" if action == "tag" else "DELETED from the dataset"
        inputs.view("counts", types.Notice(
            label=f"{counts['duplicates']:,} sample(s) will be {verb}; "
            f"the {counts['groups']:,} representative(s) are kept"))
        if action == "delete":
            inputs.int("confirm", required=True,
                       label=self.words["confirm"],
                       description=f"Type {counts['duplicates']}, the "
                       "number of samples to delete")
            typed = ctx.params.get("confirm")
            if typed is not None and typed != counts["duplicates"]:
                prop = inputs.get_property("confirm")
                prop.invalid = True
                prop.error_message = (f"Type {counts['duplicates']} to "
                                      "delete them")
        return types.Property(inputs, view=types.View(
            label="Tag or delete duplicates"))

    def act(self, ctx):
        run = analysis.load_duplicates(ctx.dataset, ctx.params["run_key"])
        on_screen = duplicates_on_screen(ctx, run)
        fields_before = app.field_names(ctx.dataset)
        deleting = ctx.params.get("action", "tag") == "delete"
        if deleting:
            n = run.delete_duplicates(confirm=ctx.params.get("confirm"))
            message = f"Deleted {n:,} duplicate(s) of run '{run.key}'"
        else:
            tag = ctx.params.get("tag") or "duplicate"
            n = run.tag_duplicates(tag)
            message = f"Tagged {n:,} duplicate(s) of run '{run.key}' '{tag}'"
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, fields_before)
            if deleting and on_screen:
                # Each group on screen is down to its representative.
                ctx.ops.set_view(view=run.representatives_view())
                message += "; showing the representatives that were kept"
            app.notify(ctx, message)
        return {"count": n}

    def __call__(self, sample_collection, run_key, action="tag",
                 tag="duplicate", confirm=None):
        return call(self, sample_collection, {
            "run_key": run_key, "action": action, "tag": tag,
            "confirm": confirm}, False, None)


class DeleteAnalysisRun(ActionOperator):
    words = {"run_key": "Run"}

    @property
    def config(self):
        return quick_config(
            "delete_analysis_run", "Delete uniqueness or duplicates run",
            "Delete the run and its fields (never samples)")

    def resolve_input(self, ctx):
        inputs = types.Object()
        add_existing_run_input(ctx, inputs, run_class=analysis.AnalysisRun)
        return types.Property(inputs, view=types.View(
            label="Delete uniqueness or duplicates run"))

    def act(self, ctx):
        key = ctx.params["run_key"]
        fields_before = app.field_names(ctx.dataset)
        analysis.delete_analysis(ctx.dataset, key)
        if not ctx.delegated:
            app.reload(ctx, ctx.dataset, fields_before,
                       keep_filters=False)
            ctx.ops.set_view(ctx.dataset.view())
            app.show_on_tiles(ctx, remove=app.removed_fields(
                ctx.dataset, fields_before))
            app.notify(ctx, f"Deleted run '{key}' and its fields")
        return {"deleted": key}

    def __call__(self, sample_collection, run_key):
        return call(self, sample_collection, {"run_key": run_key}, False,
                    None)
