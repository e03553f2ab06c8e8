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
        return np.array(
            [self.dist[self.labels == c].mean() for c in range(len(self.sizes))]
        )


def relabel_by_size(labels):
    """Renumbers clusters so that 0 is the largest (ties keep the method's
    order); noise stays −1. Returns the new labels and the old -> new map."""
    labels = np.asarray(labels)
    found, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = sorted(range(len(found)), key=lambda i: (-counts[i], found[i]))
    mapping = {int(found[i]): new for new, i in enumerate(order)}
    out = np.full(labels.shape, -1, dtype=np.int64)
    for old, new in mapping.items():
        out[labels == old] = new
    return out, mapping


def measure(X, labels):
    """Computes the geometry of ``labels`` (already numbered 0..k-1, −1 for
    noise) over the rows of ``X``."""
    X = np.asarray(X, dtype=np.float64)
    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    sizes = np.bincount(labels[labels >= 0], minlength=k).astype(np.int64)
    centres = np.zeros((k, X.shape[1]))
    np.add.at(centres, labels[labels >= 0], X[labels >= 0])
    centres /= np.maximum(sizes, 1)[:, None]

    member = labels >= 0
    own = centres[labels[member]]
    dist = np.full(len(X), np.nan)
    sim = np.full(len(X), np.nan)
    dist[member] = np.linalg.norm(X[member] - own, axis=1)
    norms = np.linalg.norm(X[member], axis=1) * np.linalg.norm(own, axis=1)
    dots = np.einsum("ij,ij->i", X[member], own)
    # A zero vector has no direction: its similarity is undefined, not 0.
    sim[member] = np.where(norms > 0, dots / np.where(norms > 0, norms, 1), np.nan)

    size = np.empty(len(X), dtype=np.int64)
    size[member] = sizes[labels[member]]
    size[~member] = int((~member).sum())
    return Geometry(labels, centres, sizes, dist, sim, size)
