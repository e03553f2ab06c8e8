"""Decisions that survive a re-run: the names, groups and rejected merges
of one run carried onto the clusters of another run of the same images.

Each cluster (tree node) of the old run that holds a decision is matched
to the cluster of the new run whose members overlap most with its own,
measured on the samples both runs clustered (Jaccard: shared over
either). A match of at least :data:`MATCH` carries the decision. An old
cluster whose members went to several new clusters, each mostly inside it,
was *split*; one whose members mostly went into a new cluster much larger
than itself, or several old clusters matched to one new cluster, were
*merged*; an old cluster with neither was *dropped*. A decision is carried
only by a match: the name of a part does not name the whole. The report
says which, cluster by cluster.

Tags are not carried: they are on the samples themselves, so a re-run
never loses them.
"""

import numpy as np

from ..storage import schema
from ..storage.transaction import Column
from ..units import ParamError
from . import hierarchy

MATCH = 0.5
# A new cluster counts as a piece of a split old cluster when at least this
# share of its members were the old cluster's.
PIECE = 0.5


def holds_decisions(run):
    """Whether ``run`` holds a name, a group or a rejected merge."""
    return bool(run.names or run.groups
                or run.results.get("rejected_merges"))


class Decisions:
    """What a run holds that the user decided, with where its samples sit:
    ``ids`` and each sample's ``leaf``, the ``tree``, ``names`` (node id
    string -> entry), ``groups`` (name -> node ids) and ``rejected``
    (pairs of node ids)."""

    def __init__(self, key, ids, leaf, tree, names, groups, rejected):
        self.key = key
        self.ids = list(ids)
        self.leaf = np.asarray(leaf, dtype=np.int64)
        self.tree = tree
        self.names = names
        self.groups = groups
        self.rejected = rejected

    @classmethod
    def of_run(cls, run):
        tree = hierarchy.tree_of(run)
        if run.results.get("hierarchy"):
            data = hierarchy.read_layers_attachment(run.attachment("layers"))
            ids, leaf = data["ids"].tolist(), data["leaf"]
        else:
            members = run.members()
            pairs = [(i, c) for i, c in zip(members["id"], members["cluster"])
                     if c is not None]
            ids = [p[0] for p in pairs]
            leaf = np.array([p[1] for p in pairs], dtype=np.int64)
        return cls(run.key, ids, leaf, tree, run.names, run.groups,
                   [list(p) for p in run.results.get("rejected_merges")
                    or []])

    def nodes(self):
        """The nodes that hold a decision."""
        out = {int(k) for k in self.names if int(k) >= 0}
        out.update(int(c) for members in self.groups.values()
                   for c in members if c >= 0)
        out.update(int(c) for pair in self.rejected for c in pair)
        return sorted(out)


def match(old, new_ids, new_leaf, new_tree):
    """Old node -> ``(new node or None, jaccard, pieces)`` for every node of
    ``old`` that holds a decision, on the samples both clustered."""
    new_index = {sid: i for i, sid in enumerate(new_ids)}
    shared = [(i, new_index[sid]) for i, sid in enumerate(old.ids)
              if sid in new_index]
    if not shared:
        raise ParamError(
            f"run '{old.key}' and the new run have no sample in common; "
            "nothing can be carried over", "carry_from")
    old_rows, new_rows = map(np.asarray, zip(*shared))
    old_leaf = old.leaf[old_rows]
    new_leaf = np.asarray(new_leaf, dtype=np.int64)[new_rows]
    new_sizes = _subtree_counts(new_tree, new_leaf)
    out = {}
    for node in old.nodes():
        inside = np.isin(old_leaf, old.tree.leaves_under(node))
        overlap = _subtree_counts(new_tree, new_leaf[inside])
        size = int(inside.sum())
        union = size + new_sizes - overlap
        jaccard = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
        best = int(np.argmax(jaccard)) if len(jaccard) else -1
        pieces = [int(n) for n in np.flatnonzero(
            (overlap >= PIECE * np.maximum(new_sizes, 1)) & (overlap > 0))
            if not any(a in set(np.flatnonzero(
                overlap >= PIECE * np.maximum(new_sizes, 1)))
                for a in new_tree.ancestors(n)[1:])]
        if best >= 0 and jaccard[best] >= MATCH:
            out[node] = (best, float(jaccard[best]), pieces, None)
            continue
        holder = int(np.argmax(np.where(overlap >= PIECE * size, -new_sizes,
                                        np.iinfo(np.int64).min)))
        contained = bool(size) and overlap[holder] >= PIECE * size
        out[node] = (None, float(jaccard[best]) if best >= 0 else 0.0,
                     pieces, holder if contained else None)
    return out


def _subtree_counts(tree, leaves):
    """For every node, how many of ``leaves`` (one per sample) lie under
    it."""
    counts = np.zeros(tree.n_nodes, dtype=np.int64)
    leaves = leaves[leaves >= 0]
    if len(leaves):
        counts[:] = np.bincount(leaves, minlength=tree.n_nodes)[
            :tree.n_nodes]
    order = np.argsort(tree.first_layer, kind="stable")
    for node in order:
        parent = tree.parent[node]
        if parent >= 0:
            counts[parent] += counts[node]
    return counts


def carry(old, new_ids, new_leaf, new_tree, names=None, groups=None,
          rejected=None):
    """``(names, groups, rejected, report)``: the new run's decisions with
    the old run's carried onto its clusters (what the new run already has
    wins), and what happened to each old cluster."""
    matched = match(old, new_ids, new_leaf, new_tree)
    to = {node: m[0] for node, m in matched.items()}
    names = dict(names or {})
    report = {"from": old.key, "carried": [], "split": [], "merged": [],
              "dropped": []}
    for key, entry in old.names.items():
        node = int(key)
        target = -1 if node < 0 else to.get(node)
        if target is None:
            _lost(report, node, matched, entry.get("name"))
            continue
        if str(target) not in names:
            names[str(target)] = {**entry, "carried_from": {
                "run": old.key, "cluster": node}}
        report["carried"].append({"from": node, "to": target,
                                  "overlap": _rounded(matched, node),
                                  "name": entry.get("name")})
    groups = {g: list(c) for g, c in (groups or {}).items()}
    for name, members in old.groups.items():
        carried = sorted({to[c] for c in members if to.get(c) is not None}
                         | ({-1} if -1 in members else set()))
        if carried and name not in groups:
            groups[name] = carried
    rejected = [list(p) for p in rejected or []]
    for a, b in old.rejected:
        pair = sorted({to.get(a), to.get(b)} - {None})
        if len(pair) == 2 and pair not in rejected:
            rejected.append(pair)
    _note_merges(report, to)
    report["lines"] = describe(report)
    return names, groups, rejected, report


def _rounded(matched, node):
    return round(matched[node][1], 3)


def _lost(report, node, matched, name):
    _, _, pieces, holder = matched.get(node, (None, 0.0, [], None))
    if len(pieces) > 1:
        report["split"].append({"from": node, "into": pieces, "name": name})
    elif holder is not None:
        report["merged"].append({"from": [node], "into": holder,
                                 "name": name})
    else:
        report["dropped"].append({"from": node, "name": name,
                                  "best_overlap": _rounded(matched, node)
                                  if node in matched else 0.0})


def _note_merges(report, to):
    into = {}
    for node, target in to.items():
        if target is not None:
            into.setdefault(target, []).append(node)
    report["merged"] += [{"from": sorted(nodes), "into": target}
                         for target, nodes in sorted(into.items())
                         if len(nodes) > 1]


def decided_results(results, names, groups, rejected, report):
    """The new run's results with the carried decisions and the report."""
    out = {**results, "names": names, "groups": groups,
           "carried": report}
    if rejected:
        out["rejected_merges"] = sorted(rejected)
    return out


def decided_values(names, groups, tree, labels):
    """``{suffix: values}``: the ``label`` and ``group`` of each sample of
    cluster ``labels`` (node ids, −1 noise, ``None`` for samples the run
    could not embed), for the suffixes that hold something."""
    known = np.array([c is not None for c in labels], dtype=bool)
    nodes = np.array([-1 if c is None else int(c) for c in labels],
                     dtype=np.int64)
    out = {}
    if names:
        out["label"] = [v if k else None for v, k in zip(
            hierarchy.names_per_sample(names, nodes), known)]
    if groups:
        out["group"] = [v if k else None for v, k in zip(
            hierarchy.groups_per_sample(groups, tree, nodes), known)]
    return out


def carry_over(old_run, new_run, progress=None):
    """Carries the decisions of ``old_run`` onto the stored ``new_run``, in
    one transaction; returns ``(updated run, report)``."""
    if old_run.key == new_run.key:
        raise ParamError("carry_from: a run cannot carry decisions onto "
                         "itself", "carry_from")
    old = Decisions.of_run(old_run)
    new = Decisions.of_run(new_run)
    names, groups, rejected, report = carry(
        old, new.ids, new.leaf, new.tree, new_run.names, new_run.groups,
        new.rejected)
    members = new_run.members()
    values = decided_values(names, groups, new.tree, members["cluster"])
    columns = [Column(suffix, schema.owned_path(new_run.config, suffix), v)
               for suffix, v in values.items()]
    results = decided_results(new_run.results, names, groups, rejected,
                              report)
    updated = new_run.amend(members["id"], columns, results, replace=True,
                            progress=progress)
    return updated, report


def describe(report):
    """The report as sentences, one per cluster."""
    lines = [f"from run '{report['from']}': {len(report['carried'])} "
             f"carried, {len(report['split'])} split, "
             f"{len(report['merged'])} merged, {len(report['dropped'])} "
             "dropped"]
    for c in report["carried"]:
        lines.append(f"cluster {c['from']} -> {c['to']} ('{c['name']}', "
                     f"{c['overlap']:.0%} overlap)")
    for s in report["split"]:
        lines.append(f"cluster {s['from']} ('{s['name']}') split into "
                     + ", ".join(map(str, s["into"])) + ": not carried")
    for m in report["merged"]:
        if len(m["from"]) > 1:
            lines.append("clusters " + ", ".join(map(str, m["from"]))
                         + f" merged into {m['into']}")
        else:
            lines.append(f"cluster {m['from'][0]} ('{m['name']}') merged "
                         f"into the larger {m['into']}: not carried")
    for d in report["dropped"]:
        lines.append(f"cluster {d['from']} ('{d['name']}') has no match "
                     f"(best overlap {d['best_overlap']:.0%}): dropped")
    return lines
