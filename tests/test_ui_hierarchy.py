"""A layered run in the real App (headless Chromium): a person moves the
cut from the Move cut form and sees the new clusters on the grid, works
through the merge suggestions (rejecting one in its form, accepting one
from the Clusters panel's queue), and names a cluster above the cut from
the panel's tree; names a whole layer from the Label clusters form,
with and without telling siblings apart, and carries names into a new
run from the Compute clusters form. Runs are set up from Python."""

import re

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
    tick,
)
from openai_server import FakeOpenAI

import image_clustering as ic
from image_clustering.clustering.presentation import cluster_color
from image_clustering.labeling.naming import (
    MAX_REQUESTS,
    most_sibling_sets,
)
from image_clustering.operators.hierarchy import (
    cut_description,
    suggestion_label,
)

pytestmark = BROWSER_MARKS

# Six shades that pair up: six clusters by default, under three parents.
SHADES = (20, 50, 120, 150, 215, 245)
FAST = dict(embedder={"name": "pixels", "size": 8}, reducer="none",
            map="pca")


def layered(grey_images):
    dataset = grey_images(n=90, levels=SHADES)
    return dataset, ic.compute_clusters(dataset, "h", method="hierarchy",
                                        cut=6, **FAST)


def held_by(run, node):
    """The clusters of the cut under ``node``, as its line says."""
    return sorted(c for c in run.cut if node in run.tree.ancestors(c)[1:])


def test_a_person_moves_the_cut_to_a_layer_from_the_form(
        app_server, page, grey_images):
    from playwright.sync_api import expect

    dataset, run = layered(grey_images)
    ic.compute_clusters(dataset, "flat", method="kmeans", n_clusters=3,
                        **FAST)
    open_dataset(page, app_server, dataset)

    open_operator(page, "Move cut")
    choose(page, "Run", "flat")
    expect_notice(page, "run 'flat' is flat (one layer of clusters)")
    expect(form(page).get_by_role("button", name="Execute")).to_be_disabled()

    choose(page, "Run", "h")
    expect_notice(page, f"Run 'h' shows {cut_description(run)}")
    finest = run.layers[0]
    choose(page, "Layer", f"Layer 0: {finest['n_clusters']} clusters")
    expect_notice(page, f"Will show {finest['n_clusters']} clusters")
    execute(page)
    expect_notice(page, f"Run 'h' now shows layer 0 of "
                  f"0-{len(run.layers) - 1} · {finest['n_clusters']} "
                  "clusters")
    # The grid shows the finest clusters as groups, each tile in its
    # cluster's colour.
    expect(page.get_by_text(f"{finest['n_clusters']} groups", exact=True)
           ).to_be_visible(timeout=STEP)
    tiles = page.locator('[data-cy="tag-h_cluster"]')
    for old in set(run.cut) - set(finest["nodes"]):
        expect(tiles.filter(has_text=re.compile(f"^{old}$"))).to_have_count(
            0, timeout=STEP)
    expect(tiles.first).to_be_visible(timeout=STEP)
    shown = badge_colors(page, "h_cluster")
    assert shown and set(map(int, shown)) <= set(finest["nodes"])
    assert shown == {c: css_rgb(cluster_color(int(c))) for c in shown}
    shot(page, "hierarchy-move-cut.png")
    dataset.reload()
    assert sorted(dataset.distinct("h_cluster")) == sorted(finest["nodes"])


def test_a_person_works_the_merge_queue_and_names_a_parent(
        app_server, page, grey_images):
    from playwright.sync_api import expect

    dataset, run = layered(grey_images)
    first, second = run.suggest_merges(n=2, per_cluster=0)
    open_dataset(page, app_server, dataset)
    open_panel(page, "Clusters")
    expect(page.get_by_text(f"Clusters of the cut · {cut_description(run)}",
                            exact=False)).to_be_visible(timeout=STEP)
    above = {a for c in run.cut for a in run.tree.ancestors(c)[1:]}
    for parent in above:
        expect(page.get_by_text(re.compile("holds " + ", ".join(
            map(str, held_by(run, parent))) + "$"))).to_be_visible()
    page.get_by_text("Clusters of the cut", exact=False).first \
        .scroll_into_view_if_needed()
    shot(page, "hierarchy-panel-tree.png")

    # The pair that would become a group is rejected in the form, and
    # leaves the panel's queue.
    open_operator(page, "Merge suggestions")
    choose(page, "Run", "h")
    expect_notice(page, second["reason"])
    choose(page, "Suggestion", suggestion_label(run, second))
    choose(page, "Decision", "Reject: never suggest them again")
    execute(page)
    a, b = second["clusters"]
    expect_notice(page, f"Clusters {a} and {b} will not be suggested again")

    queue = page.get_by_text("Merge suggestions", exact=True).last
    queue.scroll_into_view_if_needed()
    expect(page.get_by_text(second["reason"], exact=False)).to_have_count(
        0, timeout=STEP)
    expect(page.get_by_text(first["reason"], exact=False).first
           ).to_be_visible()
    # Each pair shows its images nearest the centres, side by side.
    expect(page.locator("img[src*='/media']")).not_to_have_count(0)
    shot(page, "hierarchy-merge-queue.png")

    # The best pair is all of one parent's children: accepting it from
    # the queue shows that parent in their place.
    c, d = first["clusters"]
    parent = int(run.tree.parent[c])
    page.get_by_role("button", name="Accept").first.click()
    expect_notice(page, f"Merged: Clusters {c} and {d} become their "
                  f"parent, Cluster {parent}")
    merged = ic.load_run(dataset, "h")
    assert parent in merged.cut and c not in merged.cut
    expect(page.get_by_text(f"Clusters of the cut · "
                            f"{cut_description(merged)}", exact=False)
           ).to_be_visible(timeout=STEP)
    dataset.reload()
    assert parent in dataset.distinct("h_cluster")

    # A parent still above the cut is named from its line in the tree.
    other = min(a for c in merged.cut for a in merged.tree.ancestors(c)[1:])
    held = ", ".join(map(str, held_by(merged, other)))
    page.get_by_text(re.compile(f"holds {held}$")).first.locator(
        "xpath=following::button[normalize-space()='Name a cluster'][1]"
    ).click()
    expect(form(page).get_by_text(f"Cluster {other} (", exact=False).first
           ).to_be_visible(timeout=STEP)
    fill(page, "Name", "bright")
    execute(page)
    expect(page.get_by_text(f"Cluster {other}: bright", exact=False).first
           ).to_be_visible(timeout=STEP)
    assert ic.load_run(dataset, "h").name_of(other) == "bright"
    shot(page, "hierarchy-panel-named-parent.png")


def test_a_person_carries_names_from_one_run_to_another(
        app_server, page, grey_images):
    dataset, run = layered(grey_images)
    flat = ic.compute_clusters(dataset, "flat", method="kmeans",
                               n_clusters=3, **FAST)
    ic.name_cluster(dataset, "flat", flat.cut[0], "a pair of shades")
    open_dataset(page, app_server, dataset)

    open_operator(page, "Carry decisions over")
    choose(page, "From run", "flat")
    choose(page, "To run", "h")
    execute(page)
    expect_notice(page, "Decisions carried from run 'flat': 1 carried")
    shot(page, "hierarchy-carried.png")
    carried = ic.load_run(dataset, "h")
    (entry,) = carried.results["carried"]["carried"]
    assert carried.name_of(entry["to"]) == "a pair of shades"


def siblings_named_alike(run, nodes):
    """Sets of sibling nodes (of ``nodes``) that share a name."""
    by_parent_and_name = {}
    for node in nodes:
        parent = run.tree.ancestors(node)[1:2]
        key = (tuple(parent), run.name_of(node))
        by_parent_and_name.setdefault(key, set()).add(node)
    return [group for (parent, _), group in by_parent_and_name.items()
            if parent and len(group) > 1]


def test_a_person_names_a_layer_and_siblings_named_alike_are_told_apart(
        app_server, page, grey_images):
    from playwright.sync_api import expect

    dataset, run = layered(grey_images)
    layer = run.tree.layer_of(run.cut)
    server = FakeOpenAI()

    def label_layer(*ticks, limit=None):
        open_operator(page, "Label clusters")
        fill(page, "Base url", server.url)
        fill(page, "Model", "tiny-vision")
        fill(page, "Layer", layer)
        if limit is not None:
            fill(page, "Max requests", limit)
        for box in ticks:
            tick(page, box)
        expect_notice(page, f"Will send {len(run.cut)} request(s)")
        # Asked to tell siblings apart, the form says how many more
        # requests that can take, within the limit.
        most = 0 if "Tell apart" in ticks else min(
            most_sibling_sets(run.tree, run.cut),
            (limit or MAX_REQUESTS.default) - len(run.cut))
        more = page.get_by_text(f"and up to {most} more to tell apart "
                                "siblings named alike", exact=False)
        if most:
            expect(more).to_be_visible(timeout=STEP)
        else:
            expect(page.get_by_text("more to tell apart", exact=False)
                   ).to_have_count(0)
        execute(page)
        expect_notice(page, f"Named {len(run.cut)} cluster(s) of run 'h'",
                      timeout=RUN)
        if limit is not None:
            expect_notice(page, "set(s) of siblings keep names alike",
                          timeout=RUN)
        close_form(page)
        return ic.load_run(dataset, "h")

    try:
        open_dataset(page, app_server, dataset)
        # Named one by one, shades of one brightness get one name.
        alike = label_layer("Tell apart")
        assert sorted(alike.name_of(c) for c in run.cut) == \
            ["bright images"] * 3 + ["dark images"] * 3
        pairs = siblings_named_alike(alike, run.cut)
        assert pairs
        assert len(server.requests) == len(run.cut)
        # Told apart, siblings named alike are asked again together, one
        # request for each set, and each is named by its own grey level.
        told = label_layer("Force")
        assert siblings_named_alike(told, run.cut) == []
        assert all("grey" in told.name_of(c) for pair in pairs for c in pair)
        assert len(server.requests) == 2 * len(run.cut) + len(pairs)
        # With no requests to spare, the names stay alike, and the notice
        # says so.
        capped = label_layer("Force", limit=len(run.cut))
        assert siblings_named_alike(capped, run.cut)
        assert len(server.requests) == 3 * len(run.cut) + len(pairs)
    finally:
        server.close()


def test_a_new_run_carries_names_chosen_in_the_compute_form(
        app_server, page, grey_images):
    dataset, run = layered(grey_images)
    darkest = run.cut[0]
    ic.name_cluster(dataset, "h", darkest, "the darkest")
    open_dataset(page, app_server, dataset)

    open_operator(page, "Compute clusters")
    choose(page, "Reducer", "PCA")
    choose(page, "Carry decisions from", "Run 'h'")
    execute(page)
    expect_notice(page, "decisions carried from run 'h': 1 carried",
                  timeout=RUN)
    carried = ic.load_run(dataset, "clusters")
    (entry,) = carried.results["carried"]["carried"]
    assert carried.name_of(entry["to"]) == "the darkest"
    assert carried.node(entry["to"])["size"] == run.node(darkest)["size"]
