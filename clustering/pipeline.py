"""The one clustering pipeline every entry point calls.

    samples -> embed -> (normalise) -> reduce -> cluster -> measure -> map
            -> record -> store

:func:`compute_clusters` is a short list of named stages. Everything is
validated before any work starts (:func:`make_plan`), computed in memory,
and stored in one journalled transaction at the end (:mod:`.store`).
"""

import logging
import time
from contextlib import contextmanager

import numpy as np

from ..embedders import get_embedder
from ..embedders.images import DECODE_MODES
from ..embedders.ray_executor import get_executor
from ..units import Param, ParamError
from . import fitted, record, runs
from .clusterers import get_clusterer
from .embeddings import (
    check_embeddings_field,
    get_embeddings,
    get_patch_embeddings,
    label_list_path,
)
from .geometry import measure, relabel_by_size
from .maps import check_map, map_points
from .noise import NOISE, assign_noise
from .quality import external_quality, internal_quality
from .presets import DEFAULT_PRESET, PRESETS
from .reducers import get_reducers, l2_normalize
from .store import Column

logger = logging.getLogger(__name__)

# How many skipped samples are listed one by one in the stored results.
MAX_SKIPPED_LISTED = 1000

SEED = Param("seed", "int", 51, "Random seed for every step that has one",
             min=0, max=2**32 - 1)
NUM_WORKERS = Param("num_workers", "int", None,
                    "Image decoding workers (default: one per core, at most "
                    "8)", min=1)
BATCH_SIZE = Param("batch_size", "int", None, "Images per embedding batch",
                   min=1)
DECODE = Param("decode", "choice", "auto",
               "Decode images in threads or worker processes (auto: "
               "processes on machines with 8 or more cores)",
               choices=DECODE_MODES)


class Plan:
    """A validated run, ready to compute."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


def resolve_units(embedder=None, reducer=None, method=None,
                  embeddings_field=None, normalize=None, preset=None,
                  **params):
    """The embedder, reducers, clusterer and normalisation a run uses: what
    the caller gives wins and the preset fills in the rest. The method's
    parameters come from the preset only when the method does too. With an
    ``embeddings_field`` and no ``embedder``, vectors are read from that
    field and no embedder runs."""
    name = preset or DEFAULT_PRESET
    if name not in PRESETS:
        raise ParamError(
            f"unknown preset {name!r}; available: {', '.join(PRESETS)}"
        )
    base = PRESETS[name]
    if embedder is None and embeddings_field is None:
        embedder = base["embedder"]
    embedder = get_embedder(embedder) if embedder is not None else None
    reducers = get_reducers(base["reducer"] if reducer is None else reducer)
    if method is None:
        method = base["method"]
        params = {**base["params"], **params}
    clusterer = get_clusterer(method, **params)
    if normalize is None:
        normalize = base["normalize"]
    return embedder, reducers, clusterer, bool(normalize)


def make_plan(samples, run_key, embedder=None, reducer=None, method=None,
              embeddings_field=None, normalize=None, seed=51, preset=None,
              patches_field=None, field_prefix=None, map="auto",
              overwrite=False, num_workers=None, batch_size=None,
              decode="auto", executor=None, noise=None, gt_field=None,
              ray_address=None, **params):
    """Validates every choice of a run against ``samples`` before any work;
    raises :class:`~image_clustering.ParamError` naming the first bad
    one."""
    dataset = samples._dataset
    seed = SEED.clean("compute_clusters", seed)
    num_workers = NUM_WORKERS.clean("compute_clusters", num_workers)
    batch_size = BATCH_SIZE.clean("compute_clusters", batch_size)
    decode = DECODE.clean("compute_clusters", decode)
    executor = get_executor(executor, ray_address)
    base = PRESETS.get(preset or DEFAULT_PRESET, {})
    if noise is None:
        # The preset's noise policy goes with the preset's method.
        noise = base.get("noise", "keep") if method is None else "keep"
    noise = NOISE.clean("compute_clusters", noise)
    embedder, reducers, clusterer, normalize = resolve_units(
        embedder, reducer, method, embeddings_field, normalize, preset,
        **params)
    if noise == "assign" and not clusterer.density:
        raise ParamError(
            f"noise: {clusterer.name} leaves no noise; 'assign' applies to "
            "hdbscan, dbscan and optics")
    record.validate_run_key(run_key)
    prefix = run_key if field_prefix is None else field_prefix
    record.validate_prefix(prefix)
    check_map(map)
    labels_path = None
    if patches_field:
        labels_path = label_list_path(samples, patches_field)
        count = samples.count(f"{labels_path}.id")
    else:
        embeddings_field = check_embeddings_field(samples, embedder,
                                                  embeddings_field)
        count = len(samples)
    truth_path = _truth_path(samples, gt_field, labels_path)
    suffixes = list(record.CLUSTERING_SUFFIXES)
    if map != "none":
        suffixes.append("map")
    if noise == "assign":
        suffixes.append("reassigned")
    names = record.field_names(prefix, suffixes, labels_path)
    expect = runs.check_new_run(dataset, run_key, list(names.values()),
                                overwrite)
    brain_key = record.map_key(run_key) if map != "none" else None
    runs.check_brain_key(dataset, run_key, brain_key)
    # Skipped images can only lower this count; checked again before fitting.
    clusterer.check_count(count)
    return Plan(
        samples=samples, key=run_key, embedder=embedder,
        embeddings_field=embeddings_field, normalize=normalize,
        reducers=reducers, clusterer=clusterer, seed=seed, preset=preset,
        patches_field=patches_field, labels_path=labels_path,
        prefix=prefix, map=map, brain_key=brain_key, expect=expect,
        num_workers=num_workers, batch_size=batch_size, decode=decode,
        executor=executor, noise=noise, gt_field=gt_field,
        truth_path=truth_path,
    )


def _truth_path(samples, gt_field, labels_path):
    """The path of the ground-truth labels to score the run against: a
    Classification field's labels, or, for objects, their own labels."""
    import fiftyone as fo

    if gt_field is None:
        return None
    if labels_path:
        if gt_field != "label":
            raise ParamError(
                "gt_field: an object run is scored against the objects' "
                "own labels; pass gt_field='label'")
        return f"{labels_path}.label"
    field = samples._dataset.get_field(gt_field)
    if field is None or getattr(field, "document_type", None) is not \
            fo.Classification:
        raise ParamError(
            f"gt_field '{gt_field}' must be a Classification field of "
            f"dataset '{samples._dataset.name}'")
    return f"{gt_field}.label"


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
    decode="auto",
    executor=None,
    noise=None,
    gt_field=None,
    ray_address=None,
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
        map: the 2-D map stored in the field ``<prefix>_map`` and shown in
            the App's Embeddings panel (brain key ``<run_key>_map``):
            ``auto`` (the clustered space when it is 2-D, else UMAP of it),
            ``umap``, ``tsne``, ``pca`` or ``none``
        overwrite: whether to replace an existing run of the same key; the
            old run stays intact until the new one is complete
        num_workers: image decoding workers
        batch_size: images per embedding batch
        decode: decode images in ``threads``, worker ``processes``, or
            ``auto`` (processes on machines with 8 or more cores)
        executor: what runs the embedding: ``"local"`` (the default),
            ``"ray"`` (a Ray Data job on ``ray_address``, see
            :mod:`~image_clustering.embedders.ray_executor`) or an executor
        ray_address: the Ray cluster with ``executor="ray"``
        noise: ``keep`` noise as −1, or ``assign`` it to the most probable
            cluster (marked in the ``reassigned`` field); by default the
            preset's with the preset's method (``assign``), else ``keep``
        gt_field: a Classification field to score the clusters against
            (ARI, AMI, purity, ...), stored with the run; for an object run,
            ``"label"`` (the objects' own labels)
        progress: ``True`` for a progress bar on stderr, or a callable
            ``progress(fraction, message)``
        **params: parameters of the clustering method

    Returns:
        a :class:`.results.ClusterRun`
    """
    started = time.time()
    plan = make_plan(
        samples, run_key, embedder=embedder, reducer=reducer, method=method,
        embeddings_field=embeddings_field, normalize=normalize, seed=seed,
        preset=preset, patches_field=patches_field,
        field_prefix=field_prefix, map=map, overwrite=overwrite,
        num_workers=num_workers, batch_size=batch_size, decode=decode,
        executor=executor, noise=noise, gt_field=gt_field,
        ray_address=ray_address, **params,
    )
    report = Reporter(progress)
    timings = Timings()
    with timings("embed"):
        emb = embed_stage(plan, report)
    with timings("reduce"):
        X, reductions = reduce_stage(emb.vectors, plan, report)
    with timings("cluster"):
        fit = cluster_stage(X, plan, report)
        moved = noise_stage(X, fit, plan)
    with timings("measure"):
        labels, mapping, geo, metrics = measure_stage(X, fit, plan)
        external = truth_stage(emb, labels, plan)
        state = fitted.dumps(fitted.capture(plan, fit, X, labels, mapping,
                                            emb.ids, plan.seed))
    with timings("map"):
        points, map_facts = map_stage(X, plan, report)
    timings.total = time.time() - started
    config, results, columns = record_stage(
        plan, emb, reductions, fit, labels, geo, metrics, points, map_facts,
        timings, moved, external)
    report(0.95, "writing fields")
    run = runs.write_run(
        samples, run_key, config, results, emb.ids, columns, plan.expect,
        owners=emb.owners, progress=lambda m: report(0.95, m),
        fitted=state,
    )
    report(1.0, "done")
    return run


# -- the stages --------------------------------------------------------------


def embed_stage(plan, report):
    """Vectors for every sample (or object) of the plan's collection."""
    return embed_samples(
        plan.samples, plan.embedder, plan.embeddings_field,
        plan.patches_field, report, num_workers=plan.num_workers,
        batch_size=plan.batch_size, executor=plan.executor,
        decode=plan.decode)


def embed_samples(samples, embedder, embeddings_field, patches_field, report,
                  share=0.7, minimum=2, **common):
    """Vectors for every sample (or object, with ``patches_field``) of
    ``samples``, computed (and cached) by ``embedder`` or read from
    ``embeddings_field``; progress fills ``[0, share]`` of the bar.
    Raises unless at least ``minimum`` rows have a vector."""
    verb = "embedded" if embedder is not None else "read"
    report(0.0, "embedding" if embedder is not None else "reading")
    last_percent = [-1]

    def embed_progress(done, total):
        # At most one update per percent: a delegated run stores each one.
        percent = 100 * done // max(total, 1)
        if percent != last_percent[0] or done == total:
            last_percent[0] = percent
            report(share * done / max(total, 1), f"{verb} {done} of {total}")

    if patches_field:
        emb = get_patch_embeddings(
            samples, patches_field, embedder=embedder,
            attribute=embeddings_field, progress=embed_progress, **common)
    else:
        emb = get_embeddings(samples, embedder=embedder,
                             field=embeddings_field, progress=embed_progress,
                             **common)
    if len(emb.ids) < minimum:
        raise ValueError(
            f"only {len(emb.ids)} of {len(emb.ids) + len(emb.skipped)} "
            "samples could be embedded; nothing to do"
            + _skip_summary(emb.skipped)
        )
    if emb.skipped:
        logger.warning("%d sample(s) skipped%s", len(emb.skipped),
                       _skip_summary(emb.skipped))
    return emb


def reduce_stage(X, plan, report):
    """The clustered space: normalised, then through each reducer."""
    if plan.normalize:
        X = l2_normalize(X)
    reductions = []
    share = 0.1 / max(len(plan.reducers), 1)
    for i, unit in enumerate(plan.reducers):
        start = 0.7 + share * i
        report(start, unit.label)
        X, facts = unit.fit_transform(
            X, plan.seed,
            progress=lambda f, m, s=start: report(s + share * f, m))
        reductions.append({**unit.spec(), "result": facts})
    return X, reductions


def cluster_stage(X, plan, report):
    report(0.8, f"clustering with {plan.clusterer.label}")
    plan.clusterer.check_count(len(X))
    return plan.clusterer.fit(
        X, plan.seed, progress=lambda f, m: report(0.8 + 0.05 * f, m))


def noise_stage(X, fit, plan):
    """With ``noise="assign"``, gives noise a cluster; returns the mask of
    the samples moved (``None`` when noise is kept)."""
    if plan.noise != "assign":
        return None
    fit.labels, moved = assign_noise(X, fit.labels, fit.model)
    return moved


def truth_stage(emb, labels, plan):
    """The clusters scored against ``gt_field``, or ``None``."""
    if plan.truth_path is None:
        return None
    truth = _truth_by_row(plan, emb)
    return external_quality(labels.tolist(), truth)


def _truth_by_row(plan, emb):
    if plan.labels_path:
        ids, truth = plan.samples.values(
            [f"{plan.labels_path}.id", plan.truth_path], unwind=True)
    else:
        ids, truth = plan.samples.values(["id", plan.truth_path])
    by_id = dict(zip(ids, truth))
    return [by_id.get(i) for i in emb.ids]


def measure_stage(X, fit, plan):
    labels, mapping = relabel_by_size(fit.labels)
    geo = measure(X, labels)
    metrics = internal_quality(X, labels, seed=plan.seed,
                               density=plan.clusterer.density,
                               stats=fit.stats)
    return labels, mapping, geo, metrics


def map_stage(X, plan, report):
    if plan.map == "none":
        return None, None
    report(0.85, "2-D map")
    return map_points(X, plan.map, plan.seed,
                      progress=lambda f, m: report(0.85 + 0.1 * f, m))


def record_stage(plan, emb, reductions, fit, labels, geo, metrics, points,
                 map_facts, timings, moved=None, external=None):
    """The run's config, results and per-sample columns."""
    values = {"cluster": labels, "dist": geo.dist, "sim": geo.sim,
              "size": geo.size}
    if moved is not None:
        values["reassigned"] = moved
    if fit.prob is not None:
        values["prob"] = fit.prob
    if fit.outlier is not None:
        values["outlier"] = fit.outlier
    if points is not None:
        values["map"] = list(np.asarray(points, dtype=np.float64))
    names = record.field_names(plan.prefix, values, plan.labels_path)
    columns = [Column(s, names[s], v) for s, v in values.items()]
    config = {
        "kind": record.RUN_KIND,
        "record_version": record.RECORD_VERSION,
        "run_id": record.new_run_id(),
        "plugin_version": plugin_version(),
        "method": plan.clusterer.name,
        "params": plan.clusterer.params,
        "embedder": plan.embedder.spec() if plan.embedder else None,
        "embeddings_field": emb.field,
        "fingerprint": emb.source["fingerprint"],
        "normalize": plan.normalize,
        "reducers": [r.spec() for r in plan.reducers],
        "seed": plan.seed,
        "preset": plan.preset,
        "noise": plan.noise,
        "gt_field": plan.gt_field,
        "fields": names,
        "patches": {"field": plan.patches_field, "path": plan.labels_path}
        if plan.patches_field else None,
        "map": {"method": plan.map, "brain_key": plan.brain_key,
                "layout": map_facts}
        if points is not None else None,
        "libraries": library_versions(),
    }
    results = {
        "clusters": _cluster_summaries(geo),
        "metrics": plain(metrics),
        "reductions": plain(reductions),
        "embedding": {
            "dims": int(emb.vectors.shape[1]),
            "computed": emb.computed,
            "reused": emb.reused,
        },
        "timings": timings.as_dict(),
        "skipped": skipped_summary(emb),
        "sweep": fit.sweep,
        "external": plain(external),
        "reassigned": int(moved.sum()) if moved is not None else None,
    }
    return config, results, columns


def _cluster_summaries(geo):
    mean_dist = geo.mean_dist()
    return [
        {
            "id": c,
            "size": int(geo.sizes[c]),
            "mean_dist": float(mean_dist[c]),
            "centre": [float(v) for v in geo.centres[c]],
        }
        for c in range(geo.n_clusters)
    ]


def skipped_summary(emb):
    listed = list(emb.skipped.items())[:MAX_SKIPPED_LISTED]
    return {
        "count": len(emb.skipped),
        "by_reason": _count_reasons(emb.skipped),
        "samples": [
            {"id": sid, "filepath": emb.skipped_paths.get(sid), "reason": r}
            for sid, r in listed
        ],
    }


# -- small helpers -------------------------------------------------------------


class Reporter:
    """Forwards ``(fraction, message)`` to the caller's progress callback
    (``True`` draws a bar on stderr); the fraction never moves back."""

    def __init__(self, callback):
        if callback is True:
            from .progress import ProgressBar

            callback = ProgressBar()
        self.callback = callback or None
        self.last = 0.0

    def __call__(self, fraction, message):
        self.last = min(max(fraction, self.last), 1.0)
        if self.callback is not None:
            self.callback(self.last, message)


class Timings:
    """Seconds per named stage."""

    def __init__(self):
        self.seconds = {}
        self.total = None

    @contextmanager
    def __call__(self, name):
        t = time.time()
        yield
        self.seconds[name] = time.time() - t

    def as_dict(self):
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        if self.total is not None:
            out["total"] = round(self.total, 3)
        return out


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


def plain(obj):
    """Converts numpy scalars and arrays inside ``obj`` to plain JSON."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def library_versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("fiftyone", "numpy", "scikit-learn", "umap-learn", "hdbscan",
                 "Pillow", "torch", "transformers", "faiss-cpu"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def plugin_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fiftyone-image-clustering")
    except PackageNotFoundError:
        return None
