"""Automatic k on scikit-learn's digits (10 true classes): the default
preset's reduction (PCA 50, UMAP 10-D) with each method choosing its own
k, or HDBSCAN its smallest cluster. Prints the k each chose, by which
criterion, the sweep's time and the ARI against the true digits. Goal: k
between 8 and 12.

    python benchmarks/auto_k_digits.py
"""

import tempfile

import synthetic  # noqa: F401 (the benchmark database)

CANDIDATES = (
    ("kmeans", {"n_clusters": "auto"}),
    ("agglomerative", {"n_clusters": "auto"}),
    ("gmm", {"n_components": "auto"}),
    ("hdbscan", {"min_cluster_size": "auto"}),
)


def main():
    import image_clustering as ic
    from image_sets import digits

    ds = digits(tempfile.mkdtemp())
    print(f"{'method':<15}{'k':>4}{'criterion':>20}{'sweep s':>9}"
          f"{'ARI':>8}{'in 8..12':>10}")
    for method, params in CANDIDATES:
        run = ic.compute_clusters(ds, f"auto_{method}", method=method,
                                  overwrite=True, map="none", **params)
        sweep = run.sweep
        k = run.metrics["n_clusters"]
        score = run.score("ground_truth")["ari"]
        print(f"{method:<15}{k:>4}{sweep['criterion']:>20}"
              f"{sweep['seconds']:>9.1f}{score:>8.3f}"
              f"{'yes' if 8 <= k <= 12 else 'no':>10}")


if __name__ == "__main__":
    main()
