"""The ``compute_clusters`` operator: a form built from the one resolver of
requests, then one SDK call.

Each unit's parameter ``p`` lives in the form as ``<unit>__<p>``
(``method_hdbscan__min_cluster_size``), so that only the chosen units'
inputs show. The defaults shown are the resolver's
(:func:`~image_clustering.clustering.request.resolve_request`): a form
executed as it opens makes the same run as ``compute_clusters`` with no
arguments. :func:`request_from_form` reads the form back;
:func:`form_from_request` writes a request as the form would hold it (for
calls from Python and for tests).
"""

import fiftyone.operators.types as types

from ..algorithms.clusterers import CLUSTERERS
from ..algorithms.layout2d import MAP_METHODS
from ..algorithms.noise import MAX_NOISE, NOISE
from ..algorithms.reducers import REDUCERS
from ..clustering.api import list_runs, load_run
from ..clustering.pipeline import compute_clusters
from ..clustering.presets import DEFAULT_PRESET, PRESETS
from ..clustering.request import (
    CARRY_FROM,
    GT_FIELD,
    MAP,
    SEED,
    resolve_request,
)
from ..embedders import EMBEDDERS
from ..units import ParamError
from . import app
from .base import GeneratorOperator, long_run_config, run_with_progress
from .words import field_error
from .calling import call
from .forms import (
    FROM_FIELD,
    add_choice,
    add_executor_inputs,
    add_run_key_input,
    add_unit_inputs,
    auto_name,
    check_model,
    embedder_choices,
    executor_kwargs,
    flat_samples,
    param_name,
    read_unit_params,
    vector_fields,
)

REDUCER_CHAINS = {
    "pca+umap": "PCA, then UMAP (recommended)",
    "umap": "UMAP",
    "pca": "PCA",
    "pca+tsne": "PCA, then t-SNE",
    "tsne": "t-SNE",
    "none": "None: cluster the embeddings as they are",
}

MAP_LABELS = {
    "auto": "Automatic (the clustered space if 2-D, else UMAP of it)",
    "umap": "UMAP",
    "tsne": "t-SNE",
    "pca": "PCA",
    "none": "No map",
}

PRESET_LABELS = {
    "pixels": "Raw pixels (no model)",
    "dino": "DINOv2 features (visual structure)",
    "clip": "CLIP features (semantics)",
}

NOISE_LABELS = {
    "keep": "Keep it as noise (-1)",
    "assign": "Assign it to the most probable cluster",
}

#: Form field labels, for errors worded as the form words them.
WORDS = {
    "run_key": "Run key", "overwrite": "Overwrite", "preset": "Preset",
    "embedder": "Embedder", "embeddings_field": "Embeddings field",
    "reducer": "Reducer", "method": "Method", "noise": "Noise",
    "max_noise": "Largest share left as noise", "map": "2-D map",
    "gt_field": "Score against", "seed": "Random seed",
    "carry_from": "Carry decisions from",
    "executor": "Embed on", "ray_address": "Ray address",
    "normalize": "L2-normalise",
}


def _chain_name(reducers):
    return "+".join(r.name for r in reducers) or "none"


def _chain(value):
    return [] if value in (None, "none") else value.split("+")


# -- what the form holds, both ways -------------------------------------------


def _preset_chain(preset):
    return "+".join(r["name"] for r in PRESETS[preset]["reducer"]) or "none"


def form_defaults(params):
    """The resolver's answer to the choices made in the form so far: the
    preset, and the embedder, reducers and method picked (each the
    preset's own when it is the preset's). Raises
    :class:`~image_clustering.ParamError` when those cannot go together."""
    preset = params.get("preset") or DEFAULT_PRESET
    if preset not in PRESETS:
        preset = DEFAULT_PRESET
    base = PRESETS[preset]
    embedder = params.get("embedder", base["embedder"]["name"])
    chain = params.get("reducer", _preset_chain(preset))
    method = params.get("method", base["method"])
    request = {"preset": preset}
    if embedder == FROM_FIELD:
        request["embeddings_field"] = params.get(
            "embeddings_field") or "_"
    elif embedder in EMBEDDERS and embedder != base["embedder"]["name"]:
        request["embedder"] = embedder
    if chain != _preset_chain(preset):
        request["reducer"] = _chain(chain) or "none"
    if method in CLUSTERERS and method != base["method"]:
        request["method"] = method
    return preset, resolve_request(**request)


def request_from_form(params):
    """``compute_clusters`` keywords from the form's values. Every unit
    parameter the form holds is passed on; the preset's method is left
    unnamed, so that its noise policy goes with it as it does when
    ``compute_clusters`` is called without a method."""
    preset, spec = form_defaults(params)
    request = {"preset": preset}
    embedder = params.get("embedder",
                          spec.embedder.name if spec.embedder else FROM_FIELD)
    if embedder == FROM_FIELD:
        request["embeddings_field"] = params.get(
            "embeddings_field")
    else:
        request["embedder"] = {"name": embedder, **read_unit_params(
            params, f"embedder_{embedder}",
            EMBEDDERS[embedder], spec.embedder.params)}
    normalize = params.get(f"normalize_{embedder}")
    if normalize is not None:
        request["normalize"] = normalize
    request["reducer"] = [
        {"name": unit.name, **read_unit_params(
            params, f"reducer_{unit.name}",
            REDUCERS[unit.name], unit.params)}
        for unit in spec.reducers] or "none"
    method = spec.clusterer.name
    if method != PRESETS[preset]["method"]:
        request["method"] = method
    request.update(read_unit_params(
        params, f"method_{method}", CLUSTERERS[method],
        spec.clusterer.params))
    if CLUSTERERS[method].density:
        for p in (NOISE, MAX_NOISE):
            value = params.get(p.name)
            if value not in (None, ""):
                request[p.name] = value
    for name in ("map", "seed", "overwrite"):
        if params.get(name) is not None:
            request[name] = params[name]
    request["gt_field"] = params.get("gt_field") or None
    if params.get("carry_from"):
        request["carry_from"] = params["carry_from"]
    request.update(executor_kwargs(params))
    return request


def form_from_request(run_key, overwrite=False, **request):
    """The form's values for a request given as ``compute_clusters``
    keywords: the request is resolved, and every value of the resolved run
    is written where the form holds it (for calls from Python and for
    tests; the App's own form holds the same)."""
    spec = resolve_request(**request)
    preset = spec.preset
    params = {k: v for k, v in (
        ("run_key", run_key), ("preset", preset), ("overwrite", overwrite),
        ("map", spec.map), ("seed", spec.seed), ("gt_field", spec.gt_field),
        ("carry_from", spec.carry_from),
        ("executor", spec.executor), ("ray_address", spec.ray_address))
        if v is not None}
    if spec.embedder is None:
        name = FROM_FIELD
        params["embeddings_field"] = spec.embeddings_field
    else:
        name = spec.embedder.name
        params.update(_unit_form(f"embedder_{name}",
                                 spec.embedder))
    params["embedder"] = name
    params[f"normalize_{name}"] = spec.normalize
    params["reducer"] = _chain_name(spec.reducers)
    for unit in spec.reducers:
        params.update(_unit_form(f"reducer_{unit.name}",
                                 unit))
    method = spec.clusterer.name
    params["method"] = method
    params.update(_unit_form(f"method_{method}",
                             spec.clusterer))
    if spec.density:
        params["noise"] = spec.noise
        if spec.max_noise is not None:
            params["max_noise"] = spec.max_noise
    return params


def _unit_form(prefix, unit):
    """A unit's parameters as the form holds them (an emptied input is
    ``None``)."""
    out = {}
    for p in type(unit).PARAMS:
        if p.kind == "object":
            continue
        value = unit.params[p.name]
        if p.auto:
            out[auto_name(prefix, p.name)] = value == "auto"
            if value == "auto":
                continue
        out[param_name(prefix, p.name)] = value
    return out


# -- the operator -------------------------------------------------------------


class ComputeClusters(GeneratorOperator):
    words = WORDS
    choices = {"map": MAP_LABELS, "noise": NOISE_LABELS,
               "reducer": REDUCER_CHAINS}

    @property
    def config(self):
        return long_run_config(
            "compute_clusters", "Compute clusters",
            "Embed, reduce and cluster images into a run")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Cluster")
        target = flat_samples(ctx.target_view())
        n = len(target)
        inputs.view("target_count", types.Notice(
            label=f"Clusters {n:,} sample{'s' if n != 1 else ''}"
            + (" (every sample of the groups on screen)"
               if getattr(ctx.target_view(), "_is_dynamic_groups", False)
               else "")))
        add_run_key_input(ctx, inputs)
        add_choice(inputs, "preset",
                   {k: PRESET_LABELS.get(k, k) for k in PRESETS},
                   DEFAULT_PRESET, "Preset",
                   "Recommended starting points; change anything below")
        try:
            preset, spec = form_defaults(ctx.params)
        except ParamError as e:
            prop = inputs.view("request_error", types.Error(
                label="These choices do not go together",
                description=self.render_error(e)))
            prop.invalid = True
            return types.Property(inputs)
        self._embedding_inputs(ctx, inputs, preset, spec)
        self._reduction_inputs(ctx, inputs, preset, spec)
        self._clustering_inputs(ctx, inputs, preset, spec, n)
        self._output_inputs(ctx, inputs)
        return types.Property(inputs,
                              view=types.View(label="Compute clusters"))

    def _embedding_inputs(self, ctx, inputs, preset, spec):
        inputs.view("embeddings_header",
                    types.Header(label="Embeddings", divider=True))
        choices = embedder_choices(ctx.dataset)
        default = spec.embedder.name if spec.embedder else FROM_FIELD
        add_choice(inputs, "embedder", choices, default,
                   "Embedder", "How images become vectors")
        embedder = ctx.params.get("embedder", default)
        if embedder == FROM_FIELD:
            fields = vector_fields(ctx.dataset)
            add_choice(inputs, "embeddings_field",
                       {f: f for f in fields}, fields[0] if fields else None,
                       "Embeddings field",
                       "Cluster these vectors; no model is run")
        elif embedder in EMBEDDERS:
            cls = EMBEDDERS[embedder]
            prefix = f"embedder_{embedder}"
            add_unit_inputs(ctx, inputs, prefix, cls, spec.embedder.params,
                            heading=cls.label)
            check_model(ctx, inputs, param_name(prefix, "model"), embedder)
        inputs.bool(
            f"normalize_{embedder}", default=spec.normalize,
            label="L2-normalise",
            description="Scale every embedding to unit length first "
            "(model features are compared by direction)")

    def _reduction_inputs(self, ctx, inputs, preset, spec):
        inputs.view("reduction_header",
                    types.Header(label="Reduction", divider=True))
        name = "reducer"
        chain = _chain_name(spec.reducers)
        options = dict(REDUCER_CHAINS)
        options.setdefault(chain, chain)
        add_choice(inputs, name, options, chain, "Reducer")
        for unit in spec.reducers:
            cls = REDUCERS[unit.name]
            add_unit_inputs(ctx, inputs,
                            f"reducer_{unit.name}", cls,
                            unit.params, heading=cls.label)

    def _clustering_inputs(self, ctx, inputs, preset, spec, n):
        inputs.view("clustering_header",
                    types.Header(label="Clustering", divider=True))
        methods = {name: f"{cls.label}: {cls.description}"
                   for name, cls in CLUSTERERS.items()}
        clusterer = spec.clusterer
        add_choice(inputs, "method", methods, clusterer.name,
                   "Method")
        cls = type(clusterer)
        prefix = f"method_{clusterer.name}"
        valid = add_unit_inputs(ctx, inputs, prefix, cls, clusterer.params,
                                heading=cls.label)
        if valid:
            self._check_method(ctx, inputs, prefix, cls, clusterer.params, n)
        if cls.density:
            add_choice(inputs, "noise",
                       NOISE_LABELS, spec.noise, "Noise",
                       "Samples the method leaves out")
            inputs.float("max_noise",
                         required=False, label=WORDS["max_noise"],
                         description=MAX_NOISE.description)

    def _check_method(self, ctx, inputs, prefix, cls, defaults, n):
        """The checks the SDK makes before any work that need the values
        together and the number of samples, shown in the form."""
        values = read_unit_params(ctx.params, prefix, cls, defaults)
        try:
            cls(**values).check_count(n)
        except ParamError as e:
            prop = inputs.get_property(param_name(prefix, e.param or ""))
            if prop is not None:
                prop.invalid = True
                prop.error_message = field_error(e)
                return
            inputs.view(f"{prefix}__error", types.Error(
                label="These parameters do not fit",
                description=self.render_error(e)))
            inputs.get_property(f"{prefix}__error").invalid = True

    def _output_inputs(self, ctx, inputs):
        inputs.view("output_header",
                    types.Header(label="Output", divider=True))
        add_choice(inputs, "map", {m: MAP_LABELS[m] for m in MAP_METHODS},
                   MAP.default, WORDS["map"],
                   "Shown in the Embeddings panel, coloured by cluster")
        gt_fields = _classification_fields(ctx.dataset)
        if gt_fields:
            add_choice(inputs, "gt_field",
                       {"": "No ground truth", **{f: f for f in gt_fields}},
                       "", WORDS["gt_field"], GT_FIELD.description)
        inputs.int("seed", default=SEED.default, label=WORDS["seed"])
        runs = list_runs(ctx.dataset)
        if runs:
            add_choice(inputs, "carry_from",
                       {"": "The run this one overwrites, if any",
                        **{k: f"Run '{k}'" for k in runs}},
                       "", WORDS["carry_from"], CARRY_FROM.description)
        add_executor_inputs(ctx, inputs)

    def run(self, ctx):
        request = request_from_form(ctx.params)
        target = flat_samples(ctx.target_view())
        run_key = ctx.params["run_key"]
        targeted = len(target)
        fields_before = app.field_names(ctx.dataset)
        run = yield from run_with_progress(
            ctx, compute_clusters, samples=target, run_key=run_key,
            **request)
        if not ctx.delegated:
            yield from app.reload(ctx, ctx.dataset, fields_before,
                                  keep_filters=False)
            yield from app.show_colors(ctx, run.dataset)
            # Show what was asked for: the clusters, largest first, each
            # ordered by distance to its centre, each tile saying its
            # cluster and size.
            yield ctx.trigger(
                "set_view", {"view": run.clusters_view()._serialize()})
            yield from app.show_on_tiles(ctx, add=app.tile_fields(run))
            yield from app.refresh_panels(ctx)
        yield from app.notify(ctx, _done(run, targeted))

    def __call__(self, sample_collection, run_key, embedder=None,
                 embedder_params=None, reducer=None, reducer_params=None,
                 delegate=False, delegation_target=None, **request):
        """Runs the operator from Python with ``compute_clusters``'s
        keywords, immediately (returns the
        :class:`~image_clustering.ClusterRun`) or, with ``delegate=True``,
        queued for ``fiftyone delegated launch`` (returns the
        ``ExecutionResult`` of the queued operation).
        ``embedder_params`` (a dict) and ``reducer_params`` (reducer name
        -> dict) add parameters to the embedder and reducers named."""
        if embedder_params or embedder is not None:
            spec = {"name": embedder} if isinstance(embedder, str) else \
                dict(embedder or {})
            spec.setdefault("name", PRESETS[request.get("preset") or
                                           DEFAULT_PRESET]["embedder"]["name"])
            request["embedder"] = {**spec, **(embedder_params or {})}
        if reducer is not None or reducer_params:
            chain = reducer if reducer is not None else _preset_chain(
                request.get("preset") or DEFAULT_PRESET)
            specs = [{"name": r} if isinstance(r, str) else dict(r) for r in
                     (_chain(chain) if isinstance(chain, str) else chain)]
            for spec in specs:
                spec.update((reducer_params or {}).get(spec["name"], {}))
            request["reducer"] = specs or "none"
        result = call(self, sample_collection,
                      form_from_request(run_key, **request), delegate,
                      delegation_target)
        if delegate:
            return result
        return load_run(sample_collection, run_key)


def _done(run, targeted):
    m = run.metrics
    clustered = m["n_samples"] - m["n_noise"]
    message = (f"Run '{run.key}': {m['n_clusters']} clusters; "
               f"{clustered:,} of {targeted:,} samples clustered")
    extra = []
    if m["n_noise"]:
        extra.append(f"{m['n_noise']:,} noise")
    if run.skipped["count"]:
        extra.append(f"{run.skipped['count']:,} could not be read")
    if extra:
        message += " (" + ", ".join(extra) + ")"
    carried = run.results.get("carried")
    if carried:
        message += "; decisions carried " + carried["lines"][0]
    return message


def _classification_fields(dataset):
    import fiftyone as fo

    return sorted(dataset.get_field_schema(
        ftype=fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification))
