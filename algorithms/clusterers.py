"""Clustering methods, as scikit-learn estimators.

Each method is a unit: parameters (``random_state`` among them) are
validated once when it is built, ``fit(X)`` returns the unit with fitted
attributes ending in ``_`` (``labels_``, −1 = noise; ``probabilities_`` and
``outlier_scores_`` where the method gives them; ``centres_``, the mean of
each cluster's members; ``model_``, the library's estimator; ``stats_``
and ``sweep_``), and ``predict(X)`` places new points.

A unit says by itself what it can do, so that nothing else switches on its
name:

- ``density``: clusters are dense regions; noise is possible and DBCV
  applies;
- ``soft_membership``: :meth:`Clusterer.membership` gives each fitted point
  a probability per cluster (noise goes to its strongest);
- ``predicts``: :meth:`Clusterer.predict` is the method's own rule; other
  methods place a new point at the nearest cluster centre.

Cluster centres are not taken from the method: every run measures
distances to the mean of each cluster's members, so the fields mean the
same thing whatever the method. Methods that take a number of clusters
accept ``"auto"``: a sweep in the clustered space chooses it
(:mod:`.sweep`), and the sweep is kept in ``sweep_``.

Adding a method is one subclass and one line in :data:`CLUSTERERS`.
"""

import numpy as np

from ..units import Param, ParamError, build_unit
from . import sweep as sweeps
from .hierarchy import HierarchyClusterer
from .kmeans import KMeans, nearest, resolve_engine
from .method import Clusterer

_METRICS = ("euclidean", "manhattan", "cosine")
SAMPLE_METRIC = Param("metric", "choice", "euclidean",
                      "Distance between samples", choices=_METRICS)

def _n_clusters(default=8, nullable=False, auto=True):
    return Param(
        "n_clusters",
        "int",
        default,
        "Number of clusters ('auto': chosen by a sweep)",
        min=1,
        nullable=nullable,
        auto=auto,
    )


class KMeansClusterer(Clusterer):
    name = "kmeans"
    label = "K-means"
    description = "Round clusters of similar size; k given or chosen"
    auto_param = "n_clusters"
    predicts = True
    # faiss already uses every core.
    sweep_parallel = False
    PARAMS = (
        _n_clusters(),
        Param(
            "engine",
            "choice",
            "auto",
            "faiss (fast; the default when installed) or scikit-learn",
            choices=("auto", "faiss", "sklearn"),
        ),
        Param("n_init", "int", 1, "Restarts; the best is kept", min=1),
        Param(
            "max_iter",
            "int",
            None,
            "Iterations per restart (default: 30 for faiss, 300 for "
            "scikit-learn)",
            min=1,
        ),
        Param(
            "init",
            "choice",
            "k-means++",
            "Initial centres",
            choices=("k-means++", "random"),
        ),
        *sweeps.k_params(),
    )
    FITTED = ("centres_", "cluster_centers_")
    # The engine is this package's; its centres are all it needs.
    keeps_model = False

    def check(self):
        resolve_engine(self.params["engine"])

    def _fit(self, X, params, progress=None):
        model = KMeans(params["n_clusters"], engine=params["engine"],
                       n_init=params["n_init"], max_iter=params["max_iter"],
                       init=params["init"], seed=self.random_state,
                       progress=progress).fit(X)
        self.model_ = model
        self.cluster_centers_ = np.asarray(model.cluster_centers_,
                                           np.float32)
        self.stats_ = {"inertia": model.inertia_, "engine": model.engine_,
                       "n_iter": int(model.n_iter_)}
        return model.labels_

    def predict_with_strength(self, X):
        found, _ = nearest(X, self.cluster_centers_)
        return found, None


class MiniBatchKMeansClusterer(Clusterer):
    name = "minibatch_kmeans"
    label = "Mini-batch k-means"
    description = "K-means on mini-batches: for very large datasets"
    auto_param = "n_clusters"
    predicts = True
    PARAMS = (
        _n_clusters(),
        Param("batch_size", "int", 1024, "Samples per mini-batch", min=1),
        Param("n_init", "int", 3, "Restarts; the best is kept", min=1),
        Param("max_iter", "int", 100, "Passes over the data", min=1),
        *sweeps.k_params(),
    )

    def _fit(self, X, params, progress=None):
        from sklearn.cluster import MiniBatchKMeans

        self.model_ = MiniBatchKMeans(
            n_clusters=params["n_clusters"], batch_size=params["batch_size"],
            n_init=params["n_init"], max_iter=params["max_iter"],
            random_state=self.random_state).fit(X)
        self.stats_ = {"inertia": float(self.model_.inertia_)}
        return self.model_.labels_

    def predict_with_strength(self, X):
        return self.model_.predict(np.asarray(X, np.float32)).astype(
            np.int64), None


class AgglomerativeClusterer(Clusterer):
    name = "agglomerative"
    label = "Agglomerative"
    description = (
        "Hierarchical merging; give n_clusters (or 'auto') or a "
        "distance_threshold"
    )
    auto_param = "n_clusters"
    # Ward's memory grows with the square of the number of samples.
    MAX_SAMPLES = 30_000
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
        *sweeps.k_params(),
    )

    def check(self):
        p = self.params
        if (p["n_clusters"] is None) == (p["distance_threshold"] is None):
            raise ParamError(
                "agglomerative: give exactly one of 'n_clusters' and "
                "'distance_threshold' (set the other to None)", "n_clusters")
        if p["linkage"] == "ward" and p["metric"] != "euclidean":
            raise ParamError(
                "agglomerative: 'linkage' ward needs 'metric' euclidean, "
                f"got {p['metric']!r}", "metric")

    def check_count(self, n):
        super().check_count(n)
        if n > self.MAX_SAMPLES:
            raise ParamError(
                f"agglomerative: {n:,} samples is more than it can hold in "
                f"memory (at most {self.MAX_SAMPLES:,}); use kmeans or "
                "hdbscan, or cluster a view", "method")

    def _fit(self, X, params, progress=None):
        from sklearn.cluster import AgglomerativeClustering

        self.model_ = AgglomerativeClustering(
            n_clusters=params["n_clusters"],
            distance_threshold=params["distance_threshold"],
            linkage=params["linkage"], metric=params["metric"]).fit(X)
        return self.model_.labels_


class BirchClusterer(Clusterer):
    name = "birch"
    label = "BIRCH"
    description = "Fast tree-based clustering for large datasets"
    auto_param = "n_clusters"
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
        *sweeps.k_params(),
    )

    def _fit(self, X, params, progress=None):
        from sklearn.cluster import Birch

        self.model_ = Birch(n_clusters=params["n_clusters"],
                            threshold=params["threshold"],
                            branching_factor=params["branching_factor"]
                            ).fit(X)
        return self.model_.labels_


class DBSCANClusterer(Clusterer):
    name = "dbscan"
    label = "DBSCAN"
    description = "Dense regions within eps of each other; the rest is noise"
    count_params = ("min_samples",)
    density = True
    SEEDED = False
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
        SAMPLE_METRIC,
    )

    def _fit(self, X, params, progress=None):
        from sklearn.cluster import DBSCAN

        self.model_ = DBSCAN(**params).fit(X)
        return self.model_.labels_


class HDBSCANClusterer(Clusterer):
    name = "hdbscan"
    label = "HDBSCAN"
    description = (
        "Density clusters of any shape and size, with noise, membership "
        "probabilities and outlier scores"
    )
    count_params = ("min_cluster_size", "min_samples")
    density = True
    soft_membership = True
    predicts = True
    auto_param = "min_cluster_size"
    PARAMS = (
        Param(
            "min_cluster_size",
            "int",
            10,
            "Smallest group that counts as a cluster ('auto': chosen by a "
            "sweep)",
            min=2,
            auto=True,
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
        Param(
            "criterion",
            "choice",
            "relative_validity",
            "How min_cluster_size='auto' scores each candidate: hdbscan's "
            "fast DBCV estimate, or exact DBCV on a sample",
            choices=("relative_validity", "dbcv"),
        ),
    )

    def _candidates(self, n):
        return sweeps.min_cluster_size_candidates(n)

    def _criterion(self):
        return self.params["criterion"]

    def sweep_spec(self):
        return {"criterion": self.params["criterion"]}

    def _fit(self, X, params, progress=None):
        import hdbscan

        kwargs = {k: v for k, v in params.items()
                  if k not in ("criterion", "random_state")}
        if isinstance(kwargs.get("min_samples"), int):
            kwargs["min_samples"] = min(kwargs["min_samples"], len(X) - 1)
        self.model_ = hdbscan.HDBSCAN(
            # The sweep's relative validity is read off the spanning tree.
            gen_min_span_tree=self.in_sweep,
            prediction_data=True, **kwargs).fit(X)
        self.probabilities_ = np.asarray(self.model_.probabilities_,
                                         np.float64)
        self.outlier_scores_ = np.nan_to_num(
            np.asarray(self.model_.outlier_scores_, np.float64), nan=0.0)
        return self.model_.labels_

    def membership(self):
        import hdbscan

        return np.atleast_2d(
            hdbscan.all_points_membership_vectors(self.model_))

    def predict_with_strength(self, X):
        import hdbscan

        labels, strength = hdbscan.approximate_predict(
            self.model_, np.asarray(X, np.float64))
        return np.asarray(labels, np.int64), np.asarray(strength, float)


class OPTICSClusterer(Clusterer):
    name = "optics"
    label = "OPTICS"
    description = "Density ordering; finds clusters of varying density"
    count_params = ("min_samples", "min_cluster_size")
    density = True
    SEEDED = False
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
        SAMPLE_METRIC,
    )

    def _fit(self, X, params, progress=None):
        from sklearn.cluster import OPTICS

        self.model_ = OPTICS(**params).fit(X)
        return self.model_.labels_


class GaussianMixtureClusterer(Clusterer):
    name = "gmm"
    label = "Gaussian mixture"
    description = "Soft clusters with a probability for each sample"
    count_params = ("n_components",)
    auto_param = "n_components"
    predicts = True
    PARAMS = (
        Param("n_components", "int", 8,
              "Number of clusters ('auto': chosen by a sweep)", min=1,
              auto=True),
        Param(
            "covariance_type",
            "choice",
            "full",
            "Shape of each component",
            choices=("full", "tied", "diag", "spherical"),
        ),
        Param("max_iter", "int", 100, "EM iterations", min=1),
        Param("n_init", "int", 1, "Restarts; the best is kept", min=1),
        *sweeps.k_params(criteria=("auto", "bic", "silhouette",
                                   "davies_bouldin", "calinski_harabasz")),
    )

    def _criterion(self):
        criterion = self.params["criterion"]
        return "bic" if criterion == "auto" else criterion

    def _fit(self, X, params, progress=None):
        from sklearn.mixture import GaussianMixture

        self.model_ = GaussianMixture(
            n_components=params["n_components"],
            covariance_type=params["covariance_type"],
            max_iter=params["max_iter"], n_init=params["n_init"],
            random_state=self.random_state).fit(X)
        proba = self.model_.predict_proba(X)
        self.probabilities_ = proba.max(axis=1)
        self.stats_ = {"bic": float(self.model_.bic(X)),
                       "converged": bool(self.model_.converged_)}
        return proba.argmax(axis=1)

    def predict_with_strength(self, X):
        """The most probable component that has members: a component left
        empty by the fit would otherwise turn new samples into noise."""
        proba = self.model_.predict_proba(np.asarray(X, np.float64))
        present = self._present_centres()
        if not len(present):
            return np.full(len(X), -1, np.int64), None
        kept = proba[:, present]
        return present[kept.argmax(axis=1)], kept.max(axis=1)


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
        HierarchyClusterer,
    )
}


def get_clusterer(spec, **params):
    """Returns a clusterer from a name, a ``{"name": ..., **params}`` dict,
    or a :class:`Clusterer` instance."""
    return build_unit(CLUSTERERS, "method", spec, **params)


def restore(portable):
    """A fitted clusterer from :meth:`Clusterer.portable`, built again from
    the registry by its name."""
    unit = get_clusterer(portable["name"], **portable["params"])
    unit.model_ = portable.get("model")
    for attr, value in portable["fitted"].items():
        setattr(unit, attr, value)
    return unit
