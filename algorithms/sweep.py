"""Choosing the number of clusters (or HDBSCAN's smallest cluster) by a
sweep in the clustered space.

For each candidate the method is fit on a sample of at most
:data:`SWEEP_SAMPLE` points of the clustered space (the reduced space is
reused, never recomputed) and scored by a criterion computed in that
space; the best candidate is then fit on all points by the caller. The
candidates are fit in parallel threads where the method does not already
use every core. The whole sweep is returned as plain JSON and stored in the
run.

Criteria:

- ``silhouette`` (higher is better), on at most ``SILHOUETTE_SAMPLE`` of
  the sample;
- ``davies_bouldin`` (lower is better);
- ``calinski_harabasz`` (higher is better);
- ``bic`` for Gaussian mixtures (lower is better);
- ``relative_validity`` for HDBSCAN: hdbscan's fast approximation of DBCV
  from its minimum spanning tree (higher is better), and ``dbcv``, exact
  DBCV on a sample.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..units import Param
from .quality import SILHOUETTE_SAMPLE, dbcv

SWEEP_SAMPLE = 10_000
# At most this many candidate values of k are tried.
MAX_CANDIDATES = 40

HIGHER_IS_BETTER = {"silhouette": True, "davies_bouldin": False,
                    "calinski_harabasz": True, "bic": False,
                    "relative_validity": True, "dbcv": True}


def k_params(criteria=("auto", "silhouette", "davies_bouldin",
                       "calinski_harabasz"), default="auto"):
    """The parameters every method with ``n_clusters="auto"`` takes."""
    return (
        Param("k_min", "int", 2, "Smallest k the automatic choice tries",
              min=2),
        Param("k_max", "int", None,
              "Largest k the automatic choice tries (default: grows with "
              "the number of samples, from 10 to 50)", min=2),
        Param("criterion", "choice", default,
              "How the automatic choice scores each k (auto: BIC for "
              "Gaussian mixtures, silhouette otherwise)", choices=criteria),
    )


def default_k_max(n):
    return int(min(50, max(10, round(np.sqrt(n) / 2))))


def k_candidates(n, k_min, k_max):
    k_max = min(k_max or default_k_max(n), n - 1)
    k_min = min(k_min, k_max)
    ks = np.arange(k_min, k_max + 1)
    if len(ks) > MAX_CANDIDATES:
        ks = np.unique(np.round(np.linspace(k_min, k_max,
                                            MAX_CANDIDATES)).astype(int))
    return [int(k) for k in ks]


def min_cluster_size_candidates(n):
    """A geometric grid of smallest-cluster sizes from 5 to n/10."""
    top = max(6, n // 10)
    grid = np.unique(np.round(np.geomspace(5, top, 10)).astype(int))
    return [int(g) for g in grid if 2 <= g < n]


def score(criterion, X, labels, seed, model=None):
    """The criterion of ``labels`` on ``X``; ``None`` where it is
    undefined (fewer than two clusters)."""
    from sklearn import metrics

    member = labels >= 0
    if len(np.unique(labels[member])) < 2:
        return None
    if criterion == "bic":
        return float(model.bic(X))
    if criterion == "relative_validity":
        value = float(model.relative_validity_)
        return value if np.isfinite(value) else None
    if criterion == "dbcv":
        return dbcv(X, labels, seed)
    Xm, lm = X[member], labels[member]
    if criterion == "silhouette":
        return float(metrics.silhouette_score(
            Xm, lm, sample_size=min(SILHOUETTE_SAMPLE, len(lm)),
            random_state=seed))
    if criterion == "davies_bouldin":
        return float(metrics.davies_bouldin_score(Xm, lm))
    return float(metrics.calinski_harabasz_score(Xm, lm))


def sweep(fit_one, X, candidates, criterion, seed, parallel=True,
          progress=None, name="k"):
    """Fits ``fit_one(X_sample, value, seed) -> (labels, model)`` for each
    candidate value and returns the plain-JSON sweep with the chosen
    value."""
    started = time.time()
    rows = None
    if len(X) > SWEEP_SAMPLE:
        rows = np.sort(np.random.default_rng(seed).choice(
            len(X), SWEEP_SAMPLE, replace=False))
    Xs = X if rows is None else X[rows]
    done = [0]

    def run(value):
        labels, model = fit_one(Xs, value, seed)
        result = score(criterion, Xs, labels, seed, model)
        done[0] += 1
        if progress is not None:
            progress(done[0] / len(candidates),
                     f"choosing {name}: tried {done[0]} of "
                     f"{len(candidates)}")
        return result, int(len(np.unique(labels[labels >= 0])))

    workers = min(os.cpu_count() or 1, len(candidates)) if parallel else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(run, candidates))
    else:
        results = [run(value) for value in candidates]
    scores = [r[0] for r in results]
    valid = [i for i, s in enumerate(scores) if s is not None]
    if not valid:
        chosen = candidates[0]
    else:
        pick = max if HIGHER_IS_BETTER[criterion] else min
        chosen = candidates[pick(valid, key=lambda i: scores[i])]
    return {
        "parameter": name,
        "criterion": criterion,
        "candidates": list(candidates),
        "scores": scores,
        "clusters_found": [r[1] for r in results],
        "chosen": int(chosen),
        "fitted_on": int(len(Xs)),
        "seconds": round(time.time() - started, 3),
    }
