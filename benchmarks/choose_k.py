"""How long choosing k takes, and what each part of the design buys: the
sweep on a sample of the clustered space against the whole of it, and its
fits in parallel threads against one after another. The clustered space is
10-D (what the default UMAP gives), 20,000 points in 12 blobs.

    python benchmarks/choose_k.py [--n 50000]
"""

import argparse
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()

    from image_clustering.algorithms import sweep as choose_k
    from image_clustering.algorithms.clusterers import get_clusterer

    rng = np.random.default_rng(0)
    centres = rng.uniform(-10, 10, size=(12, 10))
    X = (centres[rng.integers(0, 12, args.n)] +
         rng.normal(scale=1.0, size=(args.n, 10))).astype(np.float32)
    print(f"{args.n:,} points in 10-D, 12 blobs; k from 2 to "
          f"{choose_k.default_k_max(args.n)}\n")
    print(f"{'method':<14}{'sweep':<34}{'seconds':>8}{'chosen':>8}")
    for method, param in (("kmeans", "n_clusters"), ("gmm", "n_components"),
                          ("birch", "n_clusters")):
        rows = []
        for label, sample, parallel in (
                ("sampled (10,000), parallel", 10_000, True),
                ("sampled (10,000), one at a time", 10_000, False),
                ("all points, parallel", args.n, True)):
            clusterer = get_clusterer(method, **{param: "auto"})
            choose_k.SWEEP_SAMPLE = sample
            clusterer.sweep_parallel = parallel and \
                type(clusterer).sweep_parallel
            t = time.time()
            sweep = clusterer._sweep(X, 0, None)
            rows.append((label, time.time() - t, sweep["chosen"]))
        for label, seconds, chosen in rows:
            print(f"{method:<14}{label:<34}{seconds:>8.1f}{chosen:>8}")
    print("\n(k-means sweeps one fit at a time whatever is asked: faiss "
          "already uses every core.)")


if __name__ == "__main__":
    main()
