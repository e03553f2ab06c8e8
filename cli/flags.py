"""Command-line flags made from declared parameters, and errors worded in
flags.

Every :class:`~image_clustering.units.Param` of the run (and of the
namers, the duplicates, ...) becomes a flag of the same name with dashes
(``max_noise`` -> ``--max-noise``) and its description as help. Values are
passed on as the strings typed: the parameter itself parses and checks
them, so the command line refuses what Python refuses, and its error names
the flag to change.
"""

import argparse

from ..units import ParamError


def flag(name):
    return "--" + name.replace("_", "-")


def add_param_flags(parser, params, skip=(), defaults=None):
    """Adds one flag per parameter of ``params`` (those shown in forms,
    not in ``skip``); ``defaults`` overrides the default shown in help."""
    defaults = defaults or {}
    for p in params:
        if p.name in skip:
            continue
        help_text = p.help(choices=False) if p.name not in defaults else \
            f"{p.description.rstrip('.')}; default: {defaults[p.name]}"
        if p.kind == "bool":
            parser.add_argument(flag(p.name), dest=p.name, default=None,
                                action=argparse.BooleanOptionalAction,
                                help=help_text)
        else:
            parser.add_argument(flag(p.name), dest=p.name, default=None,
                                metavar=_metavar(p), help=help_text)


def _metavar(p):
    if p.kind == "choice":
        return "{" + ",".join(map(str, p.choices)) + "}"
    return {"int": "N", "float": "X", "number": "X", "floats": "X,Y,..."
            }.get(p.kind, p.name.upper())


def given(args, params):
    """The values of ``params`` the user gave on the command line."""
    return {p.name: getattr(args, p.name) for p in params
            if getattr(args, p.name, None) is not None}


def parse_assignments(items, option):
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; refuses anything
    else, naming ``option``."""
    params = {}
    for item in items or []:
        if "=" not in item:
            raise ParamError(f"{option} takes NAME=VALUE, got {item!r}",
                             option)
        name, value = item.split("=", 1)
        params[name.strip()] = value.strip()
    return params


def parse_reducer(text):
    """``pca:n_components=30+umap:n_components=10,min_dist=0`` -> a list of
    ``{"name": ..., **params}``; ``none`` -> ``"none"``."""
    if text is None:
        return None
    if text.strip() == "none":
        return "none"
    specs = []
    for part in text.split("+"):
        name, _, args = part.partition(":")
        spec = {"name": name.strip()}
        spec.update(parse_assignments(
            [a for a in args.split(",") if a.strip()], "--reducer"))
        specs.append(spec)
    return specs


def parse_ids(text, option="--clusters"):
    """``"3,5"`` -> ``[3, 5]``; ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        return [int(c) for c in str(text).split(",") if c.strip()]
    except ValueError:
        raise ParamError(f"{option} takes comma-separated integers, got "
                         f"{text!r}", option) from None


class FlagNames:
    """How a command's errors name its flags: parameter name -> the flag
    (or the flag and the name inside it, as in ``--param n_clusters``)."""

    def __init__(self, names=None, unit_options=None):
        self.names = dict(names or {})
        # owner name -> the option its parameters are given through
        self.unit_options = dict(unit_options or {})

    def of(self, error):
        """The flag that ``error`` is about, or ``None``."""
        param = error.param
        if param is None:
            return None
        if param.startswith("--"):
            return param
        if error.owner in self.unit_options:
            return f"{self.unit_options[error.owner]} {param}"
        if param in self.names:
            return self.names[param]
        return flag(param)

    def render(self, error):
        """The error's message with the flag named, and the fix said as a
        command-line user would type it."""
        where = self.of(error)
        message = error.message
        if where and error.param and not error.param.startswith("--"):
            message = message.replace(f"'{error.param}'", where)
            if message.startswith(f"{error.param}: "):
                message = where + message[len(error.param):]
            owner = f"{error.owner}: " if error.owner else None
            if owner and message.startswith(owner) and \
                    error.owner not in self.unit_options:
                message = message[len(owner):]
        if not error.has_fix or where is None:
            return message
        return f"{message}; {_how_to_set(where, error.fix)}"


def _how_to_set(where, value):
    if " " in where:
        option, name = where.split(" ", 1)
        return f"pass {option} {name}={value}"
    if value is True:
        return f"pass {where}"
    if value is False:
        return f"pass --no-{where[2:]}"
    return f"pass {where} {value}"
