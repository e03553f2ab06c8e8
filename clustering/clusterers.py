"""Clustering methods.

Each method is a unit with ``fit(X, seed)`` returning a :class:`Fit`:
labels (−1 = noise) and, where the method gives them, a membership
probability and an outlier score per sample. Cluster centres are not taken
from the method: every run measures distances to the mean of each cluster's
members, so the fields mean the same thing whatever the method.
"""

import numpy as np

from ..units import Param, ParamError, Unit, build_unit

_METRICS = ("euclidean", "manhattan", "cosine")


class Fit:
    """What a clustering method found.

    Attributes:
        labels: int array, one per sample, −1 for noise
        prob: optional float array, membership strength in [0, 1]
        outlier: optional float array, higher = more of an outlier
        stats: plain-JSON facts from the method (e.g. k-means inertia)
    """

    def __init__(self, labels, prob=None, outlier=None, stats=None):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.prob = None if prob is None else np.asarray(prob, np.float64)
        self.outlier = (
            None if outlier is None else np.asarray(outlier, np.float64)
        )
        self.stats = stats or {}


class Clusterer(Unit):
    # The parameters that cannot exceed the number of samples.
    count_params = ("n_clusters",)

    def fit(self, X, seed):
        raise NotImplementedError

    def check_count(self, n):
        """Raises if the method's parameters need more than ``n`` samples."""
        for key in self.count_params:
            k = self.params.get(key)
            if isinstance(k, int) and k > n:
                raise ParamError(
                    f"{self.name}: '{key}' ({k}) is larger than the number "
                    f"of samples ({n})"
                )


def _n_clusters(default=8, nullable=False):
    return Param(
        "n_clusters",
        "int",
        default,
        "Number of clusters",
        min=1,
        nullable=nullable,
    )


class KMeansClusterer(Clusterer):
    name = "kmeans"
    label = "K-means"
    description = "Round clusters of similar size; you choose k"
    PARAMS = (
        _n_clusters(),
        Param("n_init", "int", 10, "Restarts; the best is kept", min=1),
        Param("max_iter", "int", 300, "Iterations per restart", min=1),
        Param(
            "init",
            "choice",
            "k-means++",
            "Initial centres",
            choices=("k-means++", "random"),
        ),
    )

    def fit(self, X, seed):
        from sklearn.cluster import KMeans

        model = KMeans(random_state=seed, **self.params).fit(X)
        return Fit(model.labels_, stats={"inertia": float(model.inertia_)})


class MiniBatchKMeansClusterer(Clusterer):
    name = "minibatch_kmeans"
    label = "Mini-batch k-means"
    description = "K-means on mini-batches: for very large datasets"
    PARAMS = (
        _n_clusters(),
        Param("batch_size", "int", 1024, "Samples per mini-batch", min=1),
        Param("n_init", "int", 3, "Restarts; the best is kept", min=1),
        Param("max_iter", "int", 100, "Passes over the data", min=1),
    )

    def fit(self, X, seed):
        from sklearn.cluster import MiniBatchKMeans

        model = MiniBatchKMeans(random_state=seed, **self.params).fit(X)
        return Fit(model.labels_, stats={"inertia": float(model.inertia_)})


class AgglomerativeClusterer(Clusterer):
    name = "agglomerative"
    label = "Agglomerative"
    description = (
        "Hierarchical merging; give n_clusters or a distance_threshold"
    )
    PARAMS = (
        _n_clusters(default=8, nullable=True),
        Param(
            "distance_threshold",
            "float",
            None,
            "Stop merging above this linkage distance (instead of "
            "n_clusters)",
            min=0.0,
        ),
        Param(
            "linkage",
            "choice",
            "ward",
            "How the distance between clusters is measured",
            choices=("ward", "complete", "average", "single"),
        ),
        Param(
            "metric",
            "choice",
            "euclidean",
            "Distance between samples (ward needs euclidean)",
            choices=_METRICS,
        ),
    )

    def check(self):
        p = self.params
        if (p["n_clusters"] is None) == (p["distance_threshold"] is None):
            raise ParamError(
                "agglomerative: give exactly one of 'n_clusters' and "
                "'distance_threshold' (set the other to None)"
            )
        if p["linkage"] == "ward" and p["metric"] != "euclidean":
            raise ParamError(
                "agglomerative: 'linkage' ward needs 'metric' euclidean, "
                f"got {p['metric']!r}"
            )

    def fit(self, X, seed):
        from sklearn.cluster import AgglomerativeClustering

        model = AgglomerativeClustering(**self.params).fit(X)
        return Fit(model.labels_)


class BirchClusterer(Clusterer):
    name = "birch"
    label = "BIRCH"
    description = "Fast tree-based clustering for large datasets"
    PARAMS = (
        _n_clusters(default=8, nullable=True),
        Param(
            "threshold",
            "float",
            0.5,
            "Radius of a leaf subcluster; lower makes more subclusters",
            min=0.0,
            exclusive_min=True,
        ),
        Param("branching_factor", "int", 50, "Children per node", min=2),
    )

    def fit(self, X, seed):
        from sklearn.cluster import Birch

        model = Birch(**self.params).fit(X)
        return Fit(model.labels_)


class DBSCANClusterer(Clusterer):
    name = "dbscan"
    label = "DBSCAN"
    description = "Dense regions within eps of each other; the rest is noise"
    count_params = ("min_samples",)
    PARAMS = (
        Param(
            "eps",
            "float",
            0.5,
            "Neighbourhood radius",
            min=0.0,
            exclusive_min=True,
        ),
        Param(
            "min_samples", "int", 5, "Neighbours that make a core point", min=1
        ),
        Param(
            "metric",
            "choice",
            "euclidean",
            "Distance between samples",
            choices=_METRICS,
        ),
    )

    def fit(self, X, seed):
        from sklearn.cluster import DBSCAN

        model = DBSCAN(**self.params).fit(X)
        return Fit(model.labels_)


class HDBSCANClusterer(Clusterer):
    name = "hdbscan"
    label = "HDBSCAN"
    description = (
        "Density clusters of any shape and size, with noise, membership "
        "probabilities and outlier scores"
    )
    count_params = ("min_cluster_size", "min_samples")
    PARAMS = (
        Param(
            "min_cluster_size",
            "int",
            10,
            "Smallest group that counts as a cluster",
            min=2,
        ),
        Param(
            "min_samples",
            "int",
            None,
            "How conservative: higher declares more noise (default: "
            "min_cluster_size)",
            min=1,
        ),
        Param(
            "cluster_selection_epsilon",
            "float",
            0.0,
            "Merge clusters closer than this distance",
            min=0.0,
        ),
        Param(
            "cluster_selection_method",
            "choice",
            "eom",
            "eom favours large clusters, leaf many small even ones",
            choices=("eom", "leaf"),
        ),
        Param(
            "metric",
            "choice",
            "euclidean",
            "Distance between samples (for cosine, L2-normalise first)",
            choices=("euclidean", "manhattan", "chebyshev"),
        ),
        Param(
            "allow_single_cluster",
            "bool",
            False,
            "Allow the result to be a single cluster",
        ),
    )

    def fit(self, X, seed):
        import hdbscan

        model = hdbscan.HDBSCAN(**self.params).fit(X)
        outlier = np.nan_to_num(model.outlier_scores_, nan=0.0)
        return Fit(model.labels_, prob=model.probabilities_, outlier=outlier)


class OPTICSClusterer(Clusterer):
    name = "optics"
    label = "OPTICS"
    description = "Density ordering; finds clusters of varying density"
    count_params = ("min_samples", "min_cluster_size")
    PARAMS = (
        Param(
            "min_samples", "int", 5, "Neighbours that make a core point", min=2
        ),
        Param(
            "xi",
            "float",
            0.05,
            "Minimum steepness that bounds a cluster",
            min=0.0,
            max=1.0,
        ),
        Param(
            "min_cluster_size",
            "int",
            None,
            "Smallest cluster (default: min_samples)",
            min=2,
        ),
        Param(
            "metric",
            "choice",
            "euclidean",
            "Distance between samples",
            choices=_METRICS,
        ),
    )

    def fit(self, X, seed):
        from sklearn.cluster import OPTICS

        model = OPTICS(**self.params).fit(X)
        return Fit(model.labels_)


class GaussianMixtureClusterer(Clusterer):
    name = "gmm"
    label = "Gaussian mixture"
    description = "Soft clusters with a probability for each sample"
    count_params = ("n_components",)
    PARAMS = (
        Param("n_components", "int", 8, "Number of clusters", min=1),
        Param(
            "covariance_type",
            "choice",
            "full",
            "Shape of each component",
            choices=("full", "tied", "diag", "spherical"),
        ),
        Param("max_iter", "int", 100, "EM iterations", min=1),
        Param("n_init", "int", 1, "Restarts; the best is kept", min=1),
    )

    def fit(self, X, seed):
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(random_state=seed, **self.params).fit(X)
        proba = model.predict_proba(X)
        return Fit(
            proba.argmax(axis=1),
            prob=proba.max(axis=1),
            stats={"bic": float(model.bic(X)), "converged": model.converged_},
        )


CLUSTERERS = {
    cls.name: cls
    for cls in (
        KMeansClusterer,
        MiniBatchKMeansClusterer,
        AgglomerativeClusterer,
        BirchClusterer,
        DBSCANClusterer,
        HDBSCANClusterer,
        OPTICSClusterer,
        GaussianMixtureClusterer,
    )
}


def get_clusterer(spec, **params):
    """Returns a clusterer from a name, a ``{"name": ..., **params}`` dict,
    or a :class:`Clusterer` instance."""
    return build_unit(CLUSTERERS, "method", spec, **params)
