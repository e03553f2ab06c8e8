"""Near-duplicate groups, uniqueness scores and each group's
representative, from vectors: numpy, scipy and the faiss neighbour engine
(:mod:`.neighbors`, exact up to 200,000 vectors, IVF with 8-bit codes and
exact re-ranking beyond), never an N x N matrix."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..support import Reporter
from .neighbors import EXACT_LIMIT, Neighbors

REPRESENTATIVES = ("centre", "largest")
# Neighbours each sample links to; larger groups connect through chains.
DUPLICATE_NEIGHBORS = 8
# Uniqueness: the weighted distances to a sample's nearest neighbours.
UNIQUENESS_NEIGHBORS = 3
UNIQUENESS_WEIGHTS = np.array([0.6, 0.3, 0.1])


def near_duplicate_groups(X, threshold, report=None, share=(0.6, 0.9)):
    """``(groups, unit vectors)``: the group of each row of ``X`` (-1: no
    duplicate); ``X`` is centred and normalised in place."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    if report is None:
        report = Reporter(None)
    low, high = share
    if n < 2:
        return np.full(n, -1, dtype=np.int64), X

    def indexing(done, total, what="indexing"):
        report(low + 0.1 * (high - low) * done / max(total, 1),
               f"neighbours: {what} {done:,} of {total:,}")

    def searching(done, total, what="searching"):
        report(low + (0.1 + 0.9 * done / max(total, 1)) * (high - low),
               f"neighbours: {what} {done:,} of {total:,}")

    subtract_row_means(X)
    index = Neighbors(metric="cosine", compress=n > EXACT_LIMIT, nprobe=16)
    index.fit(X, progress=indexing, copy=False)
    X = index.data
    I, D = index.search(X, min(DUPLICATE_NEIGHBORS, n - 1), progress=searching,
                        exclude_self=True)
    close = (I >= 0) & (D <= threshold)
    left = np.nonzero(close)[0]
    return groups_from_pairs(n, left, I[close]), X


def subtract_row_means(X, chunk=65536):
    """Subtracts each row's mean from it, in place."""
    for start in range(0, len(X), chunk):
        part = X[start:start + chunk]
        part -= part.mean(axis=1, keepdims=True)
    return X


def subtract_column_mean(X, chunk=65536):
    """Subtracts the mean row from every row, in place."""
    total = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, len(X), chunk):
        total += X[start:start + chunk].sum(axis=0, dtype=np.float64)
    mean = (total / max(len(X), 1)).astype(X.dtype)
    for start in range(0, len(X), chunk):
        X[start:start + chunk] -= mean
    return X


class Scores:
    def __init__(self, values, max_mean):
        self.values = values
        self.max_mean = max_mean


def uniqueness_scores(X, report=None, share=(0.6, 0.9)):
    """:class:`Scores` of the rows of ``X`` (centred and normalised in
    place)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    if n <= UNIQUENESS_NEIGHBORS:
        # Too few samples to have three neighbours: all equally unique.
        return Scores(np.ones(n), 1.0)
    report = report or Reporter(None)
    low, high = share

    def stage(offset, width, what):
        def progress(done, total, _=None):
            report(low + (offset + width * done / max(total, 1)) *
                   (high - low), f"neighbours: {what} {done:,} of {total:,}")
        return progress

    subtract_column_mean(X)
    index = Neighbors(metric="cosine", compress=n > EXACT_LIMIT, nprobe=16)
    index.fit(X, progress=stage(0.0, 0.1, "indexing"), copy=False)
    _, D = index.search(index.data, UNIQUENESS_NEIGHBORS,
                        progress=stage(0.1, 0.9, "searching"),
                        exclude_self=True)
    # An IVF search may miss a neighbour; count it at the farthest found.
    found = np.isfinite(D)
    farthest = np.where(found, D, -np.inf).max(axis=1, keepdims=True)
    D = np.where(found, D, np.where(np.isfinite(farthest), farthest, 2.0))
    means = (np.maximum(D, 0.0) * UNIQUENESS_WEIGHTS).mean(axis=1)
    top = float(means.max())
    values = means / top if top > 0 else np.zeros(n)
    return Scores(values, top)




def groups_from_pairs(n, left, right):
    """Group of each of ``n`` rows (-1: in no group) from the pairs
    ``(left[i], right[i])`` found to be duplicates: the connected components
    with two rows or more, numbered from the largest group down."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(left) == 0:
        return np.full(n, -1, dtype=np.int64)
    graph = coo_matrix((np.ones(len(left), dtype=np.int8), (left, right)),
                       shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component)
    grouped = sizes[component] > 1
    # Largest first; ties by the first row, so the numbering is stable.
    firsts = np.full(len(sizes), n, dtype=np.int64)
    np.minimum.at(firsts, component, np.arange(n))
    ranked = [c for c in np.lexsort((firsts, -sizes)) if sizes[c] > 1]
    number = np.full(len(sizes), -1, dtype=np.int64)
    number[ranked] = np.arange(len(ranked))
    return np.where(grouped, number[component], -1)


def groups_from_keys(keys):
    """Group of each row whose key (a file hash) is shared with another row;
    ``None`` keys are in no group."""
    first = {}
    left, right = [], []
    for i, key in enumerate(keys):
        if key is None:
            continue
        j = first.setdefault(key, i)
        if j != i:
            left.append(j)
            right.append(i)
    return groups_from_pairs(len(keys), np.asarray(left, dtype=np.int64),
                             np.asarray(right, dtype=np.int64))


def members_of(groups):
    """Group -> the rows in it, in row order."""
    rows = np.where(groups >= 0)[0]
    order = np.argsort(groups[rows], kind="stable")
    rows = rows[order]
    bounds = np.flatnonzero(np.diff(groups[rows])) + 1
    return {int(groups[part[0]]): part
            for part in np.split(rows, bounds) if len(part)}


def representatives_by_centre(X, groups):
    """Per group, the row nearest the mean of its unit vectors ``X``."""
    out = {}
    for g, rows in members_of(groups).items():
        vecs = X[rows]
        centre = vecs.mean(axis=0)
        out[g] = int(rows[int(np.argmax(vecs @ centre))])
    return out


def representatives_by_size(paths, groups, num_workers=None):
    """Per group, the row whose file is largest (ties: the first row); a
    file that cannot be read counts as empty."""
    members = members_of(groups)
    rows = [int(r) for part in members.values() for r in part]
    with ThreadPoolExecutor(num_workers or min(8, os.cpu_count() or 1)) as \
            pool:
        sizes = dict(zip(rows, pool.map(_size_of, [paths[r] for r in rows])))
    return {g: int(max(part, key=lambda r: (sizes[int(r)], -r)))
            for g, part in members.items()}


def representatives_first(groups):
    """Per group, its first row (the earliest sample)."""
    return {g: int(part[0]) for g, part in members_of(groups).items()}


def _size_of(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def distances_to_representatives(X, groups, reps):
    """Cosine distance of each grouped row to its group's representative
    (``X`` holds unit vectors; ``None`` gives 0 for all, as for identical
    files). Rows in no group get NaN."""
    dist = np.full(len(groups), np.nan, dtype=np.float64)
    for g, rows in members_of(groups).items():
        if X is None:
            dist[rows] = 0.0
        else:
            sims = X[rows] @ X[reps[g]]
            dist[rows] = np.clip(1.0 - sims, 0.0, 2.0)
        dist[reps[g]] = 0.0
    return dist
