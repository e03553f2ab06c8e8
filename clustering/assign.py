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
assigner calls noise goes to the nearest cluster centre instead.

A sample is placed at every layer of the run's tree: the assigner gives
its finest cluster, and its clusters above follow. In a hierarchy, a
sample farther from its finest cluster's centre than one and a half times
the farthest of that cluster's own members (:data:`~.hierarchy.FIT_MARGIN`)
*does not fit*: it gets cluster −1 and ``misfit=True`` rather than being
forced in.

The samples get the same fields as the run's own, plus ``assigned=True``.
The run's cluster sizes and statistics stay those of the fit; its results
count how many samples were assigned since.
"""

import datetime

import numpy as np

from ..algorithms import fitted
from ..algorithms.fitted import ASSIGNER
from ..algorithms.geometry import distances_to, farthest_by_label
from ..algorithms.kmeans import nearest
from ..algorithms.neighbors import place_by_neighbours
from ..embedders import get_embedder
from ..storage import schema
from ..storage.transaction import Column
from ..support import Reporter
from ..units import ParamError
from . import hierarchy
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
    emb = embed_for_run(todo, run, embedder, num_workers, batch_size,
                 lambda done, total: report(0.6 * done / max(total, 1),
                                            f"embedded {done} of {total}"))
    report(0.6, "placing through the run's fitted stages")
    X = state.transform(emb.vectors)
    leaf, prob = state.predict(X, assigner)
    if run.config.get("noise") == "assign":
        leaf = _without_noise(run, X, leaf)
    misfit = _misfits(run, state, X, leaf)
    leaf = np.where(misfit, -1, leaf)
    leaf, misfit = _into_misfit_clusters(run, X, leaf, misfit)
    report(0.8, "measuring")
    placed = Placed(run, X, leaf, prob, misfit)
    columns = _fields_to_write(run, state, placed)
    results = _updated_results(samples, run, emb, placed, assigner)
    report(0.9, "writing fields")
    updated = run.amend(emb.ids, columns, results,
                        progress=lambda m: report(0.9, m),
                        attachments=_layers_with(run, emb.ids, placed))
    report(1.0, "done")
    return updated


class Placed:
    """New samples placed into a run: each one's finest cluster (``leaf``),
    its cluster in the current cut (``labels``), and the geometry of both
    in the clustered space."""

    def __init__(self, run, X, leaf, prob, misfit):
        self.tree = run.tree
        self.records = hierarchy.node_records_of(run)
        self.X = X
        self.leaf = leaf
        self.prob = prob
        self.misfit = misfit
        self.labels = self.tree.labels(leaf, run.cut)
        self.centres = node_centres(self.records, self.tree.n_nodes,
                                    X.shape[1])

    def layer_labels(self, layer):
        return self.tree.labels(self.leaf, self.tree.layers[layer])


def node_centres(records, n_nodes, dims):
    """The centre of every node, one row per node id."""
    centres = np.zeros((max(n_nodes, 1), dims))
    for node, record in records.items():
        if node >= 0:
            centres[node] = record["centre"]
    return centres


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


def embed_for_run(samples, run, embedder, num_workers, batch_size,
                  progress):
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


def _without_noise(run, X, leaf):
    """``leaf`` with each −1 replaced by the nearest finest cluster."""
    noise = leaf < 0
    leaves = run.tree.layers[0]
    if not noise.any() or not len(leaves):
        return leaf
    records = hierarchy.node_records_of(run)
    leaf = leaf.copy()
    index, _ = nearest(X[noise], np.asarray(
        [records[int(n)]["centre"] for n in leaves], np.float32))
    leaf[noise] = leaves[index]
    return leaf


def _misfits(run, state, X, leaf):
    """Whether each sample lies farther from its finest cluster's centre
    than that cluster's members do. Only a hierarchy marks misfits: a flat
    run's own assigner and noise policy decide, as they did at its fit."""
    if not run.results.get("hierarchy"):
        return np.zeros(len(leaf), dtype=bool)
    records = hierarchy.node_records_of(run)
    limits = fit_distances(run, state, records)
    centres = node_centres(records, run.tree.n_nodes, X.shape[1])
    dist, _ = distances_to(X, leaf, centres)
    limit = np.array([limits.get(int(c), np.inf) for c in leaf])
    return (leaf >= 0) & (dist > hierarchy.FIT_MARGIN * limit)


def _into_misfit_clusters(run, X, leaf, misfit):
    """``(leaf, misfit)`` with each misfit that fits a cluster made of
    earlier misfits (:mod:`.misfits`; the fitted stages do not know them)
    placed into it."""
    records = hierarchy.node_records_of(run)
    made = [n for n, r in records.items() if r.get("from_misfits")]
    if not made or not misfit.any():
        return leaf, misfit
    centres = np.asarray([records[n]["centre"] for n in made], np.float32)
    index, dist = nearest(X[misfit], centres)
    limit = np.array([hierarchy.FIT_MARGIN * records[made[i]]["fit_dist"]
                      for i in index])
    fits = np.sqrt(np.maximum(dist, 0)) <= limit
    rows = np.flatnonzero(misfit)[fits]
    leaf, misfit = leaf.copy(), misfit.copy()
    leaf[rows] = np.asarray(made)[index[fits]]
    misfit[rows] = False
    return leaf, misfit


def fit_distances(run, state, records):
    """Finest cluster -> the distance of its farthest member: kept with a
    hierarchy's nodes, measured on the fitted sample of the clustered space
    for a flat run."""
    if run.results.get("hierarchy"):
        return {n: r["fit_dist"] for n, r in records.items()}
    X, labels = state.space["X"], state.space["labels"]
    k = run.tree.n_nodes
    centres = node_centres(records, k, X.shape[1])
    dist, _ = distances_to(X, labels, centres)
    farthest = farthest_by_label(dist, labels, k)
    return {int(c): float(farthest[c]) for c in np.unique(labels[labels >= 0])}


def _fields_to_write(run, state, placed):
    labels = placed.labels
    dist, sim = distances_to(placed.X, labels, placed.centres)
    sizes = {c["id"]: c["size"] for c in run.clusters}
    size = np.array([sizes.get(int(c), run.metrics["n_noise"])
                     for c in labels], dtype=np.int64)
    values = {"cluster": labels, "dist": dist, "sim": sim, "size": size,
              "assigned": np.ones(len(labels), dtype=bool)}
    if placed.prob is not None and "prob" in run.fields:
        values["prob"] = placed.prob
    if "map" in run.fields:
        values["map"] = list(_map_positions(run, state, placed.X))
    if run.results.get("hierarchy"):
        values["misfit"] = placed.misfit
        for i in range(placed.tree.n_layers):
            values[schema.layer_suffix(i)] = placed.layer_labels(i)
    return [Column(s, schema.owned_path(run.config, s), v)
            for s, v in values.items()]


def _layers_with(run, ids, placed):
    """A hierarchy's ``layers`` attachment with the new samples in it (so
    that moving the cut moves them too); ``None`` for a flat run."""
    if not run.results.get("hierarchy"):
        return None
    data = hierarchy.read_layers_attachment(run.attachment("layers"))
    known = {sid: i for i, sid in enumerate(data["ids"].tolist())}
    dist = np.full((len(ids), placed.tree.n_layers), np.nan, np.float32)
    sim = np.full_like(dist, np.nan)
    for i in range(placed.tree.n_layers):
        dist[:, i], sim[:, i] = distances_to(
            placed.X, placed.layer_labels(i), placed.centres)
    rows = np.array([known.get(sid, -1) for sid in ids])
    again, new = rows >= 0, rows < 0
    for name, values in (("leaf", placed.leaf), ("dist", dist),
                         ("sim", sim)):
        data[name] = data[name].copy()
        data[name][rows[again]] = values[again].astype(data[name].dtype)
        data[name] = np.concatenate([data[name],
                                     values[new].astype(data[name].dtype)])
    data["assigned"] = np.concatenate([data["assigned"],
                                       np.ones(int(new.sum()), bool)])
    data["ids"] = np.concatenate([data["ids"],
                                  np.asarray(ids, "U24")[new]])
    return {"layers": hierarchy.write_layers(data)}


def _map_positions(run, state, X):
    """New points on the run's map, placed as the map placed the points it
    was not fit on: at the weighted mean of their nearest neighbours'."""
    ids = state.space.get("ids")
    by_id = dict(zip(*run.dataset.select(ids).values(
        ["id", run.fields["map"]])))
    known = [i for i, sid in enumerate(ids) if by_id.get(sid) is not None]
    points = np.asarray([by_id[ids[i]] for i in known], np.float64)
    return place_by_neighbours(state.space["X"][known], points, X)


def _updated_results(samples, run, emb, placed, assigner):
    labels = placed.labels
    af = run.fields.get("assigned")
    before = set()
    if af is not None and samples._dataset.get_field(af) is not None:
        before = set(samples._dataset.exists(af).values("id"))
    ever = before | set(emb.ids)
    found, counts = np.unique(labels[labels >= 0], return_counts=True)
    return {
        **run.results,
        "assigned": {
            "count": len(ever),
            "last": {
                "at": datetime.datetime.now(datetime.timezone.utc)
                .replace(tzinfo=None).isoformat(),
                "assigner": assigner,
                "placed": len(emb.ids),
                "noise": int(((labels < 0) & ~placed.misfit).sum()),
                "misfits": int(placed.misfit.sum()),
                "skipped": len(emb.skipped),
                "per_cluster": {str(c): int(n)
                                for c, n in zip(found, counts)},
            },
        },
    }
