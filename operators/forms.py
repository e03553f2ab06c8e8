"""Form inputs built from the units' declared parameters, and the reverse:
the SDK arguments read back from ``ctx.params``.

A unit's parameter ``p`` lives in the form as ``<prefix>__<p>``, so each
unit's inputs are independent and only the chosen unit's are shown, under
a heading with the unit's name. Values are checked by the units' own
:class:`~image_clustering.units.Param` as the user types, so the form shows
the same message the SDK would raise and Execute stays disabled while one
is wrong.
"""

import fiftyone.operators.types as types

from ..units import ParamError


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
                prop.error_message = str(e)
                valid = False
    return valid


def _input(inputs, name, p, default):
    common = dict(
        label=p.name.replace("_", " ").capitalize(),
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
                      kind=None, base="clusters",
                      description="Names the run; its fields are "
                      "<run key>_cluster, ..."):
    """A new run key (of ``kind``: a clustering run by default), checked as
    the user types."""
    from ..clustering import record
    from ..clustering.runs import free_run_key, records_of

    kind = kind or record.RUN_KIND
    key = ctx.params.get(name)
    overwrite = ctx.params.get(overwrite_name, False)
    dataset = ctx.dataset
    prop = inputs.str(
        name,
        required=True,
        default=free_run_key(dataset, base),
        label="Run key",
        description=description,
    )
    if key is not None:
        try:
            record.validate_run_key(key)
        except ParamError:
            prop.invalid = True
            prop.error_message = (
                "Run keys must be valid variable names (letters, digits, "
                "underscores; not starting with a digit or '_')"
            )
        else:
            same_kind = records_of(dataset, (kind,))
            if dataset.has_run(key) and key not in same_kind:
                prop.invalid = True
                prop.error_message = (
                    f"'{key}' is not a clustering run"
                    if kind == record.RUN_KIND else
                    f"'{key}' is a run of another kind")
            elif dataset.has_run(key) and not overwrite:
                prop.invalid = True
                prop.error_message = (
                    f"Run '{key}' already exists; tick 'Overwrite' to "
                    "replace it"
                )
    inputs.bool(
        overwrite_name,
        default=False,
        label="Overwrite",
        description="Replace an existing run with this key (the old run "
        "stays until the new one is complete)",
    )
    return prop


def run_on_screen(ctx, keys):
    """The run whose clusters the App shows now, if any: the view groups by
    or filters on one of its cluster fields."""
    from ..clustering.runs import load_run

    view = ctx.view
    try:
        stages = view._serialize() if view is not None else []
    except Exception:
        return None
    text = str(stages)
    for key in sorted(keys, key=len, reverse=True):
        try:
            field = load_run(ctx.dataset, key).fields["cluster"]
        except Exception:
            continue
        if field.rsplit(".", 1)[-1] in text:
            return key
    return None


def newest_run(ctx, keys):
    from ..clustering.runs import load_run

    stamped = []
    for key in keys:
        try:
            stamped.append((load_run(ctx.dataset, key).timestamp, key))
        except Exception:
            continue
    return max(stamped)[1] if stamped else None


def default_run(ctx, keys):
    """The run on screen, else the newest."""
    return run_on_screen(ctx, keys) or newest_run(ctx, keys)


def add_existing_run_input(ctx, inputs, name="run_key", label="Run"):
    """A dropdown of the dataset's clustering runs, defaulting to the run on
    screen (else the newest); marks the form invalid when there are none.
    Returns the chosen key."""
    from ..clustering.runs import list_runs

    keys = list_runs(ctx.dataset)
    if not keys:
        warning = types.Warning(
            label="This dataset has no clustering runs",
            description="Run 'Compute clusters' first",
        )
        prop = inputs.view("no_runs", warning)
        prop.invalid = True
        return None
    choices = types.DropdownView()
    for key in keys:
        choices.add_choice(key, label=key)
    default = default_run(ctx, keys)
    inputs.enum(name, keys, default=default, required=True, label=label,
                view=choices)
    return ctx.params.get(name, default)


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
    }, "local", "Embed on")
    if ctx.params.get("executor") == "ray":
        inputs.str("ray_address", required=False, label="Ray address",
                   description="e.g. ray://head:10001 or head:6379; empty: "
                   "the cluster this machine belongs to")


def executor_kwargs(params):
    if params.get("executor") != "ray":
        return {}
    return {"executor": "ray",
            "ray_address": params.get("ray_address") or "auto"}
