"""The k-means engine, and the nearest-neighbour searches the other steps
share.

faiss runs Lloyd's iterations in optimised BLAS on at most
``train_per_centroid`` points per centre (a uniform sample, as faiss itself
recommends), then assigns every point. Its own random initialisation lands
a few percent above scikit-learn's inertia, so the centres start from
k-means++ instead: exact k-means++ up to :data:`INIT_SAMPLE` points, and
beyond that k-means|| (Bahmani et al., 2012) on a uniform sample of at most
:data:`INIT_POOL` points: a few rounds oversample candidates in proportion
to their squared distance, and weighted k-means++ on that small candidate
set picks the k centres. That reads the data a handful of times instead of
k times, and keeps inertia near
``sklearn.cluster.KMeans()``'s at a fraction of its time
(``benchmarks/kmeans_engine.py``). faiss uses the GPU when its GPU build is
installed and sees one.
"""

import numpy as np

from ..units import ParamError

# Up to this many points, k-means++ runs on all of them; above, k-means||.
INIT_SAMPLE = 20000
# k-means|| draws from a uniform sample of at most this many points (or 100
# per centre): enough to place the centres, a fraction of the cost on
# millions.
INIT_POOL = 50_000
# k-means|| rounds, and candidates drawn per round (times k).
INIT_ROUNDS = 5
INIT_OVERSAMPLING = 2
# Rows per nearest-neighbour search call: bounds the distance matrix.
SEARCH_CHUNK = 16384
# Lloyd iterations stop once the centres move, in all, less than this
# times the data's mean variance per dimension (scikit-learn's rule and
# default).
TOLERANCE = 1e-4
# Rows the mean variance is estimated on.
VARIANCE_SAMPLE = 20_000


def faiss_available():
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss_gpus():
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def resolve_engine(engine):
    if engine == "auto":
        return "faiss" if faiss_available() else "sklearn"
    if engine == "faiss" and not faiss_available():
        raise ParamError(
            "kmeans: engine 'faiss' needs faiss (pip install faiss-cpu)"
        )
    return engine


# Progress reports during one k-means training.
PROGRESS_STEPS = 5


class KMeans:
    """k-means with scikit-learn's interface: ``fit`` keeps
    ``cluster_centers_``, ``labels_``, ``inertia_`` and ``n_iter_``;
    ``predict`` assigns new points to the nearest centre.

    Args:
        n_clusters: k
        engine: ``faiss``, ``sklearn`` or ``auto`` (faiss when installed)
        n_init: restarts; the lowest inertia is kept
        max_iter: the most Lloyd iterations (default: 30 for faiss,
            scikit-learn's 300); both stop earlier once the centres settle
            (:data:`TOLERANCE`), and ``n_iter_`` counts those run
        init: ``k-means++`` or ``random``
        train_per_centroid: faiss trains on at most this many points per
            centre
        seed: random seed
        progress: optional ``progress(fraction, message)``
    """

    def __init__(self, n_clusters, engine="auto", n_init=1, max_iter=None,
                 init="k-means++", train_per_centroid=256, seed=0,
                 progress=None):
        self.n_clusters = n_clusters
        self.engine = engine
        self.n_init = n_init
        self.max_iter = max_iter
        self.init = init
        self.train_per_centroid = train_per_centroid
        self.seed = seed
        self.progress = progress

    def fit(self, X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        k = self.n_clusters
        if k > len(X):
            raise ParamError(
                f"kmeans: 'n_clusters' ({k}) is larger than the number of "
                f"samples ({len(X)})"
            )
        self.engine_ = resolve_engine(self.engine)
        if self.engine_ == "sklearn":
            return self._fit_sklearn(X)
        best = None
        for attempt in range(self.n_init):
            centres, n_iter = self._train_faiss(X, self.seed + attempt)
            labels, dist = nearest(X, centres, progress=self._report(
                attempt, "assigning"))
            inertia = float(dist.sum())
            if best is None or inertia < best[2]:
                best = (centres, labels, inertia, n_iter)
        (self.cluster_centers_, self.labels_, self.inertia_,
         self.n_iter_) = best
        return self

    def _report(self, attempt, stage):
        if self.progress is None:
            return None

        def report(done, total):
            self.progress((attempt + done / max(total, 1)) / self.n_init,
                          f"k-means {stage} {done} of {total}")

        return report

    def _fit_sklearn(self, X):
        from sklearn.cluster import KMeans as SKKMeans

        kwargs = {"n_init": self.n_init, "init": self.init}
        if self.max_iter is not None:
            kwargs["max_iter"] = self.max_iter
        model = SKKMeans(self.n_clusters, random_state=self.seed,
                         **kwargs).fit(X)
        self.cluster_centers_ = model.cluster_centers_.astype(np.float32)
        self.labels_ = model.labels_.astype(np.int64)
        self.inertia_ = float(model.inertia_)
        self.n_iter_ = int(model.n_iter_)
        return self

    def _initial_centres(self, X, seed):
        from sklearn.cluster import kmeans_plusplus

        rng = np.random.default_rng(seed)
        k = self.n_clusters
        if self.init == "random":
            return X[rng.choice(len(X), k, replace=False)].copy()
        if len(X) <= max(INIT_SAMPLE, 4 * k):
            centres, _ = kmeans_plusplus(X, k, random_state=seed)
            return np.ascontiguousarray(centres, dtype=np.float32)
        pool = max(INIT_POOL, 100 * k)
        if len(X) > pool:
            X = X[np.sort(rng.choice(len(X), pool, replace=False))]
        candidates, weights = _oversampled_candidates(X, k, rng)
        centres, _ = kmeans_plusplus(candidates, k, sample_weight=weights,
                                     random_state=seed)
        return np.ascontiguousarray(centres, dtype=np.float32)

    def _train_faiss(self, X, seed):
        import faiss

        k = self.n_clusters
        centres = self._initial_centres(X, seed)
        niter = self.max_iter or 30
        tolerance = TOLERANCE * _mean_variance(X, seed)
        train = _training_rows(X, k * self.train_per_centroid, seed)
        if self.progress is not None:
            self.progress(0.0, f"k-means: {k} centres chosen, iterating")
        # One Lloyd iteration per call, each starting from the last, so
        # that training stops once the centres settle and reports its
        # progress; faiss's own loop does neither. The training rows are
        # drawn once here: faiss would draw them again on every call, at
        # the cost of a permutation of all rows each time.
        for done in range(1, niter + 1):
            model = faiss.Kmeans(
                X.shape[1], k, niter=1, seed=seed,
                max_points_per_centroid=self.train_per_centroid,
                min_points_per_centroid=1, gpu=_faiss_gpus() > 0,
                verbose=False,
            )
            model.train(train, init_centroids=centres)
            moved = float(((model.centroids - centres) ** 2).sum())
            centres = model.centroids.copy()
            if self.progress is not None:
                self.progress(0.9 * done / niter / self.n_init,
                              f"k-means iteration {done} of at most {niter}")
            if moved <= tolerance:
                break
        return centres, done

    def predict(self, X):
        labels, _ = nearest(np.ascontiguousarray(X, dtype=np.float32),
                            self.cluster_centers_)
        return labels


def _training_rows(X, size, seed):
    """A uniform sample of ``size`` rows of ``X`` in their order (``X``
    itself when it has no more)."""
    if len(X) <= size:
        return X
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size,
                                                      replace=False))
    return X[rows]


def _mean_variance(X, seed):
    """The mean over dimensions of the variance of ``X``'s columns, on a
    uniform sample of at most :data:`VARIANCE_SAMPLE` rows."""
    if len(X) > VARIANCE_SAMPLE:
        X = X[np.sort(np.random.default_rng(seed).choice(
            len(X), VARIANCE_SAMPLE, replace=False))]
    return float(np.mean(np.var(X, axis=0, dtype=np.float64)))


def _oversampled_candidates(X, k, rng):
    """k-means||: candidate centres drawn in a few rounds with probability
    in proportion to their squared distance to the candidates so far, and
    how many points each candidate stands for (each point's nearest
    candidate is kept up to date round by round, so no last pass over all
    candidates is needed)."""
    n = len(X)
    candidates = [X[rng.integers(n)][None]]
    owner = np.zeros(n, dtype=np.int64)
    _, dist = nearest(X, candidates[0])
    count = 1
    for _ in range(INIT_ROUNDS):
        total = dist.sum()
        if total <= 0:
            break
        p = np.minimum(1.0, INIT_OVERSAMPLING * k * dist / total)
        drawn = X[rng.random(n) < p]
        if not len(drawn):
            continue
        to_which, to_drawn = nearest(X, drawn)
        closer = to_drawn < dist
        owner[closer] = count + to_which[closer]
        dist = np.where(closer, to_drawn, dist)
        candidates.append(drawn)
        count += len(drawn)
    candidates = np.vstack(candidates)
    weights = np.bincount(owner, minlength=len(candidates)).astype(float)
    used = weights > 0
    if used.sum() < k:
        # Too few distinct candidates (many duplicate points): top up.
        extra = X[rng.choice(n, k, replace=False)]
        return (np.vstack([candidates[used], extra]),
                np.r_[weights[used], np.ones(k)])
    return candidates[used], weights[used]


def nearest(X, centres, progress=None):
    """Index of and squared distance to the nearest of ``centres`` for each
    row of ``X``, in chunks."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    centres = np.ascontiguousarray(centres, dtype=np.float32)
    labels = np.empty(len(X), dtype=np.int64)
    dist = np.empty(len(X), dtype=np.float64)
    if faiss_available():
        import faiss

        index = faiss.IndexFlatL2(centres.shape[1])
        index.add(centres)
        for start in range(0, len(X), SEARCH_CHUNK):
            D, I = index.search(X[start:start + SEARCH_CHUNK], 1)
            labels[start:start + len(I)] = I[:, 0]
            dist[start:start + len(D)] = D[:, 0]
            if progress is not None:
                progress(min(start + SEARCH_CHUNK, len(X)), len(X))
        return labels, np.maximum(dist, 0.0)
    from sklearn.metrics import pairwise_distances_argmin_min

    for start in range(0, len(X), SEARCH_CHUNK):
        part = X[start:start + SEARCH_CHUNK]
        i, d = pairwise_distances_argmin_min(part, centres)
        labels[start:start + len(i)] = i
        dist[start:start + len(d)] = d.astype(np.float64) ** 2
        if progress is not None:
            progress(min(start + SEARCH_CHUNK, len(X)), len(X))
    return labels, dist
