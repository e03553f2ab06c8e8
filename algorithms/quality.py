"""How good a clustering is: every number a run, the command line and the
App show about quality is computed here, once.

Internal measures (no labels needed) are computed on the clustered samples
only (noise excluded), in the space that was clustered:

- silhouette on a sample of at most :data:`SILHOUETTE_SAMPLE` (it is
  quadratic);
- Davies-Bouldin and Calinski-Harabasz on every clustered sample: both
  are sums over clusters once each cluster's mean and its members'
  distances to it are known (:mod:`.geometry`), so neither needs a sample;
- DBCV (density-based validity) for density methods, on a sample of at most
  :data:`DBCV_SAMPLE`;
- the cluster-size distribution and the fraction clustered.

The first three favour round clusters and under-rate good density
clusterings; the fraction clustered and DBCV are reported beside them.
External measures compare with a ground-truth labelling: ARI, AMI,
homogeneity, completeness, V-measure, and purity with the top class of
each cluster (unlabelled members are left out).
"""

from collections import Counter

import numpy as np

from .geometry import measure

SILHOUETTE_SAMPLE = 5000
DBCV_SAMPLE = 3000
# Centres per block of the centre-to-centre distances of Davies-Bouldin:
# bounds the block to this many times the number of clusters.
CENTRE_BLOCK = 1024


def _sample(n, size, seed):
    if n <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def size_distribution(labels):
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() \
        else np.zeros(0, int)
    sizes = sizes[sizes > 0]
    if not len(sizes):
        return {"min": 0, "median": 0, "max": 0, "largest_share": 0.0}
    return {
        "min": int(sizes.min()),
        "median": float(np.median(sizes)),
        "max": int(sizes.max()),
        "largest_share": float(sizes.max() / sizes.sum()),
    }


def internal_quality(X, labels, seed=None, density=False, stats=None,
                     geometry=None):
    """Plain-JSON internal measures of ``labels`` (−1 = noise) on ``X``;
    ``geometry``, the :class:`.geometry.Geometry` of the same labels on the
    same ``X`` where the caller has it, spares measuring it again."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    member = labels >= 0
    n = len(labels)
    k = len(np.unique(labels[member]))
    out = {
        "n_samples": int(n),
        "n_clusters": int(k),
        "n_noise": int(n - member.sum()),
        "fraction_clustered": float(member.mean()) if n else 0.0,
        "silhouette": None,
        "davies_bouldin": None,
        "calinski_harabasz": None,
        "dbcv": None,
        "sizes": size_distribution(labels),
        "sampled": {},
    }
    # Rows are picked by index, so that X itself is never copied whole.
    members = np.flatnonzero(member)
    if 2 <= k < len(members):
        rows = _sample(len(members), SILHOUETTE_SAMPLE, seed)
        picked = members if rows is None else members[rows]
        if rows is not None:
            out["sampled"]["silhouette"] = len(rows)
        try:
            out["silhouette"] = float(silhouette_score(
                X[picked], labels[picked]))
        except ValueError:
            # The sample held a single cluster (one huge cluster beside
            # tiny ones): silhouette is undefined for it.
            pass
        geo = geometry if geometry is not None else measure(
            X, np.where(member, labels, -1))
        out["davies_bouldin"] = davies_bouldin(geo)
        out["calinski_harabasz"] = calinski_harabasz(geo)
        if density:
            out["dbcv"] = dbcv(X, labels, seed)
            if n > DBCV_SAMPLE:
                out["sampled"]["dbcv"] = DBCV_SAMPLE
    out.update(stats or {})
    return out


def _present(geo):
    """``(centres, sizes, per-cluster mean distance)`` of the clusters
    that have members."""
    present = geo.sizes > 0
    return (np.asarray(geo.centres, np.float64)[present],
            geo.sizes[present], geo.mean_dist()[present])


def calinski_harabasz(geo):
    """Between-cluster over within-cluster dispersion, each per degree of
    freedom (scikit-learn's ``calinski_harabasz_score``), from the
    cluster means and the members' distances to them."""
    centres, sizes, _ = _present(geo)
    n, k = int(sizes.sum()), len(sizes)
    member = geo.labels >= 0
    within = float(np.sum(geo.dist[member] ** 2))
    mean = sizes @ centres / n
    between = float(sizes @ np.sum((centres - mean) ** 2, axis=1))
    if within == 0:
        return 1.0
    return between * (n - k) / (within * (k - 1))


def davies_bouldin(geo):
    """The mean over clusters of the worst ratio of two clusters' spreads
    to the distance between their centres (scikit-learn's
    ``davies_bouldin_score``); the centre-to-centre distances are taken
    a block of centres at a time."""
    centres, _, spread = _present(geo)
    k = len(centres)
    squared = np.einsum("ij,ij->i", centres, centres)
    worst = np.zeros(k)
    farthest = 0.0
    for start in range(0, k, CENTRE_BLOCK):
        block = slice(start, start + CENTRE_BLOCK)
        apart = np.sqrt(np.maximum(
            squared[block, None] + squared[None] - 2 * centres[block]
            @ centres.T, 0))
        rows = np.arange(apart.shape[0])
        apart[rows, start + rows] = 0
        farthest = max(farthest, float(apart.max()))
        # Two clusters with one centre are not told apart by this score.
        apart[apart == 0] = np.inf
        worst[block] = np.max((spread[block, None] + spread[None]) / apart,
                              axis=1)
    if np.allclose(spread, 0) or np.isclose(farthest, 0):
        return 0.0
    return float(np.mean(worst))


def dbcv(X, labels, seed=None):
    """Density-based clustering validity (Moulavi et al.) in [-1, 1], on a
    sample; ``None`` where it is undefined."""
    import warnings

    from hdbscan.validity import validity_index

    rows = _sample(len(labels), DBCV_SAMPLE, seed)
    Xs = np.asarray(X if rows is None else X[rows], np.float64)
    ls = np.asarray(labels if rows is None else labels[rows])
    if len(np.unique(ls[ls >= 0])) < 2:
        return None
    # Each cluster needs enough members for its density core distances.
    counts = Counter(ls[ls >= 0].tolist())
    keep = np.array([l < 0 or counts[l] > 2 for l in ls])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(validity_index(Xs[keep], ls[keep]))
        except (ValueError, ZeroDivisionError, FloatingPointError):
            return None
    return value if np.isfinite(value) else None


def external_quality(clusters, truth):
    """Scores of ``clusters`` (−1 = noise, counted as its own group) against
    ``truth`` labels; pairs where either is ``None`` are left out."""
    from sklearn import metrics as skm

    pairs = [(c, t) for c, t in zip(clusters, truth)
             if c is not None and t is not None]
    if not pairs:
        return None
    c, t = map(list, zip(*pairs))
    h, comp, v = skm.homogeneity_completeness_v_measure(t, c)
    per_cluster = {}
    for cluster, classes in _classes_by_cluster(c, t).items():
        top, count = classes.most_common(1)[0]
        per_cluster[str(cluster)] = {
            "top_class": str(top),
            "purity": count / sum(classes.values()),
            "labelled": sum(classes.values()),
        }
    clustered = [(ci, ti) for ci, ti in zip(c, t) if ci >= 0]
    purity = (sum(_classes_by_cluster(*zip(*clustered))[ci].most_common(1)
                  [0][1] for ci in {ci for ci, _ in clustered})
              / len(clustered)) if clustered else None
    return {
        "labelled": len(pairs),
        "ari": float(skm.adjusted_rand_score(t, c)),
        "ami": float(skm.adjusted_mutual_info_score(t, c)),
        "homogeneity": float(h),
        "completeness": float(comp),
        "v_measure": float(v),
        "purity": purity,
        "per_cluster": per_cluster,
    }


def _classes_by_cluster(clusters, truth):
    out = {}
    for c, t in zip(clusters, truth):
        out.setdefault(c, Counter())[t] += 1
    return out
