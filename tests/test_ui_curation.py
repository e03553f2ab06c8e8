"""Naming and curating clusters in the real App (headless Chromium): each
operator opened from the palette and completed through its own form,
cluster pickers included (click the dropdown, click the option), with the
result checked on screen, in the open Clusters panel and in the dataset.
The vision LLM is a real OpenAI-compatible server on 127.0.0.1."""

import os

import pytest

from app_ui import (
    BROWSER_MARKS,
    RUN,
    STEP,
    choose,
    choose_many,
    close_form,
    execute,
    expect_notice,
    fill,
    form,
    open_dataset,
    open_operator,
    open_panel,
    shot,
    tick,
)

import image_clustering as ic
from openai_server import FakeOpenAI

pytestmark = BROWSER_MARKS


def kmeans_run(dataset, key="k3"):
    return ic.compute_clusters(dataset, key, embedder={"name": "pixels",
                                                       "size": 8},
                               reducer="none", method="kmeans", n_clusters=3,
                               map="pca")


def _with_panel(page, app_server, dataset):
    from playwright.sync_api import expect

    open_dataset(page, app_server, dataset)
    open_panel(page, "Clusters")
    expect(page.get_by_text("Cluster 0 ·", exact=False)).to_be_visible(
        timeout=STEP)


def test_tag_clusters_picked_in_the_form(app_server, page, grey_images):
    """Defect 1: the Clusters picker lists the run's clusters, the Tags box
    takes text, Execute runs; the grid's tags and the panel follow."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    run = kmeans_run(dataset)
    _with_panel(page, app_server, dataset)
    open_operator(page, "Tag clusters")
    expect(page.get_by_role("button", name="Execute")).to_be_disabled()
    choose_many(page, "Clusters", ["Cluster 0 (20)", "Cluster 2 (20)"])
    fill(page, "Tags", "review, odd")
    shot(page, "tag-form.png")
    execute(page)
    expect_notice(page, "Tagged 40 sample(s) of cluster(s) 0, 2: review, "
                  "odd")
    expect(page.get_by_text("tags: odd (20), review (20)", exact=False)
           ).to_have_count(2, timeout=STEP)
    shot(page, "tag-done.png")
    dataset.reload()
    assert dataset.count_sample_tags() == {"review": 40, "odd": 40}
    tagged = set(dataset.match_tags("review").values("k3_cluster"))
    assert tagged == {0, 2} and run.key == "k3"


def test_group_clusters_needs_clusters_then_makes_the_group(
        app_server, page, grey_images):
    """Defect 2: the picker lists the clusters; with a name but no cluster
    the form refuses (nothing is removed, no traceback); with two clusters
    the group is made and shown, and the panel says so."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    kmeans_run(dataset)
    _with_panel(page, app_server, dataset)
    open_operator(page, "Group clusters")
    fill(page, "Group name", "people")
    expect(form(page).get_by_text("Required property").first).to_be_visible()
    expect(page.get_by_role("button", name="Execute")).to_be_disabled()
    choose_many(page, "Clusters", ["Cluster 0 (20)", "Cluster 1 (20)"])
    execute(page)
    expect_notice(page, "Group 'people': 0, 1")
    # The grid shows the group (one dynamic group of its 40 samples).
    expect(page.get_by_text("1 group", exact=True)).to_be_visible(
        timeout=STEP)
    expect(page.locator('[data-cy="tag-k3_size"]').first).to_have_text(
        "20", timeout=STEP)
    expect(page.get_by_text("group: people", exact=False)).to_have_count(
        2, timeout=STEP)
    shot(page, "group-done.png")
    assert ic.load_run(dataset, "k3").groups == {"people": [0, 1]}

    open_operator(page, "Group clusters")
    choose(page, "Action", "Remove a group (its clusters stay)")
    choose(page, "Group", "people")
    execute(page)
    expect_notice(page, "Removed group 'people'")
    assert ic.load_run(dataset, "k3").groups == {}


def test_name_a_cluster_and_label_clusters_with_force(
        app_server, page, grey_images):
    """README names find the operators; names reach the panel; a cluster
    named once is not sent again unless 'Force' is ticked (defect 9)."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    kmeans_run(dataset)
    named, others = 0, [1, 2]
    server = FakeOpenAI()
    try:
        _with_panel(page, app_server, dataset)
        open_operator(page, "Name a cluster")
        choose(page, "Cluster", f"Cluster {named} (20)")
        fill(page, "Name", "first tile")
        execute(page)
        expect_notice(page, f"Cluster {named} is now 'first tile'")
        expect(page.get_by_text(f"Cluster {named}: first tile",
                                exact=False)).to_be_visible(timeout=STEP)
        shot(page, "name-a-cluster.png")

        open_operator(page, "Label clusters")
        fill(page, "Base url", server.url)
        fill(page, "Model", "tiny-vision")
        choose_many(page, "Clusters", [f"Cluster {c} (20)" for c in others])
        expect_notice(page, "Will send 2 request(s)")
        execute(page)
        expect_notice(page, "Named 2 cluster(s) of run 'k3'", timeout=RUN)
        close_form(page)
        expect(page.get_by_text("grey images.", exact=False)).to_have_count(
            2, timeout=STEP)
        shot(page, "label-names-in-panel.png")
        assert len(server.requests) == 2

        # Unchanged clusters are not sent again, unless forced. (The
        # picker now shows their names.)
        run = ic.load_run(dataset, "k3")
        open_operator(page, "Label clusters")
        fill(page, "Base url", server.url)
        fill(page, "Model", "tiny-vision")
        choose_many(page, "Clusters", [
            f"Cluster {c}: {run.name_of(c)} (20)" for c in others])
        expect_notice(page, "Will send 0 request(s)")
        tick(page, "Force")
        expect_notice(page, "Will send 2 request(s)")
        shot(page, "label-force.png")
        execute(page)
        expect_notice(page, "Named 2 cluster(s) of run 'k3'", timeout=RUN)
        # The first run's notice may still show: Done ends this one.
        close_form(page)
        assert len(server.requests) == 4
    finally:
        server.close()
    names = ic.load_run(dataset, "k3").names
    assert names[str(named)]["name"] == "first tile"
    assert {names[str(c)]["name"] for c in others} <= {"dark images",
                                                       "bright images"}


def test_export_picks_clusters_and_says_what_to_tick(
        app_server, page, grey_images, tmp_path):
    """Defects 2 and 6: the export's Clusters picker works; exporting
    again into the same folder fails in the form's words, naming the
    checkbox to tick, and ticking it succeeds."""
    from playwright.sync_api import expect

    dataset = grey_images(n=60)
    kmeans_run(dataset)
    out = str(tmp_path / "export")
    open_dataset(page, app_server, dataset)

    def export(overwrite=False):
        open_operator(page, "Export clusters")
        fill(page, "Folder on the server", out)
        choose_many(page, "Clusters", ["Cluster 1 (20)"])
        choose(page, "Images", "Copy the images")
        if overwrite:
            tick(page, "Overwrite files that exist")
        execute(page)

    export()
    expect_notice(page, "Exported 20 row(s)")
    close_form(page)
    assert len(os.listdir(os.path.join(out, "images", "cluster_1"))) == 20

    export()
    expect_notice(page, "Export clusters failed")
    expect_notice(page, "tick 'Overwrite files that exist'")
    expect(page.get_by_text("overwrite=True", exact=False)).to_have_count(0)
    shot(page, "export-error-in-form-words.png")
    close_form(page)

    export(overwrite=True)
    expect_notice(page, "Exported 20 row(s)")
