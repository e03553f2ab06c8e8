"""How a run looks in the App: a 2-D map in the Embeddings panel, the run's
fields in one sidebar group, and a categorical colour per cluster."""

import numpy as np

from ..embedders.params import ParamError
from .reducers import PCAReducer, TSNEReducer, UMAPReducer

MAP_METHODS = ("auto", "umap", "tsne", "pca", "none")

# 20 well-separated colours; clusters beyond them reuse the cycle.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a",
    "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
    "#393b79", "#637939",
)
NOISE_COLOR = "#9e9e9e"


def check_map(map_method):
    if map_method not in MAP_METHODS:
        raise ParamError(
            f"map must be one of {', '.join(MAP_METHODS)}, got {map_method!r}"
        )


def map_points(X, map_method, seed):
    """2-D points for the Embeddings panel from the clustered space ``X``.

    ``auto`` reuses ``X`` when it is already 2-D, otherwise runs UMAP (after
    PCA to 50 dimensions when ``X`` is wider, which keeps it quick).
    Returns ``None`` for ``none`` or when there are too few samples.
    """
    if map_method == "none" or len(X) < 5:
        return None
    if map_method == "auto" and X.shape[1] == 2:
        return np.asarray(X, dtype=np.float32)
    if map_method == "pca":
        return PCAReducer(n_components=2).fit_transform(X, seed)[0]
    if map_method == "tsne":
        return TSNEReducer().fit_transform(X, seed)[0]
    if X.shape[1] > 50:
        X = PCAReducer(n_components=50).fit_transform(X, seed)[0]
    umap = UMAPReducer(n_components=2, n_neighbors=15, min_dist=0.1)
    return umap.fit_transform(X, seed)[0]


def register_map(samples, brain_key, ids, points, skipped=(),
                 patches_field=None):
    """Stores ``points`` (one row per id in ``ids``: samples, or objects of
    ``patches_field``) as a brain visualization run so that the App's
    Embeddings panel lists it. ``skipped`` are the ids in ``samples`` that
    have no point."""
    import fiftyone.brain as fob

    points = dict(zip(ids, np.asarray(points)))
    # Name the few items without a point rather than the many with one, to
    # keep the stored view small.
    skipped = list(skipped)
    if patches_field:
        view = (
            samples.exclude_labels(ids=skipped, fields=patches_field)
            if skipped
            else samples
        )
        fob.compute_visualization(
            view, patches_field=patches_field, points=points,
            brain_key=brain_key,
        )
        return
    view = samples.exclude(skipped) if skipped else samples
    fob.compute_visualization(view, points=points, brain_key=brain_key)


def show_run(dataset, key, fields, n_clusters):
    """Gathers the run's fields into one sidebar group and colours its
    clusters categorically (noise in grey)."""
    import fiftyone as fo

    config = dataset.app_config
    groups = config.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(
        dataset
    )
    name = _group_name(key)
    paths = list(fields.values())
    groups = [g for g in groups if g.name != name]
    for group in groups:
        group.paths = [p for p in (group.paths or []) if p not in paths]
    groups.insert(
        1, fo.SidebarGroupDocument(name=name, paths=paths, expanded=True)
    )
    config.sidebar_groups = groups

    scheme = config.color_scheme or fo.ColorScheme()
    cluster_path = fields["cluster"]
    entries = [f for f in (scheme.fields or []) if f.get("path") != cluster_path]
    value_colors = [{"value": "-1", "color": NOISE_COLOR}] + [
        {"value": str(c), "color": PALETTE[c % len(PALETTE)]}
        for c in range(n_clusters)
    ]
    entries.append(
        {
            "path": cluster_path,
            "colorByAttribute": cluster_path,
            "valueColors": value_colors,
        }
    )
    scheme.fields = entries
    config.color_scheme = scheme
    dataset.save()


def hide_run(dataset, key, fields):
    """Removes what :func:`show_run` added."""
    config = dataset.app_config
    changed = False
    if config.sidebar_groups:
        kept = [g for g in config.sidebar_groups if g.name != _group_name(key)]
        changed = len(kept) != len(config.sidebar_groups)
        config.sidebar_groups = kept
    scheme = config.color_scheme
    if scheme is not None and scheme.fields:
        paths = set(fields.values())
        kept = [f for f in scheme.fields if f.get("path") not in paths]
        changed = changed or len(kept) != len(scheme.fields)
        scheme.fields = kept
    if changed:
        dataset.save()


def _group_name(key):
    return f"clusters: {key}"
