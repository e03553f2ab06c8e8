"""Form inputs built from the units' declared parameters, and the reverse:
the SDK arguments read back from ``ctx.params``.

A unit's parameter ``p`` lives in the form as ``<prefix>__<p>``, so each
unit's inputs are independent and only the chosen unit's are shown, under
a heading with the unit's name. Values are checked by the units' own
:class:`~image_clustering.units.Param` as the user types, so the form shows
the same message the SDK would raise and Execute stays disabled while one
is wrong.
"""

import os

import fiftyone.operators.types as types

from ..clustering.request import EXECUTOR, RAY_ADDRESS
from ..clustering.results import ClusterRun
from ..embedders import EMBEDDERS
from ..storage import runs as stored
from ..storage import schema
from ..units import ParamError
from .words import field_error, unit_param_label

# The embedder choice that means "read an existing field".
FROM_FIELD = "field"


def param_name(prefix, param):
    return f"{prefix}__{param}"


def auto_name(prefix, param):
    return f"{prefix}__{param}__auto"


def add_unit_inputs(ctx, inputs, prefix, unit_cls, defaults=None,
                    heading=None):
    """Adds one input per declared parameter of ``unit_cls``, under a
    heading; returns whether every value given so far is valid."""
    defaults = defaults or {}
    if heading:
        inputs.view(f"{prefix}__header", types.Header(
            label=heading, description=unit_cls.description, divider=False))
    valid = True
    for p in unit_cls.PARAMS:
        if p.kind == "object" and p.default is None:
            continue
        default = defaults.get(p.name, p.default)
        name = param_name(prefix, p.name)
        if p.auto:
            switch = auto_name(prefix, p.name)
            inputs.bool(
                switch, default=default == "auto", required=False,
                label=f"Choose {p.name.replace('_', ' ')} automatically",
                description="A sweep in the clustered space picks it")
            if ctx.params.get(switch, default == "auto"):
                continue
            if default == "auto":
                default = None
        prop = _input(inputs, name, p, default)
        if name in ctx.params and ctx.params[name] is not None:
            try:
                p.clean(unit_cls.name, ctx.params[name])
            except ParamError as e:
                prop.invalid = True
                prop.error_message = field_error(e)
                valid = False
    return valid


def _input(inputs, name, p, default):
    common = dict(
        label=unit_param_label(p.name),
        description=p.description,
        # Defaults are only shown by the App; a headless call that omits a
        # parameter gets it from read_unit_params, so none is required.
        required=False,
    )
    if default is not None:
        common["default"] = default
    # No min/max here: the Param checks bounds and says so in its own words.
    if p.kind == "int":
        return inputs.int(name, **common)
    if p.kind in ("float", "number"):
        return inputs.float(name, **common)
    if p.kind == "bool":
        return inputs.bool(name, **common)
    if p.kind == "choice":
        choices = types.DropdownView()
        for c in p.choices:
            choices.add_choice(str(c), label=str(c))
        return inputs.enum(name, [str(c) for c in p.choices], view=choices,
                           **common)
    # str, object parameters the App can only name (a zoo model), and number
    # lists typed as "0.5, 0.5, 0.5"
    if isinstance(common.get("default"), (list, tuple)):
        common["default"] = ", ".join(str(v) for v in common["default"])
    return inputs.str(name, **common)


def read_unit_params(params, prefix, unit_cls, defaults=None):
    """The chosen unit's parameters from ``ctx.params``; anything the caller
    left out falls back to ``defaults`` and then the unit's own default, so
    headless calls need to give only what they change."""
    defaults = defaults or {}
    out = {}
    for p in unit_cls.PARAMS:
        name = param_name(prefix, p.name)
        if p.auto and params.get(auto_name(prefix, p.name)):
            out[p.name] = "auto"
        elif name in params:
            value = params[name]
            if p.kind == "choice" and value is not None:
                value = _match_choice(value, p.choices)
            out[p.name] = value
        elif p.auto and auto_name(prefix, p.name) in params:
            # "automatically" was unticked and no value typed yet.
            out[p.name] = None if defaults.get(p.name) == "auto" else \
                defaults.get(p.name, p.default)
        elif p.name in defaults:
            out[p.name] = defaults[p.name]
    return out


def _match_choice(value, choices):
    for c in choices:
        if str(c) == str(value):
            return c
    return value


def settable_in_app(unit_cls):
    """Whether every required parameter of the unit can be typed in a form
    (a torch module passed as an object cannot)."""
    return not any(
        p.kind == "object" and p.default is None for p in unit_cls.PARAMS
    )


def add_choice(inputs, name, options, default, label, description=None):
    """A dropdown of ``options`` (a dict of value -> label)."""
    choices = types.DropdownView()
    for value, text in options.items():
        choices.add_choice(value, label=text)
    return inputs.enum(
        name,
        list(options),
        default=default,
        required=False,
        label=label,
        description=description,
        view=choices,
    )


def add_run_key_input(ctx, inputs, name="run_key", overwrite_name="overwrite",
                      kind=schema.RUN_KIND, base="clusters",
                      description="Names the run; its fields are "
                      "<run key>_cluster, ..."):
    """A new run key (of ``kind``: a clustering run by default), checked as
    the user types."""
    key = ctx.params.get(name)
    overwrite = ctx.params.get(overwrite_name, False)
    dataset = ctx.dataset
    prop = inputs.str(
        name,
        required=True,
        default=stored.free_run_key(dataset, base),
        label="Run key",
        description=description,
    )
    if key is not None:
        message = _run_key_problem(dataset, key, kind, overwrite)
        if message:
            prop.invalid = True
            prop.error_message = message
    inputs.bool(
        overwrite_name,
        default=False,
        label="Overwrite",
        description="Replace an existing run with this key (the old run "
        "stays until the new one is complete)",
    )
    return prop


def _run_key_problem(dataset, key, kind, overwrite):
    try:
        schema.validate_run_key(key)
    except ParamError:
        return ("Run keys must be valid variable names (letters, digits, "
                "underscores; not starting with a digit or '_')")
    if not dataset.has_run(key):
        return _fields_taken(dataset, key, kind)
    if key not in stored.records_of(dataset, (kind,)):
        return (f"'{key}' is not a clustering run" if kind ==
                schema.RUN_KIND else f"'{key}' is a run of another kind")
    if not overwrite:
        return f"Run '{key}' already exists; tick 'Overwrite' to replace it"
    return None


def _fields_taken(dataset, key, kind):
    """A field the new run would write that holds something else (a field
    of the user's, or of another run)."""
    paths = schema.field_names(key, schema.KIND_FIELDS[kind]).values()
    try:
        stored.check_field_owners(dataset, key, paths)
    except ParamError:
        return (f"A field named '{key}_...' already exists and belongs to "
                "something else; choose another run key")
    return None


def run_on_screen(ctx, records):
    """The run whose clusters the App shows now, if any: the view groups by
    or filters on one of its cluster fields. ``records`` are the runs'
    key -> (record id, config)."""
    view = ctx.view
    if view is None:
        return None
    text = str(view._serialize())
    fields = {key: (config.get("fields") or {}).get("cluster", "")
              for key, (_, config) in records.items()}
    for key in sorted(fields, key=len, reverse=True):
        name = fields[key].rsplit(".", 1)[-1]
        if name and name in text:
            return key
    return None


def default_run(ctx, records):
    """The run on screen, else the newest (by record id, which grows with
    time)."""
    if not records:
        return None
    return run_on_screen(ctx, records) or max(
        records, key=lambda k: records[k][0])


def add_existing_run_input(ctx, inputs, name="run_key", label="Run",
                           run_class=ClusterRun):
    """A dropdown of the dataset's runs of ``run_class``, defaulting to the
    run on screen (else the newest); marks the form invalid when there are
    none. Reads only the runs' configs. Returns the chosen key."""
    stored.finish_abandoned_write(ctx.dataset)
    records = stored.records_of(ctx.dataset, run_class.KINDS)
    if not records:
        warning = types.Warning(
            label=f"This dataset has no {run_class.WHAT}s",
            description="Run 'Compute clusters' first"
            if run_class is ClusterRun else None,
        )
        prop = inputs.view("no_runs", warning)
        prop.invalid = True
        return None
    keys = sorted(records)
    choices = types.DropdownView()
    for key in keys:
        choices.add_choice(key, label=key)
    default = default_run(ctx, records)
    inputs.enum(name, keys, default=default, required=True, label=label,
                view=choices)
    chosen = ctx.params.get(name, default)
    return chosen if chosen in records else default


def cluster_label(run, cluster):
    """How the App names a cluster: ``Cluster 3: receipts (41)``; a node
    of a layered run's tree outside the current cut counts the members
    it had at the fit."""
    if cluster < 0:
        return f"Noise ({run.metrics['n_noise']})"
    size = next((c["size"] for c in run.clusters if c["id"] == cluster),
                None)
    if size is None:
        size = run.node(cluster)["size"]
    name = run.name_of(cluster)
    return f"Cluster {cluster}" + (f": {name}" if name else "") + \
        f" ({size})"


def cluster_choices(run, noise=True):
    """Cluster id (a string) -> its label, largest first, noise last."""
    out = {str(c["id"]): cluster_label(run, c["id"]) for c in run.clusters}
    if noise and run.metrics["n_noise"]:
        out["-1"] = cluster_label(run, -1)
    return out


def node_choices(run):
    """What a cluster can be named on: the clusters of the current cut
    (:func:`cluster_choices`), then the nodes above them in a layered
    run's tree, nearest first, each with the cut's clusters it holds."""
    out = cluster_choices(run)
    tree, cut = run.tree, run.cut
    held = {}
    for c in cut:
        for node in tree.ancestors(c)[1:]:
            held.setdefault(node, []).append(c)
    for node in sorted(held, key=lambda n: (-tree.depth(n),
                                            -int(tree.size[n]), n)):
        out[str(node)] = f"{cluster_label(run, node)} · holds " + \
            ", ".join(map(str, sorted(held[node])))
    return out


def add_multi_choice(inputs, name, options, label, description=None,
                     required=False, default=None):
    """A dropdown that picks several of ``options`` (value -> label)."""
    view = types.DropdownView(multiple=True)
    for value, text in options.items():
        view.add_choice(value, label=text)
    return inputs.list(name, types.String(), required=required, label=label,
                       description=description, default=default, view=view)


def flat_samples(view):
    """The samples of ``view``: for a view of dynamic groups (the grid
    grouped by cluster), all the samples of its groups, not one cover per
    group."""
    import fiftyone.core.stages as fosg

    if not getattr(view, "_is_dynamic_groups", False):
        return view
    flat = view._root_dataset.view()
    for stage in view._stages:
        if isinstance(stage, fosg.GroupBy):
            break
        flat = flat.add_stage(stage)
    return flat


def add_executor_inputs(ctx, inputs):
    """Where images are embedded: here, or on a Ray cluster."""
    add_choice(inputs, "executor", {
        "local": "On the machine that runs the operation",
        "ray": "On a Ray cluster (needs the 'ray' extra)",
    }, EXECUTOR.default, "Embed on", EXECUTOR.description)
    if ctx.params.get("executor") == "ray":
        inputs.str("ray_address", required=False, label="Ray address",
                   description=RAY_ADDRESS.description)


def executor_kwargs(params):
    """The executor and Ray address the form chose, as the resolver takes
    them."""
    if params.get("executor") != "ray":
        return {}
    return {"executor": "ray", "ray_address": params.get("ray_address")}


def vector_fields(dataset):
    import fiftyone as fo

    return sorted(dataset.get_field_schema(ftype=fo.VectorField))


def embedder_choices(dataset):
    """The embedders a form can offer (not those that need a Python
    object), and an existing field when the dataset has one."""
    out = {name: cls.label for name, cls in EMBEDDERS.items()
           if settable_in_app(cls)}
    if vector_fields(dataset):
        out[FROM_FIELD] = "An existing embeddings field"
    return out


def check_model(ctx, inputs, name, embedder):
    """A model folder that does not exist, or a hub id that cannot be had
    offline, is refused in the form (``name`` is the model input)."""
    model = ctx.params.get(name)
    if "model" not in {p.name for p in EMBEDDERS[embedder].PARAMS} or \
            not isinstance(model, str) or not model:
        return
    cls = EMBEDDERS[embedder]
    if not getattr(cls, "loads_from_hub", False):
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
