"""A run as pictures (matplotlib, PNG):

- ``scatter``: the run's 2-D map coloured by cluster (noise grey), and
  beside it by ground truth when ``gt_field`` is given;
- ``boundaries``: where the run's assigner would put a new point, drawn
  under the 2-D map;
- ``montage``: one row per cluster, largest first: the images nearest its
  centre, labelled with id, size and name once named;
- ``axes``: for the first principal components of the embeddings, a strip
  of images ordered along each component.

Charts stay readable at 100 clusters and 100,000 points: at most
:data:`MAX_POINTS` points are drawn (a uniform sample, said on the chart),
the legend gives way to labels at the cluster centres beyond 20 clusters,
and a montage shows at most :data:`MAX_CLUSTERS` rows.
"""

import os
from datetime import timezone

import numpy as np

from ..algorithms import fitted
from ..embedders.images import ImageDecodeError, load_image
from ..storage.sample_io import read_vectors
from ..units import Param, ParamError
from .presentation import cluster_color
from .results import ClusterRun

KINDS = ("scatter", "boundaries", "montage", "axes")
KIND = Param("kind", "choice", "scatter", "Which chart", choices=KINDS)
MAX_POINTS = 20_000
MAX_CLUSTERS = 100
THUMB = 64


def charts_dir(dataset):
    import fiftyone as fo

    return os.path.join(fo.config.default_dataset_dir,
                        "image-clustering-charts", dataset.name)


def chart_problem(run, kind):
    """Why chart ``kind`` cannot be drawn of ``run``, or ``None``."""
    if kind in ("scatter", "boundaries") and "map" not in run.fields:
        return "has no 2-D map (it was computed without one)"
    if kind == "axes":
        field = run.config.get("embeddings_field")
        if run.patches_field or not field or \
                run.dataset.get_field(field) is None:
            return "has no embeddings field to take principal components of"
    return None


def available_kinds(run):
    """The kinds of chart that can be drawn of ``run``."""
    return [k for k in KINDS if chart_problem(run, k) is None]


def chart_path(dataset, run_key, kind):
    """Where chart ``kind`` of run ``run_key`` is kept."""
    return os.path.join(charts_dir(dataset), f"{run_key}_{kind}.png")


def saved_charts(run):
    """``{kind: path}`` of the charts drawn of ``run`` (a
    :class:`.results.ClusterRun`) since it was computed; a chart of an
    earlier run under the same key is not one of them."""
    computed = run.timestamp
    if computed.tzinfo is None:
        computed = computed.replace(tzinfo=timezone.utc)
    out = {}
    for kind in KINDS:
        path = chart_path(run.dataset, run.key, kind)
        try:
            drawn = os.path.getmtime(path)
        except OSError:
            continue
        if drawn >= computed.timestamp():
            out[kind] = path
    return out


def remove_charts(dataset, run_key):
    """Deletes the charts of run ``run_key``; returns their paths."""
    removed = []
    for kind in KINDS:
        path = chart_path(dataset, run_key, kind)
        if os.path.exists(path):
            os.remove(path)
            removed.append(path)
    return removed


def remove_orphan_charts(dataset, run_keys):
    """Deletes the charts whose run is not among ``run_keys``; returns a
    sentence for each."""
    folder = charts_dir(dataset)
    if not os.path.isdir(folder):
        return []
    out = []
    for name in sorted(os.listdir(folder)):
        key = _chart_key(name)
        if key is not None and key not in run_keys:
            os.remove(os.path.join(folder, name))
            out.append(f"removed chart '{name}' of a deleted run")
    return out


def _chart_key(file_name):
    for kind in KINDS:
        suffix = f"_{kind}.png"
        if file_name.endswith(suffix) and len(file_name) > len(suffix):
            return file_name[:-len(suffix)]
    return None


def plot_run(samples, run_key, kind="scatter", path=None, gt_field=None,
             per_cluster=8, n_axes=4, seed=0):
    """Draws chart ``kind`` of run ``run_key`` to ``path`` (default: a file
    in the dataset's charts folder) and returns the path."""
    import matplotlib

    matplotlib.use("Agg")

    kind = KIND.clean("plot_run", kind)
    run = ClusterRun.load(samples, run_key)
    problem = chart_problem(run, kind)
    if problem:
        raise ParamError(f"kind: run '{run.key}' {problem}; choose another "
                         f"chart ({', '.join(available_kinds(run))})", "kind")
    path = path or chart_path(run.dataset, run.key, kind)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    draw = {"scatter": _scatter, "boundaries": _boundaries,
            "montage": _montage, "axes": _axes}[kind]
    figure = draw(run, gt_field=gt_field, per_cluster=per_cluster,
                  n_axes=n_axes, seed=seed)
    tmp = f"{path}.{os.getpid()}.tmp.png"
    figure.savefig(tmp, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(figure)
    os.replace(tmp, path)
    return path


# -- the 2-D map -------------------------------------------------------------


def _map_points(run, gt_field, seed):
    extra = {"map": run.fields["map"]}
    if gt_field:
        extra["truth"] = f"{gt_field}.label"
    m = run.members(extra=extra)
    keep = [i for i, p in enumerate(m["map"]) if p is not None]
    total = len(keep)
    if total > MAX_POINTS:
        keep = sorted(np.random.default_rng(seed).choice(
            keep, MAX_POINTS, replace=False).tolist())
    points = np.asarray([m["map"][i] for i in keep], float)
    clusters = np.asarray([m["cluster"][i] for i in keep])
    truth = [m["truth"][i] for i in keep] if gt_field else None
    return points, clusters, truth, total


def _colours(clusters):

    return [cluster_color(int(c)) for c in clusters]


def _sampled_note(shown, total):
    return "" if shown == total else \
        f"\n(a uniform sample: {shown:,} of {total:,} points)"


def _scatter(run, gt_field=None, seed=0, **_):
    import matplotlib.pyplot as plt

    points, clusters, truth, total = _map_points(run, gt_field, seed)
    panels = 2 if truth is not None else 1
    figure, axes = plt.subplots(1, panels, figsize=(8 * panels, 7),
                                squeeze=False)
    ax = axes[0][0]
    _draw_clusters(ax, points, clusters)
    ax.set_title(f"run '{run.key}': {run.metrics['n_clusters']} clusters"
                 + _sampled_note(len(points), total))
    if truth is not None:
        ax = axes[0][1]
        classes = sorted({t for t in truth if t is not None}, key=str)
        index = {c: i for i, c in enumerate(classes)}
        colours = [_class_colour(index.get(t)) for t in truth]
        ax.scatter(points[:, 0], points[:, 1], s=4, c=colours,
                   linewidths=0)
        if len(classes) <= 20:
            for c in classes:
                ax.scatter([], [], s=20, c=[_class_colour(index[c])],
                           label=str(c))
            ax.legend(loc="best", fontsize=8, markerscale=1.5)
        ax.set_title(f"coloured by {gt_field}")
        ax.set_xticks([])
        ax.set_yticks([])
    figure.tight_layout()
    return figure


def _class_colour(i):
    import matplotlib

    if i is None:
        return "#9e9e9e"
    return matplotlib.colormaps["tab20"](i % 20)


def _draw_clusters(ax, points, clusters):
    ax.scatter(points[:, 0], points[:, 1], s=4, c=_colours(clusters),
               linewidths=0)
    found = sorted(set(clusters.tolist()))
    if len(found) <= 20:
        for c in found:
            ax.scatter([], [], s=20, c=_colours([c]),
                       label="noise" if c < 0 else f"cluster {c}")
        ax.legend(loc="best", fontsize=8, markerscale=1.5)
    else:
        for c in found:
            if c < 0:
                continue
            centre = np.median(points[clusters == c], axis=0)
            ax.annotate(str(c), centre, fontsize=7, ha="center",
                        va="center", alpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def _boundaries(run, seed=0, **_):
    """Decision regions on a grid over the map. Where the clustered space
    is the map itself, the run's own assigner decides each grid point;
    otherwise a vote of the nearest mapped points does (said on the
    chart)."""
    import matplotlib.pyplot as plt

    points, clusters, _, total = _map_points(run, None, seed)
    lo, hi = points.min(0), points.max(0)
    pad = (hi - lo) * 0.05
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 300)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 300)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.c_[gx.ravel(), gy.ravel()].astype(np.float32)
    regions, how = _grid_regions(run, points, clusters, grid)
    figure, ax = plt.subplots(figsize=(9, 8))
    from matplotlib.colors import ListedColormap

    found = sorted(set(regions.tolist()) | set(clusters.tolist()))
    lookup = {c: i for i, c in enumerate(found)}
    cmap = ListedColormap(_colours(found))
    ax.imshow(np.vectorize(lookup.get)(regions.reshape(gx.shape)),
              origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]),
              cmap=cmap, alpha=0.25, aspect="auto", interpolation="nearest",
              vmin=0, vmax=max(len(found) - 1, 1))
    _draw_clusters(ax, points, clusters)
    ax.set_title(f"run '{run.key}': where a new point would go ({how})"
                 + _sampled_note(len(points), total))
    figure.tight_layout()
    return figure


def _grid_regions(run, points, clusters, grid):
    layout = (run.config.get("map") or {}).get("layout") or {}
    if layout.get("method") == "clustered space":
        state = fitted.loads(run.attachment("fitted"), run.key)
        labels, _ = state.predict(grid, "auto")
        return labels, f"the {run.config['method']} assigner"
    regions = fitted.knn_vote(points, clusters, grid, k=15,
                              ignore_noise=True)
    return regions, "nearest mapped points vote"


# -- pictures of the images themselves ------------------------------------


def _thumbnail(path):
    from PIL import Image


    try:
        im = load_image(path, "RGB", size=(2 * THUMB, 2 * THUMB))
    except ImageDecodeError:
        return np.full((THUMB, THUMB, 3), 200, np.uint8)
    im.thumbnail((THUMB, THUMB), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (THUMB, THUMB), (255, 255, 255))
    canvas.paste(im, ((THUMB - im.width) // 2, (THUMB - im.height) // 2))
    return np.asarray(canvas)


def _montage(run, per_cluster=8, **_):
    import matplotlib.pyplot as plt

    if not run.clusters:
        return _message(f"run '{run.key}' has no clusters: all "
                        f"{run.metrics['n_noise']:,} samples are noise")
    reps = run.representatives(per_cluster=per_cluster)
    names = {str(k): v for k, v in (run.results.get("names") or {}).items()}
    clusters = run.clusters[:MAX_CLUSTERS]
    rows = len(clusters)
    figure, axes = plt.subplots(
        rows, per_cluster + 1, figsize=(1.1 * (per_cluster + 1) + 1.5,
                                        1.1 * rows + 0.6),
        squeeze=False, gridspec_kw={"width_ratios": [2] + [1] * per_cluster})
    for r, c in enumerate(clusters):
        label = axes[r][0]
        name = (names.get(str(c["id"])) or {}).get("name")
        label.text(0.0, 0.5, f"{c['id']}: {c['size']}" +
                   (f"\n{name}" if name else ""), fontsize=8, va="center")
        label.axis("off")
        chosen = reps.get(c["id"], [])
        for j in range(per_cluster):
            ax = axes[r][j + 1]
            ax.axis("off")
            if j < len(chosen):
                ax.imshow(_thumbnail(chosen[j][1]))
    more = len(run.clusters) - rows
    figure.suptitle(f"run '{run.key}': images nearest each centre"
                    + (f" (first {rows} of {len(run.clusters)} clusters)"
                       if more > 0 else ""), fontsize=10)
    figure.tight_layout()
    return figure


def _message(text):
    """A chart that is one sentence: what there is to see instead."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 1.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    ax.axis("off")
    return figure


def _axes(run, n_axes=4, per_axis=10, seed=0, **_):
    """Strips of images along the first principal components of the run's
    embeddings."""
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA


    field = run.config["embeddings_field"]
    ids, X, _ = read_vectors(run.clustered_view(), field)
    if len(X) > MAX_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(
            len(X), MAX_POINTS, replace=False))
        ids, X = [ids[i] for i in rows], X[rows]
    n_axes = min(n_axes, X.shape[1], len(X))
    pca = PCA(n_components=n_axes, random_state=seed).fit(X)
    scores = pca.transform(X)
    paths = dict(zip(*run.dataset.select(ids).values(["id", "filepath"])))
    figure, axes = plt.subplots(n_axes, per_axis,
                                figsize=(1.1 * per_axis, 1.3 * n_axes + 0.5),
                                squeeze=False)
    for a in range(n_axes):
        order = np.argsort(scores[:, a])
        picks = order[np.linspace(0, len(order) - 1, per_axis).astype(int)]
        for j, i in enumerate(picks):
            ax = axes[a][j]
            ax.imshow(_thumbnail(paths[ids[i]]))
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"PC{a + 1}\n"
                              f"{pca.explained_variance_ratio_[a]:.0%}",
                              fontsize=8)
    figure.suptitle(f"run '{run.key}': images along the first {n_axes} "
                    "principal components (low to high)", fontsize=10)
    figure.tight_layout()
    return figure
