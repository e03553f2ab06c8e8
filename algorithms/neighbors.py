"""Nearest neighbours from faiss: exact (flat) search up to
``EXACT_LIMIT`` points, an inverted-file index (IVF) beyond, searched in
chunks so that no N x N matrix ever exists.

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
# careful k-means costs more than the search it serves.
IVF_TRAIN_PER_CELL = 16
IVF_TRAIN_ITERATIONS = 8
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
        seed: seed of the IVF's k-means
        compress: store the IVF's vectors as 8-bit codes (a quarter of
            the memory) and re-rank each query's candidates by their exact
            distances; the choice at a million vectors
    """

    # pynndescent's attribute that UMAP's transform reads.
    _angular_trees = False

    def __init__(self, metric="euclidean", exact=None, nprobe=32, seed=0,
                 compress=False):
        if metric not in METRICS:
            raise ParamError(f"neighbours: metric must be one of "
                             f"{', '.join(METRICS)}, got {metric!r}")
        self.metric = metric
        self.exact = exact
        self.nprobe = nprobe
        self.seed = seed
        self.compress = compress
        self._index = None

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
        if exact:
            index = faiss.IndexFlatL2(d)
        else:
            nlist = int(min(max(16, 4 * np.sqrt(n)), n // 39 or 1))
            # Coarse cells need no careful seeding: random starts, as
            # faiss's own IVF training does, cost nothing at a million.
            km = KMeans(nlist, engine="faiss", seed=self.seed, init="random",
                        train_per_centroid=IVF_TRAIN_PER_CELL,
                        max_iter=IVF_TRAIN_ITERATIONS,
                        progress=_training_progress(progress)).fit(
                X[np.random.default_rng(self.seed).choice(
                    n, min(n, nlist * IVF_TRAIN_PER_CELL), replace=False)])
            # A quantizer already holding nlist centroids is not trained
            # again; only the 8-bit codec learns its ranges.
            quantizer = faiss.IndexFlatL2(d)
            quantizer.add(_as_float32(km.cluster_centers_))
            if self.compress:
                index = faiss.IndexIVFScalarQuantizer(
                    quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit)
                index.train(X[np.random.default_rng(self.seed + 1).choice(
                    n, min(n, 50_000), replace=False)])
            else:
                index = faiss.IndexIVFFlat(quantizer, d, nlist)
            index.nprobe = min(self.nprobe, nlist)
            self._quantizer = quantizer
        for start in range(0, n, QUERY_CHUNK * 8):
            index.add(X[start:start + QUERY_CHUNK * 8])
            if progress is not None:
                progress(min(start + QUERY_CHUNK * 8, n), n, "indexing")
        self._index = index
        self.exact_ = exact

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
        reranked = self.compress and not self.exact_
        if reranked:
            # Candidates from the 8-bit codes, ordered by exact distance.
            k_search = min(2 * k_search + 2, self.n)
        n = len(X)
        indices = np.empty((n, k), dtype=np.int64)
        dists = np.empty((n, k), dtype=np.float32)
        for start in range(0, n, QUERY_CHUNK):
            stop = min(start + QUERY_CHUNK, n)
            D, I = self._index.search(X[start:stop], k_search)
            if reranked:
                I, D = self._rerank(X[start:stop], I)
            if exclude_self:
                I, D = _drop_self(I, D, np.arange(start, stop), k)
            elif k_search < k:
                I, D = _pad(I, D, k)
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
                "compress": self.compress, "_data": self._data}

    def __setstate__(self, state):
        self.compress = False
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
