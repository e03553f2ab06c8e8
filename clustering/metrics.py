"""Internal quality metrics of a clustering.

Silhouette, Davies-Bouldin and Calinski-Harabasz are computed on the
clustered samples only (noise excluded) in the space that was clustered.
All three favour round clusters, so they under-rate good density
clusterings; the fraction clustered is reported beside them.
"""

import numpy as np

# Silhouette is quadratic in the number of samples: score a sample of them.
SILHOUETTE_SAMPLE = 5000


def compute_metrics(X, labels, seed=None, stats=None):
    from sklearn.metrics import (
        calinski_harabasz_score,
        davies_bouldin_score,
        silhouette_score,
    )

    member = labels >= 0
    n = len(labels)
    k = len(np.unique(labels[member]))
    metrics = {
        "n_samples": int(n),
        "n_clusters": int(k),
        "n_noise": int(n - member.sum()),
        "fraction_clustered": float(member.mean()) if n else 0.0,
        "silhouette": None,
        "davies_bouldin": None,
        "calinski_harabasz": None,
    }
    Xc, lc = X[member], labels[member]
    if 2 <= k < len(lc):
        sample = min(SILHOUETTE_SAMPLE, len(lc))
        try:
            metrics["silhouette"] = float(
                silhouette_score(Xc, lc, sample_size=sample, random_state=seed)
            )
        except ValueError:
            # The random sample held a single cluster (one huge cluster
            # beside tiny ones): silhouette is undefined for it.
            pass
        metrics["davies_bouldin"] = float(davies_bouldin_score(Xc, lc))
        metrics["calinski_harabasz"] = float(calinski_harabasz_score(Xc, lc))
    metrics.update(stats or {})
    return metrics
