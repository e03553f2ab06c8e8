"""A hierarchy of clusters from one fit: k-means into many small clusters,
then Ward's linkage of their centres (weighted by their sizes) into one
tree, read as layers from fine to coarse. The tree nests exactly by
construction, leaves no noise, and places new points by their nearest
small cluster.

The default cut: as many clusters as HDBSCAN finds (the pixels preset's
``min_cluster_size=20, min_samples=10``) on up to :data:`COUNT_SAMPLE`
points of the clustered space; HDBSCAN only counts, the cut is the tree's.
``benchmarks/hierarchy.py --parts cut-rules`` measured it against the
silhouette's best k (from 2 to 40, and from 2 to 200), the finest k within
10% of the best silhouette, the largest gap in Ward's merge heights, and
the Ward cut agreeing best with HDBSCAN's labels, on the preset's space of
five labelled sets and a 100-component mixture: it had the best worst-set
ARI and mean, and found 97 of the mixture's 100 components where the
silhouette stopped at the largest k it tried.
"""

import numpy as np

from ..units import Param, ParamError
from .kmeans import KMeans, nearest
from .method import Clusterer

# Points per small cluster at least, and small clusters at most.
POINTS_PER_MICRO = 5
MAX_MICRO = 1000
# Layers hold about this many times fewer clusters each, from the finest.
LAYER_RATIO = 2.0
MAX_FINEST = 256
# The default cut: as many clusters as HDBSCAN finds with these parameters
# (the pixels preset's) on at most COUNT_SAMPLE points.
COUNT_MIN_CLUSTER = 20
COUNT_MIN_SAMPLES = 10
COUNT_SAMPLE = 20000


class HierarchyClusterer(Clusterer):
    name = "hierarchy"
    label = "Hierarchy"
    description = ("Nested clusters from fine to coarse in one fit (Ward's "
                   "tree of k-means centres); the cut is chosen for you and "
                   "can be moved")
    count_params = ()
    predicts = True
    PARAMS = (
        Param("micro_clusters", "int", None,
              "Small k-means clusters the tree is built from (default: a "
              "fifth of the samples, at most 1,000)", min=2),
        Param("finest", "int", None,
              "Clusters in the finest layer (default: the small clusters, "
              "at most 256)", min=2),
        Param("cut", "int", None,
              "Clusters in the default cut (default: as many as HDBSCAN "
              "finds; see the README)", min=1),
    )
    FITTED = ("centres_", "micro_centres_", "micro_leaf_")
    keeps_model = False

    micro_centres_ = None
    micro_leaf_ = None
    coarse_layers_ = None
    default_layer_ = None
    cut_rule_ = None

    def check_count(self, n):
        super().check_count(n)
        for key in ("micro_clusters", "finest", "cut"):
            k = self.params[key]
            if k is not None and k > n:
                raise ParamError(
                    f"hierarchy: '{key}' ({k}) is larger than the number of "
                    f"samples ({n})", key)

    def _fit(self, X, params, progress=None):
        report = progress or (lambda f, m: None)
        X = np.ascontiguousarray(X, dtype=np.float32)
        n = len(X)
        m = params["micro_clusters"] or int(min(MAX_MICRO, max(
            2, n // POINTS_PER_MICRO)))
        m = min(m, n)
        report(0.0, f"hierarchy: {m} small clusters")
        centres, sizes, micro_labels, merges = micro_tree(
            X, m, self.random_state, lambda f, msg: report(0.6 * f, msg))
        m = len(centres)
        counts = layer_counts(m, params["finest"])
        report(0.6, "hierarchy: choosing the cut")
        chosen, rule = self._default_cut(X, merges, micro_labels, m,
                                         params["cut"],
                                         lambda f, msg: report(
                                             0.6 + 0.35 * f, msg))
        counts = sorted(set(counts) | {chosen}, reverse=True)
        layers = [cut_merges(merges, m, k) for k in counts]
        self.micro_centres_ = centres.astype(np.float32)
        self.micro_leaf_ = layers[0]
        self.coarse_layers_ = [layer[micro_labels] for layer in layers[1:]]
        self.default_layer_ = counts.index(chosen)
        self.cut_rule_ = {**rule, "layers": counts}
        self.stats_ = {"micro_clusters": int(m),
                       "layers": len(counts)}
        report(1.0, f"hierarchy: {len(counts)} layers")
        return layers[0][micro_labels]

    def _default_cut(self, X, merges, micro_labels, m, cut, progress):
        """``(k, rule)``: the number of clusters of the default cut and how
        it was chosen."""
        if cut is not None:
            k = min(cut, m)
            return k, {"rule": "given", "clusters": k}
        import hdbscan

        rows = np.arange(len(X))
        if len(X) > COUNT_SAMPLE:
            rows = np.sort(np.random.default_rng(self.random_state).choice(
                len(X), COUNT_SAMPLE, replace=False))
        progress(0.0, f"hierarchy: counting clusters on {len(rows):,} "
                 "samples")
        # HDBSCAN only counts: the tree is cut, so no point is left out.
        found = int(hdbscan.HDBSCAN(
            min_cluster_size=min(COUNT_MIN_CLUSTER, len(rows)),
            min_samples=min(COUNT_MIN_SAMPLES, len(rows) - 1),
        ).fit(X[rows]).labels_.max() + 1)
        k = int(min(max(found, 2), m))
        return k, {
            "rule": (f"as many clusters as HDBSCAN finds (min_cluster_size "
                     f"{COUNT_MIN_CLUSTER}, min_samples {COUNT_MIN_SAMPLES})"
                     f" on {len(rows):,} samples, at least 2: it found "
                     f"{found}"),
            "hdbscan_clusters": found,
            "sampled": int(len(rows)),
        }

    def predict_with_strength(self, X):
        """The finest-layer cluster of each new point: that of its nearest
        small cluster."""
        micro, _ = nearest(X, self.micro_centres_)
        return self.micro_leaf_[micro], None


def micro_tree(X, m, seed, progress):
    """``(centres, sizes, micro_labels, merges)``: ``m`` k-means clusters of
    ``X`` (those left empty dropped, the rest renumbered) and the Ward
    merges of their centres weighted by their sizes."""
    micro = KMeans(m, seed=seed,
                   progress=lambda f, msg: progress(0.7 * f, msg)).fit(X)
    sizes = np.bincount(micro.labels_, minlength=m)
    kept = np.flatnonzero(sizes > 0)
    renumber = np.full(m, -1, dtype=np.int64)
    renumber[kept] = np.arange(len(kept))
    centres = np.asarray(micro.cluster_centers_, np.float64)[kept]
    progress(0.7, f"hierarchy: linking {len(kept)} centres")
    merges = ward_merges(centres, sizes[kept].astype(np.float64))
    return centres, sizes[kept], renumber[micro.labels_], merges


def layer_counts(m, finest=None):
    """The numbers of clusters of the layers, finest first: from the
    finest down to 2, each about :data:`LAYER_RATIO` times fewer."""
    top = min(m, finest or MAX_FINEST)
    counts, k = [], float(top)
    while k >= 2:
        if not counts or int(round(k)) < counts[-1]:
            counts.append(int(round(k)))
        k /= LAYER_RATIO
    if counts[-1] != 2 and m >= 2:
        counts.append(2)
    return counts


def ward_merges(centres, weights):
    """The merges of Ward's linkage of weighted centres: a list of
    ``(kept, absorbed)`` index pairs, in order. The cost of merging two
    clusters is the increase of the within-cluster sum of squares,
    ``w_a w_b / (w_a + w_b) |c_a - c_b|^2``; each step merges the cheapest
    pair and updates one row of costs (O(m^2) memory, fine for the
    :data:`MAX_MICRO` centres it is given)."""
    C = np.asarray(centres, np.float64).copy()
    w = np.asarray(weights, np.float64).copy()
    m = len(C)
    alive = np.ones(m, dtype=bool)
    cost = _merge_costs(C, w, np.arange(m))
    merges = []
    for _ in range(m - 1):
        flat = int(np.argmin(cost))
        a, b = divmod(flat, m)
        merges.append((a, b))
        C[a] = (w[a] * C[a] + w[b] * C[b]) / (w[a] + w[b])
        w[a] += w[b]
        alive[b] = False
        cost[b, :] = np.inf
        cost[:, b] = np.inf
        row = _merge_costs(C, w, np.array([a]))[0]
        row[~alive] = np.inf
        row[a] = np.inf
        cost[a, :] = row
        cost[:, a] = row
    return merges


def _merge_costs(C, w, rows):
    """Ward's merge cost of each of ``rows`` with every centre (inf with
    itself)."""
    d = ((C[rows, None, :] - C[None, :, :]) ** 2).sum(axis=2)
    cost = (w[rows, None] * w[None, :]) / (w[rows, None] + w[None, :]) * d
    cost[np.arange(len(rows)), rows] = np.inf
    return cost


def cut_merges(merges, m, k):
    """The labels (0..k-1) of the ``m`` centres after all but the last
    ``k - 1`` merges."""
    parent = np.arange(m)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in merges[: m - k]:
        parent[root(b)] = root(a)
    roots = np.array([root(i) for i in range(m)])
    return np.unique(roots, return_inverse=True)[1]
