"""Image clustering for FiftyOne.

As a FiftyOne plugin, FiftyOne calls :func:`register`. As a Python package
(``import image_clustering``), it offers the functions below. Importing it is
fast: torch, transformers, umap, hdbscan and scikit-learn load only when a
run needs them.

FiftyOne loads a plugin's folder under a module name of its own. When this
same folder is installed as the package ``image_clustering`` (``pip install
-e .``), the plugin is that package: Python, the command line and the App
then share one copy of every class and registry, so that a unit registered
in Python is offered by the App's forms too.
"""

import importlib.util as _importlib_util
import os as _os


def _installed_here():
    """Whether this module was loaded under another name than the package
    ``image_clustering`` installed from this very folder."""
    if __name__ == "image_clustering":
        return False
    try:
        spec = _importlib_util.find_spec("image_clustering")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.origin:
        return False
    return _os.path.realpath(_os.path.dirname(spec.origin)) == \
        _os.path.realpath(_os.path.dirname(__file__))


if _installed_here():
    from image_clustering import *  # noqa: F401,F403 (the one copy)
    from image_clustering import register  # noqa: F401
else:
    from .analysis.duplicates import (  # noqa: F401
        find_exact_duplicates,
        find_near_duplicates,
    )
    from .analysis.results import (  # noqa: F401
        delete_analysis,
        list_analyses,
        load_duplicates,
        load_uniqueness,
    )
    from .analysis.uniqueness import compute_uniqueness  # noqa: F401
    from .clustering.api import (  # noqa: F401
        RunNotFound,
        assign_clusters,
        carry_over,
        compare_runs,
        delete_run,
        estimate_labelling,
        export_clusters,
        get_run_info,
        group_clusters,
        label_clusters,
        list_runs,
        load_clusters_view,
        load_run,
        name_cluster,
        rename_run,
        repair,
        tag_clusters,
        ungroup_clusters,
    )
    from .clustering.charts import plot_run  # noqa: F401
    from .clustering.compare import RunComparison  # noqa: F401
    from .clustering.pipeline import compute_clusters  # noqa: F401
    from .clustering.presets import PRESETS  # noqa: F401
    from .clustering.request import resolve_request  # noqa: F401
    from .clustering.results import ClusterRun  # noqa: F401
    from .embedders import EMBEDDERS, get_embedder  # noqa: F401
    from .units import ParamError  # noqa: F401

    def register(p):
        from .operators import register_operators

        register_operators(p)
