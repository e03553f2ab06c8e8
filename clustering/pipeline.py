"""The one clustering pipeline every entry point calls.

    samples -> embed -> (normalise) -> reduce -> cluster -> measure -> store

Everything is validated before any work starts, computed in memory, and
written in one atomic step at the end (see :mod:`.runs`).
"""

import logging
import time

import numpy as np

from ..embedders import get_embedder
from ..embedders.params import ParamError
from . import app, runs
from .clusterers import get_clusterer
from .embeddings import (
    check_embeddings_field,
    get_embeddings,
    get_patch_embeddings,
    label_list_path,
)
from .geometry import measure, relabel_by_size
from .metrics import compute_metrics
from .presets import DEFAULT_PRESET, PRESETS
from .reducers import get_reducers, l2_normalize

logger = logging.getLogger(__name__)

# How many skipped samples are listed one by one in the stored results.
MAX_SKIPPED_LISTED = 1000


class Plan:
    """A validated pipeline, ready to run."""

    def __init__(
        self,
        embedder,
        embeddings_field,
        normalize,
        reducers,
        clusterer,
        seed,
    ):
        self.embedder = embedder
        self.embeddings_field = embeddings_field
        self.normalize = normalize
        self.reducers = reducers
        self.clusterer = clusterer
        self.seed = seed


def plan(
    embedder=None,
    reducer=None,
    method=None,
    embeddings_field=None,
    normalize=None,
    seed=51,
    preset=None,
    **params,
):
    """Resolves a preset and the caller's choices into validated units.

    What the caller gives wins; the preset fills in the rest. The method's
    parameters come from the preset only when the method does too. With an
    ``embeddings_field`` and no ``embedder``, vectors are read from that
    field and no embedder runs.
    """
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise ParamError(
            f"unknown preset {name!r}; available: {', '.join(PRESETS)}"
        )
    base = PRESETS[name]

    if embedder is None and embeddings_field is None:
        embedder = base["embedder"]
    embedder = get_embedder(embedder) if embedder is not None else None

    if reducer is None:
        reducer = base["reducer"]
    reducers = get_reducers(reducer)

    if method is None:
        method = base["method"]
        params = {**base["params"], **params}
    clusterer = get_clusterer(method, **params)

    if normalize is None:
        normalize = base["normalize"]
    return Plan(
        embedder, embeddings_field, bool(normalize), reducers, clusterer, seed
    )


def compute_clusters(
    samples,
    run_key,
    embedder=None,
    reducer=None,
    method=None,
    embeddings_field=None,
    normalize=None,
    seed=51,
    preset=None,
    patches_field=None,
    field_prefix=None,
    map="auto",
    overwrite=False,
    num_workers=None,
    batch_size=None,
    progress=None,
    **params,
):
    """Clusters the images of ``samples`` and stores the result as a run.

    Args:
        samples: a FiftyOne dataset or view
        run_key: the key of the run (a Python identifier)
        embedder: an embedder name (``"pixels"``), a
            ``{"name": ..., **params}`` dict or an embedder instance; by
            default the preset's
        reducer: ``"none"``, a reducer name, ``{"name": ..., **params}``, or a
            list of those applied in order (``["pca", "umap"]``); by default
            the preset's
        method: the clustering method (``"kmeans"``, ``"hdbscan"``, ...); by
            default the preset's, with the preset's parameters
        embeddings_field: with no ``embedder``, an existing vector field to
            cluster (no model is loaded); with one, where to cache its
            vectors (default: named after the embedder)
        normalize: whether to L2-normalise embeddings before reducing
        seed: random seed for every step that has one
        preset: named defaults (see :data:`.presets.PRESETS`)
        patches_field: a Detections (or Detection) field: cluster its
            objects instead of whole images. Each box is cut out and
            embedded, and the run's fields are written on each object
            (``<patches_field>.detections.<run_key>_cluster``, ...). With
            no ``embedder``, ``embeddings_field`` names a label attribute
            holding each object's vector
        field_prefix: prefix of the fields written (default: ``run_key``)
        map: the 2-D map stored for the App's Embeddings panel (brain key
            ``<run_key>_map``): ``auto`` (the clustered space when it is 2-D,
            else UMAP of it), ``umap``, ``tsne``, ``pca`` or ``none``
        overwrite: whether to replace an existing run of the same key; the
            old run stays intact until the new one is complete
        num_workers: image decoding threads
        batch_size: images per embedding batch
        progress: ``True`` for a progress bar on stderr, or a callable
            ``progress(fraction, message)``
        **params: parameters of the clustering method

    Returns:
        a :class:`.runs.ClusterRun`
    """
    started = time.time()
    dataset = samples._dataset
    p = plan(
        embedder=embedder,
        reducer=reducer,
        method=method,
        embeddings_field=embeddings_field,
        normalize=normalize,
        seed=seed,
        preset=preset,
        **params,
    )
    runs.validate_run_key(dataset, run_key, overwrite=overwrite)
    prefix = field_prefix or run_key
    if not prefix.isidentifier():
        raise ParamError(f"field_prefix {prefix!r} must be an identifier")
    labels_path = None
    if patches_field:
        labels_path = label_list_path(samples, patches_field)
        prefix = f"{labels_path}.{prefix}"
    else:
        check_embeddings_field(samples, p.embedder, p.embeddings_field)
    suffixes = ["cluster", "dist", "sim", "size", "prob", "outlier"]
    runs.validate_field_names(
        dataset, run_key, runs.field_names(prefix, suffixes), overwrite
    )
    app.check_map(map)
    # Skipped images can only lower this count; checked again before fitting.
    p.clusterer.check_count(
        samples.count(f"{labels_path}.id") if labels_path else len(samples)
    )
    map_key = f"{run_key}_map" if map != "none" else None
    runs.validate_brain_key(dataset, run_key, map_key, overwrite)
    if progress is True:
        from .progress import ProgressBar

        progress = ProgressBar()
    report = _Reporter(progress or None)

    timings = {}
    t = time.time()
    report(0.0, "embedding")
    last_percent = [-1]

    def embed_progress(done, total):
        # At most one update per percent: a delegated run stores each one.
        percent = 100 * done // max(total, 1)
        if percent != last_percent[0] or done == total:
            last_percent[0] = percent
            report(0.7 * done / max(total, 1), f"embedded {done} of {total}")

    if patches_field:
        emb = get_patch_embeddings(
            samples,
            patches_field,
            embedder=p.embedder,
            attribute=p.embeddings_field,
            num_workers=num_workers,
            batch_size=batch_size,
            progress=embed_progress,
        )
    else:
        emb = get_embeddings(
            samples,
            embedder=p.embedder,
            field=p.embeddings_field,
            num_workers=num_workers,
            batch_size=batch_size,
            progress=embed_progress,
        )
    timings["embed"] = time.time() - t
    if len(emb.ids) < 2:
        raise ValueError(
            f"only {len(emb.ids)} of {len(emb.ids) + len(emb.skipped)} "
            "samples could be embedded; nothing to cluster"
            + _skip_summary(emb.skipped)
        )
    if emb.skipped:
        logger.warning(
            "%d sample(s) skipped%s",
            len(emb.skipped),
            _skip_summary(emb.skipped),
        )

    X = emb.vectors
    if p.normalize:
        X = l2_normalize(X)
    reductions = []
    t = time.time()
    for i, reducer_unit in enumerate(p.reducers):
        report(0.7 + 0.1 * i / len(p.reducers), f"{reducer_unit.label}")
        X, facts = reducer_unit.fit_transform(X, p.seed)
        reductions.append({**reducer_unit.spec(), "result": facts})
    timings["reduce"] = time.time() - t

    t = time.time()
    report(0.8, f"clustering with {p.clusterer.label}")
    p.clusterer.check_count(len(X))
    fit = p.clusterer.fit(X, p.seed)
    timings["cluster"] = time.time() - t

    t = time.time()
    labels, _ = relabel_by_size(fit.labels)
    geo = measure(X, labels)
    metrics = compute_metrics(X, labels, seed=p.seed, stats=fit.stats)
    timings["measure"] = time.time() - t

    t = time.time()
    points = None
    if map_key is not None:
        report(0.85, "2-D map")
        points = app.map_points(X, map, p.seed)
    if points is None:
        map_key = None
    timings["map"] = time.time() - t

    columns = {
        "cluster": labels,
        "dist": geo.dist,
        "sim": geo.sim,
        "size": geo.size,
    }
    if fit.prob is not None:
        columns["prob"] = fit.prob
    if fit.outlier is not None:
        columns["outlier"] = fit.outlier
    values = {
        suffix: _by_id(emb.ids, array) for suffix, array in columns.items()
    }
    names = runs.field_names(prefix, columns)

    config = {
        "kind": runs.RUN_KIND,
        "plugin_version": _plugin_version(),
        "method": p.clusterer.name,
        "params": p.clusterer.params,
        "embedder": p.embedder.spec() if p.embedder else None,
        "embeddings_field": emb.field,
        "fingerprint": emb.source["fingerprint"],
        "normalize": p.normalize,
        "reducers": [r.spec() for r in p.reducers],
        "seed": p.seed,
        "preset": preset,
        "fields": names,
        "patches": {"field": patches_field, "path": labels_path}
        if patches_field else None,
        "map": {"method": map, "brain_key": map_key} if map_key else None,
        "libraries": _library_versions(),
    }
    mean_dist = geo.mean_dist()
    skipped_paths = (
        emb.skipped_paths if patches_field
        else _paths_of(samples, list(emb.skipped)[:MAX_SKIPPED_LISTED])
    )
    timings["total"] = time.time() - started
    results = {
        "clusters": [
            {
                "id": c,
                "size": int(geo.sizes[c]),
                "mean_dist": float(mean_dist[c]),
                "centre": [float(v) for v in geo.centres[c]],
            }
            for c in range(geo.n_clusters)
        ],
        "metrics": _plain(metrics),
        "reductions": _plain(reductions),
        "embedding": {
            "dims": int(emb.vectors.shape[1]),
            "computed": emb.computed,
            "reused": max(0, len(emb.ids) - emb.computed),
        },
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "skipped": {
            "count": len(emb.skipped),
            "by_reason": _count_reasons(emb.skipped),
            "samples": [
                {"id": sid, "filepath": skipped_paths.get(sid), "reason": r}
                for sid, r in list(emb.skipped.items())[:MAX_SKIPPED_LISTED]
            ],
        },
    }

    report(0.95, "writing fields")
    runs.write_run(
        samples,
        run_key,
        config,
        results,
        values,
        map_points=(emb.ids, points, list(emb.skipped)) if map_key else None,
    )
    report(1.0, "done")
    return runs.load_run(samples, run_key)


class _Reporter:
    def __init__(self, callback):
        self.callback = callback

    def __call__(self, fraction, message):
        if self.callback is not None:
            self.callback(min(max(fraction, 0.0), 1.0), message)


def _by_id(ids, array):
    out = {}
    for sid, v in zip(ids, array.tolist()):
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        out[sid] = v
    return out


def _paths_of(samples, ids):
    if not ids:
        return {}
    from fiftyone import ViewField as F
    from bson import ObjectId

    view = samples._dataset.match(
        F("_id").is_in([ObjectId(i) for i in ids])
    )
    return dict(zip(*view.values(["id", "filepath"])))


def _count_reasons(skipped):
    counts = {}
    for reason in skipped.values():
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _skip_summary(skipped):
    if not skipped:
        return ""
    parts = [f"{n} × {r}" for r, n in _count_reasons(skipped).items()]
    return ": " + "; ".join(parts)


def _plain(obj):
    """Converts numpy scalars and arrays inside ``obj`` to plain JSON."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _library_versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "fiftyone",
        "numpy",
        "scikit-learn",
        "umap-learn",
        "hdbscan",
        "Pillow",
        "torch",
        "transformers",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _plugin_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fiftyone-image-clustering")
    except PackageNotFoundError:
        return None
