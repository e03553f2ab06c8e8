"""The vocabulary every layer speaks: declared parameters, units, and the
error that names a bad parameter.

One declaration serves three readers: validation before any work starts,
the App forms, and the command line. Values may arrive as strings (command
line, forms), so each kind parses them. Nothing here imports anything of
ours, so every layer may import it.
"""

import math


_NO_FIX = object()


class ParamError(ValueError):
    """A parameter value that cannot be used; the message names it.

    Args:
        message: what is wrong, in words that suit every entry point
        param: the parameter to change, as the SDK spells it
        fix: a value of ``param`` that would be accepted, when there is one
            worth suggesting (e.g. ``overwrite`` -> ``True``)

    ``str(error)`` speaks Python ("pass overwrite=True"); the command line
    and the App render the same error with their own flag or field names
    through :meth:`render`.
    """

    def __init__(self, message, param=None, fix=_NO_FIX, owner=None):
        self.message = message
        self.param = param
        self.fix = fix
        self.owner = owner
        super().__init__(self.render())

    @property
    def has_fix(self):
        return self.fix is not _NO_FIX

    def render(self, how_to_set=None):
        """The message, and how to fix it in the caller's words:
        ``how_to_set(param, value)`` returns e.g. "pass --overwrite"."""
        if not self.has_fix or self.param is None:
            return self.message
        how_to_set = how_to_set or _python_fix
        return f"{self.message}; {how_to_set(self.param, self.fix)}"

    def __reduce__(self):
        return (_rebuild_param_error, (self.message, self.param, self.fix,
                                       self.owner))


def _rebuild_param_error(message, param, fix, owner):
    return ParamError(message, param, fix, owner)


def _python_fix(param, value):
    return f"pass {param}={value!r}"


_KINDS = ("int", "float", "number", "bool", "choice", "str", "floats", "object")


class Param:
    """One parameter of a unit.

    Args:
        name: the keyword the unit takes
        kind: ``int``, ``float``, ``number`` (int or float, e.g. PCA's
            component count or variance fraction), ``bool``, ``choice``,
            ``str``, ``floats`` (a list of numbers, or a comma-separated
            string of them) or ``object`` (a Python object, e.g. a model;
            stored in run configs by its class name)
        default: the value used when none is given
        description: one line shown in forms and ``--help``
        min, max: inclusive bounds for numbers
        exclusive_min: whether ``min`` itself is excluded
        choices: allowed values for ``choice``
        nullable: whether ``None`` is allowed (default: when the default
            is ``None``)
        auto: whether the string ``"auto"`` is allowed (the unit then
            chooses the value itself)
    """

    def __init__(
        self,
        name,
        kind,
        default=None,
        description="",
        min=None,
        max=None,
        exclusive_min=False,
        choices=None,
        nullable=None,
        auto=False,
    ):
        if kind not in _KINDS:
            raise ValueError(f"unknown parameter kind {kind!r}")
        self.name = name
        self.kind = kind
        self.default = default
        self.description = description
        self.min = min
        self.max = max
        self.exclusive_min = exclusive_min
        self.choices = list(choices) if choices else None
        self.nullable = (default is None) if nullable is None else nullable
        self.auto = auto

    def clean(self, owner, value):
        if value is None or (
            isinstance(value, str)
            and self.nullable
            and value.strip().lower() in ("", "none", "null")
        ):
            if self.nullable:
                return None
            raise ParamError(f"{owner}: '{self.name}' is required",
                             self.name, owner=owner)
        if self.auto and isinstance(value, str) and \
                value.strip().lower() == "auto":
            return "auto"

        parse = getattr(self, "_parse_" + self.kind)
        try:
            result = parse(value)
        except (TypeError, ValueError):
            raise ParamError(
                f"{owner}: '{self.name}' must be {self._expected()}, "
                f"got {value!r}", self.name, owner=owner) from None

        if isinstance(result, (int, float)) and not isinstance(result, bool):
            too_low = self.min is not None and (
                result <= self.min if self.exclusive_min else result < self.min
            )
            too_high = self.max is not None and result > self.max
            if too_low or too_high:
                raise ParamError(
                    f"{owner}: '{self.name}' must be {self._expected()}, "
                    f"got {value!r}", self.name, owner=owner)
        return result

    def _expected(self):
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        words = {
            "int": "an integer",
            "float": "a finite number",
            "number": "a finite number",
            "bool": "true or false",
            "str": "a string",
            "floats": "a list of numbers",
            "object": "an object",
        }[self.kind]
        bounds = []
        if self.min is not None:
            bounds.append((">" if self.exclusive_min else "≥") + f" {self.min}")
        if self.max is not None:
            bounds.append(f"≤ {self.max}")
        words += " " + " and ".join(bounds) if bounds else ""
        return words + (" or 'auto'" if self.auto else "")

    @staticmethod
    def _parse_int(value):
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            return int(value)
        return int(value)

    @staticmethod
    def _parse_float(value):
        if isinstance(value, bool):
            raise TypeError
        result = float(value)
        # inf and nan reach the libraries as crashes or silent nonsense.
        if not math.isfinite(result):
            raise ValueError
        return result

    @classmethod
    def _parse_number(cls, value):
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        result = cls._parse_float(value)
        return int(result) if result.is_integer() and result >= 1 else result

    @staticmethod
    def _parse_bool(value):
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError

    def _parse_choice(self, value):
        if value in self.choices:
            return value
        raise ValueError

    @classmethod
    def _parse_floats(cls, value):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        return [cls._parse_float(v) for v in value]

    @staticmethod
    def _parse_object(value):
        return value

    @staticmethod
    def _parse_str(value):
        if not isinstance(value, str):
            raise TypeError
        return value

    def help(self, choices=True):
        """One line for ``--help`` and documentation: what it is, its
        default and (with ``choices``) what it accepts."""
        parts = [self.description.rstrip(".")] if self.description else []
        if self.kind == "choice" and choices:
            parts.append("one of " + ", ".join(map(str, self.choices)))
        if self.default is not None and self.kind not in ("object", "bool"):
            default = self.default
            if isinstance(default, (list, tuple)):
                default = ",".join(map(str, default))
            parts.append(f"default {default}")
        return "; ".join(parts)


RANDOM_STATE = Param(
    "random_state", "int", None,
    "Seed of every random choice (a run gives its own seed)",
    min=0, max=2**32 - 1)


class Unit:
    """A named, parameterised building block.

    Subclasses set ``name``, ``label``, ``description`` and ``PARAMS`` and
    may override :meth:`check` for rules that tie parameters together.
    Parameters are validated once, here, before any work starts. A unit
    that makes random choices sets ``SEEDED``: it then also takes
    ``random_state``, which a run sets to its seed (forms and flags offer
    the run's seed, not one per unit).
    """

    name = None
    label = None
    description = ""
    PARAMS = ()
    SEEDED = False

    def __init__(self, **params):
        declared = {p.name: p for p in self.all_params()}
        unknown = sorted(set(params) - set(declared))
        if unknown:
            valid = ", ".join(declared) or "none"
            raise ParamError(
                f"{self.name}: unknown parameter(s) {', '.join(unknown)}; "
                f"valid parameters: {valid}", unknown[0], owner=self.name)
        self.params = {
            name: p.clean(self.name, params.get(name, p.default))
            for name, p in declared.items()
        }
        self.check()

    @classmethod
    def all_params(cls):
        """``PARAMS``, and ``random_state`` for a seeded unit."""
        return tuple(cls.PARAMS) + ((RANDOM_STATE,) if cls.SEEDED else ())

    @property
    def random_state(self):
        return self.params.get("random_state")

    def check(self):
        """Cross-parameter rules; raise :class:`ParamError` naming them."""

    def replace(self, **changes):
        """A new unit of the same class with some parameters changed,
        validated again."""
        return type(self)(**{**self.params, **changes})

    def spec(self):
        """The unit as plain JSON: its name and validated parameters (an
        object parameter appears as its class name)."""
        return {
            "name": self.name,
            "params": {k: _jsonable(v) for k, v in self.params.items()},
        }

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(
        isinstance(v, (bool, int, float, str)) for v in value
    ):
        return list(value)
    cls = type(value)
    return f"<{cls.__module__}.{cls.__qualname__}>"


def build_unit(registry, kind, spec, **extra):
    """Builds a unit from a registry name, a ``{"name": ..., **params}``
    dict, or returns an already-built unit unchanged."""
    if isinstance(spec, Unit):
        if extra:
            raise ParamError(
                f"{spec.name}: parameters must be given when the {kind} is "
                "built, not beside it"
            )
        return spec
    if isinstance(spec, dict):
        spec = dict(spec)
        name = spec.pop("name", None)
        params = spec.pop("params", {})
        params = {**params, **spec, **extra}
    else:
        name, params = spec, extra
    if name not in registry:
        raise ParamError(
            f"unknown {kind} {name!r}; available: {', '.join(registry)}",
            kind)
    return registry[name](**params)
