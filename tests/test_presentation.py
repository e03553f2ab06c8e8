"""How a run looks in the App, from the stored run: colours that read on
the App's dark grid, one colour per cluster wherever the cluster shows
(its id, its name), and a repair that shows runs a killed writer left
unshown and removes what deleted runs left (colours, charts)."""

import os

import fiftyone as fo
import numpy as np

import image_clustering as ic
from image_clustering.clustering import presentation
from image_clustering.clustering.charts import (
    chart_path,
    plot_run,
    saved_charts,
)
from image_clustering.clustering.presentation import (
    NOISE_COLOR,
    PALETTE,
    SIZE_COLOR,
)
from image_clustering.storage import runs as stored
from image_clustering.storage import schema
from image_clustering.storage.transaction import locked

PIXELS8 = {"name": "pixels", "size": 8}
# The App's dark grid and panels.
APP_BACKGROUNDS = ("#1a1a1a", "#262626")


def _luminance(color):
    rgb = np.array([int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    rgb = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return float(rgb @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b):
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_every_cluster_colour_reads_on_the_apps_dark_background():
    for color in PALETTE + (NOISE_COLOR,):
        for background in APP_BACKGROUNDS:
            assert _contrast(color, background) >= 3.0, (color, background)
        # and on the white of the charts
        assert _contrast(color, "#ffffff") >= 2.0, color


def test_cluster_colours_are_distinct_and_neighbours_differ_most():
    def rgb(c):
        return np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], float)

    colors = [rgb(c) for c in PALETTE]
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(colors)
            for b in colors[i + 1:]]
    assert min(gaps) > 35
    neighbours = [np.linalg.norm(a - b) for a, b in zip(colors, colors[1:])]
    assert min(neighbours) > 100
    assert all(np.linalg.norm(rgb(NOISE_COLOR) - c) > 60 for c in colors)


def test_a_run_is_coloured_by_value_with_its_ids_sizes_and_names(two_groups):
    run = ic.compute_clusters(two_groups, "c", embedder=PIXELS8,
                              reducer="none", method="kmeans", n_clusters=2,
                              map="none")
    run.name(1, "bright")
    two_groups.reload()
    scheme = two_groups.app_config.color_scheme
    assert scheme.color_by == "value"
    entries = {f["path"]: f["valueColors"] for f in scheme.fields}
    assert entries["c_cluster"] == [
        {"value": "-1", "color": NOISE_COLOR},
        {"value": "0", "color": PALETTE[0]},
        {"value": "1", "color": PALETTE[1]}]
    assert {c["color"] for c in entries["c_size"]} == {SIZE_COLOR}
    assert entries["c_label"] == [{"value": "bright", "color": PALETTE[1]}]
    # what the open App is sent
    sent = presentation.app_color_scheme(two_groups)
    assert sent["color_by"] == "value"
    assert {f["path"] for f in sent["fields"]} >= {"c_cluster", "c_label"}


def test_a_colour_choice_of_the_user_is_kept(two_groups):
    two_groups.app_config.color_scheme = fo.ColorScheme(color_by="field")
    two_groups.save()
    ic.compute_clusters(two_groups, "c", embedder=PIXELS8, reducer="none",
                        method="kmeans", n_clusters=2, map="none")
    two_groups.reload()
    assert two_groups.app_config.color_scheme.color_by == "field"


def test_repair_shows_a_run_a_killed_writer_left_unshown(two_groups):
    run = ic.compute_clusters(two_groups, "k", embedder=PIXELS8,
                              reducer="none", method="kmeans", n_clusters=2,
                              map="none")
    with locked(two_groups, "a writer killed before showing its run") as l:
        presentation.hide(l.dataset, run.key, {"fields": run.fields})
    report = ic.repair(two_groups)
    assert report == ["showed run 'k' in the App (its sidebar group and "
                      "cluster colours)"]
    two_groups.reload()
    assert "clusters: k" in [g.name for g in
                             two_groups.app_config.sidebar_groups]
    assert ic.repair(two_groups) == []


def test_charts_go_with_their_run(two_groups):
    def run(key):
        return ic.compute_clusters(two_groups, key, embedder=PIXELS8,
                                   reducer="none", method="kmeans",
                                   n_clusters=2, map="pca", overwrite=True)

    r = run("a")
    path = plot_run(two_groups, "a")
    assert saved_charts(r) == {"scatter": path}
    # computed again under the same key: the old chart is not this run's
    r = run("a")
    assert saved_charts(r) == {} and not os.path.exists(path)
    plot_run(two_groups, "a")
    ic.rename_run(two_groups, "a", "b")
    assert not os.path.exists(chart_path(two_groups, "a", "scatter"))
    plot_run(two_groups, "b", kind="montage")
    ic.delete_run(two_groups, "b")
    assert not os.path.exists(chart_path(two_groups, "b", "montage"))


def test_repair_removes_charts_and_colours_of_runs_that_are_gone(two_groups):
    run = ic.compute_clusters(two_groups, "gone", embedder=PIXELS8,
                              reducer="none", method="kmeans", n_clusters=2,
                              map="pca")
    path = plot_run(two_groups, "gone")
    # what a delete from an older version leaves: the run, not its chart
    # or colours
    stored.delete_run(two_groups, "gone", (schema.RUN_KIND,))
    report = ic.repair(two_groups)
    assert "removed chart 'gone_scatter.png' of a deleted run" in report
    assert "removed the colours of 'gone_cluster', whose run is gone" in \
        report
    assert not os.path.exists(path) and run.key == "gone"
