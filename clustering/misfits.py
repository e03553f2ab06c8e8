"""New clusters made of a hierarchy's misfits: the placed samples that fit
no cluster (:mod:`.assign`) are clustered among themselves, and each group
becomes a new root of the run's tree, present in every layer, so that it
can be named, grouped and browsed like any other cluster.

The number of new clusters is the one with the best silhouette from 2 to
:data:`MAX_NEW` (k-means in the run's clustered space), unless given.
"""

import numpy as np

from ..algorithms import fitted
from ..algorithms.geometry import (
    cluster_means,
    distances_to,
    farthest_by_label,
)
from ..algorithms.kmeans import KMeans
from ..units import Param, ParamError
from . import hierarchy
from .assign import embed_for_run

MAX_NEW = 10
N_CLUSTERS = Param("n_clusters", "int", None,
                   "New clusters to make of the misfits (default: the best "
                   f"silhouette of 2 to {MAX_NEW})", min=1)


def cluster_misfits(run, n_clusters=None, embedder=None, progress=None):
    """Clusters the samples of ``run`` marked ``misfit`` into new clusters
    of the run, in one transaction. Returns ``(updated run, new cluster
    ids)``."""
    hierarchy.check_layered(run)
    k = N_CLUSTERS.clean("cluster_misfits", n_clusters)
    samples = misfit_samples(run)
    if len(samples) < 2:
        raise ParamError(
            f"run '{run.key}' has {len(samples)} sample(s) that fit no "
            "cluster; place new samples first (assign): at least 2 must not "
            "fit", "run_key")
    if k is not None and k > len(samples):
        raise ParamError(
            f"n_clusters: {k} clusters of {len(samples)} sample(s)",
            "n_clusters")
    state = fitted.loads(run.attachment("fitted"), run.key)
    emb = embed_for_run(samples, run, embedder, None, None, None)
    X = np.asarray(state.transform(emb.vectors), np.float32)
    labels = group_misfits(X, k, run.config.get("seed") or 0)
    block, data, new = grow_tree(run, emb.ids, X, labels)
    cut = list(run.cut) + new
    return hierarchy.move_cut(run, cut, progress, block=block,
                              data=data), new


def misfit_samples(run):
    from fiftyone import ViewField as F

    path = run.fields.get("misfit")
    if path is None:
        return run._dataset.limit(0)
    return run._dataset.match(F(path) == True)  # noqa: E712 (a query)


def group_misfits(X, k, seed):
    """Labels 0..k−1 of the misfits: k-means with ``k`` clusters, or the
    k of 2 to :data:`MAX_NEW` with the best silhouette."""
    from sklearn.metrics import silhouette_score

    if k is not None:
        return KMeans(k, seed=seed).fit(X).labels_
    best, best_score = np.zeros(len(X), dtype=np.int64), -np.inf
    for k in range(2, min(MAX_NEW, len(X) - 1) + 1):
        labels = KMeans(k, seed=seed).fit(X).labels_
        if len(np.unique(labels)) < 2:
            continue
        score = silhouette_score(X, labels)
        if score > best_score:
            best, best_score = labels, score
    return best


def grow_tree(run, ids, X, labels):
    """``(block, data, new)``: the run's ``hierarchy`` block and ``layers``
    arrays with one new root per label, present in every layer, holding
    the samples ``ids`` (no longer misfits); ``new`` are the new ids."""
    labels = np.asarray(labels, dtype=np.int64)
    block = run.results["hierarchy"]
    tree = hierarchy.tree_of(run)
    k = int(labels.max()) + 1
    new = list(range(tree.n_nodes, tree.n_nodes + k))
    centres, sizes = cluster_means(X, labels, k)
    dist, sim = distances_to(X, labels, centres)
    farthest = farthest_by_label(dist, labels, k)
    top = tree.n_layers - 1
    records = list(block["nodes"]) + [{
        "id": node, "parent": -1, "children": [], "layers": [0, top],
        "size": int(sizes[j]),
        "mean_dist": float(dist[labels == j].mean()),
        "fit_dist": float(farthest[j]),
        "centre": [float(v) for v in centres[j]],
        "from_misfits": True} for j, node in enumerate(new)]
    grown = tree.to_json()
    grown["parent"] += [-1] * k
    grown["first_layer"] += [0] * k
    grown["last_layer"] += [top] * k
    grown["size"] += [int(s) for s in sizes]
    grown["layers"] = [layer + new for layer in grown["layers"]]
    layers = [{**layer, "nodes": layer["nodes"] + new,
               "n_clusters": layer["n_clusters"] + k}
              for layer in block["layers"]]
    block = {**block, "tree": grown, "nodes": records, "layers": layers}
    return block, _with_members(run, ids, labels + tree.n_nodes, dist,
                                sim), new


def _with_members(run, ids, leaf, dist, sim):
    """The run's ``layers`` arrays with the samples ``ids`` now members of
    their new clusters (leaf, and distance and similarity in every
    layer), as fitted members."""
    data = hierarchy.read_layers_attachment(run.attachment("layers"))
    at = {sid: r for r, sid in enumerate(data["ids"].tolist())}
    rows = np.array([at[sid] for sid in ids], dtype=np.int64)
    for name in ("leaf", "dist", "sim", "assigned"):
        data[name] = data[name].copy()
    data["leaf"][rows] = leaf
    data["dist"][rows] = dist[:, None]
    data["sim"][rows] = sim[:, None]
    data["assigned"][rows] = False
    return data
