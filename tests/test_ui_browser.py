"""The compute form in the real App, driven in headless Chromium as a
person drives it: its defaults, a run from the form as it opens, the
clusters in colour on the grid and on the Embeddings map, a failing run,
a refused parameter, and runs from a grouped grid. Screenshots are kept in
``test-artifacts/``."""

import os

import pytest

from app_ui import (
    BROWSER_MARKS,
    RUN,
    STEP,
    badge_colors,
    choose,
    close_form,
    color_map_by,
    combobox,
    css_rgb,
    execute,
    expect_notice,
    fill,
    form,
    legend_colors,
    open_dataset,
    open_map,
    open_operator,
    open_panel,
    shot,
    text_input,
)

import image_clustering as ic
from image_clustering.algorithms.clusterers import CLUSTERERS
from image_clustering.clustering.presentation import PALETTE
from image_clustering.clustering.request import resolve_request
from image_clustering.operators.compute import (
    PRESET_LABELS,
    REDUCER_CHAINS,
)
from image_clustering.support import to_json

pytestmark = BROWSER_MARKS


def _pca_run(page):
    """The compute form with the PCA reducer (fast), executed."""
    open_operator(page, "Compute clusters")
    choose(page, "Reducer", "PCA")
    execute(page)


def test_the_form_opens_on_the_products_defaults_and_the_run_shows_in_colour(
        app_server, page, grey_images):
    """Defects 7 and 5, and tiles that say their cluster and size: the form
    shows what compute_clusters does with no arguments (the hierarchy, as
    the pixels preset says); executed as it opens, the run records exactly
    that; right after it, with no reload and no change of 'Color by', the
    grid's badges and the Embeddings map use the run's colour for each
    cluster, and the map can be coloured by the new field."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    spec = resolve_request()
    open_dataset(page, app_server, dataset)
    open_operator(page, "Compute clusters")
    expect(combobox(page, "Preset")).to_have_text(
        PRESET_LABELS[spec.preset], timeout=STEP)
    expect(combobox(page, "Reducer")).to_have_text(
        REDUCER_CHAINS["+".join(u.name for u in spec.reducers)])
    expect(combobox(page, "Method")).to_have_text(
        f"{spec.clusterer.label}: {spec.clusterer.description}")
    assert spec.clusterer.name == "hierarchy"
    # A hierarchy leaves no noise: the form asks for no noise policy.
    expect(form(page).get_by_text("Noise", exact=True)).to_have_count(0)
    expect(text_input(page, "Size")).to_have_value(
        str(spec.embedder.params["size"]))
    expect(text_input(page, "Random seed")).to_have_value(str(spec.seed))
    shot(page, "compute-form-defaults.png")
    execute(page)

    expect_notice(page, "Run 'clusters': 3 clusters; 60 of 60 samples "
                  "clustered", timeout=RUN)
    close_form(page)
    expect(page.get_by_text("3 groups", exact=True)).to_be_visible(
        timeout=STEP)

    run = ic.load_run(dataset, "clusters")
    expected_config = to_json(spec.config())
    expected_config.pop("field_prefix")  # the run key, by default
    assert {k: run.config[k] for k in expected_config} == expected_config

    # Each tile says its cluster and its size, in the run's colours.
    expect(page.locator('[data-cy="tag-clusters_size"]').first).to_have_text(
        "20", timeout=STEP)
    expect(page.locator('[data-cy="tag-clusters_cluster"]')).to_have_count(
        3, timeout=STEP)
    expected = {str(c): css_rgb(PALETTE[c]) for c in range(3)}
    assert badge_colors(page, "clusters_cluster") == expected
    shot(page, "colours-grid.png")

    open_panel(page, "Embeddings")
    open_map(page, "clusters_map", 60)
    color_map_by(page, "clusters_cluster")
    expect(page.locator(".emb-legend-row")).to_have_count(3, timeout=STEP)
    assert legend_colors(page) == expected
    shot(page, "colours-map.png")


def test_a_failing_run_shows_one_error_and_ends_its_progress(
        app_server, page, grey_images):
    """Defect 3: a failed run ends its progress bar on the error and shows
    it once; the App never reports a failure of its own progress
    operator."""
    from playwright.sync_api import expect

    dataset = grey_images(n=30)
    for path in dataset.values("filepath"):
        os.remove(path)
    console = []
    page.on("console", lambda m: console.append(m.text))
    open_dataset(page, app_server, dataset)
    _pca_run(page)
    expect_notice(page, "Compute clusters failed: only 0 of 30 samples "
                  "could be embedded", timeout=RUN)
    expect_notice(page, "Failed: only 0 of 30 samples could be embedded")
    expect(page.get_by_text("Failed to execute operator")).to_have_count(0)
    assert not [m for m in console if "set_progress" in m]
    shot(page, "failed-run.png")
    dataset.reload()
    assert dataset.list_runs() == []


def test_too_many_clusters_disable_execute_with_the_reason(
        app_server, page, grey_images):
    from playwright.sync_api import expect

    kmeans = CLUSTERERS["kmeans"]
    dataset = grey_images(n=30)
    open_dataset(page, app_server, dataset)
    open_operator(page, "Compute clusters")
    choose(page, "Method", f"{kmeans.label}: {kmeans.description}")
    # k is given by default (8); the form shows it to change.
    fill(page, "N clusters", 1000)
    expect_notice(page, "larger than the number of samples (30)")
    expect(page.get_by_role("button", name="Execute")).to_be_disabled()
    shot(page, "n-clusters-refused.png")


def test_second_run_from_a_grouped_view_and_delete_while_viewing(
        app_server, page, grey_images):
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    open_dataset(page, app_server, dataset)
    _pca_run(page)
    expect(page.get_by_text("3 groups", exact=True)).to_be_visible(
        timeout=RUN)
    close_form(page)

    # A second run from the grouped grid clusters every sample.
    open_operator(page, "Compute clusters")
    expect_notice(page, "Clusters 60 samples (every sample of the groups on "
                  "screen)")
    choose(page, "Reducer", "PCA")
    execute(page)
    expect_notice(page, "Run 'clusters2': 3 clusters; 60 of 60 samples "
                  "clustered", timeout=RUN)
    close_form(page)
    # The grid now shows the new run's groups, each tile saying its cluster.
    expect(page.locator('[data-cy="tag-clusters2_cluster"]')).to_have_count(
        3, timeout=STEP)

    # Deleting the run on screen brings the whole dataset back.
    open_operator(page, "Delete clustering run")
    expect_notice(page, "You are about to delete run 'clusters2'")
    execute(page)
    expect_notice(page, "Deleted run 'clusters2' and its fields")
    expect(page.get_by_text("60 samples", exact=True)).to_be_visible(
        timeout=STEP)
    shot(page, "after-delete-while-viewing.png")

    dataset.reload()
    assert dataset.list_runs() == ["clusters"]
    paths = {f.get("path") for f in dataset.app_config.color_scheme.fields}
    assert "clusters_cluster" in paths
    assert "clusters2_cluster" not in paths
