"""Near-duplicate groups, uniqueness scores and each group's
representative, from vectors: numpy, scipy and the faiss neighbour engine
(:mod:`.neighbors`: exact while that is cheap, beyond it an IVF over a
PCA projection with exact re-ranking), never an N x N matrix.

Near-duplicates are judged in three steps:

1. candidates: each sample's :data:`DUPLICATE_NEIGHBORS` nearest
   neighbours by cosine;
2. the threshold: unless one is given, it is calibrated on the data, as a
   fraction (:data:`CALIBRATION`) of the median distance from a sample to
   the farthest of its candidates. Copies sit far closer to their
   original than distinct images sit to each other, and what "far" means
   depends on the images (distinct handwritten digits are nearer each
   other than distinct photographs) and on the fingerprint (a 64 x 64
   thumbnail spreads images further apart than an 8 x 8 one), so a
   constant cannot serve every set; the spread of the data itself can.
   It never exceeds the embedder's ceiling;
3. groups without chains: linked pairs (within the threshold) form
   components, and each component is cut into stars: the member linked
   to the most others becomes a centre, and every member of its group is
   within the threshold of that centre. Two distinct images can no longer
   end up together because a chain of small steps joins them.
"""

import heapq
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..support import Reporter
from .neighbors import Neighbors, unit_rows
from .thumbnail_distance import (
    CosineDistance,
    ThumbnailDistance,
    prepare_thumbnails,
)

REPRESENTATIVES = ("centre", "largest")
# Candidate neighbours of each sample; the farthest of them also gives the
# scale the threshold is calibrated on.
DUPLICATE_NEIGHBORS = 8
# The calibrated threshold, as a fraction of the median distance from a
# sample to its farthest candidate. On the four image sets of
# benchmarks/duplicates_threshold.py, the farthest planted copy lies at
# 0.09 of that median and the nearest distinct pair at 0.11 (digits, the
# densest set); photographs and textures leave far more room.
CALIBRATION = 0.1
# IVF cells each search visits. On 1M x 512 mixture vectors with planted
# copies, 8 cells found every copy of 1,000 asked for from one side, 4
# cells 99.9%, and a pair is found from either side; the ranks of
# uniqueness scores did not change from 16 cells to 64.
DUPLICATE_NPROBE = 8
# Uniqueness: the weighted distances to a sample's nearest neighbours.
UNIQUENESS_NEIGHBORS = 3
UNIQUENESS_WEIGHTS = np.array([0.6, 0.3, 0.1])


class NearDuplicates:
    """What :func:`near_duplicate_groups` found.

    Attributes:
        groups: the group of each row (-1: no duplicate), numbered from
            the largest group down
        threshold: the distance under which two rows were linked
        calibration: how the threshold was chosen (plain JSON)
        distance: ``distance(left, right)``, the distance between rows
            ``left[i]`` and ``right[i]`` that groups were judged by
        unit: the rows as compared, scaled to unit length
    """

    def __init__(self, groups, threshold, calibration, distance, unit):
        self.groups = groups
        self.threshold = threshold
        self.calibration = calibration
        self.distance = distance
        self.unit = unit


def near_duplicate_groups(X, threshold=None, ceiling=None, side=None,
                          report=None, share=(0.6, 0.9)):
    """Groups of near-duplicate rows of ``X``.

    Args:
        X: one vector per sample (changed in place)
        threshold: link rows within this distance; ``None`` calibrates it
            on the data (:func:`calibrate`)
        ceiling: the largest threshold calibration may choose (``None``:
            no limit)
        side: the rows are ``side`` x ``side`` grayscale thumbnails,
            compared by :class:`.thumbnail_distance.ThumbnailDistance`;
            ``None``: any vectors, compared by cosine after each row's
            mean is subtracted
        report: progress callable ``report(fraction, message)``
        share: the part of the overall progress this step covers

    Returns:
        a :class:`NearDuplicates`
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    report = report or Reporter(None)
    low, high = share
    step = _Progress(report, low, high)
    if side is not None:
        prepare_thumbnails(X, side)
    else:
        subtract_row_means(X)
    norms = row_norms(X)
    index = Neighbors(metric="cosine", nprobe=DUPLICATE_NPROBE)
    if n < 2:
        return NearDuplicates(np.full(n, -1, dtype=np.int64), threshold,
                              {"calibrated": False}, None,
                              unit_rows(X, copy=False))
    index.fit(X, progress=step(0.0, 0.1, "indexing"), copy=False)
    unit = index.data
    distance = ThumbnailDistance(unit, norms, side) if side is not None         else CosineDistance(unit)
    k = min(DUPLICATE_NEIGHBORS, n - 1)
    I, _ = index.search(unit, k, progress=step(0.1, 0.4, "searching"),
                        exclude_self=True)
    left, right, d, farthest = _candidate_distances(
        I, distance, step(0.4, 0.9, "comparing"))
    calibration = {"calibrated": False}
    if threshold is None:
        threshold, calibration = calibrate(farthest, ceiling, k)
    close = d <= threshold
    groups = star_groups(n, left[close], right[close], d[close], distance,
                         threshold)
    step(0.9, 0.1, "grouping")(1, 1)
    return NearDuplicates(groups, float(threshold), calibration, distance,
                          unit)


class _Progress:
    def __init__(self, report, low, high):
        self.report, self.low, self.high = report, low, high

    def __call__(self, offset, width, what):
        def progress(done, total, _=None):
            self.report(self.low + (offset + width * done / max(total, 1))
                        * (self.high - self.low),
                        f"neighbours: {what} {done:,} of {total:,}")
        return progress


def row_norms(X, chunk=65536):
    out = np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), chunk):
        out[start:start + chunk] = np.linalg.norm(X[start:start + chunk],
                                                  axis=1)
    return out


def _candidate_distances(I, distance, progress):
    """Each candidate pair once, as ``(left, right, distance)``, and for
    each row the distance to its farthest candidate (NaN where the search
    found fewer than asked)."""
    n, k = I.shape
    rows = np.repeat(np.arange(n), k)
    cols = I.ravel()
    found = cols >= 0
    pairs = np.stack([np.minimum(rows, cols), np.maximum(rows, cols)],
                     axis=1)[found]
    unique, where = np.unique(pairs, axis=0, return_inverse=True)
    d = distance(unique[:, 0], unique[:, 1], progress=progress)
    table = np.full(n * k, np.nan, dtype=np.float32)
    table[found] = d[where.ravel()]
    table = table.reshape(n, k)
    complete = ~np.isnan(table).any(axis=1)
    farthest = np.where(complete, np.nanmax(
        np.where(np.isnan(table), -np.inf, table), axis=1), np.nan)
    return unique[:, 0], unique[:, 1], d, farthest


def calibrate(farthest, ceiling, k):
    """The threshold for rows whose farthest candidates lie at
    ``farthest``: :data:`CALIBRATION` times their median, at most
    ``ceiling`` (``None``: no ceiling). Returns ``(threshold, facts)``."""
    seen = farthest[np.isfinite(farthest)]
    if k < DUPLICATE_NEIGHBORS or not len(seen):
        # Too few samples to see how far apart distinct ones lie: the
        # ceiling, or without one only identical rows.
        threshold = 0.0 if ceiling is None else float(ceiling)
        return threshold, {"calibrated": False,
                           "reason": "too few samples to calibrate",
                           "ceiling": ceiling}
    scale = float(np.median(seen))
    threshold = CALIBRATION * scale
    if ceiling is not None:
        threshold = min(float(ceiling), threshold)
    return threshold, {"calibrated": True, "fraction": CALIBRATION,
                       "median_farthest_candidate": scale,
                       "neighbors": int(k), "ceiling": ceiling}


def star_groups(n, left, right, dist, distance, threshold):
    """Groups of ``n`` rows from the linked pairs ``(left[i], right[i])``
    (at distance ``dist[i]``), with no chains: within each connected
    component, the row linked to the most others (then the nearest to
    them) is a centre, and its group is every row not yet grouped, among
    its neighbours and theirs, within ``threshold`` of it; repeated while
    two linked rows are left. Numbered from the largest group down."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    groups = np.full(n, -1, dtype=np.int64)
    if len(left) == 0:
        return groups
    both = np.concatenate([left, right]), np.concatenate([right, left])
    weights = np.concatenate([dist, dist]).astype(np.float64)
    graph = coo_matrix((weights + 1e-12, both), shape=(n, n)).tocsr()
    _, component = connected_components(graph, directed=False)
    members = members_of(np.where(np.bincount(component)[component] > 1,
                                  component, -1))
    found = []
    for rows in members.values():
        found.extend(_stars(rows, graph, distance, threshold))
    return number_groups(n, found)


def _stars(rows, graph, distance, threshold):
    if len(rows) == 2:
        return [rows]
    free = set(int(r) for r in rows)
    centres = _CentreQueue(free, graph)
    out = []
    while True:
        centre = centres.pop()
        if centre is None:
            return out
        near = _within_two_links(centre, free, graph)
        near = near[near != centre]
        d = distance(np.full(len(near), centre), near)
        group = np.concatenate([[centre], near[d <= threshold]])
        out.append(np.sort(group))
        centres.remove(group)


class _CentreQueue:
    """Free rows by how good a centre each is: the most links to free
    rows, then the smallest total distance over them, then the first row.
    A heap whose stale entries are skipped, so that cutting a component
    of m rows costs O(m log m), however many stars it holds."""

    def __init__(self, free, graph):
        self.free = free
        self.graph = graph
        self.heap = []
        self.keys = {}
        for r in sorted(free):
            self._push(r)

    def _key(self, r):
        graph = self.graph
        start, stop = graph.indptr[r], graph.indptr[r + 1]
        cols = graph.indices[start:stop]
        mask = np.fromiter((int(c) in self.free for c in cols), bool,
                           len(cols))
        return (-int(mask.sum()), float(graph.data[start:stop][mask].sum()),
                r)

    def _push(self, r):
        key = self._key(r)
        self.keys[r] = key
        if key[0] < 0:
            heapq.heappush(self.heap, key)

    def pop(self):
        while self.heap:
            key = heapq.heappop(self.heap)
            r = key[2]
            if r in self.free and self.keys.get(r) == key:
                return r
        return None

    def remove(self, rows):
        touched = set()
        for r in rows:
            r = int(r)
            self.free.discard(r)
            self.keys.pop(r, None)
            touched.update(int(c) for c in self.graph.indices[
                self.graph.indptr[r]:self.graph.indptr[r + 1]])
        for r in touched & self.free:
            self._push(r)


def _within_two_links(row, free, graph):
    first = graph.indices[graph.indptr[row]:graph.indptr[row + 1]]
    second = [graph.indices[graph.indptr[c]:graph.indptr[c + 1]]
              for c in first]
    near = np.unique(np.concatenate([first, *second]))
    return np.array([r for r in near if int(r) in free], dtype=np.int64)


def number_groups(n, found):
    """Group of each of ``n`` rows from lists of rows, numbered from the
    largest group down (ties: the group holding the earliest row)."""
    groups = np.full(n, -1, dtype=np.int64)
    ranked = sorted(found, key=lambda rows: (-len(rows), int(rows[0])))
    for number, rows in enumerate(ranked):
        groups[np.asarray(rows)] = number
    return groups


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
    index = Neighbors(metric="cosine", nprobe=DUPLICATE_NPROBE)
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


def distances_to_representatives(groups, reps, distance=None):
    """Distance of each grouped row to its group's representative, by
    ``distance(left, right)`` (``None`` gives 0 for all, as for identical
    files). Rows in no group get NaN."""
    dist = np.full(len(groups), np.nan, dtype=np.float64)
    rows = np.flatnonzero(groups >= 0)
    if not len(rows):
        return dist
    rep_of = np.array([reps[g] for g in groups[rows]], dtype=np.int64)
    dist[rows] = 0.0 if distance is None else distance(rows, rep_of)
    dist[rep_of] = 0.0
    return dist
