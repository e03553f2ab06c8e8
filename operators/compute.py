"""The ``compute_clusters`` operator: the form, then one SDK call."""

import os

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering.clusterers import CLUSTERERS
from ..clustering.pipeline import compute_clusters
from ..clustering.presets import DEFAULT_PRESET, PRESETS
from ..clustering.reducers import REDUCERS
from ..embedders import EMBEDDERS
from ..units import ParamError
from .base import GeneratorOperator, long_run_config, run_with_progress
from .calling import call
from .forms import (
    add_choice,
    add_executor_inputs,
    executor_kwargs,
    add_run_key_input,
    add_unit_inputs,
    flat_samples,
    read_unit_params,
    settable_in_app,
)

FROM_FIELD = "field"

REDUCER_CHAINS = {
    "pca+umap": "PCA, then UMAP (recommended)",
    "umap": "UMAP",
    "pca": "PCA",
    "pca+tsne": "PCA, then t-SNE",
    "tsne": "t-SNE",
    "none": "None: cluster the embeddings as they are",
}

MAP_CHOICES = {
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

# Embedders whose vectors are compared by direction: normalise them.
NORMALIZED_EMBEDDERS = ("dino", "clip")


def _preset(params):
    name = params.get("preset", DEFAULT_PRESET)
    return PRESETS.get(name, PRESETS[DEFAULT_PRESET])


def _preset_params(params, kind, name):
    """The preset's parameters for unit ``name`` of ``kind``, if it has
    it."""
    preset = _preset(params)
    if kind == "embedder":
        spec = preset["embedder"]
        return ({k: v for k, v in spec.items() if k != "name"}
                if spec["name"] == name else {})
    if kind == "reducer":
        for spec in preset["reducer"]:
            if spec["name"] == name:
                return {k: v for k, v in spec.items() if k != "name"}
        return {}
    return dict(preset["params"]) if preset["method"] == name else {}


def _vector_fields(dataset):
    import fiftyone as fo

    return sorted(dataset.get_field_schema(ftype=fo.VectorField))


def _classification_fields(dataset):
    import fiftyone as fo

    return sorted(dataset.get_field_schema(
        ftype=fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification))


def _chain(value):
    return [] if value in (None, "none") else value.split("+")


def _normalize_name(embedder):
    # One input per embedder, so that choosing DINO shows its own default.
    return f"normalize_{embedder}"


class ComputeClusters(GeneratorOperator):
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
        presets = {k: PRESET_LABELS.get(k, k) for k in PRESETS}
        add_choice(inputs, "preset", presets, DEFAULT_PRESET, "Preset",
                   "Recommended starting points; change anything below")
        self._embedding_inputs(ctx, inputs)
        self._reduction_inputs(ctx, inputs)
        method = self._clustering_inputs(ctx, inputs, n)
        self._output_inputs(ctx, inputs, method)
        return types.Property(inputs,
                              view=types.View(label="Compute clusters"))

    def _embedding_inputs(self, ctx, inputs):
        params = ctx.params
        inputs.view("embeddings_header",
                    types.Header(label="Embeddings", divider=True))
        embedders = {name: cls.label for name, cls in EMBEDDERS.items()
                     if settable_in_app(cls)}
        vector_fields = _vector_fields(ctx.dataset)
        if vector_fields:
            embedders[FROM_FIELD] = "An existing embeddings field"
        default = _preset(params)["embedder"]["name"]
        add_choice(inputs, "embedder", embedders, default, "Embedder",
                   "How images become vectors")
        embedder = params.get("embedder", default)
        if embedder == FROM_FIELD:
            add_choice(inputs, "embeddings_field",
                       {f: f for f in vector_fields}, vector_fields[0],
                       "Embeddings field",
                       "Cluster these vectors; no model is run")
        elif embedder in EMBEDDERS:
            cls = EMBEDDERS[embedder]
            add_unit_inputs(ctx, inputs, f"embedder_{embedder}", cls,
                            _preset_params(params, "embedder", embedder),
                            heading=cls.label)
            _check_model(ctx, inputs, embedder)
        inputs.bool(
            _normalize_name(embedder),
            default=embedder in NORMALIZED_EMBEDDERS or
            _preset(params)["normalize"],
            label="L2-normalise",
            description="Scale every embedding to unit length first "
            "(recommended for CLIP and DINO)",
        )

    def _reduction_inputs(self, ctx, inputs):
        inputs.view("reduction_header",
                    types.Header(label="Reduction", divider=True))
        add_choice(inputs, "reducer", REDUCER_CHAINS, "pca+umap", "Reducer")
        for name in _chain(ctx.params.get("reducer", "pca+umap")):
            cls = REDUCERS[name]
            add_unit_inputs(ctx, inputs, f"reducer_{name}", cls,
                            _preset_params(ctx.params, "reducer", name),
                            heading=cls.label)

    def _clustering_inputs(self, ctx, inputs, n):
        params = ctx.params
        inputs.view("clustering_header",
                    types.Header(label="Clustering", divider=True))
        methods = {name: f"{cls.label}: {cls.description}"
                   for name, cls in CLUSTERERS.items()}
        default = _preset(params)["method"]
        add_choice(inputs, "method", methods, default, "Method")
        method = params.get("method", default)
        if method not in CLUSTERERS:
            return method
        cls = CLUSTERERS[method]
        prefix = f"method_{method}"
        valid = add_unit_inputs(ctx, inputs, prefix, cls,
                                _preset_params(params, "method", method),
                                heading=cls.label)
        if valid:
            _check_method(ctx, inputs, prefix, cls, n)
        if cls.density:
            add_choice(inputs, "noise", {
                "keep": "Keep it as noise (-1)",
                "assign": "Assign it to the most probable cluster",
            }, "keep", "Noise", "Samples the method leaves out")
        return method

    def _output_inputs(self, ctx, inputs, method):
        inputs.view("output_header",
                    types.Header(label="Output", divider=True))
        add_choice(inputs, "map", MAP_CHOICES, "auto", "2-D map",
                   "Shown in the Embeddings panel, coloured by cluster")
        gt_fields = _classification_fields(ctx.dataset)
        if gt_fields:
            add_choice(inputs, "gt_field",
                       {"": "No ground truth", **{f: f for f in gt_fields}},
                       "", "Score against",
                       "A Classification field to measure the clusters "
                       "against (ARI, AMI, purity)")
        inputs.int("seed", default=51, label="Random seed")
        add_executor_inputs(ctx, inputs)

    def run(self, ctx):
        kwargs = sdk_kwargs(ctx.params)
        target = flat_samples(ctx.target_view())
        run_key = ctx.params["run_key"]
        targeted = len(target)
        run = yield from run_with_progress(
            ctx, compute_clusters, samples=target, run_key=run_key,
            **kwargs)
        if not ctx.delegated:
            yield ctx.trigger("reload_dataset")
            yield ctx.trigger("refresh_colors")
            # Show what was asked for: the clusters, largest first, each
            # ordered by distance to its centre.
            yield ctx.trigger(
                "set_view", {"view": run.clusters_view()._serialize()})
        m = run.metrics
        clustered = m["n_samples"] - m["n_noise"]
        message = (f"Run '{run_key}': {m['n_clusters']} clusters; "
                   f"{clustered:,} of {targeted:,} samples clustered")
        extra = []
        if m["n_noise"]:
            extra.append(f"{m['n_noise']:,} noise")
        if run.skipped["count"]:
            extra.append(f"{run.skipped['count']:,} could not be read")
        if extra:
            message += " (" + ", ".join(extra) + ")"
        yield ctx.trigger("notify", {"message": message,
                                     "variant": "success"})

    def __call__(
        self,
        sample_collection,
        run_key,
        embedder=None,
        embedder_params=None,
        embeddings_field=None,
        normalize=None,
        reducer=None,
        reducer_params=None,
        method=None,
        map=None,
        seed=None,
        overwrite=False,
        preset=None,
        noise=None,
        gt_field=None,
        executor=None,
        ray_address=None,
        delegate=False,
        delegation_target=None,
        **method_params,
    ):
        """Runs the operator from Python, immediately (returns the
        :class:`~image_clustering.ClusterRun`) or, with ``delegate=True``,
        queued for ``fiftyone delegated launch`` (returns the
        ``ExecutionResult`` of the queued operation).

        ``embedder`` is an embedder name, or ``"field"`` with
        ``embeddings_field``; ``reducer`` a chain such as ``"pca+umap"``;
        ``embedder_params`` a dict and ``reducer_params`` a dict of reducer
        name -> dict; remaining keyword arguments are method parameters
        (``n_clusters="auto"`` chooses k).
        """
        if embeddings_field and embedder is None:
            embedder = FROM_FIELD
        params = {
            "run_key": run_key,
            "preset": preset,
            "embedder": embedder,
            "embeddings_field": embeddings_field,
            "reducer": reducer,
            "method": method,
            "map": map,
            "seed": seed,
            "overwrite": overwrite,
            "noise": noise,
            "gt_field": gt_field,
            "executor": executor,
            "ray_address": ray_address,
        }
        name = embedder or _preset(params)["embedder"]["name"]
        if normalize is not None:
            params[_normalize_name(name)] = normalize
        for k, v in (embedder_params or {}).items():
            params[f"embedder_{name}__{k}"] = v
        for r, values in (reducer_params or {}).items():
            for k, v in values.items():
                params[f"reducer_{r}__{k}"] = v
        m = method or _preset(params)["method"]
        cls = CLUSTERERS.get(m)
        for k, v in method_params.items():
            param = next((p for p in (cls.PARAMS if cls else ())
                          if p.name == k), None)
            if param is not None and param.auto and v == "auto":
                params[f"method_{m}__{k}__auto"] = True
            else:
                params[f"method_{m}__{k}"] = v
        result = call(self, sample_collection, params, delegate,
                      delegation_target)
        if delegate:
            return result
        from ..clustering.runs import load_run

        return load_run(sample_collection, run_key)


def _check_model(ctx, inputs, embedder):
    """A model folder that does not exist, or a hub id that cannot be had
    offline, is refused in the form."""
    name = f"embedder_{embedder}__model"
    model = ctx.params.get(name)
    if embedder not in ("dino", "clip") or not model:
        return
    if os.path.isdir(os.path.expanduser(model)):
        return
    prop = inputs.get_property(name)
    # Hub ids are "name" or "org/name"; anything else names a folder.
    if model.startswith((".", "~", "/")) or model.count("/") > 1 or \
            (os.sep != "/" and os.sep in model):
        prop.invalid = True
        prop.error_message = f"No folder '{model}' on the server"
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true") \
        or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true")
    if offline and not _in_hub_cache(model):
        prop.invalid = True
        prop.error_message = (
            f"'{model}' is not in the local Hugging Face cache and the hub "
            "is offline here; give a local folder written by "
            "save_pretrained")


def _in_hub_cache(model_id):
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    found = try_to_load_from_cache(model_id, "config.json")
    return isinstance(found, str)


def _check_method(ctx, inputs, prefix, cls, n):
    """Checks that need the values together and the number of samples:
    the same checks the SDK makes before any work, shown in the form."""
    values = read_unit_params(ctx.params, prefix, cls,
                              _preset_params(ctx.params, "method",
                                             cls.name))
    try:
        unit = cls(**values)
        unit.check_count(n)
    except ParamError as e:
        message = str(e)
        for p in cls.PARAMS:
            if f"'{p.name}'" in message:
                prop = inputs.get_property(f"{prefix}__{p.name}")
                if prop is not None:
                    prop.invalid = True
                    prop.error_message = message
                    return
        inputs.view(f"{prefix}__error", types.Error(
            label="These parameters do not fit", description=message))
        inputs.get_property(f"{prefix}__error").invalid = True


def sdk_kwargs(params):
    """``compute_clusters`` keyword arguments from the form's values."""
    preset = _preset(params)
    embedder = params.get("embedder", preset["embedder"]["name"])
    kwargs = {"preset": params.get("preset") or DEFAULT_PRESET}
    if embedder == FROM_FIELD:
        kwargs["embeddings_field"] = params["embeddings_field"]
    else:
        kwargs["embedder"] = {
            "name": embedder,
            **read_unit_params(params, f"embedder_{embedder}",
                               EMBEDDERS[embedder],
                               _preset_params(params, "embedder", embedder)),
        }
    kwargs["normalize"] = params.get(
        _normalize_name(embedder),
        embedder in NORMALIZED_EMBEDDERS or preset["normalize"])
    kwargs["reducer"] = [
        {"name": name, **read_unit_params(
            params, f"reducer_{name}", REDUCERS[name],
            _preset_params(params, "reducer", name))}
        for name in _chain(params.get("reducer", "pca+umap"))
    ] or "none"
    method = params.get("method", preset["method"])
    kwargs["method"] = method
    if method in CLUSTERERS:
        kwargs.update(read_unit_params(
            params, f"method_{method}", CLUSTERERS[method],
            _preset_params(params, "method", method)))
        if CLUSTERERS[method].density:
            kwargs["noise"] = params.get("noise") or "keep"
    kwargs["map"] = params.get("map", "auto")
    kwargs["seed"] = params.get("seed", 51)
    kwargs["overwrite"] = params.get("overwrite", False)
    kwargs["gt_field"] = params.get("gt_field") or None
    kwargs.update(executor_kwargs(params))
    return kwargs
