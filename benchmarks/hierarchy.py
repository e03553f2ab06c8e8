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
- **merges**: on digits' finest layer, the share of the top 10 merge
  suggestions whose clusters share their majority class, beside the share
  of all pairs of that layer's clusters that do (what chance gives).

    python benchmarks/hierarchy.py [--parts quality scale merges]
        [--sets digits ...] [--sizes 10000 100000 1000000]
        [--default-up-to 100000] [--umap-up-to 100000]

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
                        choices=["quality", "merges", "scale"])
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
    args = parser.parse_args()
    datasets = {}
    if "quality" in args.parts:
        datasets = quality(args.sets)
    if "merges" in args.parts:
        merges(datasets)
    if "scale" in args.parts:
        scale(args.sizes, args.default_up_to, args.umap_up_to)


if __name__ == "__main__":
    main()
