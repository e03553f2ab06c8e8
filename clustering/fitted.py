"""The fitted stages of a run, kept so that new samples can be placed into
its clusters later (:mod:`.assign`).

What is kept: the normalisation flag; each reducer's fitted model (PCA's
components, the UMAP model with its training data, so that ``transform``
works; t-SNE has none and cannot place new points); the clusterer's state
(k-means centres, the Gaussian mixture, HDBSCAN with its prediction data,
the others' fitted estimator); the map from the library's labels to the
run's size-ordered ids; and a sample of at most :data:`SPACE_SAMPLE` points
of the clustered space with their clusters, which the ``knn`` and ``svm``
assigners learn from and the 2-D map places new points by.

How: one pickle (protocol 5) of plain numpy arrays and scikit-learn, umap
and hdbscan objects, stored in GridFS and owned by the run record, so it is
deleted and renamed with the run. Nothing of this package is inside: it
loads in any process that has those libraries. Loading a pickle runs code
that the pickle names, so it trusts whoever can write to the database, as
FiftyOne's own brain runs do. Size: a UMAP model holds its training data
and neighbour graph (about 0.6 kB per sample in 10-D; some 60 MB for
100,000 samples), HDBSCAN about the same, PCA and k-means only their
components and centres; every run records the size in its results.
"""

import pickle

import numpy as np

FORMAT = "pickle-v1"
SPACE_SAMPLE = 20_000


class FittedState:
    """What :mod:`.assign` needs to put new samples through a run.

    Attributes:
        normalize: whether embeddings were L2-normalised first
        reducers: a list of ``{"name", "model"}`` (model ``None`` for
            reducers that cannot transform new points)
        clusterer: ``{"name", "model" or "centres"}``
        relabel: library label -> run cluster id
        space: ``{"X", "labels", "ids"}``, a sample of the clustered space
            with each point's cluster and sample id
    """

    def __init__(self, normalize, reducers, clusterer, relabel, space):
        self.normalize = normalize
        self.reducers = reducers
        self.clusterer = clusterer
        self.relabel = relabel
        self.space = space


def capture(plan, fit, X, labels, mapping, ids, seed):
    """The fitted state of a run that has just been computed."""
    reducers = [{"name": unit.name, "model": _portable(unit)}
                for unit in plan.reducers]
    clusterer = {"name": plan.clusterer.name}
    model = fit.model
    if hasattr(model, "cluster_centers_") and plan.clusterer.name == "kmeans":
        clusterer["centres"] = np.asarray(model.cluster_centers_, np.float32)
    else:
        clusterer["model"] = model
    rows = np.arange(len(X))
    if len(X) > SPACE_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(
            len(X), SPACE_SAMPLE, replace=False))
    space = {"X": np.asarray(X[rows], np.float32),
             "labels": np.asarray(labels[rows], np.int64),
             "ids": [ids[i] for i in rows]}
    return FittedState(plan.normalize, reducers, clusterer,
                       {int(k): int(v) for k, v in mapping.items()}, space)


def _portable(unit):
    """The reducer's model, without what only this package can load: a
    UMAP model's neighbour index (rebuilt from its data when loaded)."""
    model = unit.model_
    if model is None or unit.name == "tsne":
        return None
    if unit.name == "umap":
        model = _without_index(model)
    return model


def _without_index(model):
    import copy

    stripped = copy.copy(model)
    stripped._knn_search_index = None
    stripped.knn_search_index = None
    stripped.precomputed_knn = (None, None, None)
    return stripped


def dumps(state):
    return pickle.dumps(state.__dict__, protocol=5)


def loads(blob):
    """The state from its bytes, with UMAP models ready to ``transform``."""
    state = FittedState(**pickle.loads(blob))
    for stage in state.reducers:
        if stage["name"] == "umap" and stage["model"] is not None:
            _attach_index(stage["model"])
    return state


def _attach_index(model):
    from .neighbors import Neighbors

    metric = model.metric if model.metric in ("euclidean", "cosine") \
        else "euclidean"
    index = Neighbors(metric=metric).fit(model._raw_data)
    model._knn_search_index = index
