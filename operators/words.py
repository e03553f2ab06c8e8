"""The words an operator's messages are made of: its form's labels.

A :class:`~image_clustering.units.ParamError` names its parameter as the
SDK spells it (``n_clusters``, ``overwrite``). In the App the same error
names the form's label of that field and says the fix as a click
("tick 'Overwrite'"), whether it is shown under the field, in the form, or
in the notification of a failed run.
"""

import re

from ..storage.lease import LeaseLost
from ..storage.records import StoreError
from ..storage.runs import RunNotFound
from ..units import ParamError


def unit_param_label(name):
    """How a form labels a unit's parameter ``name``."""
    return name.replace("_", " ").capitalize()


def describe(error, words=None, choices=None):
    """The message a user sees for ``error``: ours say it all, a parameter
    named as the form labels it (``words``: parameter -> label; see
    :func:`render_param_error`); anything else keeps its type, which helps
    a bug report."""
    words = words or {}
    if isinstance(error, ParamError):
        return render_param_error(error, words, choices or {})
    text = str(error).strip() or type(error).__name__
    if isinstance(error, RunNotFound):
        label = words.get("run_key", "Run")
        return (f"{label}: {text} (it was renamed or deleted since the form "
                "opened); choose another")
    if isinstance(error, (ValueError, StoreError, LeaseLost)):
        return text
    return f"{type(error).__name__}: {text}"


# "kmeans: ", "groups: ", "max_requests/max_images: ": the name a message
# starts with, as the SDK spells it.
_SDK_PREFIX = re.compile(r"^[A-Za-z_][\w/]*: ")


def render_param_error(error, words, choices=None):
    """``error`` in a form's words: ``Label: what is wrong; how to fix it``,
    where the label is the form's label of the parameter to change
    (``words`` maps a parameter, or an ``(owner, parameter)`` pair, to its
    label; a unit's parameter falls back to the form's own rule), other
    parameters named in the message are given their labels too, and the
    fix is said as a click ("tick 'Overwrite'", "set '2-D map' to 'No
    map'", using ``choices``: parameter -> {value: label})."""
    label = param_label(error, words)
    body = _SDK_PREFIX.sub("", error.message, count=1)
    if error.param and body.startswith(f"'{error.param}' "):
        body = body[len(error.param) + 3:]
    body = in_form_words(body, words)
    if not error.has_fix or label is None:
        return f"{label}: {body}" if label else body
    # The fix names the field to change.
    if error.fix is True:
        return f"{body}; tick '{label}'"
    if error.fix is False:
        return f"{body}; untick '{label}'"
    shown = (choices or {}).get(error.param, {}).get(error.fix, error.fix)
    return f"{body}; set '{label}' to '{shown}'"


def in_form_words(text, words):
    """``text`` with the parameters it names given their form labels: a
    quoted name (``'n_clusters'``), or a bare identifier (``split_field``;
    a plain word such as ``tags`` is left as it is)."""
    for param, label in words.items():
        if not isinstance(param, str):
            continue
        text = text.replace(f"'{param}'", f"'{label}'")
        if "_" in param:
            text = re.sub(rf"\b{re.escape(param)}\b", f"'{label}'", text)
    return text


def param_label(error, words):
    """The form's label of the parameter ``error`` names, or ``None``."""
    if error.param is None:
        return None
    for key in ((error.owner, error.param), error.param):
        if key in words:
            return words[key]
    if error.owner:
        return unit_param_label(error.param)
    return None


def field_error(error, words=None, choices=None):
    """``error`` as the form shows it under its own field: what is wrong
    and how to fix it, without the field's label (the field shows it)."""
    if not isinstance(error, ParamError):
        return describe(error, words, choices)
    label = param_label(error, words or {})
    text = render_param_error(error, words or {}, choices)
    if label and text.startswith(f"{label}: "):
        text = text[len(label) + 2:]
    return text[:1].upper() + text[1:]
