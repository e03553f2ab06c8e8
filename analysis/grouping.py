"""Duplicate groups from pairs, and each group's representative: plain
numpy and scipy, no FiftyOne."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

REPRESENTATIVES = ("centre", "largest")


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
