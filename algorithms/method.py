"""The base of every clustering method: a scikit-learn estimator that says
what it can do (see :mod:`.clusterers` for the methods)."""

import numpy as np

from ..units import ParamError, Unit
from . import sweep as sweeps
from .geometry import cluster_means
from .kmeans import nearest


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
