"""Which clusters of a cut are probably one concept: merge suggestions
ranked by evidence, each with its reasons.

Three kinds of evidence, each computed once for the whole cut:

- **shared neighbours**: on a sample of the clustered space, the share of
  the two clusters' nearest-neighbour links that cross from one to the
  other. Points of one concept split in two keep linking across the split;
  two concepts barely touch.
- **centre separation**: the distance between the two centres, in units of
  the clusters' own spread (mean distance of their members to their
  centre).
- **the tree**: siblings (the same parent) were one cluster one layer up.

The score weighs them in that order (see :func:`score`).
"""

import numpy as np

from .neighbors import Neighbors

# Neighbours of each sampled point that vote.
NEIGHBORS = 10
# Nearest clusters (by centre) considered for each cluster.
CANDIDATES = 5
WEIGHTS = {"shared": 0.6, "separation": 0.3, "siblings": 0.1}


def crossings(X, labels, clusters, k=NEIGHBORS):
    """``(links, counts)``: ``links[a, b]`` counts the nearest-neighbour
    links from points of cluster ``clusters[a]`` to points of
    ``clusters[b]``; ``counts[a]`` the points of each cluster sampled."""
    index = {c: i for i, c in enumerate(clusters)}
    rows = np.array([index.get(int(l), -1) for l in labels])
    member = rows >= 0
    X, rows = np.asarray(X, np.float32)[member], rows[member]
    n = len(clusters)
    links = np.zeros((n, n), dtype=np.int64)
    counts = np.bincount(rows, minlength=n)
    if len(X) < 2:
        return links, counts
    idx, _ = Neighbors().fit(X).search(X, min(k, len(X) - 1),
                                       exclude_self=True)
    found = idx >= 0
    np.add.at(links, (np.repeat(rows, idx.shape[1])[found.ravel()],
                      rows[idx[found]]), 1)
    return links, counts


def score(shared, separation, siblings):
    """How likely two clusters are one concept, in [0, 1]."""
    return (WEIGHTS["shared"] * min(1.0, 4.0 * shared)
            + WEIGHTS["separation"] / (1.0 + separation)
            + WEIGHTS["siblings"] * float(siblings))


def suggest(clusters, centres, spreads, parent, X, labels, n=10,
            rejected=(), k=NEIGHBORS):
    """The ``n`` pairs of ``clusters`` most likely to be one concept, best
    first: ``[{"clusters": [a, b], "score", "reason", "evidence"}]``.

    Args:
        clusters: the cluster ids of the cut
        centres: ``(len(clusters), d)`` centres in the clustered space
        spreads: mean distance of each cluster's members to its centre
        parent: cluster id -> its parent in the tree (−1 or absent: none)
        X, labels: a sample of the clustered space and each point's
            cluster in the cut
        rejected: pairs (as frozensets of two ids) never suggested again
    """
    clusters = [int(c) for c in clusters]
    if len(clusters) < 2:
        return []
    centres = np.asarray(centres, np.float64)
    spreads = np.maximum(np.asarray(spreads, np.float64), 1e-12)
    links, counts = crossings(X, labels, clusters, k)
    out = []
    for a, b in _candidate_pairs(centres, links):
        pair = frozenset((clusters[a], clusters[b]))
        if pair in rejected:
            continue
        reach = max(1, k * int(counts[a] + counts[b]))
        shared = float(links[a, b] + links[b, a]) / reach
        separation = float(np.linalg.norm(centres[a] - centres[b])
                           / (spreads[a] + spreads[b]))
        pa, pb = parent.get(clusters[a], -1), parent.get(clusters[b], -1)
        siblings = pa >= 0 and pa == pb
        value = score(shared, separation, siblings)
        out.append({
            "clusters": sorted(pair),
            "score": round(value, 4),
            "reason": _reason(shared, separation, siblings, pa),
            "evidence": {"shared_neighbours": round(shared, 4),
                         "separation": round(separation, 4),
                         "siblings": bool(siblings)},
        })
    out.sort(key=lambda s: (-s["score"], s["clusters"]))
    return out[:n]


def _candidate_pairs(centres, links):
    """Index pairs worth scoring: each cluster with its nearest by centre,
    and every pair whose points link across."""
    n = len(centres)
    pairs = set()
    d = np.linalg.norm(centres[:, None, :] - centres[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    for a in range(n):
        for b in np.argsort(d[a])[:min(CANDIDATES, n - 1)]:
            pairs.add((min(a, int(b)), max(a, int(b))))
    crossing = np.argwhere((links + links.T) > 0)
    pairs.update((int(a), int(b)) for a, b in crossing if a < b)
    return sorted(pairs)


def _reason(shared, separation, siblings, parent):
    parts = []
    if siblings:
        parts.append(f"siblings under cluster {parent}")
    parts.append(f"{shared:.0%} of their nearest-neighbour links cross")
    parts.append(f"centres {separation:.2f} spreads apart")
    return "; ".join(parts)
