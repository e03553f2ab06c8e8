"""The ``compute_clusters`` operator: the form, then one SDK call."""

import queue
import threading

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering.clusterers import CLUSTERERS
from ..clustering.pipeline import compute_clusters
from ..clustering.presets import DEFAULT_PRESET, PRESETS
from ..clustering.reducers import REDUCERS
from ..embedders import EMBEDDERS
from .calling import call
from .forms import (
    add_choice,
    add_run_key_input,
    add_unit_inputs,
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


def _preset():
    return PRESETS[DEFAULT_PRESET]


def _preset_params(kind, name):
    """The preset's parameters for unit ``name`` of ``kind``, if it has it."""
    preset = _preset()
    if kind == "embedder":
        spec = preset["embedder"]
        return {k: v for k, v in spec.items() if k != "name"} if spec["name"] == name else {}
    if kind == "reducer":
        for spec in preset["reducer"]:
            if spec["name"] == name:
                return {k: v for k, v in spec.items() if k != "name"}
        return {}
    return dict(preset["params"]) if preset["method"] == name else {}


def _vector_fields(dataset):
    import fiftyone as fo

    schema = dataset.get_field_schema(ftype=fo.VectorField)
    return sorted(schema)


class ComputeClusters(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_clusters",
            label="Compute clusters",
            description="Embed, reduce and cluster images into a run",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.view_target(ctx, action_description="Cluster")
        add_run_key_input(ctx, inputs)

        inputs.view("embeddings_header", types.Header(label="Embeddings", divider=True))
        embedders = {
            name: cls.label
            for name, cls in EMBEDDERS.items()
            if settable_in_app(cls)
        }
        vector_fields = _vector_fields(ctx.dataset)
        if vector_fields:
            embedders[FROM_FIELD] = "An existing embeddings field"
        embedder = ctx.params.get("embedder", _preset()["embedder"]["name"])
        add_choice(inputs, "embedder", embedders, _preset()["embedder"]["name"],
                   "Embedder", "How images become vectors")
        if embedder == FROM_FIELD:
            add_choice(
                inputs,
                "embeddings_field",
                {f: f for f in vector_fields},
                vector_fields[0],
                "Embeddings field",
                "Cluster these vectors; no model is run",
            )
        elif embedder in EMBEDDERS:
            add_unit_inputs(
                inputs, f"embedder_{embedder}", EMBEDDERS[embedder],
                _preset_params("embedder", embedder),
            )
        inputs.bool(
            "normalize",
            default=_preset()["normalize"],
            label="L2-normalise",
            description="Scale every embedding to unit length first "
            "(recommended for CLIP and DINO)",
        )

        inputs.view("reduction_header", types.Header(label="Reduction", divider=True))
        add_choice(inputs, "reducer", REDUCER_CHAINS, "pca+umap", "Reducer")
        for name in _chain(ctx.params.get("reducer", "pca+umap")):
            add_unit_inputs(
                inputs, f"reducer_{name}", REDUCERS[name],
                _preset_params("reducer", name),
            )

        inputs.view("clustering_header", types.Header(label="Clustering", divider=True))
        methods = {
            name: f"{cls.label}: {cls.description}"
            for name, cls in CLUSTERERS.items()
        }
        method = ctx.params.get("method", _preset()["method"])
        add_choice(inputs, "method", methods, _preset()["method"], "Method")
        if method in CLUSTERERS:
            add_unit_inputs(
                inputs, f"method_{method}", CLUSTERERS[method],
                _preset_params("method", method),
            )

        inputs.view("output_header", types.Header(label="Output", divider=True))
        add_choice(inputs, "map", MAP_CHOICES, "auto", "2-D map",
                   "Shown in the Embeddings panel, coloured by cluster")
        inputs.int("seed", default=51, label="Random seed")
        return types.Property(inputs, view=types.View(label="Compute clusters"))

    def execute(self, ctx):
        kwargs = sdk_kwargs(ctx.params)
        view = ctx.target_view()
        run_key = ctx.params["run_key"]

        if ctx.delegated:
            run = compute_clusters(
                view, run_key,
                progress=lambda f, m: ctx.set_progress(progress=f, label=m),
                **kwargs,
            )
        else:
            run = yield from _run_with_progress(ctx, view, run_key, kwargs)
            yield ctx.trigger("reload_dataset")
            # Show what was asked for: the clusters, largest first, each
            # ordered by distance to its centre.
            yield ctx.trigger(
                "set_view", {"view": run.clusters_view()._serialize()}
            )
        yield ctx.trigger(
            "notify",
            {
                "message": f"Run '{run_key}': {run.metrics['n_clusters']} "
                f"clusters, {run.metrics['fraction_clustered']:.0%} "
                "clustered",
                "variant": "success",
            },
        )


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
        name -> dict; remaining keyword arguments are method parameters.
        """
        if embeddings_field and embedder is None:
            embedder = FROM_FIELD
        params = {
            "run_key": run_key,
            "embedder": embedder,
            "embeddings_field": embeddings_field,
            "normalize": normalize,
            "reducer": reducer,
            "method": method,
            "map": map,
            "seed": seed,
            "overwrite": overwrite,
        }
        name = embedder or _preset()["embedder"]["name"]
        for k, v in (embedder_params or {}).items():
            params[f"embedder_{name}__{k}"] = v
        for r, values in (reducer_params or {}).items():
            for k, v in values.items():
                params[f"reducer_{r}__{k}"] = v
        m = method or _preset()["method"]
        for k, v in method_params.items():
            params[f"method_{m}__{k}"] = v
        result = call(self, sample_collection, params, delegate,
                      delegation_target)
        if delegate:
            return result
        from ..clustering.runs import load_run

        return load_run(sample_collection, run_key)


def _chain(value):
    return [] if value in (None, "none") else value.split("+")


def sdk_kwargs(params):
    """``compute_clusters`` keyword arguments from the form's values."""
    embedder = params.get("embedder", _preset()["embedder"]["name"])
    kwargs = {}
    if embedder == FROM_FIELD:
        kwargs["embeddings_field"] = params["embeddings_field"]
    else:
        kwargs["embedder"] = {
            "name": embedder,
            **read_unit_params(
                params, f"embedder_{embedder}", EMBEDDERS[embedder],
                _preset_params("embedder", embedder),
            ),
        }
    kwargs["normalize"] = params.get("normalize", _preset()["normalize"])
    kwargs["reducer"] = [
        {
            "name": name,
            **read_unit_params(
                params, f"reducer_{name}", REDUCERS[name],
                _preset_params("reducer", name),
            ),
        }
        for name in _chain(params.get("reducer", "pca+umap"))
    ] or "none"
    method = params.get("method", _preset()["method"])
    kwargs["method"] = method
    if method in CLUSTERERS:
        kwargs.update(
            read_unit_params(
                params, f"method_{method}", CLUSTERERS[method],
                _preset_params("method", method),
            )
        )
    kwargs["map"] = params.get("map", "auto")
    kwargs["seed"] = params.get("seed", 51)
    kwargs["overwrite"] = params.get("overwrite", False)
    return kwargs


def _run_with_progress(ctx, view, run_key, kwargs):
    """Runs the SDK call in a thread so the App's progress bar moves while
    it works; returns the run (re-raising its error)."""
    updates = queue.Queue()
    outcome = {}

    def work():
        try:
            outcome["run"] = compute_clusters(
                view, run_key, progress=lambda f, m: updates.put((f, m)),
                **kwargs,
            )
        except BaseException as e:
            outcome["error"] = e
        finally:
            updates.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while True:
        item = updates.get()
        if item is None:
            break
        fraction, message = item
        yield ctx.trigger(
            "set_progress", {"progress": fraction, "label": message}
        )
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["run"]
