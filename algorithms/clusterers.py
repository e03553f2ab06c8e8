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

from ..units import Param, ParamError, Unit, build_unit
from . import sweep as sweeps
from .geometry import cluster_means
from .kmeans import KMeans, nearest, resolve_engine

_METRICS = ("euclidean", "manhattan", "cosine")
SAMPLE_METRIC = Param("metric", "choice", "euclidean",
                      "Distance between samples", choices=_METRICS)

class Clusterer(Unit):
    #: The parameters that cannot exceed the number of samples.
    count_params = ("n_clusters",)
    #: Whether clusters are dense regions (DBCV applies; noise is possible).
    density = False
    #: Whether :meth:`membership` gives soft membership of fitted points.
    soft_membership = False
    #: Whether :meth:`predict` is the method's own rule (else: the nearest
    #: cluster centre).
    predicts = False
    #: The parameter that may be "auto", and whether the sweep's fits run
    #: in parallel threads (not for methods that already use every core).
    auto_param = None
    sweep_parallel = True
    #: Fitted attributes kept with a run so that it can place new points
    #: (``model_`` is kept apart, as the library's own object).
    FITTED = ("centres_",)
    #: Whether ``model_`` is a library object worth keeping for
    #: :meth:`predict`.
    keeps_model = True

    # Set on the fits a sweep makes, for methods whose criterion needs more
    # of the fit than a plain fit keeps.
    in_sweep = False

    labels_ = None
    probabilities_ = None
    outlier_scores_ = None
    centres_ = None
    model_ = None
    stats_ = None
    sweep_ = None

    SEEDED = True

    @property
    def random_state(self):
        return self.params.get("random_state") or 0

    def check_count(self, n):
        """Raises if the method's parameters need more than ``n`` samples."""
        if n == 0:
            raise ParamError(
                f"{self.name}: there are no samples to cluster (the view is "
                "empty, or none could be embedded)")
        for key in self.count_params:
            k = self.params.get(key)
            if isinstance(k, int) and not isinstance(k, bool) and k > n:
                raise ParamError(
                    f"{self.name}: '{key}' ({k}) is larger than the number "
                    f"of samples ({n})", key)

    # -- fitting -------------------------------------------------------------

    def fit(self, X, progress=None):
        """Fits the method to the rows of ``X``; returns ``self``."""
        params = dict(self.params)
        self.sweep_ = None
        if self.auto_param and params.get(self.auto_param) == "auto":
            self.sweep_ = self._sweep(X, progress)
            params[self.auto_param] = self.sweep_["chosen"]
        self.stats_ = {}
        self.probabilities_ = None
        self.outlier_scores_ = None
        labels = self._fit(X, params, progress)
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.centres_ = _centres(X, self.labels_)
        return self

    def _fit(self, X, params, progress=None):
        """Fits ``self.model_`` with ``params`` and returns the labels;
        may set ``probabilities_``, ``outlier_scores_`` and ``stats_``."""
        raise NotImplementedError

    def _candidates(self, n):
        return sweeps.k_candidates(n, self.params["k_min"],
                                   self.params["k_max"])

    def _criterion(self):
        criterion = self.params["criterion"]
        return "silhouette" if criterion == "auto" else criterion

    def _sweep(self, X, progress):
        def fit_one(Xs, value, seed):
            trial = self.replace(**{self.auto_param: value,
                                    "random_state": seed})
            trial.in_sweep = True
            trial.fit(Xs)
            return trial.labels_, trial.model_

        return sweeps.sweep(
            fit_one, X, self._candidates(len(X)), self._criterion(),
            self.random_state, parallel=self.sweep_parallel,
            progress=progress, name=self.auto_param)

    # -- what a fitted method offers -------------------------------------------

    def membership(self):
        """``(n_fitted, n_clusters)``: each fitted point's probability of
        belonging to each cluster (methods with ``soft_membership``)."""
        raise ParamError(f"{self.name}: no soft membership")

    def predict(self, X):
        """Cluster of each row of ``X`` (−1: noise, where the method can
        say so)."""
        return self.predict_with_strength(X)[0]

    def predict_with_strength(self, X):
        """``(labels, strength)``: the clusters of new points and, where
        the method gives one, how strongly each belongs (else ``None``).
        By default, the nearest cluster centre."""
        found = self._present_centres()
        if not len(found):
            return np.full(len(X), -1, np.int64), None
        index, _ = nearest(X, self.centres_[found])
        return found[index], None

    def _present_centres(self):
        """The labels of the clusters that have members."""
        return np.flatnonzero(np.isfinite(self.centres_).all(axis=1)) \
            if self.centres_ is not None and len(self.centres_) \
            else np.zeros(0, np.int64)

    # -- kept with a run -----------------------------------------------------

    def portable(self):
        """The fitted method as plain data and library objects (nothing of
        this package), for :func:`restore`."""
        return {"name": self.name, "params": self.spec()["params"],
                "model": self.model_ if self.keeps_model else None,
                "fitted": {a: getattr(self, a) for a in self.FITTED}}

    def sweep_spec(self):
        """The parameters of the sweep, without those of the fit."""
        return {k: self.params[k] for k in ("k_min", "k_max", "criterion")
                if k in self.params}


def _centres(X, labels):
    """The mean of each cluster's rows; rows of labels without members are
    NaN."""
    k = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    centres, sizes = cluster_means(X, labels, k)
    centres = centres.astype(np.float32)
    centres[sizes == 0] = np.nan
    return centres


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
