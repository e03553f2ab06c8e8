"""Which pipeline should be the default? Candidate pipelines on the raw
pixel embedder, each scored on the four image sets of ``image_sets.py``
(digits, faces vs non-faces, shapes and textures, object patches): ARI,
AMI, clusters found against true classes, fraction clustered and time. The
default is the candidate whose worst set is best.

    python benchmarks/defaults.py [--candidates NAME ...]
"""

import argparse
import tempfile
import time

import image_sets

REDUCE = [{"name": "pca", "n_components": 50},
          {"name": "umap", "n_components": 10, "n_neighbors": 15,
           "min_dist": 0.0}]

CANDIDATES = {
    "hdbscan mcs=20 (old default)": dict(
        method="hdbscan", min_cluster_size=20, min_samples=10),
    "hdbscan mcs=20, noise assigned": dict(
        method="hdbscan", min_cluster_size=20, min_samples=10,
        noise="assign"),
    "hdbscan mcs=auto": dict(method="hdbscan", min_cluster_size="auto",
                             min_samples=10),
    "hdbscan mcs=auto, noise assigned": dict(
        method="hdbscan", min_cluster_size="auto", min_samples=10,
        noise="assign"),
    "ward k=auto (silhouette)": dict(method="agglomerative",
                                     n_clusters="auto"),
    "kmeans k=auto (silhouette)": dict(method="kmeans", n_clusters="auto"),
    "gmm k=auto (bic)": dict(method="gmm", n_components="auto"),
}


def run_one(ds, name, kind, params):
    import image_clustering as ic

    extra = {"patches_field": "ground_truth", "gt_field": "label"} \
        if kind == "patches" else {"gt_field": "ground_truth"}
    t = time.time()
    run = ic.compute_clusters(
        ds, "bench", embedder={"name": "pixels", "size": 32},
        reducer=REDUCE, map="none", overwrite=True, **extra, **params)
    seconds = time.time() - t
    ext = run.results["external"]
    classes = {"digits": 10, "digits5k": 10, "faces": 2, "shapes": 6,
               "patches": 4}[kind]
    return {"ari": ext["ari"], "ami": ext["ami"],
            "found": run.metrics["n_clusters"], "classes": classes,
            "clustered": run.metrics["fraction_clustered"],
            "seconds": seconds}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", nargs="*", default=list(CANDIDATES))
    parser.add_argument("--sets", nargs="*", default=list(image_sets.SETS),
                        choices=image_sets.SETS + image_sets.EXTRA_SETS)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="image-sets-")
    datasets = {kind: image_sets.build(kind, folder) for kind in args.sets}
    print(f"{'pipeline':<36}{'set':<9}{'ARI':>6}{'AMI':>6}"
          f"{'found/true':>11}{'clustered':>10}{'seconds':>8}")
    worst = {}
    for name in args.candidates:
        scores = []
        for kind, ds in datasets.items():
            r = run_one(ds, name, kind, CANDIDATES[name])
            scores.append(r["ari"])
            print(f"{name:<36}{kind:<9}{r['ari']:>6.3f}{r['ami']:>6.3f}"
                  f"{r['found']:>6}/{r['classes']:<4}"
                  f"{r['clustered']:>10.1%}{r['seconds']:>8.1f}")
        worst[name] = min(scores)
        print(f"{name:<36}{'worst':<9}{worst[name]:>6.3f}  mean "
              f"{sum(scores) / len(scores):.3f}\n")
    best = max(worst, key=worst.get)
    print(f"best worst-set ARI: {best} ({worst[best]:.3f})")


if __name__ == "__main__":
    main()
