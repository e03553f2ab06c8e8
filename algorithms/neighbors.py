"""Nearest neighbours from faiss: exact (flat) search up to
``EXACT_LIMIT`` points, an inverted-file index (IVF) beyond, searched in
chunks so that no N x N matrix ever exists.

Above :data:`COARSE_DIMS` dimensions the IVF holds each row's PCA
projection to that many dimensions, and each query's candidates are
re-ranked by their exact distances in the full space. Scanning a cell
then reads an eighth of the bytes of 512-D rows, and the distances
returned are always exact: at a million 512-D rows this is what brings a
search of every row against every other to a minute on two cores.

One engine serves the UMAP neighbour graph, the 2-D map, assignment,
uniqueness and near-duplicates. :class:`Neighbors` also stands in for
pynndescent's index inside a fitted UMAP (``query(X, k, epsilon)``), so
that UMAP's ``transform`` works on a model fitted on a faiss graph; it
pickles as its data and rebuilds the index when loaded.
"""

import numpy as np

from ..units import ParamError
from .kmeans import KMeans

# Up to this many points a search is exact, when its cost (points squared
# times dimensions) is at most EXACT_COST too; above, an IVF index is used.
EXACT_LIMIT = 200_000
EXACT_COST = 2e11
# Points per cell the IVF's coarse k-means trains on, and its iterations:
# cells only need to keep neighbours together, and at a million points a
# careful k-means costs more than the search it serves. Too few points
# per cell leave the cells unbalanced (a few lists holding most rows),
# which costs more in the search than the training saves: at 16 points
# per cell the mean list scanned was 7.7 times the balanced size, at 40
# points in 64 dimensions 1.5 times.
IVF_TRAIN_PER_CELL = 40
IVF_TRAIN_ITERATIONS = 10
# The IVF of rows of more dimensions than this searches their PCA
# projection (fit on up to PCA_SAMPLE rows) and re-ranks exactly.
COARSE_DIMS = 64
PCA_SAMPLE = 50_000
# Candidates re-ranked for k neighbours: RERANK_PER_NEIGHBOR * k +
# RERANK_EXTRA. On 50,000 512-D mixture vectors (the hardest case: no
# structure within a component for the projection to keep), uniqueness
# from 64 candidates ranks samples as the exact search does with Spearman
# 0.966, from 16 with 0.928.
RERANK_PER_NEIGHBOR = 4
RERANK_EXTRA = 48
# Queries per search call: bounds memory at any scale.
QUERY_CHUNK = 8192

METRICS = ("euclidean", "cosine")


def _as_float32(X):
    return np.ascontiguousarray(X, dtype=np.float32)


def unit_rows(X, copy=True):
    X = _as_float32(X)
    if copy:
        X = X.copy()
    for start in range(0, len(X), QUERY_CHUNK):
        part = X[start:start + QUERY_CHUNK]
        norms = np.linalg.norm(part, axis=1, keepdims=True)
        part /= np.where(norms > 0, norms, 1.0)
    return X


class Neighbors:
    """A k-nearest-neighbour index over the rows of ``X``.

    Args:
        metric: ``euclidean`` or ``cosine`` (distance ``1 - cos``)
        exact: force exact (``True``) or IVF (``False``) search; by default
            exact up to :data:`EXACT_LIMIT` points
        nprobe: inverted lists visited per query (IVF)
        seed: seed of the IVF's k-means and of the PCA's sample
    """

    # pynndescent's attribute that UMAP's transform reads.
    _angular_trees = False

    def __init__(self, metric="euclidean", exact=None, nprobe=32, seed=0):
        if metric not in METRICS:
            raise ParamError(f"neighbours: metric must be one of "
                             f"{', '.join(METRICS)}, got {metric!r}")
        self.metric = metric
        self.exact = exact
        self.nprobe = nprobe
        self.seed = seed
        self._index = None
        self._pca = None

    def fit(self, X, progress=None, copy=True):
        """Indexes the rows of ``X``; with ``copy=False`` and the cosine
        metric, ``X`` itself is normalised in place (no second copy at
        scale)."""
        X = _as_float32(X)
        self._data = unit_rows(X, copy) if self.metric == "cosine" else X
        self._build(progress)
        return self

    def _build(self, progress=None):
        import faiss

        X = self._data
        n, d = X.shape
        exact = self.exact if self.exact is not None else \
            exact_is_cheap(n, d)
        self._pca = None
        if exact:
            index = faiss.IndexFlatL2(d)
        else:
            if d > COARSE_DIMS:
                self._pca = self._fit_projection(faiss)
            index = self._empty_ivf(faiss, progress)
        for start in range(0, n, QUERY_CHUNK * 8):
            index.add(self._coarse(X[start:start + QUERY_CHUNK * 8]))
            if progress is not None:
                progress(min(start + QUERY_CHUNK * 8, n), n, "indexing")
        self._index = index
        self.exact_ = exact

    def _fit_projection(self, faiss):
        X = self._data
        n, d = X.shape
        pca = faiss.PCAMatrix(d, COARSE_DIMS)
        pca.train(X[self._sample(n, PCA_SAMPLE, 1)])
        return pca

    def _sample(self, n, size, offset):
        rows = np.random.default_rng(self.seed + offset).choice(
            n, min(n, size), replace=False)
        return np.sort(rows)

    def _coarse(self, X):
        """Rows as the IVF holds them: projected when it is coarse."""
        return X if self._pca is None else self._pca.apply(_as_float32(X))

    def _empty_ivf(self, faiss, progress):
        n = len(self._data)
        nlist = int(min(max(16, 4 * np.sqrt(n)), n // 39 or 1))
        train = self._coarse(self._data[self._sample(
            n, nlist * IVF_TRAIN_PER_CELL, 0)])
        # Coarse cells need no careful seeding: random starts, as faiss's
        # own IVF training does, cost nothing at a million.
        km = KMeans(nlist, engine="faiss", seed=self.seed, init="random",
                    train_per_centroid=IVF_TRAIN_PER_CELL,
                    max_iter=IVF_TRAIN_ITERATIONS,
                    progress=_training_progress(progress)).fit(train)
        # A quantizer already holding nlist centroids is not trained again.
        quantizer = faiss.IndexFlatL2(train.shape[1])
        quantizer.add(_as_float32(km.cluster_centers_))
        index = faiss.IndexIVFFlat(quantizer, train.shape[1], nlist)
        index.nprobe = min(self.nprobe, nlist)
        self._quantizer = quantizer
        return index

    @property
    def n(self):
        return len(self._data)

    @property
    def data(self):
        """The indexed rows (unit length for the cosine metric)."""
        return self._data

    def search(self, X, k, progress=None, exclude_self=False):
        """``(indices, distances)`` of the ``k`` nearest indexed rows of
        each row of ``X``; with ``exclude_self``, ``X`` is the indexed data
        and each row's own entry is left out. Missing neighbours (IVF) are
        -1 with infinite distance."""
        X = _as_float32(X)
        if self.metric == "cosine":
            X = unit_rows(X)
        k_search = min(k + int(exclude_self), self.n)
        reranked = self._pca is not None
        if reranked:
            # Candidates from the projection, ordered by exact distance.
            k_search = min(RERANK_PER_NEIGHBOR * k_search + RERANK_EXTRA,
                           self.n)
        n = len(X)
        indices = np.empty((n, k), dtype=np.int64)
        dists = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, QUERY_CHUNK):
            stop = min(start + QUERY_CHUNK, n)
            D, I = self._index.search(self._coarse(X[start:stop]), k_search)
            if reranked:
                I, D = self._rerank(X[start:stop], I)
            if exclude_self:
                I, D = _drop_self(I, D, np.arange(start, stop), k)
            elif k_search != k:
                I, D = _pad(I[:, :k], D[:, :k], k)
            indices[start:stop] = I
            dists[start:stop] = self._distance(D, I)
            if progress is not None:
                progress(stop, n, "searching")
        return indices, dists

    def _rerank(self, Q, I):
        """Exact squared distances to the candidates ``I``, sorted
        (computed by faiss over the candidates' rows in place: no gathered
        copy of them)."""
        import faiss

        n, m = I.shape
        Q = _as_float32(Q)
        ids = np.ascontiguousarray(np.maximum(I, 0), dtype=np.int64)
        D = np.empty((n, m), dtype=np.float32)
        faiss.fvec_L2sqr_by_idx(
            faiss.swig_ptr(D), faiss.swig_ptr(Q), faiss.swig_ptr(self._data),
            faiss.swig_ptr(ids), Q.shape[1], n, m)
        D[I < 0] = np.inf
        order = np.argsort(D, axis=1, kind="stable")
        return (np.take_along_axis(I, order, 1),
                np.take_along_axis(D, order, 1))

    def _distance(self, squared, indices):
        squared = np.maximum(squared, 0.0)
        out = np.sqrt(squared) if self.metric == "euclidean" else squared / 2
        return np.where(indices < 0, np.inf, out).astype(np.float32)

    # -- the part of pynndescent's interface that UMAP uses --

    def query(self, X, k=10, epsilon=0.1):
        return self.search(X, k)

    def __getstate__(self):
        return {"metric": self.metric, "exact": self.exact,
                "nprobe": self.nprobe, "seed": self.seed,
                "_data": self._data}

    def __setstate__(self, state):
        # Indexes pickled before the projection carry a flag it replaced.
        state.pop("compress", None)
        self.__dict__.update(state)
        self._index = None
        self._build()


def exact_is_cheap(n, d):
    """Whether an exact search of ``n`` points of ``d`` dimensions among
    themselves costs little enough (:data:`EXACT_LIMIT`,
    :data:`EXACT_COST`)."""
    return n <= EXACT_LIMIT and float(n) * n * d <= EXACT_COST


def _training_progress(progress):
    if progress is None:
        return None
    return lambda fraction, message: progress(
        int(1000 * fraction), 1000, "training cells")


def _drop_self(I, D, own, k):
    """Removes each row's own entry (or, where it was not found, the last
    one) from results of ``k + 1`` neighbours."""
    drop = I == own[:, None]
    drop[~drop.any(axis=1), -1] = True
    keep = ~drop
    n = len(I)
    out_i = I[keep].reshape(n, -1)[:, :k]
    out_d = D[keep].reshape(n, -1)[:, :k]
    if out_i.shape[1] < k:
        return _pad(out_i, out_d, k)
    return out_i, out_d


def _pad(I, D, k):
    out_i = np.full((len(I), k), -1, dtype=np.int64)
    out_d = np.full((len(I), k), np.inf, dtype=np.float32)
    out_i[:, :I.shape[1]] = I
    out_d[:, :D.shape[1]] = D
    return out_i, out_d


def knn_graph(X, k, metric="euclidean", seed=0, progress=None):
    """The ``k`` nearest neighbours of every row of ``X`` among the rows,
    each row's first neighbour being itself (as UMAP expects). Returns
    ``(indices, distances, index)``."""
    index = Neighbors(metric=metric, seed=seed).fit(X, progress=progress)
    indices, dists = index.search(X, k, progress=progress)
    # Duplicate points may put another row first; UMAP wants itself first.
    for row in np.where(indices[:, 0] != np.arange(len(X)))[0]:
        where = np.where(indices[row] == row)[0]
        j = where[0] if len(where) else k - 1
        indices[row, 1:j + 1] = indices[row, :j].copy()
        dists[row, 1:j + 1] = dists[row, :j].copy()
        indices[row, 0], dists[row, 0] = row, 0.0
    return indices, dists, index


def place_by_neighbours(X_known, points_known, X, k=10):
    """Positions in a layout (a 2-D map, a reduced space) for the rows of
    ``X``: the distance-weighted mean position of their ``k`` nearest known
    points (``X_known``, laid out at ``points_known``)."""
    index = Neighbors().fit(X_known)
    k = min(k, len(X_known))
    idx, dist = index.search(X, k)
    weights = 1.0 / (dist.astype(np.float64) + 1e-6)
    points = (np.asarray(points_known, np.float64)[idx]
              * weights[..., None]).sum(axis=1) / \
        weights.sum(axis=1, keepdims=True)
    return points.astype(np.float32)
