"""Per-sample geometry of a clustering: centre, distance, similarity, size."""

import numpy as np


class Geometry:
    """Cluster geometry in the space that was clustered.

    Attributes:
        labels: int array, clusters renumbered by size (0 = largest),
            −1 = noise
        centres: float array ``(k, d)``, the mean of each cluster's members
        sizes: int array ``(k,)``
        dist: per-sample Euclidean distance to its centre (NaN for noise)
        sim: per-sample cosine similarity to its centre (NaN for noise)
        size: per-sample size of its cluster (noise: the number of noise
            samples)
    """

    def __init__(self, labels, centres, sizes, dist, sim, size):
        self.labels = labels
        self.centres = centres
        self.sizes = sizes
        self.dist = dist
        self.sim = sim
        self.size = size

    @property
    def n_clusters(self):
        return len(self.sizes)

    def mean_dist(self):
        """Mean distance to the centre, per cluster."""
        member = self.labels >= 0
        totals = np.bincount(self.labels[member], weights=self.dist[member],
                             minlength=len(self.sizes))
        return totals / np.maximum(self.sizes, 1)


def relabel_by_size(labels):
    """Renumbers clusters so that 0 is the largest (ties keep the method's
    order); noise stays −1. Returns the new labels and the old -> new map."""
    labels = np.asarray(labels, dtype=np.int64)
    found, counts = np.unique(labels[labels >= 0], return_counts=True)
    # Largest first; ties keep the method's order (found is sorted).
    order = np.lexsort((found, -counts))
    mapping = {int(found[i]): new for new, i in enumerate(order)}
    out = np.full(labels.shape, -1, dtype=np.int64)
    if len(found):
        lookup = np.full(int(found.max()) + 1, -1, dtype=np.int64)
        lookup[found[order]] = np.arange(len(found))
        member = labels >= 0
        out[member] = lookup[labels[member]]
    return out, mapping


# Rows per chunk when measuring: bounds the float64 working copy.
MEASURE_CHUNK = 16384


def cluster_means(X, labels, k):
    """``(centres, sizes)``: the mean of each cluster's rows of ``X``
    (float64), summed chunk by chunk as one sparse product per chunk (an
    indicator matrix of clusters times the rows)."""
    from scipy.sparse import csr_matrix

    d = X.shape[1]
    sums = np.zeros((k, d))
    sizes = np.bincount(labels[labels >= 0], minlength=k).astype(np.int64)
    for start in range(0, len(X), MEASURE_CHUNK):
        part = labels[start:start + MEASURE_CHUNK]
        member = np.flatnonzero(part >= 0)
        if not len(member):
            continue
        indicator = csr_matrix(
            (np.ones(len(member)), (part[member], member)),
            shape=(k, len(part)))
        sums += indicator @ np.asarray(X[start:start + len(part)],
                                       np.float64)
    return sums / np.maximum(sizes, 1)[:, None], sizes


def measure(X, labels):
    """Computes the geometry of ``labels`` (already numbered 0..k-1, −1 for
    noise) over the rows of ``X``, in chunks."""
    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    centres, sizes = cluster_means(X, labels, k)
    dist, sim = distances_to(X, labels, centres)
    member = labels >= 0
    size = np.empty(len(X), dtype=np.int64)
    size[member] = sizes[labels[member]]
    size[~member] = int((~member).sum())
    return Geometry(labels, centres, sizes, dist, sim, size)


def distances_to(X, labels, centres):
    """``(dist, sim)``: each row's Euclidean distance and cosine similarity
    to the centre of its cluster (``centres[label]``), NaN for noise, in
    chunks. The dot product comes from the squared norms and distance
    (``x.c = (|x|^2 + |c|^2 - |x - c|^2) / 2``), so each chunk takes one
    subtraction and two row-wise products."""
    centres = np.asarray(centres, dtype=np.float64)
    squared = np.einsum("ij,ij->i", centres, centres)
    dist = np.full(len(X), np.nan)
    sim = np.full(len(X), np.nan)
    for start in range(0, len(X), MEASURE_CHUNK):
        stop = start + MEASURE_CHUNK
        part = labels[start:stop]
        member = np.flatnonzero(part >= 0)
        if not len(member):
            continue
        # A copy in float64 (fancy indexing copies; np.array always does).
        rows = np.asarray(X[start:stop][member], np.float64) \
            if len(member) < len(part) else \
            np.array(X[start:stop], dtype=np.float64)
        own = part[member]
        xx = np.einsum("ij,ij->i", rows, rows)
        rows -= centres[own]
        dd = np.einsum("ij,ij->i", rows, rows)
        dist[start + member] = np.sqrt(dd)
        cc = squared[own]
        norms = np.sqrt(xx * cc)
        dots = (xx + cc - dd) / 2
        # A zero vector has no direction: its similarity is undefined.
        sim[start + member] = np.where(
            norms > 0, np.clip(dots / np.where(norms > 0, norms, 1), -1, 1),
            np.nan)
    return dist, sim


def nearest_to_centre(members, per_cluster=1):
    """``{cluster_id: [(id, filepath), ...]}`` with the ``per_cluster``
    members of each cluster nearest its centre, nearest first. Noise has no
    centre and no representatives.

    Args:
        members: parallel lists ``id``, ``filepath``, ``cluster`` and
            ``dist`` (a run's members)
        per_cluster: how many per cluster
    """
    ranked = sorted(
        (c, d, sid, p)
        for sid, p, c, d in zip(members["id"], members["filepath"],
                                members["cluster"], members["dist"])
        if c is not None and c >= 0 and d is not None
    )
    out = {}
    for c, _, sid, path in ranked:
        chosen = out.setdefault(c, [])
        if len(chosen) < per_cluster:
            chosen.append((sid, path))
    return out
