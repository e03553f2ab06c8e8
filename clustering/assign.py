"""Placing new samples into the clusters of a stored run, without
re-clustering (which would renumber every cluster).

Each sample is embedded with the run's own embedder (its cached vector is
reused when the file is unchanged), goes through the run's fitted reducers,
and is given a cluster by an assigner:

- ``auto``: the method's own prediction: the nearest k-means centre, the
  Gaussian mixture's most probable component, HDBSCAN's
  ``approximate_predict`` (which may say noise); for the other methods, the
  nearest cluster centre;
- ``knn``: a vote of the nearest clustered samples of the fit (noise when
  most of them are noise);
- ``svm``: an RBF support-vector machine trained on the clustered samples
  of the fit, in the clustered space.

The samples get the same fields as the run's own, plus ``assigned=True``.
The run's cluster sizes and statistics stay those of the fit; its results
count how many samples were assigned since.
"""

import datetime

import numpy as np

from ..units import Param, ParamError
from . import fitted, record, runs, store
from .reducers import l2_normalize

ASSIGNER = Param("assigner", "choice", "auto",
                 "How new samples get a cluster: the method's own "
                 "prediction, a vote of nearest neighbours, or an SVM",
                 choices=("auto", "knn", "svm"))
KNN_NEIGHBORS = 15
SVM_SAMPLE = 10_000


def assign_clusters(samples, run_key, assigner="auto", embedder=None,
                    num_workers=None, batch_size=None, progress=None):
    """Places the samples of ``samples`` that run ``run_key`` did not
    cluster into its clusters. Returns the updated
    :class:`.results.ClusterRun`; its ``results["assigned"]`` says how many
    were placed, and where.

    Args:
        samples: the samples to place (a dataset or view); samples the run
            clustered itself keep their values
        run_key: the run
        assigner: ``auto``, ``knn`` or ``svm`` (see the module)
        embedder: only for runs whose embedder was a Python object (a torch
            module): the same embedder again (its fingerprint must match)
    """
    from .pipeline import Reporter

    assigner = ASSIGNER.clean("assign_clusters", assigner)
    report = Reporter(progress)
    run = runs.load_run(samples, run_key)
    _check_assignable(run)
    todo = _samples_to_place(samples, run)
    if not len(todo):
        return run
    state = fitted.loads(store.read_attachment(run.results["fitted"]["file"]))
    report(0.0, "embedding")
    emb = _embed(todo, run, embedder, num_workers, batch_size,
                 lambda done, total: report(0.6 * done / max(total, 1),
                                            f"embedded {done} of {total}"))
    report(0.6, "placing through the run's fitted stages")
    X = _transform(state, emb.vectors)
    labels, prob = _predict(state, run, X, assigner)
    report(0.8, "measuring")
    columns = _columns(run, state, emb.ids, X, labels, prob)
    results = _updated_results(samples, run, emb, labels, assigner)
    report(0.9, "writing fields")
    updated = runs.amend_run(samples, run, emb.ids, columns, results,
                             progress=lambda m: report(0.9, m))
    report(1.0, "done")
    return updated


def _check_assignable(run):
    if run.patches_field:
        raise ParamError(
            f"run '{run.key}' clustered objects; placing new objects into "
            "an object run is not supported")
    if not run.results.get("fitted"):
        raise ParamError(
            f"run '{run.key}' was computed before runs kept their fitted "
            "stages; compute it again to place new samples into it")
    for reducer in run.config.get("reducers", []):
        if reducer["name"] == "tsne":
            raise ParamError(
                f"run '{run.key}' reduced with t-SNE, which cannot place "
                "new points; use PCA or UMAP for runs you assign into")


def _samples_to_place(samples, run):
    """The samples the fit did not cluster: those without a cluster yet, and
    those placed by an earlier assignment (placed again)."""
    from fiftyone import ViewField as F

    cf = run.fields["cluster"]
    af = run.fields.get("assigned")
    missing = F(cf).exists() == False  # noqa: E712 (a query expression)
    if af is not None and samples._dataset.get_field(af) is not None:
        return samples.match(missing | (F(af) == True))  # noqa: E712
    return samples.match(missing)


def _embed(samples, run, embedder, num_workers, batch_size, progress):
    from .embeddings import get_embeddings

    spec = run.config.get("embedder")
    if spec is None:
        return get_embeddings(samples, field=run.config["embeddings_field"],
                              progress=progress)
    if embedder is None:
        if any(isinstance(v, str) and v.startswith("<")
               for v in spec["params"].values()):
            raise ParamError(
                f"run '{run.key}' embedded with a Python object; pass the "
                "same embedder as embedder=")
        embedder = {"name": spec["name"], **spec["params"]}
    from ..embedders import get_embedder

    embedder = get_embedder(embedder)
    if embedder.fingerprint() != run.config.get("fingerprint"):
        raise ParamError(
            "embedder: it does not produce the run's vectors (its "
            "fingerprint differs from the run's)")
    return get_embeddings(samples, embedder=embedder,
                          field=run.config["embeddings_field"],
                          num_workers=num_workers, batch_size=batch_size,
                          progress=progress)


def _transform(state, X):
    if state.normalize:
        X = l2_normalize(X)
    for stage in state.reducers:
        X = np.asarray(stage["model"].transform(X), dtype=np.float32)
    return X


def _predict(state, run, X, assigner):
    """Run cluster ids (−1 = noise) and, where the method gives one, a
    membership probability."""
    if assigner == "knn":
        return _knn_vote(state, X), None
    if assigner == "svm":
        return _svm(state, X), None
    name = state.clusterer["name"]
    model = state.clusterer.get("model")
    relabel = np.vectorize(lambda c: state.relabel.get(int(c), -1),
                           otypes=[np.int64])
    if name == "kmeans":
        from .kmeans import nearest

        found, _ = nearest(X, state.clusterer["centres"])
        return relabel(found), None
    if name == "gmm":
        proba = model.predict_proba(X)
        return relabel(proba.argmax(axis=1)), proba.max(axis=1)
    if name == "hdbscan":
        import hdbscan

        found, strength = hdbscan.approximate_predict(model, X)
        labels = np.where(found >= 0, relabel(np.maximum(found, 0)), -1)
        return labels, strength
    return _nearest_centre(run, X), None


def _nearest_centre(run, X):
    from .kmeans import nearest

    centres = np.asarray([c["centre"] for c in run.clusters], np.float32)
    found, _ = nearest(X, centres)
    return np.asarray([run.clusters[i]["id"] for i in found], np.int64)


def _knn_vote(state, X):
    from .neighbors import Neighbors

    index = Neighbors().fit(state.space["X"])
    idx, _ = index.search(X, min(KNN_NEIGHBORS, len(state.space["X"])))
    votes = state.space["labels"][idx]
    out = np.empty(len(X), dtype=np.int64)
    for i, row in enumerate(votes):
        values, counts = np.unique(row, return_counts=True)
        out[i] = values[np.argmax(counts)]
    return out


def _svm(state, X):
    from sklearn.svm import SVC

    member = state.space["labels"] >= 0
    Xs, ls = state.space["X"][member], state.space["labels"][member]
    if len(Xs) > SVM_SAMPLE:
        rows = np.random.default_rng(0).choice(len(Xs), SVM_SAMPLE,
                                               replace=False)
        Xs, ls = Xs[rows], ls[rows]
    if len(np.unique(ls)) < 2:
        return np.full(len(X), int(ls[0]) if len(ls) else -1, np.int64)
    return SVC(kernel="rbf", gamma="scale").fit(Xs, ls).predict(X).astype(
        np.int64)


def _columns(run, state, ids, X, labels, prob):
    centres = {c["id"]: np.asarray(c["centre"]) for c in run.clusters}
    sizes = {c["id"]: c["size"] for c in run.clusters}
    dist = np.full(len(X), np.nan)
    sim = np.full(len(X), np.nan)
    size = np.full(len(X), run.metrics["n_noise"], dtype=np.int64)
    for i, c in enumerate(labels):
        if c < 0:
            continue
        delta = X[i] - centres[c]
        dist[i] = np.linalg.norm(delta)
        norm = np.linalg.norm(X[i]) * np.linalg.norm(centres[c])
        sim[i] = X[i] @ centres[c] / norm if norm > 0 else np.nan
        size[i] = sizes[c]
    values = {"cluster": labels, "dist": dist, "sim": sim, "size": size,
              "assigned": np.ones(len(X), dtype=bool)}
    if prob is not None and "prob" in run.fields:
        values["prob"] = prob
    if "map" in run.fields:
        values["map"] = _map_positions(run, state, X)
    prefix = run.fields["cluster"][: -len("_cluster")]
    return [store.Column(s, run.fields.get(s) or
                         record.field_path(prefix, s), v)
            for s, v in values.items()]


def _map_positions(run, state, X):
    """New points on the run's map, placed as the map placed the points it
    was not fit on: at the weighted mean of their nearest neighbours'."""
    from .maps import PLACE_NEIGHBORS
    from .neighbors import Neighbors

    ids = state.space.get("ids")
    by_id = dict(zip(*run.dataset.select(ids).values(
        ["id", run.fields["map"]])))
    known = [i for i, sid in enumerate(ids) if by_id.get(sid) is not None]
    points = np.asarray([by_id[ids[i]] for i in known], np.float64)
    index = Neighbors().fit(state.space["X"][known])
    idx, dist = index.search(X, min(PLACE_NEIGHBORS, len(known)))
    weights = 1.0 / (dist.astype(np.float64) + 1e-6)
    placed = (points[idx] * weights[..., None]).sum(1) / weights.sum(
        1, keepdims=True)
    return list(placed)


def _updated_results(samples, run, emb, labels, assigner):
    af = run.fields.get("assigned")
    before = set()
    if af is not None and samples._dataset.get_field(af) is not None:
        before = set(samples._dataset.exists(af).values("id"))
    placed = before | set(emb.ids)
    counts = np.bincount(labels[labels >= 0]) if (labels >= 0).any() \
        else np.zeros(0)
    return {
        **run.results,
        "assigned": {
            "count": len(placed),
            "last": {
                "at": datetime.datetime.utcnow().isoformat(),
                "assigner": assigner,
                "placed": len(emb.ids),
                "noise": int((labels < 0).sum()),
                "skipped": len(emb.skipped),
                "per_cluster": {str(c): int(n) for c, n in enumerate(counts)
                                if n},
            },
        },
    }
