"""Image clustering for FiftyOne.

As a FiftyOne plugin, FiftyOne calls :func:`register`. As a Python package
(``import image_clustering``), it offers the functions below. Importing it is
fast: torch, transformers, umap, hdbscan and scikit-learn load only when a
run needs them.
"""

from .analysis.duplicates import find_exact_duplicates, find_near_duplicates
from .analysis.results import (
    delete_analysis,
    list_analyses,
    load_duplicates,
    load_uniqueness,
)
from .analysis.uniqueness import compute_uniqueness
from .clustering.assign import assign_clusters
from .clustering.charts import plot_run
from .clustering.compare import RunComparison, compare_runs
from .clustering.pipeline import compute_clusters
from .clustering.presets import PRESETS
from .clustering.results import ClusterRun
from .clustering.runs import (
    RunNotFound,
    delete_run,
    get_run_info,
    list_runs,
    load_run,
    rename_run,
    repair,
)
from .curation.export import export_clusters
from .curation.groups import group_clusters, ungroup_clusters
from .curation.tags import tag_clusters
from .embedders import EMBEDDERS, get_embedder
from .labeling.label import estimate as estimate_labelling
from .labeling.label import label_clusters, name_cluster
from .units import ParamError


def load_clusters_view(samples, run_key, cluster=None, include_noise=True):
    """The samples of run ``run_key`` grouped by cluster, each group ordered
    by distance to its centre; or one ``cluster`` in that order."""
    return load_run(samples, run_key).clusters_view(
        cluster=cluster, include_noise=include_noise
    )


def register(p):
    from .operators import register_operators

    register_operators(p)
