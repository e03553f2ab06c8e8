"""What becomes of noise: kept as −1, assigned to the most probable
cluster, or kept within a budget (``max_noise``: at most that share of the
samples stays unclustered, the most probable members being placed first).

A method with soft membership (HDBSCAN) gives every point a probability
per cluster: noise goes to its strongest, and the strongest are placed
first. Other methods that make noise send it to the nearest cluster
centre in the clustered space, nearest first. Either way the samples moved
are marked, so nothing is hidden: the run's ``reassigned`` field is true
for them.
"""

import numpy as np

from ..units import Param
from .kmeans import nearest

NOISE = Param("noise", "choice", "keep",
              "What becomes of noise: keep it as -1, or assign it to the "
              "most probable cluster", choices=("keep", "assign"))
MAX_NOISE = Param("max_noise", "float", None,
                  "Largest share of the samples left as noise (0 to 1); "
                  "the most probable members of a cluster are placed "
                  "first. Empty: as the method leaves it", min=0.0, max=1.0)


def place_noise(X, clusterer, max_share=0.0):
    """``(labels, moved)``: the fitted ``clusterer``'s labels with noise
    placed in its most probable cluster until at most ``max_share`` of the
    samples is noise, and a boolean mask of the samples moved. Nothing is
    changed in place."""
    labels = np.asarray(clusterer.labels_, dtype=np.int64).copy()
    moved = np.zeros(len(labels), dtype=bool)
    noise = np.flatnonzero(labels < 0)
    allowed = int(np.floor(max_share * len(labels) + 1e-9))
    if len(noise) <= allowed or not (labels >= 0).any():
        return labels, moved
    best, confidence = _best_clusters(X, clusterer, noise)
    order = np.argsort(-confidence, kind="stable")
    take = order[: len(noise) - allowed]
    labels[noise[take]] = best[take]
    moved[noise[take]] = True
    return labels, moved


def _best_clusters(X, clusterer, rows):
    """Each row's most probable cluster, and how confident that is (higher
    is more)."""
    if clusterer.soft_membership:
        membership = clusterer.membership()[rows]
        return np.argmax(membership, axis=1), np.max(membership, axis=1)
    present = clusterer._present_centres()
    index, squared = nearest(X[rows], clusterer.centres_[present])
    return present[index], -squared
