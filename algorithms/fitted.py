"""The fitted stages of a run, kept so that new samples can be placed into
its clusters later.

What is kept: the normalisation flag; each reducer (its name, parameters
and fitted library model: PCA's components, the UMAP model with its
training data so that ``transform`` works; t-SNE has none and cannot
place new points); the clusterer (its name, parameters, fitted library
model and centres); the map from the method's labels to the run's cluster
ids; and a sample of at most :data:`SPACE_SAMPLE` points of the clustered
space with their clusters, which the ``knn`` and ``svm`` assigners learn
from and the 2-D map places new points by.

How: one pickle (protocol 5) of plain Python, numpy arrays and
scikit-learn, umap and hdbscan objects, stored with the run record.
Nothing of this package is inside: it loads in any process that has those
libraries, and :func:`loads` builds the units again from their registries
by name. Loading a pickle runs code that the pickle names, so it trusts
whoever can write to the database, as FiftyOne's own brain runs do.
"""

import pickle

import numpy as np

from ..units import Param, ParamError
from . import clusterers, reducers
from .neighbors import Neighbors

FORMAT = "pickle-v1"
# The layout of the pickled dict; runs of older layouts are computed again
# to place new samples.
LAYOUT = 2
SPACE_SAMPLE = 20_000

ASSIGNER = Param("assigner", "choice", "auto",
                 "How new samples get a cluster: the method's own "
                 "prediction, a vote of nearest neighbours, or an SVM",
                 choices=("auto", "knn", "svm"))
KNN_NEIGHBORS = 15
SVM_SAMPLE = 10_000


class FittedState:
    """The fitted stages of a run.

    Attributes:
        normalize: whether embeddings were L2-normalised first
        reducers: the fitted reducers, in order
        clusterer: the fitted clusterer
        relabel: the method's label -> the run's cluster id
        space: ``{"X", "labels", "ids"}``, a sample of the clustered space
            with each point's run cluster and sample id
    """

    def __init__(self, normalize, reducers, clusterer, relabel, space):
        self.normalize = normalize
        self.reducers = reducers
        self.clusterer = clusterer
        self.relabel = relabel
        self.space = space

    def transform(self, X):
        """New embeddings in the clustered space."""
        if self.normalize:
            X = reducers.l2_normalize(X)
        for unit in self.reducers:
            X = unit.transform(X)
        return np.asarray(X, dtype=np.float32)

    def predict(self, X, assigner="auto"):
        """``(labels, strength)``: the run's cluster of each point of the
        clustered space (−1: noise) and, where the assigner gives one, how
        strongly it belongs (else ``None``)."""
        if assigner == "knn":
            return knn_vote(self.space["X"], self.space["labels"], X), None
        if assigner == "svm":
            return _svm(self.space["X"], self.space["labels"], X), None
        found, strength = self.clusterer.predict_with_strength(X)
        return self.run_labels(found), strength

    def run_labels(self, method_labels):
        """The run's cluster ids of the method's labels (−1 stays −1)."""
        method_labels = np.asarray(method_labels, dtype=np.int64)
        out = np.full(len(method_labels), -1, dtype=np.int64)
        if self.relabel:
            lookup = np.full(max(self.relabel) + 1, -1, dtype=np.int64)
            for k, v in self.relabel.items():
                lookup[k] = v
            ok = (method_labels >= 0) & (method_labels < len(lookup))
            out[ok] = lookup[method_labels[ok]]
        return out

    def check_can_transform(self, key):
        for unit in self.reducers:
            if not unit.can_transform:
                raise ParamError(
                    f"run '{key}' reduced with {unit.label}, which cannot "
                    "place new points; use PCA or UMAP for runs you assign "
                    "into", "run_key")


def capture(normalize, reducer_units, clusterer, X, labels, mapping, ids,
            seed):
    """The fitted state of a run that has just been computed: ``labels``
    are the run's cluster ids of the rows of ``X`` (the clustered space),
    ``mapping`` the method's label -> run id."""
    rows = np.arange(len(X))
    if len(X) > SPACE_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(
            len(X), SPACE_SAMPLE, replace=False))
    space = {"X": np.asarray(X[rows], np.float32),
             "labels": np.asarray(labels[rows], np.int64),
             "ids": [ids[i] for i in rows]}
    return FittedState(normalize, list(reducer_units), clusterer,
                       {int(k): int(v) for k, v in mapping.items()}, space)


def dumps(state):
    return pickle.dumps({
        "layout": LAYOUT,
        "normalize": state.normalize,
        "reducers": [unit.portable() for unit in state.reducers],
        "clusterer": state.clusterer.portable(),
        "relabel": state.relabel,
        "space": state.space,
    }, protocol=5)


def loads(blob, key="run"):
    """The state from its bytes, each unit built again from its registry
    and ready to transform and predict."""
    data = pickle.loads(blob)
    if data.get("layout") != LAYOUT:
        raise ParamError(
            f"run '{key}' was computed by an older version of this plugin; "
            "compute it again to place new samples into it", "run_key")
    return FittedState(
        data["normalize"],
        [reducers.restore(r) for r in data["reducers"]],
        clusterers.restore(data["clusterer"]),
        data["relabel"], data["space"])


# -- assigners that learn from the sample of the clustered space ------------


def knn_vote(X_known, labels_known, X, k=KNN_NEIGHBORS, chunk=65536,
             ignore_noise=False):
    """The most common cluster among each point's ``k`` nearest known
    points (ties go to the smaller id). Noise votes like a cluster, so a
    point among noise is noise; with ``ignore_noise`` only clusters vote
    (noise only where no neighbour has a cluster)."""
    labels_known = np.asarray(labels_known, np.int64)
    index = Neighbors().fit(X_known)
    k = min(k, len(X_known))
    n_labels = int(labels_known.max()) + 2 if len(labels_known) else 1
    out = np.empty(len(X), dtype=np.int64)
    for start in range(0, len(X), chunk):
        idx, _ = index.search(X[start:start + chunk], k)
        votes = labels_known[idx] + 1
        counts = np.zeros((len(votes), n_labels), dtype=np.int32)
        np.add.at(counts, (np.arange(len(votes))[:, None], votes), 1)
        if ignore_noise:
            clustered = counts[:, 1:].sum(axis=1) > 0
            counts[clustered, 0] = 0
        out[start:start + len(votes)] = counts.argmax(axis=1) - 1
    return out


def _svm(X_known, labels_known, X):
    from sklearn.svm import SVC

    member = labels_known >= 0
    Xs, ls = X_known[member], labels_known[member]
    if len(Xs) > SVM_SAMPLE:
        rows = np.random.default_rng(0).choice(len(Xs), SVM_SAMPLE,
                                               replace=False)
        Xs, ls = Xs[rows], ls[rows]
    if len(np.unique(ls)) < 2:
        return np.full(len(X), int(ls[0]) if len(ls) else -1, np.int64)
    return SVC(kernel="rbf", gamma="scale").fit(Xs, ls).predict(X).astype(
        np.int64)
