"""The operators on existing clustering runs, each opened from the palette
and completed through its own form in the real App (headless Chromium),
and the Clusters panel following what they change. Runs are set up from
Python where the test is not about making them."""

import os

import fiftyone as fo
import pytest

from app_ui import (
    BROWSER_MARKS,
    RUN,
    STEP,
    badge_colors,
    choose,
    close_form,
    css_rgb,
    execute,
    expect_notice,
    fill,
    form,
    open_dataset,
    open_operator,
    open_panel,
    shot,
)

import image_clustering as ic
from conftest import write_gray
from image_clustering.clustering.charts import chart_path
from image_clustering.clustering.presentation import PALETTE, hide
from image_clustering.storage.transaction import locked

pytestmark = BROWSER_MARKS


def kmeans_run(dataset, key, k=3):
    """A fast run (8x8 pixels, k-means, a PCA map) made from Python."""
    return ic.compute_clusters(dataset, key, embedder={"name": "pixels",
                                                       "size": 8},
                               reducer="none", method="kmeans", n_clusters=k,
                               map="pca")


def test_info_and_load_view_from_their_forms(app_server, page, grey_images):
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    run = kmeans_run(dataset, "k3")
    open_dataset(page, app_server, dataset)

    open_operator(page, "Get clustering run info")
    expect(form(page).get_by_text("k3", exact=True)).to_be_visible()
    execute(page)
    expect_notice(page, "3 clusters, 0 noise, 100.0% of 60 clustered")
    shot(page, "run-info.png")
    close_form(page)

    size = run.clusters[1]["size"]
    open_operator(page, "Load clusters view")
    choose(page, "Clusters", f"Cluster 1 ({size})")
    execute(page)
    expect_notice(page, "Showing cluster 1 of run 'k3'")
    expect(page.get_by_text(f"{size} samples", exact=True)).to_be_visible(
        timeout=STEP)
    # each tile says its cluster and the cluster's size
    expect(page.locator('[data-cy="tag-k3_cluster"]').first).to_have_text(
        "1", timeout=STEP)
    expect(page.locator('[data-cy="tag-k3_size"]').first).to_have_text(
        str(size))
    shot(page, "load-clusters-view.png")


def test_the_panel_follows_a_rename_and_a_delete_from_the_palette(
        app_server, page, grey_images):
    """Defect 4: after a rename from the palette the panel moves to the new
    key and its buttons work; after a delete it shows the list of runs, and
    the deleted run's chart is gone, from disk and from the panel."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    kmeans_run(dataset, "kmeans8")
    kmeans_run(dataset, "other", k=2)
    open_dataset(page, app_server, dataset)
    open_panel(page, "Clusters")
    expect(page.get_by_text("Cluster 0 ·", exact=False)).to_be_visible(
        timeout=STEP)
    choose_in_panel(page, "Run", "kmeans8")
    expect(page.get_by_text("kmeans8 · kmeans", exact=False)).to_be_visible(
        timeout=STEP)
    page.get_by_role("button", name="Plot clustering run").click()
    expect(page.locator("img[src*='kmeans8_scatter']")).to_be_visible(
        timeout=STEP)

    open_operator(page, "Rename clustering run")
    choose(page, "Run", "kmeans8")
    fill(page, "New run key", "renamed")
    execute(page)
    expect_notice(page, "Run 'kmeans8' is now called 'renamed'")
    # The chart named the old key: it went with it.
    expect(page.locator("img[src*='_scatter']")).to_have_count(0)
    assert not os.path.exists(chart_path(dataset, "kmeans8", "scatter"))
    page.get_by_role("button", name="Show", exact=True).first.click()
    expect(page.get_by_text("20 samples", exact=True)).to_be_visible(
        timeout=STEP)
    expect(page.get_by_text("Operator Error")).to_have_count(0)
    shot(page, "panel-after-rename.png")
    page.get_by_role("button", name="Plot clustering run").click()
    expect(page.locator("img[src*='renamed_scatter']")).to_be_visible(
        timeout=STEP)

    open_operator(page, "Delete clustering run")
    choose(page, "Run", "renamed")
    expect_notice(page, "You are about to delete run 'renamed'")
    execute(page)
    expect_notice(page, "Run 'renamed' was deleted")
    expect(page.get_by_text("Clustering runs", exact=True)).to_be_visible()
    expect(page.locator("img[src*='_scatter']")).to_have_count(0)
    assert not os.path.exists(chart_path(dataset, "renamed", "scatter"))
    shot(page, "panel-after-delete.png")

    # The other run opens from the list with no chart of the deleted one,
    # and so it stays after a reload of the page (the panel comes back on
    # the other run, or on the list if the App had not yet saved the
    # panel's state).
    page.get_by_role("button", name="Open").first.click()
    expect(page.get_by_text("Cluster 1 ·", exact=False)).to_be_visible(
        timeout=STEP)
    page.reload(wait_until="domcontentloaded")
    expect(page.get_by_text("other · kmeans", exact=False).first
           ).to_be_visible(timeout=60_000)
    expect(page.locator("img[src*='_scatter']")).to_have_count(0)
    expect(page.get_by_text("Operator Error")).to_have_count(0)


def test_repair_shows_a_run_it_finished_and_says_when_there_is_nothing(
        app_server, page, grey_images):
    """Defects 9b and 9f: a run whose writer was killed after its commit
    (so the App was never told about it) gets its sidebar group and its
    colours from Repair; a second Repair says there was nothing to do,
    not an empty list."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    run = kmeans_run(dataset, "killed")
    # What a writer killed between its commit and presenting the run
    # leaves: the run, its fields and map, and nothing in the App config.
    with locked(dataset, "simulating a killed writer") as lease:
        hide(lease.dataset, run.key, {"fields": run.fields})
    dataset.reload()
    assert "clusters: killed" not in [g.name for g in
                                      dataset.app_config.sidebar_groups]
    open_dataset(page, app_server, dataset)

    open_operator(page, "Repair clustering runs")
    execute(page)
    expect_notice(page, "showed run 'killed' in the App")
    shot(page, "repair-report.png")
    dataset.reload()
    assert "clusters: killed" in [g.name for g in
                                  dataset.app_config.sidebar_groups]
    colored = {f["path"] for f in dataset.app_config.color_scheme.fields}
    assert "killed_cluster" in colored
    close_form(page)

    # The colours reach the open App at once.
    open_operator(page, "Load clusters view")
    execute(page)
    expect(page.locator('[data-cy="tag-killed_cluster"]')).to_have_count(
        3, timeout=STEP)
    assert badge_colors(page, "killed_cluster") == {
        str(c): css_rgb(PALETTE[c]) for c in range(3)}

    open_operator(page, "Repair clustering runs")
    execute(page)
    expect_notice(page, "Nothing to repair: every run is whole")
    expect(form(page).get_by_text("[]")).to_have_count(0)
    shot(page, "repair-nothing.png")


def test_compare_and_plot_from_their_forms(app_server, page, grey_images):
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    kmeans_run(dataset, "three")
    kmeans_run(dataset, "two", k=2)
    open_dataset(page, app_server, dataset)
    open_panel(page, "Clusters")
    expect(page.get_by_text("Cluster 0 ·", exact=False)).to_be_visible(
        timeout=STEP)

    open_operator(page, "Compare clustering runs")
    choose(page, "Run A", "three")
    choose(page, "Run B", "two")
    execute(page)
    expect_notice(page, "'three' vs 'two': 60 shared, ARI")
    shot(page, "compare.png")
    close_form(page)

    open_operator(page, "Plot clustering run")
    choose(page, "Run", "two")
    choose(page, "Chart", "Montage: the images nearest each centre")
    execute(page)
    expect(form(page).locator("img[src*='two_montage']")).to_be_visible(
        timeout=RUN)
    shot(page, "plot-montage.png")
    close_form(page)
    # The panel (on the newest run, 'two') shows the chart just drawn.
    choose_in_panel(page, "Chart", "montage")
    expect(page.locator("img[src*='two_montage']")).to_be_visible(
        timeout=STEP)


def choose_in_panel(page, label, option):
    """Picks ``option`` in the panel's dropdown labelled ``label``."""
    page.get_by_text(label, exact=True).last.locator(
        "xpath=following::*[@role='combobox'][1]").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_assign_keeps_the_tag_filter_and_the_panel_follows(
        app_server, page, grey_images, tmp_path):
    """Defects 9e and 4: new images are placed from the form while the
    sidebar filters on a tag; the filter stays, and the open panel counts
    the placed samples."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    kmeans_run(dataset, "k3")
    dataset.add_samples([fo.Sample(filepath=str(write_gray(
        tmp_path / f"new{i}.png", (30, 128, 225)[i % 3], size=32, noise=10,
        seed=100 + i)), tags=["new"]) for i in range(6)], progress=False)
    dataset.take(10, seed=0).tag_samples("keep")
    open_dataset(page, app_server, dataset)
    open_panel(page, "Clusters")
    expect(page.get_by_text("Cluster 0 ·", exact=False)).to_be_visible(
        timeout=STEP)
    page.locator("[data-cy='sidebar-field-tags']").click()
    page.get_by_placeholder("+ filter by sample tag").click()
    page.get_by_text("keep", exact=True).last.click()
    expect(page.get_by_text("10 samples", exact=True)).to_be_visible(
        timeout=STEP)

    open_operator(page, "Assign clusters")
    # The grid shows only the tagged samples; the new ones are elsewhere.
    form(page).get_by_text("Entire dataset", exact=True).click()
    choose(page, "Run", "k3")
    expect_notice(page, "6 sample(s) to place")
    execute(page)
    expect_notice(page, "Placed 6 sample(s) into run 'k3'", timeout=RUN)
    close_form(page)
    expect(page.get_by_text("10 samples", exact=True)).to_be_visible()
    expect(page.get_by_text("6 placed since", exact=False)).to_be_visible(
        timeout=STEP)
    shot(page, "assign-keeps-filter.png")
    dataset.reload()
    assert len(dataset.exists("k3_cluster")) == 66
