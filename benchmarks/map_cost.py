"""What the 2-D map adds to a run: the same run with ``map="auto"`` and
with ``map="none"``, in one process, on an existing 512-D embeddings field
of 10,000 and 100,000 samples. Runs the default pipeline (PCA 50 -> UMAP
10 -> HDBSCAN) and a k-means run on the raw vectors.

    python benchmarks/map_cost.py [--sizes 10000 100000]

Goal: with the default pipeline the map adds at most 30% to a run.
"""

import argparse
import time

import synthetic  # noqa: F401  (sets the benchmark database)


def _run(ds, key, **kwargs):
    import image_clustering as ic

    t = time.time()
    run = ic.compute_clusters(ds, key, embeddings_field="emb",
                              overwrite=True, **kwargs)
    return time.time() - t, run


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[10_000, 100_000])
    args = parser.parse_args()
    from synthetic import embeddings_dataset

    pipelines = {
        "default (pca+umap+hdbscan)": {},
        "kmeans k=50, reducer none": dict(reducer="none", method="kmeans",
                                          n_clusters=50),
    }
    warm = embeddings_dataset("bench-map-warm", 5000, n_true=30)
    _run(warm, "warm", map="auto")  # numba kernels loaded once
    print(f"{'n':>8}  {'pipeline':<28}{'no map s':>9}{'with map s':>11}"
          f"{'map adds':>9}  map made by")
    results = []
    for n in args.sizes:
        ds = embeddings_dataset(f"bench-map-{n}", n, n_true=30,
                                log=lambda m: None)
        for name, kwargs in pipelines.items():
            t_none, _ = _run(ds, "nomap", map="none", **kwargs)
            t_map, run = _run(ds, "withmap", map="auto", **kwargs)
            added = t_map / t_none - 1
            layout = run.config["map"]["layout"]
            print(f"{n:>8}  {name:<28}{t_none:>9.1f}{t_map:>11.1f}"
                  f"{added:>9.0%}  {layout}")
            results.append((name, added))
    worst = max(a for name, a in results if name.startswith("default"))
    print(f"\nworst share the map adds to the default pipeline: {worst:.0%} "
          f"(goal <= 30%: {'met' if worst <= 0.30 else 'NOT met'})")


if __name__ == "__main__":
    main()
