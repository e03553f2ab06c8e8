"""The 2-D map of a run: where each sample sits in the App's Embeddings
panel, computed from the space that was clustered."""

import numpy as np

from ..units import ParamError
from .reducers import PCAReducer, TSNEReducer, UMAPReducer

MAP_METHODS = ("auto", "umap", "tsne", "pca", "none")


def check_map(map_method):
    if map_method not in MAP_METHODS:
        raise ParamError(
            f"map must be one of {', '.join(MAP_METHODS)}, got {map_method!r}"
        )


def map_points(X, map_method, seed):
    """2-D points for the Embeddings panel from the clustered space ``X``.

    ``auto`` reuses ``X`` when it is already 2-D, otherwise runs UMAP (after
    PCA to 50 dimensions when ``X`` is wider, which keeps it quick).
    Returns ``None`` for ``none`` or when there are too few samples.
    """
    if map_method == "none" or len(X) < 5:
        return None
    if map_method == "auto" and X.shape[1] == 2:
        return np.asarray(X, dtype=np.float32)
    if map_method == "pca":
        return PCAReducer(n_components=2).fit_transform(X, seed)[0]
    if map_method == "tsne":
        return TSNEReducer().fit_transform(X, seed)[0]
    if X.shape[1] > 50:
        X = PCAReducer(n_components=50).fit_transform(X, seed)[0]
    umap = UMAPReducer(n_components=2, n_neighbors=15, min_dist=0.1)
    return umap.fit_transform(X, seed)[0]
