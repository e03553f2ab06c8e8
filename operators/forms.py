"""Form inputs built from the units' declared parameters, and the reverse:
the SDK arguments read back from ``ctx.params``.

A unit's parameter ``p`` lives in the form as ``<prefix>__<p>``, so each
unit's inputs are independent and only the chosen unit's are shown.
"""

import fiftyone.operators.types as types


def param_name(prefix, param):
    return f"{prefix}__{param}"


def add_unit_inputs(inputs, prefix, unit_cls, defaults=None):
    """Adds one input per declared parameter of ``unit_cls``."""
    defaults = defaults or {}
    for p in unit_cls.PARAMS:
        name = param_name(prefix, p.name)
        default = defaults.get(p.name, p.default)
        common = dict(
            label=p.name.replace("_", " ").capitalize(),
            description=p.description,
            # Defaults are only shown by the App; a headless call that omits
            # a parameter gets it from read_unit_params, so none is required.
            required=False,
        )
        if default is not None:
            common["default"] = default
        if p.kind == "int":
            inputs.int(name, min=p.min, max=p.max, **common)
        elif p.kind in ("float", "number"):
            inputs.float(name, min=p.min, max=p.max, **common)
        elif p.kind == "bool":
            inputs.bool(name, **common)
        elif p.kind == "choice":
            inputs.enum(
                name, [str(c) for c in p.choices], view=types.DropdownView(),
                **common,
            )
        else:
            # str, and object parameters that the App can only name (a zoo
            # model), and number lists typed as "0.5, 0.5, 0.5"
            if isinstance(common.get("default"), (list, tuple)):
                common["default"] = ", ".join(str(v) for v in common["default"])
            inputs.str(name, **common)


def read_unit_params(params, prefix, unit_cls, defaults=None):
    """The chosen unit's parameters from ``ctx.params``; anything the caller
    left out falls back to ``defaults`` and then the unit's own default, so
    headless calls need to give only what they change."""
    defaults = defaults or {}
    out = {}
    for p in unit_cls.PARAMS:
        name = param_name(prefix, p.name)
        if name in params:
            value = params[name]
            if p.kind == "choice" and value is not None:
                value = _match_choice(value, p.choices)
            out[p.name] = value
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
    inputs.enum(
        name,
        list(options),
        default=default,
        required=False,
        label=label,
        description=description,
        view=choices,
    )
    return name


def add_run_key_input(ctx, inputs, name="run_key", overwrite_name="overwrite"):
    """A new run key, checked as the user types."""
    from ..clustering import record
    from ..clustering.runs import free_run_key, list_runs
    from ..units import ParamError

    key = ctx.params.get(name)
    overwrite = ctx.params.get(overwrite_name, False)
    dataset = ctx.dataset
    prop = inputs.str(
        name,
        required=True,
        default=free_run_key(dataset),
        label="Run key",
        description="Names the run; its fields are <run key>_cluster, ...",
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
            if dataset.has_run(key) and key not in list_runs(dataset):
                prop.invalid = True
                prop.error_message = f"'{key}' is not a clustering run"
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


def add_existing_run_input(ctx, inputs, name="run_key", label="Run"):
    """A dropdown of the dataset's clustering runs; marks the form invalid
    when there are none. Returns the chosen key."""
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
    default = keys[-1]
    inputs.enum(name, keys, default=default, required=True, label=label,
                view=choices)
    return ctx.params.get(name, default)
