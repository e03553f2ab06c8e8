"""The one clustering pipeline every entry point calls.

    samples -> embed -> (normalise) -> reduce -> cluster -> noise
            -> measure -> map -> record -> store

:func:`compute_clusters` resolves the request (:mod:`.request`), checks it
against the dataset before any work (:func:`plan_run`), and runs a short
list of named stages; everything is computed in memory and stored in one
journalled transaction at the end.
"""

import numpy as np

from ..algorithms import fitted
from ..algorithms.geometry import measure
from ..algorithms.layout2d import map_points
from ..algorithms.noise import place_noise
from ..algorithms.quality import external_quality, internal_quality
from ..algorithms.reducers import l2_normalize
from ..embedders.executors import get_executor
from ..storage import runs as stored_runs
from ..storage import schema
from ..storage.transaction import Column
from ..support import Reporter, Timings, library_versions, plugin_version
from ..support import to_json
from ..units import ParamError
from . import api, carry, hierarchy, presentation
from .embed import (
    check_embeddings_field,
    embed_samples,
    label_list_path,
    skipped_summary,
)
from .request import resolve_request


class RunPlan:
    """A request checked against its dataset: where its vectors come from
    and what it will write."""

    def __init__(self, **values):
        self.__dict__.update(values)


def plan_run(samples, run_key, spec):
    """Checks ``spec`` against ``samples`` before any work: the run key,
    the fields it would write, the vectors it would read, the ground truth
    and the number of samples. Returns a :class:`RunPlan`."""
    dataset = samples._dataset
    schema.validate_run_key(run_key)
    prefix = spec.field_prefix or run_key
    labels_path = None
    embeddings_field = spec.embeddings_field
    if spec.patches_field:
        labels_path = label_list_path(samples, spec.patches_field)
        count = samples.count(f"{labels_path}.id")
    else:
        embeddings_field = check_embeddings_field(samples, spec.embedder,
                                                  embeddings_field)
        count = len(samples)
    truth_path = _truth_path(samples, spec.gt_field, labels_path)
    suffixes = list(schema.CLUSTERING_SUFFIXES)
    if spec.map != "none":
        suffixes.append("map")
    if spec.noise_share is not None:
        suffixes.append("reassigned")
    carry_from = _carry_source(dataset, run_key, spec)
    if carry_from:
        suffixes += ["label", "group"]
    names = schema.field_names(prefix, suffixes, labels_path)
    expect = stored_runs.check_new_run(dataset, run_key, list(names.values()),
                                       spec.overwrite, schema.RUN_KIND)
    brain_key = schema.map_key(run_key) if spec.map != "none" else None
    presentation.check_brain_key(dataset, run_key, brain_key)
    # Skipped images can only lower this count; checked again before fitting.
    spec.clusterer.check_count(count)
    return RunPlan(samples=samples, key=run_key, spec=spec, prefix=prefix,
                   labels_path=labels_path, embeddings_field=embeddings_field,
                   truth_path=truth_path, brain_key=brain_key, expect=expect,
                   carry_from=carry_from,
                   executor=get_executor(spec.executor, spec.ray_address))


def _carry_source(dataset, run_key, spec):
    """The run whose decisions the new run takes: the one asked for, else
    the one it overwrites."""
    runs = stored_runs.records_of(dataset, (schema.RUN_KIND,))
    if spec.carry_from is not None:
        if spec.carry_from not in runs:
            raise ParamError(
                f"carry_from: dataset '{dataset.name}' has no clustering run "
                f"'{spec.carry_from}'", "carry_from")
        return spec.carry_from
    return run_key if spec.overwrite and run_key in runs else None


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
                "own labels; give 'label'", "gt_field", "label")
        return f"{labels_path}.label"
    field = samples._dataset.get_field(gt_field)
    if field is None or getattr(field, "document_type", None) is not \
            fo.Classification:
        raise ParamError(
            f"gt_field '{gt_field}' must be a Classification field of "
            f"dataset '{samples._dataset.name}'", "gt_field")
    return f"{gt_field}.label"


def compute_clusters(samples, run_key, progress=None, **request):
    """Clusters the images of ``samples`` and stores the result as a run.

    Args:
        samples: a FiftyOne dataset or view
        run_key: the key of the run (a Python identifier)
        progress: ``True`` for a progress bar on stderr, or a callable
            ``progress(fraction, message)``
        **request: the choices of the run, resolved by
            :func:`.request.resolve_request`:

            - ``preset``: named defaults (see :data:`.presets.PRESETS`)
            - ``embedder``: a name (``"pixels"``), a ``{"name": ...,
              **params}`` dict or an embedder; by default the preset's
            - ``embeddings_field``: with no embedder, an existing vector
              field to cluster (no model is loaded); with one, where its
              vectors are cached (default: named after the embedder)
            - ``normalize``: L2-normalise embeddings before reducing (by
              default the embedder's own choice)
            - ``reducer``: ``"none"``, a name, ``{"name": ..., **params}``,
              or a list of those applied in order (``"pca+umap"``)
            - ``method`` and its parameters as keywords
              (``method="kmeans", n_clusters=12``; ``"auto"`` chooses k)
            - ``noise``: ``keep`` or ``assign`` (noise placed in its most
              probable cluster, marked in ``reassigned``); ``max_noise``:
              the largest share left as noise
            - ``seed``, ``map`` (``auto``, ``umap``, ``tsne``, ``pca``,
              ``none``), ``gt_field``, ``patches_field`` (cluster the
              objects of a Detections field), ``field_prefix``,
              ``overwrite``
            - ``num_workers``, ``batch_size``, ``decode``: image decoding
            - ``executor`` (``local`` or ``ray``) and ``ray_address``

    Returns:
        a :class:`.results.ClusterRun`
    """
    spec = resolve_request(**request)
    plan = plan_run(samples, run_key, spec)
    return run_plan(plan, progress)


def run_plan(plan, progress=None):
    """Computes and stores a planned run; returns the
    :class:`.results.ClusterRun`."""
    spec = plan.spec
    report = Reporter(progress)
    timings = Timings()
    with timings("embed"):
        emb = embed_stage(plan, report)
    bar = stage_spans(spec, report.last)
    with timings("reduce"):
        X, reductions = reduce_stage(emb.vectors, spec, report, *bar["reduce"])
    with timings("cluster"):
        clusterer = cluster_stage(X, spec, report, *bar["cluster"])
        labels, moved = noise_stage(X, clusterer, spec)
    with timings("measure"):
        hier = hierarchy.build(labels, clusterer)
        labels, geo, metrics = measure_stage(X, hier, clusterer, spec)
        nodes = hierarchy.measure_nodes(X, hier) if hier.layered else None
        external = truth_stage(emb, labels, plan)
        attachments = {"fitted": fitted.dumps(fitted.capture(
            spec.normalize, spec.reducers, clusterer, X, hier.leaf,
            hier.mapping, emb.ids, spec.seed))}
        if nodes is not None:
            attachments["layers"] = hierarchy.layers_attachment(
                emb.ids, hier, nodes, X, spec.seed)
    with timings("map"):
        points, map_facts = map_stage(X, spec, report, *bar["map"])
    timings.finish()
    config, results, columns = record_stage(
        plan, emb, reductions, clusterer, labels, moved, geo, metrics,
        external, points, map_facts, timings)
    if nodes is not None:
        results["hierarchy"] = hierarchy.record(hier, nodes)
        columns += layer_columns(plan, hier)
    if plan.carry_from:
        results, carried = carry_stage(plan, emb.ids, hier, results)
        columns += carried
    config["fields"].update({c.suffix: c.path for c in columns})
    start = bar["write"][0]
    report(start, "writing fields")
    run = api.store_run(plan, config, results, emb, columns, attachments,
                        progress=lambda m: report(start, m))
    report(1.0, "done")
    return run


# What each stage after embedding costs, roughly, in units of one
# clustering: UMAP and t-SNE lay out points for hundreds of epochs, PCA is
# one decomposition. The bar's rest is shared in these proportions, so
# that it moves evenly whether or not the embeddings were cached.
STAGE_COST = {"umap": 4.0, "tsne": 4.0, "pca": 0.5}
MAP_COST = {"auto": 3.0, "umap": 3.0, "tsne": 3.0, "pca": 0.3, "none": 0.0}


def stage_spans(spec, start):
    """``{stage: (start, stop)}``: the part of the progress bar each stage
    after embedding fills, from ``start`` (where embedding left it) to the
    end."""
    costs = {
        "reduce": sum(STAGE_COST.get(u.name, 1.0) for u in spec.reducers),
        "cluster": 1.0,
        "map": MAP_COST.get(spec.map, 3.0),
        "write": 1.0,
    }
    total = sum(costs.values())
    spans, at = {}, start
    for stage, cost in costs.items():
        stop = at + (1.0 - start) * cost / total
        spans[stage] = (at, stop)
        at = stop
    return spans


# -- the stages --------------------------------------------------------------


def embed_stage(plan, report):
    """Vectors for every sample (or object) of the plan's collection."""
    spec = plan.spec
    return embed_samples(
        plan.samples, spec.embedder, plan.embeddings_field,
        spec.patches_field, report, num_workers=spec.num_workers,
        batch_size=spec.batch_size, executor=plan.executor,
        decode=spec.decode)


def reduce_stage(X, spec, report, start, stop):
    """The clustered space: normalised, then through each reducer, each
    filling its share of ``[start, stop]`` of the bar."""
    if spec.normalize:
        X = l2_normalize(X)
    reductions = []
    costs = [STAGE_COST.get(u.name, 1.0) for u in spec.reducers]
    at = start
    for unit, cost in zip(spec.reducers, costs):
        end = at + (stop - start) * cost / sum(costs)
        report(at, unit.label)
        X = unit.fit_transform(X, progress=report.part(at, end))
        reductions.append({**unit.spec(), "result": unit.facts_})
        at = end
    return X, reductions


def cluster_stage(X, spec, report, start, stop):
    report(start, f"clustering with {spec.clusterer.label}")
    spec.clusterer.check_count(len(X))
    return spec.clusterer.fit(X, progress=report.part(start, stop))


def noise_stage(X, clusterer, spec):
    """``(labels, moved)``: the method's labels, with noise placed as the
    request says; ``moved`` marks the samples placed (``None`` when noise
    is left as the method left it)."""
    share = spec.noise_share
    if share is None:
        return np.asarray(clusterer.labels_, dtype=np.int64), None
    return place_noise(X, clusterer, share)


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


def measure_stage(X, hier, clusterer, spec):
    """The cut's labels (tree node ids), its geometry and its quality."""
    labels = hier.labels()
    geo = measure(X, labels)
    metrics = internal_quality(X, labels, seed=spec.seed,
                               density=clusterer.density,
                               stats=clusterer.stats_, geometry=geo)
    return labels, geo, metrics


def carry_stage(plan, ids, hier, results):
    """``(results, columns)``: the new run's results and its ``label`` and
    ``group`` columns with the decisions of ``plan.carry_from`` carried
    onto its clusters (:mod:`.carry`)."""
    try:
        old_run = api.load_run(plan.samples, plan.carry_from)
    except api.RunNotFound:  # deleted while this run was computed
        return results, []
    # Where there is nothing to carry, its members are not read.
    if not carry.holds_decisions(old_run):
        return results, []
    old = carry.Decisions.of_run(old_run)
    names, groups, rejected, report = carry.carry(old, ids, hier.leaf,
                                                  hier.tree)
    values = carry.decided_values(names, groups, hier.tree,
                                  hier.labels().tolist())
    columns = [Column(suffix, schema.field_path(plan.prefix, suffix,
                                                plan.labels_path), v)
               for suffix, v in values.items()]
    return carry.decided_results(results, names, groups, rejected,
                                 report), columns


def layer_columns(plan, hier):
    """Each sample's cluster in every layer, so that any layer can be
    browsed (grouped by, coloured by) without recomputing."""
    out = []
    for i in range(hier.tree.n_layers):
        suffix = schema.layer_suffix(i)
        out.append(Column(suffix, schema.field_path(plan.prefix, suffix,
                                                     plan.labels_path),
                          hier.layer_labels(i)))
    return out


def map_stage(X, spec, report, start, stop):
    if spec.map == "none":
        return None, None
    report(start, "2-D map")
    return map_points(X, spec.map, spec.seed,
                      progress=report.part(start, stop))


def record_stage(plan, emb, reductions, clusterer, labels, moved, geo,
                 metrics, external, points, map_facts, timings):
    """The run's config, results and per-sample columns."""
    spec = plan.spec
    values = {"cluster": labels, "dist": geo.dist, "sim": geo.sim,
              "size": geo.size}
    if moved is not None:
        values["reassigned"] = moved
    if clusterer.probabilities_ is not None:
        values["prob"] = clusterer.probabilities_
    if clusterer.outlier_scores_ is not None:
        values["outlier"] = clusterer.outlier_scores_
    if points is not None:
        values["map"] = list(np.asarray(points, dtype=np.float64))
    names = schema.field_names(plan.prefix, values, plan.labels_path)
    columns = [Column(s, names[s], v) for s, v in values.items()]
    config = {
        "kind": schema.RUN_KIND,
        "record_version": schema.RECORD_VERSION,
        "run_id": schema.new_run_id(),
        "plugin_version": plugin_version(),
        **spec.config(),
        "embeddings_field": emb.field,
        "fingerprint": emb.source["fingerprint"],
        "field_prefix": plan.prefix,
        "fields": names,
        "patches": {"field": spec.patches_field, "path": plan.labels_path}
        if spec.patches_field else None,
        "map": {"method": spec.map, "brain_key": plan.brain_key,
                "layout": map_facts}
        if points is not None else None,
        "libraries": library_versions(),
    }
    results = {
        "clusters": _cluster_summaries(geo),
        "metrics": to_json(metrics),
        "reductions": to_json(reductions),
        "embedding": {
            "dims": int(emb.vectors.shape[1]),
            "computed": emb.computed,
            "reused": emb.reused,
        },
        "timings": timings.as_dict(),
        "skipped": skipped_summary(emb),
        "sweep": clusterer.sweep_,
        "external": to_json(external),
        "reassigned": int(moved.sum()) if moved is not None else None,
        "fitted": {"format": fitted.FORMAT},
    }
    return config, results, columns


def _cluster_summaries(geo):
    """One summary per cluster of the cut, largest first (ids are tree
    nodes: those of other layers have no members here)."""
    mean_dist = geo.mean_dist()
    present = [c for c in range(geo.n_clusters) if geo.sizes[c]]
    present.sort(key=lambda c: (-int(geo.sizes[c]), c))
    return [
        {
            "id": c,
            "size": int(geo.sizes[c]),
            "mean_dist": float(mean_dist[c]),
            "centre": [float(v) for v in geo.centres[c]],
        }
        for c in present
    ]
