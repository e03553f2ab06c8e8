"""The 2-D map of a run: where each sample sits in the App's Embeddings
panel, computed from the space that was clustered.

A 2-D layout needs to be fit on a few thousand points to show the
structure, not on all of them: UMAP (or t-SNE) is fit on a uniform sample
of at most :data:`MAP_SAMPLE` points, and every other point is placed at
the distance-weighted mean position of its nearest sampled neighbours in
the clustered space. That keeps the map to a small share of a run at any
size (``benchmarks/map_cost.py``); the run records how the map was made.
"""

import numpy as np

from ..units import ParamError
from .neighbors import place_by_neighbours
from .reducers import PCAReducer, TSNEReducer, UMAPReducer

MAP_METHODS = ("auto", "umap", "tsne", "pca", "none")
MAP_SAMPLE = 5000
# A picture needs fewer epochs than a clustered space: UMAP's own choice
# above 10,000 points, at a fifth of the cost below.
MAP_EPOCHS = 200
# Sampled neighbours that place each other point.
PLACE_NEIGHBORS = 10


def check_map(map_method):
    if map_method not in MAP_METHODS:
        raise ParamError(
            f"map must be one of {', '.join(MAP_METHODS)}, got {map_method!r}"
        )


def map_points(X, map_method, seed, progress=None):
    """``(points, facts)``: 2-D points for the Embeddings panel from the
    clustered space ``X``, and how they were made; ``(None, None)`` for
    ``none`` or fewer than 5 samples.

    ``auto`` reuses ``X`` when it is already 2-D and is UMAP otherwise.
    """
    n = len(X)
    if map_method == "none" or n < 5:
        return None, None
    if map_method == "auto" and X.shape[1] == 2:
        return np.asarray(X, dtype=np.float32), {"method": "clustered space"}
    if map_method == "pca":
        return (PCAReducer(n_components=2, random_state=seed).fit_transform(X),
                {"method": "pca"})
    method = "tsne" if map_method == "tsne" else "umap"
    rng = np.random.default_rng(seed)
    if X.shape[1] > 50:
        X = _pca50(X, rng, seed)
    sample = np.sort(rng.choice(n, MAP_SAMPLE, replace=False)) \
        if n > MAP_SAMPLE else np.arange(n)
    layout = TSNEReducer(random_state=seed) if method == "tsne" else \
        UMAPReducer(n_components=2, n_neighbors=15, min_dist=0.1,
                    n_epochs=MAP_EPOCHS, random_state=seed)
    if progress is not None:
        progress(0.0, f"2-D map: {method} of {len(sample)} points")
    placed = layout.fit_transform(X[sample],
                                  progress=_within(progress, 0.8, "2-D map"))
    facts = {"method": method, "fitted_on": int(len(sample)),
             **({"epochs": MAP_EPOCHS} if method == "umap" else {}),
             "placed_by_neighbours": int(n - len(sample))}
    if len(sample) == n:
        return placed.astype(np.float32), facts
    if progress is not None:
        progress(0.8, f"2-D map: placing {n - len(sample)} more points")
    return _place_rest(X, sample, placed), facts


def _within(progress, share, what):
    """``progress`` for a step that fills the first ``share`` of it."""
    if progress is None:
        return None
    return lambda fraction, message: progress(share * fraction,
                                              f"{what}, {message}")


# Rows a wide space's PCA is fit on before the map; then all are projected
# in chunks, so no copy of the whole space is made.
PCA_SAMPLE = 50_000


def _pca50(X, rng, seed):
    from sklearn.decomposition import PCA

    rows = rng.choice(len(X), PCA_SAMPLE, replace=False) \
        if len(X) > PCA_SAMPLE else slice(None)
    fit_on = X[rows]
    dims = min(50, fit_on.shape[0], fit_on.shape[1])
    pca = PCA(n_components=dims, random_state=seed).fit(fit_on)
    out = np.empty((len(X), dims), dtype=np.float32)
    for start in range(0, len(X), PCA_SAMPLE):
        out[start:start + PCA_SAMPLE] = pca.transform(
            X[start:start + PCA_SAMPLE])
    return out


def _place_rest(X, sample, placed):
    points = place_by_neighbours(X[sample], placed, X, PLACE_NEIGHBORS)
    points[sample] = placed
    return points
