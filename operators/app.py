"""How an open App follows a change that an operator made to the runs.

After an operator writes, the App must see it without a page reload: the
grid's samples (and, when fields were added or removed, the dataset's
schema), the clusters' colours, the fields shown on the tiles, and every
open Clusters panel. Each function here triggers the App's own operators
and returns the messages, which a generator operator yields; a quick
operator's triggers are sent when it returns.
"""

from ..clustering import presentation

#: The name of the Clusters panel, as the App's spaces call it.
PANEL_NAME = "clusters_panel"


def field_names(dataset):
    """The dataset's field paths now (to tell whether an operation added or
    removed any)."""
    dataset.reload()
    return set(dataset.get_field_schema(flat=True))


def reload(ctx, dataset, fields_before, keep_filters=True):
    """Reloads what the App shows of ``dataset``: the samples, and the
    dataset itself when its fields changed since ``fields_before``. The
    App's dataset reload also clears the sidebar's filters, so with
    ``keep_filters`` (an operation that only adds fields, such as naming
    or placing samples) the user's filters win: the samples are reloaded
    and the new field shows in the sidebar after the page is reloaded."""
    changed = field_names(dataset) != fields_before
    if changed and not (keep_filters and ctx.request_params.get("filters")):
        return [ctx.trigger("reload_dataset")]
    return [ctx.trigger("reload_samples")]


def show_colors(ctx, dataset):
    """Puts the dataset's stored colour scheme (with every run's cluster
    colours) into the open App, which otherwise reads it only when a page
    loads."""
    scheme = presentation.app_color_scheme(dataset)
    if scheme is None:
        return []
    return [ctx.trigger("set_color_scheme", scheme)]


def show_on_tiles(ctx, add=(), remove=()):
    """Shows the fields ``add`` on the grid's tiles (a group's tile then
    says its cluster and size) and no longer the fields ``remove`` (gone
    with a run); the user's other choices stay."""
    active = [f for f in ctx.request_params.get("active_fields") or []
              if f not in set(remove)]
    active += [f for f in add if f not in active]
    return [ctx.trigger("set_active_fields", {"fields": active})]


def tile_fields(run):
    """The fields a tile of ``run``'s clusters shows: its cluster and the
    cluster's size (an object run's are on its patches, not its tiles)."""
    if run.patches_field:
        return ()
    return (run.fields["cluster"], run.fields["size"])


def removed_fields(dataset, fields_before):
    """The fields of ``fields_before`` that the dataset no longer has."""
    return fields_before - field_names(dataset)


def refresh_panels(ctx):
    """Asks every open Clusters panel to read the runs again: its
    ``on_refresh`` runs with the state the App holds for it. (Writing to a
    panel's state instead would make the App drop the sidebar's
    filters.)"""
    plugin = ctx.operator_uri.rsplit("/", 1)[0]
    return [ctx.trigger(f"{plugin}/{PANEL_NAME}", {
        "__method__": "on_refresh", "panel_id": panel_id,
        "panel_state": state})
        for panel_id, state in open_panels(ctx)]


def open_panels(ctx, name=PANEL_NAME):
    """``(panel id, state)`` of each open panel called ``name`` in the App's
    spaces."""
    found = []
    _find_panels(ctx.request_params.get("spaces") or {}, name, found)
    return found


def _find_panels(node, name, found):
    if isinstance(node, list):
        for child in node:
            _find_panels(child, name, found)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type") or ""
    if kind == name or kind.endswith(f"/{name}"):
        state = (node.get("state") or {}).get("state") or {}
        found.append((node.get("component_id"), state))
    _find_panels(node.get("children") or [], name, found)


def notify(ctx, message, variant="success"):
    return [ctx.trigger("notify", {"message": message, "variant": variant})]
