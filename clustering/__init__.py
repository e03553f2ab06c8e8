"""Reducers, clusterers, geometry, metrics, the pipeline and run storage.

Nothing here imports scikit-learn, umap or hdbscan at module level.
"""
