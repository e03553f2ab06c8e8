"""Placing new samples into the clusters of a stored run, without
re-clustering (which would renumber every cluster).

Each sample is embedded with the run's own embedder (its cached vector is
reused when the file is unchanged), goes through the run's fitted reducers,
and is given a cluster by an assigner:

- ``auto``: the method's own prediction (the nearest k-means centre, the
  Gaussian mixture's most probable component, HDBSCAN's
  ``approximate_predict``, which may say noise); for other methods, the
  nearest cluster centre;
- ``knn``: a vote of the nearest clustered samples of the fit (noise when
  most of them are noise);
- ``svm``: an RBF support-vector machine trained on the clustered samples
  of the fit, in the clustered space.

A run whose noise policy is ``assign`` keeps no noise: a new sample the
assigner calls noise goes to the nearest cluster centre instead. The
samples get the same fields as the run's own, plus ``assigned=True``. The
run's cluster sizes and statistics stay those of the fit; its results
count how many samples were assigned since.
"""

import datetime

import numpy as np

from ..algorithms import fitted
from ..algorithms.fitted import ASSIGNER
from ..algorithms.geometry import distances_to
from ..algorithms.kmeans import nearest
from ..algorithms.layout2d import place_by_neighbours
from ..embedders import get_embedder
from ..storage import schema
from ..storage.transaction import Column
from ..support import Reporter
from ..units import ParamError
from .embed import get_embeddings


def place_samples(run, samples, assigner="auto", embedder=None,
                  num_workers=None, batch_size=None, progress=None):
    """Places the samples of ``samples`` that ``run`` did not cluster into
    its clusters. Returns the updated :class:`.results.ClusterRun` (the same
    run when there was nothing to place); its ``results["assigned"]`` says
    how many were placed, and where.

    Args:
        run: a :class:`.results.ClusterRun`
        samples: the samples to place (a dataset or view); samples the run
            clustered itself keep their values
        assigner: ``auto``, ``knn`` or ``svm`` (see the module)
        embedder: only for runs whose embedder was a Python object (a torch
            module): the same embedder again (its fingerprint must match)
    """
    assigner = ASSIGNER.clean("assign_clusters", assigner)
    report = Reporter(progress)
    _check_assignable(run)
    todo = samples_to_place(samples, run)
    if not len(todo):
        return run
    state = fitted.loads(run.attachment("fitted"), run.key)
    state.check_can_transform(run.key)
    report(0.0, "embedding")
    emb = _embed(todo, run, embedder, num_workers, batch_size,
                 lambda done, total: report(0.6 * done / max(total, 1),
                                            f"embedded {done} of {total}"))
    report(0.6, "placing through the run's fitted stages")
    X = state.transform(emb.vectors)
    labels, prob = state.predict(X, assigner)
    if run.config.get("noise") == "assign":
        labels = _without_noise(run, X, labels)
    report(0.8, "measuring")
    columns = _fields_to_write(run, state, X, labels, prob)
    results = _updated_results(samples, run, emb, labels, assigner)
    report(0.9, "writing fields")
    updated = run.amend(emb.ids, columns, results,
                        progress=lambda m: report(0.9, m))
    report(1.0, "done")
    return updated


def _check_assignable(run):
    if run.patches_field:
        raise ParamError(
            f"run '{run.key}' clustered objects; placing new objects into "
            "an object run is not supported", "run_key")
    if not (run.results.get("fitted") or {}).get("file"):
        raise ParamError(
            f"run '{run.key}' was computed before runs kept their fitted "
            "stages; compute it again to place new samples into it",
            "run_key")


def samples_to_place(samples, run):
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
    spec = run.config.get("embedder")
    if spec is None:
        return get_embeddings(samples, field=run.config["embeddings_field"],
                              progress=progress)
    if embedder is None:
        if any(isinstance(v, str) and v.startswith("<")
               for v in spec["params"].values()):
            raise ParamError(
                f"run '{run.key}' embedded with a Python object; pass the "
                "same embedder again", "embedder")
        embedder = {"name": spec["name"], **spec["params"]}
    embedder = get_embedder(embedder)
    if embedder.fingerprint() != run.config.get("fingerprint"):
        raise ParamError(
            "embedder: it does not produce the run's vectors (its "
            "fingerprint differs from the run's)", "embedder")
    return get_embeddings(samples, embedder=embedder,
                          field=run.config["embeddings_field"],
                          num_workers=num_workers, batch_size=batch_size,
                          progress=progress)


def _centres(run):
    return np.asarray([c["centre"] for c in run.clusters], np.float64) \
        .reshape(len(run.clusters), -1)


def _without_noise(run, X, labels):
    """``labels`` with each −1 replaced by the nearest cluster centre."""
    noise = labels < 0
    if not noise.any() or not run.clusters:
        return labels
    labels = labels.copy()
    index, _ = nearest(X[noise], _centres(run))
    labels[noise] = np.asarray(run.cluster_ids())[index]
    return labels


def _fields_to_write(run, state, X, labels, prob):
    dist, sim = distances_to(X, labels, _centres(run)) if run.clusters \
        else (np.full(len(X), np.nan), np.full(len(X), np.nan))
    sizes = np.asarray([c["size"] for c in run.clusters], np.int64)
    size = np.full(len(X), run.metrics["n_noise"], dtype=np.int64)
    size[labels >= 0] = sizes[labels[labels >= 0]]
    values = {"cluster": labels, "dist": dist, "sim": sim, "size": size,
              "assigned": np.ones(len(X), dtype=bool)}
    if prob is not None and "prob" in run.fields:
        values["prob"] = prob
    if "map" in run.fields:
        values["map"] = list(_map_positions(run, state, X))
    return [Column(s, schema.owned_path(run.config, s), v)
            for s, v in values.items()]


def _map_positions(run, state, X):
    """New points on the run's map, placed as the map placed the points it
    was not fit on: at the weighted mean of their nearest neighbours'."""
    ids = state.space.get("ids")
    by_id = dict(zip(*run.dataset.select(ids).values(
        ["id", run.fields["map"]])))
    known = [i for i, sid in enumerate(ids) if by_id.get(sid) is not None]
    points = np.asarray([by_id[ids[i]] for i in known], np.float64)
    return place_by_neighbours(state.space["X"][known], points, X)


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
                "at": datetime.datetime.now(datetime.timezone.utc)
                .replace(tzinfo=None).isoformat(),
                "assigner": assigner,
                "placed": len(emb.ids),
                "noise": int((labels < 0).sum()),
                "skipped": len(emb.skipped),
                "per_cluster": {str(c): int(n) for c, n in enumerate(counts)
                                if n},
            },
        },
    }
