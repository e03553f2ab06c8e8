"""What becomes of noise: kept as −1 (the default), or assigned to the most
probable cluster.

HDBSCAN gives every point a soft membership in each cluster; noise goes to
its strongest. Other methods that make noise (DBSCAN, OPTICS) send it to
the nearest cluster centre in the clustered space. Either way the samples
moved are marked, so nothing is hidden: the run's ``reassigned`` field is
true for them.
"""

import numpy as np

from ..units import Param

NOISE = Param("noise", "choice", "keep",
              "What becomes of noise: keep it as -1, or assign it to the "
              "most probable cluster", choices=("keep", "assign"))


def assign_noise(X, labels, model=None):
    """``(labels, moved)``: every −1 of ``labels`` given a cluster, and a
    boolean mask of the samples that moved."""
    labels = np.asarray(labels).copy()
    noise = labels < 0
    found = np.unique(labels[~noise])
    if not noise.any() or not len(found):
        return labels, np.zeros(len(labels), dtype=bool)
    if _has_soft_membership(model):
        import hdbscan

        membership = hdbscan.all_points_membership_vectors(model)
        membership = np.atleast_2d(membership)
        labels[noise] = np.argmax(membership[noise], axis=1)
    else:
        from .geometry import cluster_means
        from .kmeans import nearest

        centres, _ = cluster_means(X, labels, int(found.max()) + 1)
        present = np.isin(np.arange(len(centres)), found)
        nearest_idx, _ = nearest(X[noise], centres[present])
        labels[noise] = np.flatnonzero(present)[nearest_idx]
    return labels, noise


def _has_soft_membership(model):
    return model is not None and \
        getattr(model, "prediction_data_", None) is not None and \
        type(model).__module__.startswith("hdbscan")
