"""Should the hierarchy be the default run? ``method="hierarchy"`` against
today's default (the ``pixels`` preset: PCA 50 -> UMAP 10-D -> HDBSCAN,
noise assigned), in the same run:

- **quality**: on every labelled set of ``image_sets.py`` (digits5k
  included), the ARI of the best layer (the hierarchy: the best of its
  layers against ground truth; the default: its one cut), the ARI of the
  default cut, the layers, the share clustered, the clusters of the cut
  and the time after embedding; then the worst set of each configuration.
  The hierarchy runs on the preset's own reduction
  (``preset="pixels", method="hierarchy"``), on PCA 50 alone, and on
  PCA -> UMAP with UMAP fitted on a sample;
- **scale**: an existing 512-D field of 10k, 100k and 1M synthetic
  vectors (no embedding), each run in its own process: time and peak
  resident memory of the hierarchy against the default, and their ratio;
- **cut-rules**: rules for the default cut, each read off the same tree
  on the preset's clustered space (PCA 50 -> UMAP 10-D) of every labelled
  set and of the 512-D mixture of 100 components at ``--rule-size``
  points: the ARI of the cut each rule chooses and its number of
  clusters, then the worst and mean ARI of each rule over the labelled
  sets;
- **merges**: on digits' finest layer, the share of the top 10 merge
  suggestions whose clusters share their majority class, beside the share
  of all pairs of that layer's clusters that do (what chance gives).

    python benchmarks/hierarchy.py [--parts quality cut-rules scale merges]
        [--sets digits ...] [--sizes 10000 100000 1000000]
        [--default-up-to 100000] [--umap-up-to 100000] [--rule-size 100000]

Goal (the issue): the hierarchy becomes the default run if it beats the
default on the worst set and is faster at 100k; it fits 1M x 512 in 6 GB.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from itertools import combinations

import numpy as np

import image_sets
import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))

PCA = {"name": "pca", "n_components": 50}
UMAP = {"name": "umap", "n_components": 10, "n_neighbors": 15,
        "min_dist": 0.0}
# UMAP fitted on a sample, the rest placed by their nearest fitted
# neighbours: the sample is a fifth of the largest labelled set (the sets
# below 1,000 are fitted whole, as without it), and 20,000 at scale.
QUALITY_FIT_SAMPLE = 1000
SCALE_FIT_SAMPLE = 20000


def configs(fit_sample):
    """Name -> the request beside ``preset="pixels"`` (``None``: the
    preset's reducer)."""
    return {
        "default (pixels preset)": {},
        "hierarchy, preset reducer": {"method": "hierarchy"},
        "hierarchy, PCA 50": {"method": "hierarchy", "reducer": [PCA]},
        f"hierarchy, UMAP fit on {fit_sample // 1000}k": {
            "method": "hierarchy",
            "reducer": [PCA, {**UMAP, "fit_sample": fit_sample}]},
    }


CLASSES = {"digits": 10, "digits5k": 10, "faces": 2, "shapes": 6,
           "patches": 4}


# -- quality -------------------------------------------------------------------


def truth_request(kind):
    if kind == "patches":
        return {"patches_field": "ground_truth", "gt_field": "label"}
    return {"gt_field": "ground_truth"}


def labels_by_layer(run, kind):
    """``(truth, {layer: labels})`` over everything the run clustered; a
    flat run's one layer is its cut."""
    truth = "ground_truth.detections.label" if kind == "patches" \
        else "ground_truth.label"
    layers = {f"l{i}": run.fields[f"layer{i}"]
              for i in range(len(run.layers))} \
        if run.results.get("hierarchy") else {"l0": run.fields["cluster"]}
    members = run.members(extra={"truth": truth, **layers})
    keep = [i for i, (c, t) in enumerate(zip(members["cluster"],
                                             members["truth"]))
            if c is not None and t is not None]
    return ([members["truth"][i] for i in keep],
            {name: [members[name][i] for i in keep] for name in layers})


def layer_scores(run, kind):
    """``(best ARI, its layer's clusters)`` over the run's layers."""
    from sklearn.metrics import adjusted_rand_score

    truth, layers = labels_by_layer(run, kind)
    scored = [(adjusted_rand_score(truth, labels), len(set(labels) - {-1}))
              for labels in layers.values()]
    return max(scored)


def run_quality(ds, kind, request):
    import image_clustering as ic

    t = time.time()
    run = ic.compute_clusters(ds, "hb", preset="pixels", map="none",
                              overwrite=True, **truth_request(kind),
                              **request)
    wall = time.time() - t
    timings = run.results["timings"]
    best, best_k = layer_scores(run, kind)
    moved = run.results.get("reassigned") or 0
    return {"best": best, "best_k": best_k,
            "cut": run.results["external"]["ari"],
            "layers": len(run.layers),
            "clusters": run.metrics["n_clusters"],
            "clustered": run.metrics["fraction_clustered"]
            - moved / run.metrics["n_samples"],
            "seconds": timings["total"] - timings["embed"],
            "wall": wall}


def quality(sets):
    folder = tempfile.mkdtemp(prefix="image-sets-")
    datasets = {kind: image_sets.build(kind, folder) for kind in sets}
    import image_clustering as ic

    for kind, ds in datasets.items():
        # Embedded once, outside the timings (each run reuses the vectors).
        ic.compute_clusters(ds, "hb", preset="pixels", map="none",
                            overwrite=True, reducer=[PCA], method="kmeans",
                            n_clusters=2, **{k: v for k, v in
                                            truth_request(kind).items()
                                            if k == "patches_field"})
    print("\nquality: best layer ARI (hierarchy: best of its layers; "
          "default: its cut), default cut ARI,\nlayers, share clustered by "
          "the method (before noise is assigned), clusters of the cut / "
          "true classes,\nseconds after embedding (reduce + cluster + "
          "measure); pixels embedder (64 px)\n")
    print(f"{'configuration':<30}{'set':<10}{'best':>7}{'(k)':>6}"
          f"{'cut':>7}{'layers':>7}{'clustered':>10}{'found/true':>11}"
          f"{'seconds':>8}")
    worst = {}
    for name, request in configs(QUALITY_FIT_SAMPLE).items():
        rows = []
        for kind, ds in datasets.items():
            r = run_quality(ds, kind, request)
            rows.append(r)
            print(f"{name:<30}{kind:<10}{r['best']:>7.3f}{r['best_k']:>6}"
                  f"{r['cut']:>7.3f}{r['layers']:>7}{r['clustered']:>10.1%}"
                  f"{r['clusters']:>6}/{CLASSES[kind]:<4}"
                  f"{r['seconds']:>8.1f}", flush=True)
        worst[name] = (min(r["best"] for r in rows),
                       min(r["cut"] for r in rows),
                       np.mean([r["best"] for r in rows]),
                       np.mean([r["cut"] for r in rows]),
                       sum(r["seconds"] for r in rows))
        print()
    print(f"{'configuration':<30}{'worst best':>11}{'worst cut':>10}"
          f"{'mean best':>10}{'mean cut':>9}{'seconds':>8}")
    for name, (wb, wc, mb, mc, s) in worst.items():
        print(f"{name:<30}{wb:>11.3f}{wc:>10.3f}{mb:>10.3f}{mc:>9.3f}"
              f"{s:>8.1f}")
    return datasets


# -- cut rules ---------------------------------------------------------------

# The silhouette rules: k from 2 to CUT_MAX (the narrow range) or to
# WIDE_CUT_MAX, on a sample of CUT_SAMPLE points; HDBSCAN counts on a
# sample of COUNT_SAMPLE.
CUT_MAX = 40
WIDE_CUT_MAX = 200
CUT_SAMPLE = 5000
COUNT_SAMPLE = 20000


def preset_space(ds, kind):
    """``(X, truth, seed)``: the preset's clustered space of ``ds``, the
    true class of each of its rows and the run's seed."""
    from image_clustering.clustering.pipeline import (embed_stage, plan_run,
                                                      reduce_stage)
    from image_clustering.clustering.request import resolve_request
    from image_clustering.support import Reporter

    spec = resolve_request(preset="pixels", method="hierarchy", map="none",
                           **truth_request(kind))
    plan = plan_run(ds, "hb", spec)
    emb = embed_stage(plan, Reporter(None))
    X, _ = reduce_stage(emb.vectors, spec, Reporter(None), 0.0, 1.0)
    if plan.labels_path:
        ids, truth = ds.values([f"{plan.labels_path}.id", plan.truth_path],
                               unwind=True)
    else:
        ids, truth = ds.values(["id", plan.truth_path])
    by_id = dict(zip(ids, truth))
    return X, [by_id[i] for i in emb.ids], spec.seed


def mixture_space(n, seed):
    """``(X, truth)``: the preset's reduction of ``n`` points of the 512-D
    mixture of 100 components."""
    from image_clustering.clustering.pipeline import reduce_stage
    from image_clustering.clustering.request import resolve_request
    from image_clustering.support import Reporter

    X, truth = map(np.concatenate, zip(*synthetic.mixture(n, 512, 100)))
    spec = resolve_request(preset="pixels", method="hierarchy",
                           embeddings_field="emb", seed=seed)
    X, _ = reduce_stage(X, spec, Reporter(None), 0.0, 1.0)
    return X, truth


def cut_silhouettes(X, merges, micro_labels, m, candidates, seed,
                    sample=None, progress=None):
    """``(scores, rows)``: the silhouette of the tree's cut at each number
    of clusters of ``candidates``, on a sample of ``sample`` rows of ``X``
    (default :data:`CUT_SAMPLE`). The distances of each sampled point to
    each small cluster are summed once; every cut then only adds those
    sums up by its clusters, so a long range of cuts costs little more
    than one."""
    from sklearn.metrics import pairwise_distances

    rng = np.random.default_rng(seed)
    rows = rng.choice(len(X), min(len(X), sample or CUT_SAMPLE),
                      replace=False)
    micro = micro_labels[rows]
    order = np.argsort(micro, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(micro[order]) > 0])
    present = micro[order][starts]
    to_micro = np.zeros((len(rows), m))
    to_micro[:, present] = np.add.reduceat(
        pairwise_distances(X[rows], X[rows[order]]), starts, axis=1)
    in_micro = np.bincount(micro, minlength=m)
    scores = []
    for i, k in enumerate(candidates):
        cut = cut_merges(merges, m, k)
        scores.append(_silhouette(to_micro, in_micro, cut, micro, k))
        if progress:
            progress((i + 1) / len(candidates),
                     f"hierarchy: silhouette of {k} clusters")
    return scores, rows


def _silhouette(to_micro, in_micro, cut, micro, k):
    """The mean silhouette of the sampled points when the small clusters
    are grouped by ``cut`` (a point alone in its cluster scores 0, as in
    scikit-learn)."""
    order = np.argsort(cut, kind="stable")
    to_cluster = np.add.reduceat(to_micro[:, order], np.searchsorted(
        cut[order], np.arange(k)), axis=1)
    sizes = np.bincount(cut, weights=in_micro, minlength=k)
    own = cut[micro]
    if np.count_nonzero(sizes) < 2:
        return -1.0
    at = np.arange(len(own))
    a = to_cluster[at, own] / np.maximum(sizes[own] - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_to = to_cluster / sizes
    mean_to[:, sizes == 0] = np.inf
    mean_to[at, own] = np.inf
    b = mean_to.min(axis=1)
    s = np.where(sizes[own] > 1, (b - a) / np.maximum(a, b), 0.0)
    return float(np.nan_to_num(s).mean())


def merge_heights(centres, sizes, merges):
    """The Ward distance of each merge, in order (``sqrt(2 * cost)``, as
    scipy's ``linkage`` reports it)."""
    C = np.asarray(centres, np.float64).copy()
    w = np.asarray(sizes, np.float64).copy()
    heights = []
    for a, b in merges:
        cost = w[a] * w[b] / (w[a] + w[b]) * ((C[a] - C[b]) ** 2).sum()
        heights.append(np.sqrt(2 * cost))
        C[a] = (w[a] * C[a] + w[b] * C[b]) / (w[a] + w[b])
        w[a] += w[b]
    return np.array(heights)


def hdbscan_labels(X, seed):
    """HDBSCAN's labels (the preset's parameters) on up to
    :data:`COUNT_SAMPLE` rows of ``X``, and those rows."""
    import hdbscan

    rows = np.arange(len(X))
    if len(X) > COUNT_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(
            len(X), COUNT_SAMPLE, replace=False))
    labels = hdbscan.HDBSCAN(min_cluster_size=20,
                             min_samples=10).fit(X[rows]).labels_
    return labels, rows


def rule_cuts(X, seed):
    """``({rule: (k, seconds)}, (merges, micro_labels, m))``: the cut of
    every candidate rule and the tree they cut."""
    from sklearn.metrics import adjusted_rand_score

    from image_clustering.algorithms import hierarchy as h

    m = int(min(h.MAX_MICRO, max(2, len(X) // h.POINTS_PER_MICRO)))
    centres, sizes, micro, merges = h.micro_tree(
        np.ascontiguousarray(X, np.float32), m, seed, lambda f, msg: None)
    m = len(centres)
    cuts = {}

    t = time.time()
    narrow = list(range(2, min(CUT_MAX, m - 1) + 1))
    scores, _ = cut_silhouettes(X, merges, micro, m, narrow, seed)
    narrow_s = time.time() - t
    cuts["a. silhouette 2..40"] = (narrow[int(np.argmax(scores))], narrow_s)

    t = time.time()
    wide = list(range(2, min(WIDE_CUT_MAX, m - 1) + 1))
    scores, _ = cut_silhouettes(X, merges, micro, m, wide, seed)
    wide_s = time.time() - t
    cuts["c. silhouette 2..min(m-1, 200)"] = (
        wide[int(np.argmax(scores))], wide_s)
    within = [k for k, s in zip(wide, scores) if s >= 0.9 * max(scores)]
    cuts["e. finest within 10% of best"] = (max(within), wide_s)

    t = time.time()
    heights = merge_heights(centres, sizes, merges)
    # Cutting at k stops before merge m - k: the gap is that merge's height
    # less the one before it.
    gaps = {k: heights[m - k] - heights[m - k - 1] for k in wide}
    cuts["d. largest Ward gap, k>=2"] = (max(gaps, key=gaps.get),
                                         time.time() - t)
    above = {k: g for k, g in gaps.items() if k >= 3}
    cuts["d'. largest Ward gap, k>=3"] = (max(above, key=above.get),
                                          time.time() - t)

    t = time.time()
    found, rows = hdbscan_labels(X, seed)
    count_s = time.time() - t
    k = int(min(max(2, found.max() + 1), m - 1))
    cuts["b. HDBSCAN's count"] = (k, count_s)
    clustered = found >= 0
    agree = {k: adjusted_rand_score(found[clustered], h.cut_merges(
        merges, m, k)[micro[rows[clustered]]]) for k in wide}
    cuts["f. cut agreeing best w/ HDBSCAN"] = (max(agree, key=agree.get),
                                               time.time() - t)
    return cuts, (merges, micro, m)


def score_rules(X, truth, seed):
    """``{rule: (ARI, k, seconds)}``."""
    from sklearn.metrics import adjusted_rand_score

    from image_clustering.algorithms.hierarchy import cut_merges

    cuts, (merges, micro, m) = rule_cuts(X, seed)
    return {rule: (adjusted_rand_score(truth, cut_merges(merges, m, k)[micro]),
                   k, seconds)
            for rule, (k, seconds) in cuts.items()}


def cut_rules(sets, datasets, rule_size):
    folder = None
    print("\ncut rules: the ARI of the cut each rule reads off the tree of "
          "the preset's clustered space\n(PCA 50 -> UMAP 10-D), its "
          "clusters / true classes and the rule's own seconds\n")
    print(f"{'rule':<34}{'set':<12}{'ARI':>7}{'k':>5}{'true':>5}"
          f"{'seconds':>8}")
    table = {}
    for kind in sets:
        ds = datasets.get(kind)
        if ds is None:
            folder = folder or tempfile.mkdtemp(prefix="image-sets-")
            ds = image_sets.build(kind, folder)
        X, truth, seed = preset_space(ds, kind)
        for rule, (ari, k, seconds) in score_rules(X, truth, seed).items():
            table.setdefault(rule, {})[kind] = ari
            print(f"{rule:<34}{kind:<12}{ari:>7.3f}{k:>5}"
                  f"{CLASSES[kind]:>5}{seconds:>8.2f}", flush=True)
        print()
    if rule_size:
        X, truth = mixture_space(rule_size, 0)
        kind = f"mix {rule_size // 1000}k"
        for rule, (ari, k, seconds) in score_rules(X, truth, 0).items():
            print(f"{rule:<34}{kind:<12}{ari:>7.3f}{k:>5}{100:>5}"
                  f"{seconds:>8.2f}", flush=True)
        print()
    print(f"{'rule':<34}{'worst':>7}{'mean':>7}   over {', '.join(sets)}")
    for rule, by_set in table.items():
        values = list(by_set.values())
        print(f"{rule:<34}{min(values):>7.3f}{np.mean(values):>7.3f}")


# -- merges --------------------------------------------------------------------


def majority_classes(run):
    m = run.members(extra={"truth": "ground_truth.label"})
    by_cluster = {}
    for c, t in zip(m["cluster"], m["truth"]):
        if c is not None and c >= 0 and t is not None:
            by_cluster.setdefault(c, Counter())[t] += 1
    return {c: counts.most_common(1)[0][0]
            for c, counts in by_cluster.items()}


def merge_precision(ds, request, n=10):
    import image_clustering as ic

    run = ic.compute_clusters(ds, "hb", preset="pixels", map="none",
                              overwrite=True, gt_field="ground_truth",
                              **request)
    run = run.set_cut(layer=0)
    top = run.suggest_merges(n=n, per_cluster=0)
    majority = majority_classes(run)
    hits = [len({majority[c] for c in s["clusters"]}) == 1 for s in top]
    pairs = [majority[a] == majority[b]
             for a, b in combinations(sorted(majority), 2)]
    return {"clusters": len(majority), "suggested": len(top),
            "precision": sum(hits) / len(top) if top else float("nan"),
            "chance": float(np.mean(pairs))}


def merges(datasets):
    if "digits" not in datasets:
        folder = tempfile.mkdtemp(prefix="image-sets-")
        datasets = {"digits": image_sets.build("digits", folder)}
    print("\nmerge suggestions on digits' finest layer: share of the top 10 "
          "whose clusters share\ntheir majority class, against the share of "
          "all pairs of that layer's clusters that do\n")
    print(f"{'configuration':<30}{'clusters':>9}{'top 10':>8}{'chance':>8}")
    for name, request in configs(QUALITY_FIT_SAMPLE).items():
        if request.get("method") != "hierarchy":
            continue
        r = merge_precision(datasets["digits"], request)
        print(f"{name:<30}{r['clusters']:>9}{r['precision']:>8.0%}"
              f"{r['chance']:>8.1%}", flush=True)


# -- scale ---------------------------------------------------------------------

CHILD = r"""
import json, sys, time
sys.path.insert(0, HERE)
import numpy as np
import synthetic
import fiftyone as fo
import image_clustering as ic
from sklearn.metrics import adjusted_rand_score

ds = fo.load_dataset(NAME)
t = time.time()
run = ic.compute_clusters(ds, "hb", preset="pixels", embeddings_field="emb",
                          map="none", overwrite=True, **REQUEST)
total = time.time() - t
peak = synthetic.peak_rss_gb()
truth, cut = ds.values(["truth", run.fields["cluster"]])
print(json.dumps({"total": total, "peak_rss_gb": peak,
                  "timings": run.results["timings"],
                  "clusters": run.metrics["n_clusters"],
                  "layers": len(run.layers),
                  "ari": adjusted_rand_score(truth, cut)}))
"""


def run_child(name, request):
    code = CHILD.replace("HERE", repr(HERE)).replace(
        "NAME", repr(name)).replace("REQUEST", repr(request))
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         text=True, env=dict(os.environ))
    if out.returncode:
        return {"failed": out.returncode}
    return json.loads(out.stdout.strip().splitlines()[-1])


def scale(sizes, default_up_to, umap_up_to):
    runs = configs(SCALE_FIT_SAMPLE)
    full_umap = ("default (pixels preset)", "hierarchy, preset reducer")
    print("\nscale: an existing 512-D field of synthetic vectors (a mixture "
          "of 100 Gaussians), map none;\nwhole run (read, reduce, cluster, "
          "measure, write) and peak resident memory of its own process;\n"
          "ARI of the cut against the mixture's components\n")
    print(f"{'n':>9}  {'configuration':<30}{'seconds':>8}{'reduce':>8}"
          f"{'cluster':>8}{'peak GB':>8}{'clusters':>9}{'layers':>7}"
          f"{'ARI':>7}")
    results = {}
    for n in sizes:
        name = f"bench-{n // 1000}k"
        synthetic.embeddings_dataset(name, n, n_true=100, log=lambda m: None)
        for config, request in runs.items():
            limit = default_up_to if config == full_umap[0] else \
                umap_up_to if config in full_umap else None
            if limit is not None and n > limit:
                print(f"{n:>9,}  {config:<30}  not run (PCA -> UMAP on every "
                      f"point above {limit:,})", flush=True)
                continue
            r = run_child(name, request)
            results[n, config] = r
            if "failed" in r:
                print(f"{n:>9,}  {config:<30}  failed ({r['failed']})",
                      flush=True)
                continue
            print(f"{n:>9,}  {config:<30}{r['total']:>8.1f}"
                  f"{r['timings']['reduce']:>8.1f}"
                  f"{r['timings']['cluster']:>8.1f}{r['peak_rss_gb']:>8.2f}"
                  f"{r['clusters']:>9}{r['layers']:>7}{r['ari']:>7.3f}",
                  flush=True)
    print("\nratio default / hierarchy (time; memory)")
    default = "default (pixels preset)"
    for n in sizes:
        base = results.get((n, default))
        if not base or "failed" in base:
            continue
        for config in runs:
            r = results.get((n, config))
            if config == default or not r or "failed" in r:
                continue
            print(f"{n:>9,}  {config:<30}{base['total'] / r['total']:>6.2f}x"
                  f"{base['peak_rss_gb'] / r['peak_rss_gb']:>7.2f}x")
    for (n, config), r in results.items():
        if n >= 1_000_000 and "failed" not in r:
            met = "met" if r["peak_rss_gb"] <= 6 else "NOT met"
            print(f"{config} at {n:,} x 512: peak {r['peak_rss_gb']:.2f} GB "
                  f"(goal <= 6 GB: {met})")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", nargs="*",
                        default=["quality", "merges", "scale"],
                        choices=["quality", "cut-rules", "merges", "scale"])
    parser.add_argument("--sets", nargs="*",
                        default=list(image_sets.SETS + image_sets.EXTRA_SETS),
                        choices=image_sets.SETS + image_sets.EXTRA_SETS)
    parser.add_argument("--sizes", nargs="*", type=int,
                        default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--default-up-to", type=int, default=100_000,
                        help="largest size the default runs at")
    parser.add_argument("--umap-up-to", type=int, default=100_000,
                        help="largest size the hierarchy on the preset's "
                        "reducer (UMAP on every point) runs at")
    parser.add_argument("--rule-size", type=int, default=100_000,
                        help="points of the mixture the cut rules are also "
                        "read on (0: none)")
    args = parser.parse_args()
    datasets = {}
    if "quality" in args.parts:
        datasets = quality(args.sets)
    if "cut-rules" in args.parts:
        cut_rules(args.sets, datasets, args.rule_size)
    if "merges" in args.parts:
        merges(datasets)
    if "scale" in args.parts:
        scale(args.sizes, args.default_up_to, args.umap_up_to)


if __name__ == "__main__":
    main()
