"""Named groups of clusters: several clusters merged under one name
("pink": clusters 40, 56, 72). Groups are stored in the run's results and
written to the ``group`` field of every member; cluster ids never
change."""

import re

from ..clustering import record, runs, store
from ..units import ParamError


def _check(run, groups):
    known = {c["id"] for c in run.clusters} | {-1}
    seen = {}
    for name, clusters in groups.items():
        if not isinstance(name, str) or not name.strip():
            raise ParamError("groups: every group needs a name")
        for c in clusters:
            c = int(c)
            if c not in known:
                raise ParamError(f"groups: run '{run.key}' has no cluster "
                                 f"{c}")
            if c in seen and seen[c] != name:
                raise ParamError(f"groups: cluster {c} is in both "
                                 f"'{seen[c]}' and '{name}'")
            seen[c] = name
    return {name.strip(): sorted({int(c) for c in clusters})
            for name, clusters in groups.items()}


def group_clusters(samples, run_key, groups, replace=False):
    """Puts clusters into named groups: ``groups`` maps a group name to
    cluster ids. Without ``replace``, these groups are added to (or
    replace, by name) the run's existing ones, and a cluster moved to a new
    group leaves its old one. Returns the updated run."""
    run = runs.load_run(samples, run_key)
    groups = _check(run, groups)
    current = {} if replace else {k: list(v) for k, v in
                                  (run.results.get("groups") or {}).items()}
    moved = {c for members in groups.values() for c in members}
    for name in list(current):
        current[name] = [c for c in current[name] if c not in moved]
        if not current[name] or name in groups:
            current.pop(name)
    current.update(groups)
    return _store_groups(samples, run, current)


def ungroup_clusters(samples, run_key, names):
    """Removes the groups ``names``; their clusters belong to no group."""
    run = runs.load_run(samples, run_key)
    current = dict(run.results.get("groups") or {})
    missing = [n for n in names if n not in current]
    if missing:
        raise ParamError("groups: no group " + ", ".join(
            repr(n) for n in missing))
    for name in names:
        current.pop(name)
    return _store_groups(samples, run, current)


def rename_group(samples, run_key, name, new_name):
    run = runs.load_run(samples, run_key)
    current = dict(run.results.get("groups") or {})
    if name not in current:
        raise ParamError(f"groups: no group {name!r}")
    if not isinstance(new_name, str) or not new_name.strip():
        raise ParamError("groups: give the group a new name")
    if new_name.strip() in current and new_name.strip() != name:
        raise ParamError(f"groups: a group {new_name!r} already exists")
    current[new_name.strip()] = current.pop(name)
    return _store_groups(samples, run, current)


def _store_groups(samples, run, groups):
    of_cluster = {c: name for name, members in groups.items()
                  for c in members}
    m = run.members()
    values = [of_cluster.get(c) if c is not None else None
              for c in m["cluster"]]
    prefix = run.fields["cluster"].rsplit(".", 1)[-1][: -len("_cluster")]
    path = run.fields.get("group") or record.field_path(
        prefix, "group", run.labels_path)
    results = {**run.results, "groups": groups}
    return runs.amend_run(samples, run, m["id"],
                          [store.Column("group", path, values)], results,
                          replace=True)


def groups_view(samples, run_key, names):
    """The samples (or patches) of the groups ``names``, grouped by group
    in the App."""
    from fiftyone import ViewField as F

    run = runs.load_run(samples, run_key)
    groups = run.results.get("groups") or {}
    missing = [n for n in names if n not in groups]
    if missing:
        raise ParamError("groups: no group " + ", ".join(
            repr(n) for n in missing))
    gf = run.fields["group"]
    if run.patches_field:
        pf = run.patches_field
        view = run.view().to_patches(pf)
        gf = f"{pf}.{gf.rsplit('.', 1)[-1]}"
        return view.match(F(gf).is_in(list(names))).group_by(gf)
    return run.clustered().match(F(gf).is_in(list(names))).group_by(
        gf, order_by=run.fields["dist"])


def safe_name(text):
    """A folder name for a cluster or group name: no separators, no
    leading dots."""
    cleaned = re.sub(r"[^\w\- ]+", "_", str(text)).strip(" _.")
    return cleaned[:80] or "unnamed"
