"""A run as a hierarchy: every run's clusters are nodes of a tree (a flat
method gives a tree of one layer), its fields hold the *current cut*
through that tree, and the user moves the cut.

At fit time (:func:`build`) the method's layers become a
:class:`~..algorithms.tree.Tree`, each point gets its leaf, and every node
gets its centre, size, mean distance and the distance within which most
of its members lie (what "does not fit" is measured against). The run
keeps, beside its record, each sample's leaf and its distance and
similarity to the centre of its node in every layer (the ``layers``
attachment), so that moving the cut rewrites the fields without
recomputing anything.
"""

import io

import numpy as np

from ..algorithms.geometry import (cluster_means, distances_to,
                                   farthest_by_label)
from ..algorithms import fitted, merges
from ..algorithms.quality import internal_quality
from ..algorithms.tree import Tree
from ..storage import schema
from ..storage.transaction import Column
from ..units import ParamError

# A new sample farther from its leaf's centre than FIT_MARGIN times the
# leaf's farthest member "does not fit". The margin is room for the jitter
# of placing points through a non-linear reducer: a copy of a member must
# fit.
FIT_MARGIN = 1.5
# Points of the clustered space kept to measure a moved cut and to find
# merges (quality and neighbours are computed on this sample).
SAMPLE = 5000


class Hierarchy:
    """The tree of a fit and where each point sits in it.

    Attributes:
        tree: the :class:`~..algorithms.tree.Tree`
        leaf: each point's leaf node (−1: noise)
        mapping: the method's finest labels -> leaf node ids
        cut: the node ids of the default cut
        default_layer: the layer the default cut is
        rule: how the default layer was chosen (plain JSON)
    """

    def __init__(self, tree, leaf, mapping, default_layer, rule):
        self.tree = tree
        self.leaf = leaf
        self.mapping = mapping
        self.default_layer = default_layer
        self.cut = tree.layers[default_layer].tolist()
        self.rule = rule

    @property
    def layered(self):
        """Whether there is more than one layer to move between."""
        return self.tree.n_layers > 1

    def labels(self, cut=None):
        """Each point's node in ``cut`` (by default the default cut)."""
        return self.tree.labels(self.leaf, self.cut if cut is None else cut)

    def layer_labels(self, layer):
        return self.tree.labels(self.leaf, self.tree.layers[layer])


def build(labels, clusterer):
    """The :class:`Hierarchy` of a fit: ``labels`` are the method's finest
    labels once noise was placed; a layered method adds its coarser layers
    (``coarse_layers_``) and its choice of cut (``default_layer_``). The
    default cut's clusters are numbered 0, 1, 2... by size, as a flat
    run's are."""
    labels = np.asarray(labels, dtype=np.int64)
    coarse = list(getattr(clusterer, "coarse_layers_", None) or [])
    tree, leaf = Tree.from_layers([labels, *coarse])
    default = min(int(getattr(clusterer, "default_layer_", 0) or 0),
                  tree.n_layers - 1)
    tree, new_id = tree.renumbered(tree.layers[default])
    if len(new_id):
        leaf = np.where(leaf >= 0, new_id[np.maximum(leaf, 0)], -1)
    clustered = labels >= 0
    found, rows = np.unique(labels[clustered], return_index=True)
    mapping = dict(zip(found.tolist(),
                       leaf[np.flatnonzero(clustered)[rows]].tolist()))
    rule = getattr(clusterer, "cut_rule_", None) or {"rule": "the method's "
                                                     "clusters"}
    return Hierarchy(tree, leaf, mapping, default, rule)


class NodeGeometry:
    """Per node: centre, size, mean and largest distance of its members;
    per point and layer: distance and similarity to its node's centre."""

    def __init__(self, centres, sizes, mean_dist, fit_dist, dist, sim):
        self.centres = centres
        self.sizes = sizes
        self.mean_dist = mean_dist
        self.fit_dist = fit_dist
        self.dist = dist
        self.sim = sim


def measure_nodes(X, hierarchy):
    """The :class:`NodeGeometry` of every node of the tree, layer by
    layer (a node that spans layers has the same members in each)."""
    tree = hierarchy.tree
    n, d = len(X), X.shape[1]
    centres = np.zeros((tree.n_nodes, d))
    sizes = np.zeros(tree.n_nodes, dtype=np.int64)
    mean_dist = np.zeros(tree.n_nodes)
    fit_dist = np.zeros(tree.n_nodes)
    dist = np.full((n, tree.n_layers), np.nan, dtype=np.float32)
    sim = np.full((n, tree.n_layers), np.nan, dtype=np.float32)
    for i in range(tree.n_layers):
        labels = hierarchy.layer_labels(i)
        k = tree.n_nodes
        layer_centres, layer_sizes = cluster_means(X, labels, k)
        d_i, s_i = distances_to(X, labels, layer_centres)
        dist[:, i], sim[:, i] = d_i, s_i
        new = tree.layers[i][sizes[tree.layers[i]] == 0]
        member = labels >= 0
        total = np.bincount(labels[member], weights=d_i[member], minlength=k)
        farthest = farthest_by_label(d_i, labels, k)
        centres[new] = layer_centres[new]
        sizes[new] = layer_sizes[new]
        mean_dist[new] = total[new] / np.maximum(layer_sizes[new], 1)
        fit_dist[new] = farthest[new]
    return NodeGeometry(centres, sizes, mean_dist, fit_dist, dist, sim)


def node_records(tree, geometry):
    """One plain-JSON record per node: its parent, children, layers, size,
    centre, mean distance and the distance of its farthest member."""
    return [{
        "id": node,
        "parent": int(tree.parent[node]),
        "children": tree.children(node),
        "layers": [int(tree.first_layer[node]), int(tree.last_layer[node])],
        "size": int(geometry.sizes[node]),
        "mean_dist": float(geometry.mean_dist[node]),
        "fit_dist": float(geometry.fit_dist[node]),
        "centre": [float(v) for v in geometry.centres[node]],
    } for node in range(tree.n_nodes)]


def record(hierarchy, geometry):
    """The ``hierarchy`` block of a run's results."""
    tree = hierarchy.tree
    return {
        "tree": tree.to_json(),
        "layers": [{"layer": i, "n_clusters": int(len(nodes)),
                    "nodes": nodes.tolist()}
                   for i, nodes in enumerate(tree.layers)],
        "nodes": node_records(tree, geometry),
        "cut": hierarchy.cut,
        "default_layer": hierarchy.default_layer,
        "rule": hierarchy.rule,
    }


LAYER_ARRAYS = ("ids", "leaf", "dist", "sim", "assigned", "sample_rows",
                "sample_X")


def layers_attachment(ids, hierarchy, geometry, X, seed):
    """The bytes the run keeps to move its cut: each sample's id, leaf,
    and distance and similarity to its node in every layer (16-bit floats:
    what the fields show needs no more), whether it was placed after the
    fit, and a sample of the clustered space to measure cuts on."""
    rows = np.arange(len(X))
    if len(X) > SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(
            len(X), SAMPLE, replace=False))
    return write_layers({
        "ids": np.asarray(ids, dtype="U24"),
        "leaf": hierarchy.leaf.astype(np.int32),
        "dist": geometry.dist.astype(np.float16),
        "sim": geometry.sim.astype(np.float16),
        "assigned": np.zeros(len(ids), dtype=bool),
        "sample_rows": rows.astype(np.int64),
        "sample_X": np.asarray(X[rows], np.float32)})


def write_layers(data):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: data[k] for k in LAYER_ARRAYS})
    return buffer.getvalue()


def read_layers_attachment(blob):
    with np.load(io.BytesIO(blob)) as data:
        return {k: data[k] for k in LAYER_ARRAYS}


# -- a stored run's tree, and moving its cut --------------------------------------


def tree_of(run):
    """The run's :class:`~..algorithms.tree.Tree`; a flat run's is one
    layer, whose nodes are its clusters."""
    block = run.results.get("hierarchy")
    if block:
        return Tree.from_json(block["tree"])
    ids = run.cluster_ids()
    n = max(ids) + 1 if ids else 0
    size = np.zeros(n, dtype=np.int64)
    for c in run.clusters:
        size[c["id"]] = c["size"]
    return Tree(np.full(n, -1), np.zeros(n), np.zeros(n), [ids], size)


def layers_of(run):
    """One entry per layer, finest first: ``{"layer", "n_clusters",
    "nodes"}`` (a flat run has one)."""
    block = run.results.get("hierarchy")
    if block:
        return [dict(layer) for layer in block["layers"]]
    ids = run.cluster_ids()
    return [{"layer": 0, "n_clusters": len(ids), "nodes": ids}]


def cut_of(run):
    block = run.results.get("hierarchy")
    return list(block["cut"]) if block else run.cluster_ids()


def node_records_of(run):
    """Node id -> its record (parent, children, layers, size, centre,
    mean distance, fit distance); a flat run's clusters as nodes."""
    block = run.results.get("hierarchy")
    if block:
        return {n["id"]: n for n in block["nodes"]}
    return {c["id"]: {"id": c["id"], "parent": -1, "children": [],
                      "layers": [0, 0], "size": c["size"],
                      "mean_dist": c["mean_dist"], "centre": c["centre"],
                      "fit_dist": None}
            for c in run.clusters}


def node_members(run, nodes, extra=None):
    """``(members, rows)``: the run's members (:meth:`members`) and, per
    node of ``nodes`` (any layer; −1 the noise), the indices of its
    members with each one's distance to the node's centre."""
    members = run.members(extra=extra)
    cluster = members["cluster"]
    cut = set(cut_of(run)) | {-1}
    rows = {}
    for node in nodes:
        if node in cut:
            idx = [i for i, c in enumerate(cluster) if c == node]
            rows[node] = (idx, [members["dist"][i] for i in idx])
    deeper = [n for n in nodes if n not in rows]
    if deeper:
        rows.update(_layer_members(run, deeper, members["id"]))
    return members, rows


def _layer_members(run, nodes, member_ids):
    """Per node of a layer other than the cut: member indices and
    distances, from the run's ``layers`` attachment."""
    check_layered(run)
    tree = tree_of(run)
    data = read_layers_attachment(run.attachment("layers"))
    at = {sid: r for r, sid in enumerate(data["ids"].tolist())}
    index = np.array([i for i, sid in enumerate(member_ids) if sid in at],
                     dtype=np.int64)
    row = np.array([at[member_ids[i]] for i in index], dtype=np.int64)
    leaf = data["leaf"][row] if len(row) else np.zeros(0, np.int64)
    out = {}
    for node in nodes:
        inside = np.isin(leaf, tree.leaves_under(node))
        dist = data["dist"][row[inside], tree.first_layer[node]]
        out[node] = (index[inside].tolist(), dist.astype(float).tolist())
    return out


def check_layered(run):
    if not run.results.get("hierarchy"):
        raise ParamError(
            f"run '{run.key}' is flat (one layer of clusters): compute it "
            "with method 'hierarchy' to move its cut", "run_key")


def cut_fields(run, tree, cut, data):
    """The values of the run's cut fields for every sample of the
    ``layers`` attachment ``data``: cluster, distance, similarity and size
    in ``cut``, and the name and group of each sample's cluster."""
    labels = tree.labels(data["leaf"], cut)
    member = labels >= 0
    column = np.zeros(len(labels), dtype=np.int64)
    column[member] = tree.first_layer[labels[member]]
    rows = np.arange(len(labels))
    dist = np.where(member, data["dist"][rows, column].astype(np.float64),
                    np.nan)
    sim = np.where(member, data["sim"][rows, column].astype(np.float64),
                   np.nan)
    fit = ~data["assigned"]
    sizes = np.bincount(labels[member & fit], minlength=tree.n_nodes)
    size = np.where(member, sizes[np.maximum(labels, 0)],
                    int((~member & fit).sum()))
    return {"cluster": labels, "dist": dist, "sim": sim, "size": size,
            "label": names_per_sample(run.names, labels),
            "group": groups_per_sample(run.groups, tree, labels)}, sizes


def names_per_sample(names, labels):
    """The name of each sample's cluster (``labels``: node ids, −1
    noise)."""
    lookup = {int(k): v.get("name") for k, v in names.items()}
    return [lookup.get(int(c)) if c >= 0 else lookup.get(-1)
            for c in labels]


def groups_per_sample(groups, tree, labels):
    """The group of each sample: that of its cluster, or of the nearest
    node above it that is in a group."""
    group_of = {c: g for g, members in groups.items() for c in members}
    out = {}
    for node in np.unique(labels[labels >= 0]):
        out[int(node)] = next((group_of[a] for a in tree.ancestors(node)
                               if a in group_of), None)
    return [out.get(int(c)) if c >= 0 else group_of.get(-1)
            for c in labels]


def cut_results(run, block, cut, sizes, n_noise, metrics_update):
    """The run's results for a new cut of the tree ``block`` (the
    ``hierarchy`` block of the results): the cut itself, one summary per
    cluster of the cut (largest first) and the counts of its metrics."""
    records = {n["id"]: n for n in block["nodes"]}
    clusters = sorted(({"id": int(c), "size": int(sizes[c]),
                        "mean_dist": records[int(c)]["mean_dist"],
                        "centre": records[int(c)]["centre"]}
                       for c in cut), key=lambda c: (-c["size"], c["id"]))
    n_samples = int(sizes.sum() + n_noise)
    metrics = {**run.metrics, **metrics_update,
               "n_clusters": len(cut), "n_noise": int(n_noise),
               "n_samples": n_samples,
               "fraction_clustered": float(sizes.sum() / n_samples)
               if n_samples else 0.0}
    return {**run.results, "clusters": clusters, "metrics": metrics,
            "hierarchy": {**block, "cut": [int(c) for c in cut]}}


def cut_quality(tree, cut, data, density=False):
    """Quality of ``cut`` on the kept sample of the clustered space."""
    rows = data["sample_rows"]
    labels = tree.labels(data["leaf"][rows], cut)
    quality = internal_quality(data["sample_X"], labels, density=density)
    keep = ("silhouette", "davies_bouldin", "calinski_harabasz", "dbcv")
    out = {k: quality[k] for k in keep}
    out["sampled"] = {k: int(len(rows)) for k in keep
                      if quality[k] is not None}
    return out


def move_cut(run, cut, progress=None, block=None, data=None):
    """Writes ``cut`` as the run's current cut, in one transaction: the
    cluster, distance, similarity and size of every sample, and the names
    and groups of their clusters. With ``block`` and ``data`` (a grown
    tree and its ``layers`` arrays, see :mod:`.misfits`), they are written
    with it, and so is every layer's field. Returns the updated run."""
    check_layered(run)
    grown = data is not None
    block = block or run.results["hierarchy"]
    tree = Tree.from_json(block["tree"])
    cut = tree.check_cut(cut)
    if not grown:
        data = read_layers_attachment(run.attachment("layers"))
    values, sizes = cut_fields(run, tree, cut, data)
    fit = ~data["assigned"]
    n_noise = int(((values["cluster"] < 0) & fit).sum())
    quality = cut_quality(tree, cut, data, run.metrics.get("dbcv")
                          is not None)
    results = cut_results(run, block, cut, sizes, n_noise, quality)
    suffixes = ["cluster", "dist", "sim", "size"]
    suffixes += [s for s in ("label", "group") if s in run.fields]
    if grown:
        values.update(layer_values(tree, data))
        suffixes += [schema.layer_suffix(i) for i in range(tree.n_layers)]
        suffixes += ["misfit"]
    columns = [Column(s, schema.owned_path(run.config, s), values[s])
               for s in suffixes]
    return run.amend(data["ids"].tolist(), columns, results, replace=True,
                     progress=progress, attachments={
                         "layers": write_layers(data)} if grown else None)


def layer_values(tree, data):
    """Every sample's cluster in every layer, and whether it is a placed
    sample that fits no cluster."""
    out = {schema.layer_suffix(i): tree.labels(data["leaf"], layer)
           for i, layer in enumerate(tree.layers)}
    out["misfit"] = data["assigned"] & (data["leaf"] < 0)
    return out


# -- merges ---------------------------------------------------------------------


def rejected_pairs(run):
    return {frozenset(p) for p in (run.results.get("rejected_merges")
                                   or [])}


def suggest_merges(run, n=10):
    """The pairs of clusters of the run's current cut most likely to be
    one concept, best first (see :mod:`..algorithms.merges`)."""
    tree = tree_of(run)
    cut = cut_of(run)
    records = node_records_of(run)
    centres = [records[c]["centre"] for c in cut]
    spreads = [records[c]["mean_dist"] for c in cut]
    parent = {c: int(tree.parent[c]) for c in cut}
    X, labels = _sample_with_labels(run, tree, cut)
    return merges.suggest(cut, centres, spreads, parent, X, labels, n=n,
                          rejected=rejected_pairs(run))


def _sample_with_labels(run, tree, cut):
    """A sample of the clustered space and each point's cluster in
    ``cut``: the kept sample of a hierarchy, or the fitted state's of a
    flat run."""
    if run.results.get("hierarchy"):
        data = read_layers_attachment(run.attachment("layers"))
        rows = data["sample_rows"]
        return data["sample_X"], tree.labels(data["leaf"][rows], cut)
    state = fitted.loads(run.attachment("fitted"), run.key)
    return state.space["X"], state.space["labels"]


def merge_plan(run, clusters):
    """How accepting a merge of ``clusters`` is done: ``("collapse",
    parent)`` when they are all the children of one node, else
    ``("group", None)``."""
    tree = tree_of(run)
    parent = {int(tree.parent[c]) for c in clusters}
    if len(parent) == 1 and parent != {-1}:
        (p,) = parent
        if sorted(tree.children(p)) == sorted(clusters):
            return "collapse", p
    return "group", None


def merge_name(run, clusters):
    """A group name for merged clusters: their names, else their ids."""
    names = [run.name_of(c) or str(c) for c in clusters]
    return " + ".join(names)
