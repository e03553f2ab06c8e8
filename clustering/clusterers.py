"""Clustering methods.

Each method is a unit with ``fit(X, seed)`` returning a :class:`Fit`:
labels (−1 = noise), the fitted model, and, where the method gives them, a
membership probability and an outlier score per sample. Cluster centres are
not taken from the method: every run measures distances to the mean of
each cluster's members, so the fields mean the same thing whatever the
method.

Methods that take a number of clusters accept ``n_clusters="auto"`` (and
HDBSCAN ``min_cluster_size="auto"``): a sweep in the clustered space
chooses it (:mod:`.choose_k`), and the sweep is kept with the fit.
"""

import numpy as np

from ..units import Param, ParamError, Unit, build_unit
from . import choose_k

_METRICS = ("euclidean", "manhattan", "cosine")


class Fit:
    """What a clustering method found.

    Attributes:
        labels: int array, one per sample, −1 for noise
        model: the fitted estimator
        prob: optional float array, membership strength in [0, 1]
        outlier: optional float array, higher = more of an outlier
        stats: plain-JSON facts from the method (e.g. k-means inertia)
        sweep: the automatic choice of k, as plain JSON, or ``None``
    """

    def __init__(self, labels, model=None, prob=None, outlier=None,
                 stats=None):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.model = model
        self.prob = None if prob is None else np.asarray(prob, np.float64)
        self.outlier = (
            None if outlier is None else np.asarray(outlier, np.float64)
        )
        self.stats = stats or {}
        self.sweep = None


class Clusterer(Unit):
    # The parameters that cannot exceed the number of samples.
    count_params = ("n_clusters",)
    # Whether clusters are dense regions (DBCV applies; noise is possible).
    density = False
    # The parameter that may be "auto", and how candidates for it are made.
    auto_param = None
    # Whether the sweep's fits run in parallel threads (not for methods
    # that already use every core).
    sweep_parallel = True

    def check_count(self, n):
        """Raises if the method's parameters need more than ``n`` samples."""
        for key in self.count_params:
            k = self.params.get(key)
            if isinstance(k, int) and not isinstance(k, bool) and k > n:
                raise ParamError(
                    f"{self.name}: '{key}' ({k}) is larger than the number "
                    f"of samples ({n})"
                )

    def fit(self, X, seed, progress=None):
        params = dict(self.params)
        sweep = None
        if self.auto_param and params.get(self.auto_param) == "auto":
            sweep = self._sweep(X, seed, progress)
            params[self.auto_param] = sweep["chosen"]
        fit = self._fit(X, seed, params, progress)
        fit.sweep = sweep
        return fit

    def _fit(self, X, seed, params, progress=None):
        raise NotImplementedError

    def _candidates(self, n):
        return choose_k.k_candidates(n, self.params["k_min"],
                                     self.params["k_max"])

    def _criterion(self):
        criterion = self.params["criterion"]
        return "silhouette" if criterion == "auto" else criterion

    def _sweep(self, X, seed, progress):
        def fit_one(Xs, value, s):
            fit = self._fit(Xs, s, {**self.params, self.auto_param: value})
            return fit.labels, fit.model

        return choose_k.sweep(
            fit_one, X, self._candidates(len(X)), self._criterion(), seed,
            parallel=self.sweep_parallel, progress=progress,
            name=self.auto_param,
        )

    def sweep_spec(self):
        """The parameters of the sweep, without those of the fit."""
        return {k: self.params[k] for k in ("k_min", "k_max", "criterion")
                if k in self.params}


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
        *choose_k.k_params(),
    )

    def check(self):
        from .kmeans import resolve_engine

        resolve_engine(self.params["engine"])

    def _fit(self, X, seed, params, progress=None):
        from .kmeans import KMeans

        model = KMeans(params["n_clusters"], engine=params["engine"],
                       n_init=params["n_init"], max_iter=params["max_iter"],
                       init=params["init"], seed=seed,
                       progress=progress).fit(X)
        return Fit(model.labels_, model, stats={
            "inertia": model.inertia_, "engine": model.engine_,
            "n_iter": int(model.n_iter_)})


class MiniBatchKMeansClusterer(Clusterer):
    name = "minibatch_kmeans"
    label = "Mini-batch k-means"
    description = "K-means on mini-batches: for very large datasets"
    auto_param = "n_clusters"
    PARAMS = (
        _n_clusters(),
        Param("batch_size", "int", 1024, "Samples per mini-batch", min=1),
        Param("n_init", "int", 3, "Restarts; the best is kept", min=1),
        Param("max_iter", "int", 100, "Passes over the data", min=1),
        *choose_k.k_params(),
    )

    def _fit(self, X, seed, params, progress=None):
        from sklearn.cluster import MiniBatchKMeans

        model = MiniBatchKMeans(
            n_clusters=params["n_clusters"], batch_size=params["batch_size"],
            n_init=params["n_init"], max_iter=params["max_iter"],
            random_state=seed).fit(X)
        return Fit(model.labels_, model,
                   stats={"inertia": float(model.inertia_)})


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
        *choose_k.k_params(),
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

    def check_count(self, n):
        super().check_count(n)
        if n > self.MAX_SAMPLES:
            raise ParamError(
                f"agglomerative: {n:,} samples is more than it can hold in "
                f"memory (at most {self.MAX_SAMPLES:,}); use kmeans or "
                "hdbscan, or cluster a view"
            )

    def _fit(self, X, seed, params, progress=None):
        from sklearn.cluster import AgglomerativeClustering

        model = AgglomerativeClustering(
            n_clusters=params["n_clusters"],
            distance_threshold=params["distance_threshold"],
            linkage=params["linkage"], metric=params["metric"]).fit(X)
        return Fit(model.labels_, model)


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
        *choose_k.k_params(),
    )

    def _fit(self, X, seed, params, progress=None):
        from sklearn.cluster import Birch

        model = Birch(n_clusters=params["n_clusters"],
                      threshold=params["threshold"],
                      branching_factor=params["branching_factor"]).fit(X)
        return Fit(model.labels_, model)


class DBSCANClusterer(Clusterer):
    name = "dbscan"
    label = "DBSCAN"
    description = "Dense regions within eps of each other; the rest is noise"
    count_params = ("min_samples",)
    density = True
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

    def _fit(self, X, seed, params, progress=None):
        from sklearn.cluster import DBSCAN

        model = DBSCAN(**params).fit(X)
        return Fit(model.labels_, model)


class HDBSCANClusterer(Clusterer):
    name = "hdbscan"
    label = "HDBSCAN"
    description = (
        "Density clusters of any shape and size, with noise, membership "
        "probabilities and outlier scores"
    )
    count_params = ("min_cluster_size", "min_samples")
    density = True
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
        return choose_k.min_cluster_size_candidates(n)

    def _criterion(self):
        return self.params["criterion"]

    def sweep_spec(self):
        return {"criterion": self.params["criterion"]}

    def _fit(self, X, seed, params, progress=None):
        import hdbscan

        kwargs = {k: v for k, v in params.items() if k != "criterion"}
        if isinstance(kwargs.get("min_samples"), int):
            kwargs["min_samples"] = min(kwargs["min_samples"], len(X) - 1)
        model = hdbscan.HDBSCAN(
            gen_min_span_tree=self.params["min_cluster_size"] == "auto",
            prediction_data=True, **kwargs).fit(X)
        outlier = np.nan_to_num(model.outlier_scores_, nan=0.0)
        return Fit(model.labels_, model, prob=model.probabilities_,
                   outlier=outlier)


class OPTICSClusterer(Clusterer):
    name = "optics"
    label = "OPTICS"
    description = "Density ordering; finds clusters of varying density"
    count_params = ("min_samples", "min_cluster_size")
    density = True
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

    def _fit(self, X, seed, params, progress=None):
        from sklearn.cluster import OPTICS

        model = OPTICS(**params).fit(X)
        return Fit(model.labels_, model)


class GaussianMixtureClusterer(Clusterer):
    name = "gmm"
    label = "Gaussian mixture"
    description = "Soft clusters with a probability for each sample"
    count_params = ("n_components",)
    auto_param = "n_components"
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
        *choose_k.k_params(criteria=("auto", "bic", "silhouette",
                                     "davies_bouldin", "calinski_harabasz")),
    )

    def _criterion(self):
        criterion = self.params["criterion"]
        return "bic" if criterion == "auto" else criterion

    def _fit(self, X, seed, params, progress=None):
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(
            n_components=params["n_components"],
            covariance_type=params["covariance_type"],
            max_iter=params["max_iter"], n_init=params["n_init"],
            random_state=seed).fit(X)
        proba = model.predict_proba(X)
        return Fit(
            proba.argmax(axis=1), model,
            prob=proba.max(axis=1),
            stats={"bic": float(model.bic(X)),
                   "converged": bool(model.converged_)},
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
