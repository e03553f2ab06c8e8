"""Named groups of clusters: several clusters merged under one name
("pink": clusters 40, 56, 72). Groups are stored in the run's results and
written to the ``group`` field of every member; cluster ids never
change."""

import re

from ..storage import schema
from ..storage.transaction import Column
from ..units import ParamError


def _check(run, groups):
    seen = {}
    for name, clusters in groups.items():
        if not isinstance(name, str) or not name.strip():
            raise ParamError("groups: every group needs a name", "group")
        if not list(clusters):
            raise ParamError(f"clusters: group '{name}' needs at least one "
                             "cluster", "clusters")
        for c in run.check_clusters(clusters):
            if c in seen and seen[c] != name:
                raise ParamError(f"groups: cluster {c} is in both "
                                 f"'{seen[c]}' and '{name}'", "clusters")
            seen[c] = name
    return {name.strip(): sorted({int(c) for c in clusters})
            for name, clusters in groups.items()}


def moves(run, groups):
    """``[(cluster, old group, new group)]``: the clusters that grouping
    ``groups`` would take out of another group, so that entry points can
    say so."""
    out = []
    for name, clusters in groups.items():
        for c in clusters:
            old = run.group_of(int(c))
            if old is not None and old != name.strip():
                out.append((int(c), old, name.strip()))
    return out


def group_clusters(run, groups, replace=False):
    """Puts clusters of ``run`` into named groups: ``groups`` maps a group
    name to cluster ids. Without ``replace``, these groups are added to (or
    replace, by name) the run's existing ones, and a cluster moved to a new
    group leaves its old one (:func:`moves` says which). Returns the
    updated run."""
    groups = _check(run, groups)
    current = {} if replace else {k: list(v) for k, v in run.groups.items()}
    moved = {c for members in groups.values() for c in members}
    for name in list(current):
        current[name] = [c for c in current[name] if c not in moved]
        if not current[name] or name in groups:
            current.pop(name)
    current.update(groups)
    return _store_groups(run, current)


def check_groups(run, names):
    """Raises unless every one of ``names`` is a group of ``run``."""
    missing = [n for n in names if n not in run.groups]
    if missing:
        known = ", ".join(repr(g) for g in run.groups) or "none"
        raise ParamError("groups: run '%s' has no group %s (groups: %s)" % (
            run.key, ", ".join(repr(n) for n in missing), known), "groups")


def ungroup_clusters(run, names):
    """Removes the groups ``names``; their clusters belong to no group."""
    check_groups(run, names)
    current = dict(run.groups)
    for name in names:
        current.pop(name)
    return _store_groups(run, current)


def rename_group(run, name, new_name):
    check_groups(run, [name])
    current = dict(run.groups)
    if not isinstance(new_name, str) or not new_name.strip():
        raise ParamError("groups: give the group a new name", "new_name")
    if new_name.strip() in current and new_name.strip() != name:
        raise ParamError(f"groups: a group {new_name!r} already exists",
                         "new_name")
    current[new_name.strip()] = current.pop(name)
    return _store_groups(run, current)


def _store_groups(run, groups):
    of_cluster = {c: name for name, members in groups.items()
                  for c in members}
    m = run.members()
    values = [of_cluster.get(c) if c is not None else None
              for c in m["cluster"]]
    column = Column("group", schema.owned_path(run.config, "group"), values)
    results = {**run.results, "groups": groups}
    return run.amend(m["id"], [column], results, replace=True)


def groups_view(run, names):
    """The samples (or patches) of the groups ``names``, grouped by group
    in the App."""
    from fiftyone import ViewField as F

    check_groups(run, names)
    gf = run.fields["group"]
    if run.patches_field:
        view = run.view().to_patches(run.patches_field)
        gf = run.patches_path("group")
        return view.match(F(gf).is_in(list(names))).group_by(gf)
    return run.clustered_view().match(F(gf).is_in(list(names))).group_by(
        gf, order_by=run.fields["dist"])


def safe_name(text):
    """A folder name for a cluster or group name: no separators, no
    leading dots."""
    cleaned = re.sub(r"[^\w\- ]+", "_", str(text)).strip(" _.")
    return cleaned[:80] or "unnamed"
