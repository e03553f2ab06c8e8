"""The facts of a clustering run as every entry point shows them: the
command line prints them, the info operator and the Clusters panel lay
them out. One function makes them, so that they never disagree."""

import json

QUALITY = ("silhouette", "davies_bouldin", "calinski_harabasz", "dbcv",
           "inertia", "bic")
AGAINST_TRUTH = ("ari", "ami", "homogeneity", "completeness", "v_measure",
                 "purity")


def percent(x):
    return None if x is None else f"{x:.1%}"


def describe_source(config):
    """``pixels(size=64) -> pca -> umap``: where the clustered space came
    from."""
    if config.get("embedder"):
        spec = config["embedder"]
        args = ", ".join(f"{k}={v}" for k, v in spec["params"].items())
        source = f"{spec['name']}({args})"
    else:
        source = f"field '{config.get('embeddings_field')}'"
    steps = [r["name"] for r in config.get("reducers", [])]
    if config.get("normalize"):
        steps.insert(0, "l2")
    return source + "".join(f" -> {s}" for s in steps)


def describe_sweep(sweep):
    if not sweep:
        return "given"
    return (f"{sweep['parameter']} = {sweep['chosen']} by "
            f"{sweep['criterion']} (tried {sweep['candidates'][0]} to "
            f"{sweep['candidates'][-1]} on {sweep['fitted_on']:,} samples, "
            f"{sweep['seconds']:.1f}s)")


def cluster_rows(run, external=None):
    """One row per cluster, largest first, then the noise: id, name, group,
    size, mean distance and, with ground truth, top class and purity."""
    per_cluster = (external or {}).get("per_cluster", {})
    rows = []
    for c in run.clusters:
        truth = per_cluster.get(str(c["id"]), {})
        rows.append({
            "cluster": c["id"],
            "name": run.name_of(c["id"]) or "",
            "group": run.group_of(c["id"]) or "",
            "size": c["size"],
            "mean_dist": round(c["mean_dist"], 4),
            "top_class": truth.get("top_class", ""),
            "purity": percent(truth.get("purity")) or "",
        })
    noise = run.metrics["n_noise"]
    if noise:
        truth = per_cluster.get("-1", {})
        rows.append({"cluster": -1, "name": run.name_of(-1) or "",
                     "group": run.group_of(-1) or "", "size": noise,
                     "mean_dist": None,
                     "top_class": truth.get("top_class", ""),
                     "purity": percent(truth.get("purity")) or ""})
    return rows


def run_summary(run, gt_field="ground_truth"):
    """The run's facts as plain JSON (numbers, and the sentences every
    entry point shows as they are)."""
    m = run.metrics
    external = run.results.get("external") or run.score(gt_field) or {}
    sweep = run.sweep
    changes = run.changes()
    clustered = m["n_samples"] - m["n_noise"]
    fraction = m.get("fraction_clustered") or 0.0
    return {
        "run_key": run.key,
        "timestamp": run.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        if run.timestamp else None,
        "method": run.config["method"],
        "source": describe_source(run.config),
        "headline": (f"{m['n_clusters']} clusters, {m['n_noise']} noise, "
                     f"{fraction:.1%} of {m['n_samples']} clustered"),
        "n_clusters": m["n_clusters"],
        "n_samples": m["n_samples"],
        "n_noise": m["n_noise"],
        "clustered": f"{clustered:,} of {m['n_samples']:,} "
                     f"({percent(fraction)})",
        "reassigned": run.results.get("reassigned") or 0,
        "skipped": run.skipped["count"],
        "assigned": changes["assigned"],
        "deleted_since": changes["deleted"],
        "added_since": changes["added"] or 0,
        "quality": {k: round(m[k], 4) if isinstance(m[k], float) else m[k]
                    for k in QUALITY if m.get(k) is not None},
        "against_ground_truth": {k: round(external[k], 4)
                                 for k in AGAINST_TRUTH
                                 if external.get(k) is not None},
        "choice_of_k": describe_sweep(sweep),
        "sweep": [{"value": c, "score": None if s is None else round(s, 4),
                   "clusters": f}
                  for c, s, f in zip(sweep["candidates"], sweep["scores"],
                                     sweep["clusters_found"])]
        if sweep else [],
        "timings": {k: round(v, 2) for k, v in
                    (run.results.get("timings") or {}).items()},
        "sampled": ", ".join(f"{k} on {v:,}" for k, v in
                             (m.get("sampled") or {}).items()) or "nothing",
        "groups": dict(run.groups),
        "clusters": cluster_rows(run, external),
        "config": json.loads(json.dumps(run.config, default=str)),
    }
