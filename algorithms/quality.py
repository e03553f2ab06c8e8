"""How good a clustering is: every number a run, the command line and the
App show about quality is computed here, once.

Internal measures (no labels needed) are computed on the clustered samples
only (noise excluded), in the space that was clustered:

- silhouette on a sample of at most :data:`SILHOUETTE_SAMPLE` (it is
  quadratic);
- Davies-Bouldin and Calinski-Harabasz, on a sample of at most
  :data:`METRIC_SAMPLE` when there are more samples (to bound memory);
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

SILHOUETTE_SAMPLE = 5000
METRIC_SAMPLE = 100_000
DBCV_SAMPLE = 3000


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


def internal_quality(X, labels, seed=None, density=False, stats=None):
    """Plain-JSON internal measures of ``labels`` (−1 = noise) on ``X``."""
    from sklearn.metrics import (
        calinski_harabasz_score,
        davies_bouldin_score,
        silhouette_score,
    )

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
        rows = _sample(len(members), METRIC_SAMPLE, seed)
        picked = members if rows is None else members[rows]
        Xs, ls = X[picked], labels[picked]
        if rows is not None:
            out["sampled"]["davies_bouldin"] = len(rows)
            out["sampled"]["calinski_harabasz"] = len(rows)
        if len(np.unique(ls)) >= 2:
            out["davies_bouldin"] = float(davies_bouldin_score(Xs, ls))
            out["calinski_harabasz"] = float(
                calinski_harabasz_score(Xs, ls))
        if density:
            out["dbcv"] = dbcv(X, labels, seed)
            if n > DBCV_SAMPLE:
                out["sampled"]["dbcv"] = DBCV_SAMPLE
    out.update(stats or {})
    return out


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
