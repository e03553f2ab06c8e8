"""Dimensionality reducers: PCA, UMAP and t-SNE, chainable, as
scikit-learn estimators.

Each reducer is a unit (``random_state`` among its parameters):
``fit_transform(X)`` returns the reduced array and keeps the fitted
library model in ``model_`` and a small dict of facts worth storing with
the run in ``facts_`` (the components PCA kept, the variance they
explain, ...); ``transform(X)`` reduces new points where the method can
(``can_transform``; t-SNE cannot). scikit-learn and umap are imported only
when a reducer runs.
"""

import numpy as np

from ..units import Param, ParamError, Unit, build_unit
from .neighbors import Neighbors, knn_graph, place_by_neighbours
from .umap_runtime import load_umap

DISTANCE_METRICS = ("euclidean", "cosine", "manhattan", "correlation")
# Metrics whose neighbour graph comes from faiss; others use umap's own.
NEIGHBOR_METRICS = ("euclidean", "cosine")
INPUT_METRIC = Param("metric", "choice", "euclidean",
                     "Distance between input vectors",
                     choices=DISTANCE_METRICS)

class Reducer(Unit):
    SEEDED = True
    #: Whether :meth:`transform` can reduce points the fit did not see.
    can_transform = True
    model_ = None
    facts_ = None

    def fit(self, X, progress=None):
        self.fit_transform(X, progress=progress)
        return self

    def fit_transform(self, X, progress=None):
        raise NotImplementedError

    def transform(self, X):
        if not self.can_transform:
            raise ParamError(f"{self.name}: cannot place new points (it has "
                             "no transform)")
        return np.asarray(self.model_.transform(X), dtype=np.float32)

    def portable(self):
        """The fitted reducer as plain data and library objects (nothing
        of this package), for :func:`restore`."""
        return {"name": self.name, "params": self.spec()["params"],
                "model": self._portable_model() if self.can_transform
                else None}

    def _portable_model(self):
        return self.model_

    def _restored(self, model):
        self.model_ = model
        return self


class PCAReducer(Reducer):
    name = "pca"
    label = "PCA"
    description = "Linear projection on the leading principal components"
    PARAMS = (
        Param(
            "n_components",
            "number",
            50,
            "Components to keep (an integer), or the fraction of variance "
            "to explain (a number between 0 and 1)",
            min=0,
            exclusive_min=True,
        ),
        Param("whiten", "bool", False, "Scale components to unit variance"),
    )

    def check(self):
        k = self.params["n_components"]
        if isinstance(k, float) and not 0 < k < 1:
            raise ParamError(
                "pca: 'n_components' must be an integer ≥ 1 or a variance "
                f"fraction between 0 and 1, got {k!r}"
            )

    def fit_transform(self, X, progress=None):
        from sklearn.decomposition import PCA

        k = self.params["n_components"]
        if isinstance(k, int):
            k = min(k, X.shape[0], X.shape[1])
        pca = PCA(n_components=k, whiten=self.params["whiten"],
                  random_state=self.random_state)
        Y = pca.fit_transform(X)
        self.model_ = pca
        self.facts_ = {
            "n_components": int(pca.n_components_),
            "explained_variance": float(pca.explained_variance_ratio_.sum()),
        }
        return Y.astype(np.float32)


class UMAPReducer(Reducer):
    name = "umap"
    label = "UMAP"
    description = "Non-linear manifold embedding (umap-learn)"
    PARAMS = (
        Param("n_components", "int", 2, "Output dimensions", min=1),
        Param(
            "n_neighbors",
            "int",
            15,
            "Neighbourhood size: larger keeps more global structure",
            min=2,
        ),
        Param(
            "min_dist",
            "float",
            0.1,
            "How tightly points may pack (0 suits clustering)",
            min=0.0,
        ),
        INPUT_METRIC,
        Param(
            "n_epochs",
            "int",
            None,
            "Optimisation epochs (default: UMAP's own, 500 below 10,000 "
            "points and 200 above)",
            min=10,
        ),
        Param(
            "fit_sample",
            "int",
            None,
            "Fit on at most this many points (a uniform sample) and place "
            "the others at the weighted mean of their nearest fitted "
            "neighbours; empty: fit on all",
            min=100,
        ),
    )

    def fit_transform(self, X, progress=None):
        sample = self.params["fit_sample"]
        if sample is None or len(X) <= sample:
            return self._fit_all(X, progress)
        rows = np.sort(np.random.default_rng(self.random_state).choice(
            len(X), sample, replace=False))
        placed = self._fit_all(X[rows], progress)
        if progress is not None:
            progress(0.9, f"UMAP: placing {len(X) - sample:,} more points "
                     "by their nearest fitted neighbours")
        Y = place_by_neighbours(X[rows], placed, X)
        Y[rows] = placed
        self.facts_["fitted_on"] = int(sample)
        return Y

    def _fit_all(self, X, progress=None):
        import warnings

        umap = load_umap()
        n = X.shape[0]
        n_neighbors = min(self.params["n_neighbors"], n - 1)
        n_components = self.params["n_components"]
        if n_components >= n - 1:
            raise ParamError(
                f"umap: 'n_components' ({n_components}) must be smaller "
                f"than the number of samples minus one ({n - 1})"
            )
        metric = self.params["metric"]
        knn = (None, None, None)
        # The neighbour graph comes from faiss (exact below 200,000 points):
        # umap's own way calls a Python distance function for every pair of
        # points below 4,096 of them (minutes), and compiles its neighbour
        # descent afresh in every process above.
        if metric in NEIGHBOR_METRICS:
            if progress is not None:
                progress(0.0, f"UMAP: {n_neighbors} nearest neighbours of "
                         f"{n} points")
            knn = knn_graph(X, n_neighbors, metric=metric,
                            seed=self.random_state or 0)
        if progress is not None:
            progress(0.3, f"UMAP: laying out {n} points in {n_components}-D")
        epochs = EpochProgress(progress, 0.3, 1.0, "UMAP")
        model = umap.UMAP(
            n_components=n_components,
            n_neighbors=n_neighbors,
            min_dist=self.params["min_dist"],
            metric=metric,
            n_epochs=self.params["n_epochs"],
            random_state=self.random_state,
            # With a seed umap runs single-threaded anyway; saying so keeps
            # it from warning on every run.
            n_jobs=1 if self.random_state is not None else -1,
            precomputed_knn=knn,
            force_approximation_algorithm=knn[0] is not None,
            tqdm_kwds=epochs.tqdm_kwds(),
        )
        with warnings.catch_warnings():
            # The faiss index stands in for pynndescent's (see neighbors).
            warnings.filterwarnings("ignore", message=".*NNDescent.*")
            Y = model.fit_transform(X)
        # The progress hook goes with the fit: the model is stored, and
        # later transforms report nothing.
        model.tqdm_kwds = None
        self.model_ = model
        self.facts_ = {"n_neighbors": n_neighbors}
        return Y.astype(np.float32)

    def transform(self, X):
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*NNDescent.*")
            return super().transform(X)

    def _portable_model(self):
        """The UMAP model without its neighbour index, which is this
        package's (:class:`.neighbors.Neighbors`): rebuilt from the model's
        own data when restored."""
        import copy

        stripped = copy.copy(self.model_)
        stripped._knn_search_index = None
        stripped.knn_search_index = None
        stripped.precomputed_knn = (None, None, None)
        return stripped

    def _restored(self, model):
        metric = model.metric if model.metric in NEIGHBOR_METRICS \
            else "euclidean"
        model._knn_search_index = Neighbors(metric=metric).fit(
            model._raw_data)
        self.model_ = model
        return self


class EpochProgress:
    """UMAP's epochs as progress: umap counts them with a tqdm bar, which is
    pointed at this object as its file and prints only ``done/total``, about
    50 times a layout whatever the time an epoch takes. Each line becomes
    ``progress(fraction, message)`` within ``[start, stop]``."""

    UPDATES = 50

    def __init__(self, progress, start, stop, what):
        self.progress = progress
        self.start, self.stop = start, stop
        self.what = what

    def tqdm_kwds(self):
        if self.progress is None:
            return None
        # No time throttle (mininterval 0): updates follow the epoch count,
        # so that their number does not depend on the machine's speed.
        return {"disable": False, "file": self, "mininterval": 0,
                "miniters": 1, "bar_format": "{n}/{total}", "leave": False}

    def write(self, text):
        done, total = _epoch_count(text)
        if total and (done == total or
                      done % max(1, total // self.UPDATES) == 0):
            fraction = self.start + (self.stop - self.start) * done / total
            self.progress(fraction, f"{self.what}: epoch {done} of {total}")

    def flush(self):
        pass


def _epoch_count(text):
    """``(done, total)`` from a tqdm line such as ``"\r37/200"``."""
    line = text.strip().rsplit("\r", 1)[-1].strip()
    done, sep, total = line.partition("/")
    if not sep or not done.isdigit() or not total.isdigit():
        return 0, 0
    return int(done), int(total)


class TSNEReducer(Reducer):
    name = "tsne"
    label = "t-SNE"
    description = "2-D or 3-D map that keeps local neighbourhoods"
    PARAMS = (
        Param("n_components", "int", 2, "Output dimensions", min=1, max=3),
        Param(
            "perplexity",
            "float",
            30.0,
            "Effective number of neighbours",
            min=1.0,
        ),
        INPUT_METRIC,
        Param("max_iter", "int", 1000, "Optimisation steps", min=250),
    )
    can_transform = False

    def fit_transform(self, X, progress=None):
        from sklearn.manifold import TSNE

        n = X.shape[0]
        perplexity = min(self.params["perplexity"], (n - 1) / 3.0)
        model = TSNE(
            n_components=self.params["n_components"],
            perplexity=perplexity,
            metric=self.params["metric"],
            max_iter=self.params["max_iter"],
            init="pca",
            learning_rate="auto",
            random_state=self.random_state,
        )
        Y = model.fit_transform(X)
        self.facts_ = {"perplexity": float(perplexity)}
        return Y.astype(np.float32)


REDUCERS = {
    cls.name: cls for cls in (PCAReducer, UMAPReducer, TSNEReducer)
}


def get_reducers(spec):
    """Returns the reducer chain for ``spec``: ``None``, ``"none"`` or ``[]``
    (no reduction), a name, a ``{"name": ..., **params}`` dict, a reducer, or
    a list of those applied in order (e.g. ``["pca", "umap"]``). A string may
    also chain names with ``+`` (``"pca+umap"``)."""
    if spec is None or spec == "none":
        return []
    if isinstance(spec, str):
        spec = [s.strip() for s in spec.split("+") if s.strip()]
    if not isinstance(spec, (list, tuple)):
        spec = [spec]
    return [build_unit(REDUCERS, "reducer", s) for s in spec]


def restore(portable):
    """A fitted reducer from :meth:`Reducer.portable`, built again from the
    registry by its name."""
    unit = build_unit(REDUCERS, "reducer", portable["name"],
                      **portable["params"])
    return unit._restored(portable["model"])


def l2_normalize(X):
    """Scales each row to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)
