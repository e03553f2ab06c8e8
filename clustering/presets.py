"""Named starting points for :func:`~.pipeline.compute_clusters`.

``pixels`` is the recommended pipeline for raw pixels: PCA to 50
dimensions removes pixel noise cheaply, UMAP with ``min_dist=0`` packs each
group tightly, and HDBSCAN finds the groups without being told how many;
what it leaves as noise is then assigned to its most probable cluster (and
marked in the run's ``reassigned`` field). ``benchmarks/defaults.py``
chose it against five other candidates (HDBSCAN with an automatic smallest
cluster, Ward, k-means and a Gaussian mixture with automatic k) on four
image sets built here, as the one whose worst set is best.

``dino`` and ``clip`` are the same pipeline on model embeddings, which are
L2-normalised first: their direction carries the meaning, and normalised
Euclidean distances rank like cosine similarities.
"""

_PIPELINE = {
    "reducer": [
        {"name": "pca", "n_components": 50},
        {"name": "umap", "n_components": 10, "n_neighbors": 15,
         "min_dist": 0.0},
    ],
    "method": "hdbscan",
    "params": {"min_cluster_size": 20, "min_samples": 10},
    "noise": "assign",
}

DEFAULT_PRESET = "pixels"

PRESETS = {
    "pixels": {
        "embedder": {"name": "pixels", "size": 64},
        "normalize": False,
        **_PIPELINE,
    },
    "dino": {"embedder": {"name": "dino"}, "normalize": True, **_PIPELINE},
    "clip": {"embedder": {"name": "clip"}, "normalize": True, **_PIPELINE},
}
