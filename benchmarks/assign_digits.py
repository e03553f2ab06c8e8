"""Placing new images into an existing run, on scikit-learn's digits: the
default preset clusters 1,200 of the 1,797 digit images, then the other 597
are assigned by each assigner (``auto``, ``knn``, ``svm``) without
re-clustering. Prints the ARI against the true digits of the clustered part
and of the assigned part (goal: within 0.05), the time of each, and the
paths of the run's four charts.

    python benchmarks/assign_digits.py
"""

import os
import tempfile
import time

import numpy as np

import synthetic  # noqa: F401 (the benchmark database)


def ari(ds, run_key, ids):
    from sklearn.metrics import adjusted_rand_score

    view = ds.select(ids)
    truth = view.values("ground_truth.label")
    found = view.values(f"{run_key}_cluster")
    return adjusted_rand_score(truth, [-1 if f is None else f
                                       for f in found])


def main():
    import image_clustering as ic
    from image_sets import digits

    ds = digits(tempfile.mkdtemp())
    ids = ds.values("id")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))
    fit_ids = [ids[i] for i in order[:1200]]
    new_ids = [ids[i] for i in order[1200:]]
    t = time.time()
    ic.compute_clusters(ds.select(fit_ids), "fit", overwrite=True)
    fit_seconds = time.time() - t
    fit_ari = ari(ds, "fit", fit_ids)
    print(f"clustered {len(fit_ids):,} digits with the default preset in "
          f"{fit_seconds:.1f} s: ARI {fit_ari:.3f}\n")
    print(f"{'assigner':<9}{'assigned':>9}{'ARI':>8}{'gap':>8}{'seconds':>9}")
    for assigner in ("auto", "knn", "svm"):
        key = f"fit_{assigner}"
        ic.compute_clusters(ds.select(fit_ids), key, overwrite=True)
        t = time.time()
        run = ic.assign_clusters(ds, key, assigner=assigner)
        seconds = time.time() - t
        placed = run.results["assigned"]["count"]
        score = ari(ds, key, new_ids)
        print(f"{assigner:<9}{placed:>9}{score:>8.3f}"
              f"{score - fit_ari:>+8.3f}{seconds:>9.1f}")
    print()
    for kind in ("scatter", "boundaries", "montage", "axes"):
        path = ic.plot_run(ds, "fit_auto", kind=kind,
                           gt_field="ground_truth" if kind == "scatter"
                           else None)
        print(f"{kind:<11}{path}")


if __name__ == "__main__":
    main()
