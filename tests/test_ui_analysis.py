"""Uniqueness and duplicates in the real App (headless Chromium): every
operator opened from the palette and completed through its own form, on
real photographs with planted copies (``planted.py``)."""

import os

import pytest

import fiftyone as fo

from app_ui import (
    BROWSER_MARKS,
    RUN,
    STEP,
    choose,
    close_form,
    execute,
    expect_notice,
    fill,
    open_dataset,
    open_operator,
    shot,
)

import image_clustering as ic
from planted import write_planted

pytestmark = BROWSER_MARKS


@pytest.fixture
def planted(tmp_path, request):
    """A persistent dataset of 40 photographs, 3 of them with 4 near
    copies each and 2 with an exact copy."""
    paths, _ = write_planted(str(tmp_path), copies_of=3, exact_of=2)
    name = f"ui-planted-{request.node.name[5:30]}-{os.getpid()}"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples([fo.Sample(filepath=p) for p in paths],
                        progress=False)
    yield dataset
    dataset.delete()


def test_uniqueness_exact_duplicates_and_deleting_a_run(
        app_server, page, planted):
    from playwright.sync_api import expect

    dataset = planted
    n = len(dataset)
    open_dataset(page, app_server, dataset)

    open_operator(page, "Compute uniqueness")
    expect_notice(page, f"Scores {n} samples")
    execute(page)
    expect_notice(page, f"Run 'uniqueness': {n} samples scored in "
                  "'uniqueness_score', most unique first", timeout=RUN)
    close_form(page)
    # Each tile shows its score; the most unique first.
    expect(page.locator('[data-cy="tag-uniqueness_score"]').first
           ).to_have_text("1", timeout=STEP)
    shot(page, "uniqueness.png")

    open_operator(page, "Find exact duplicates")
    execute(page)
    expect_notice(page, "Run 'exact_dups': 2 duplicate(s) in 2 group(s)",
                  timeout=RUN)
    close_form(page)
    expect(page.get_by_text("2 groups", exact=True)).to_be_visible(
        timeout=STEP)

    open_operator(page, "Delete uniqueness or duplicates run")
    choose(page, "Run", "uniqueness")
    execute(page)
    expect_notice(page, "Deleted run 'uniqueness' and its fields")
    expect(page.get_by_text(f"{n} samples", exact=True)).to_be_visible(
        timeout=STEP)
    assert set(ic.list_analyses(dataset)) == {"exact_dups"}
    dataset.reload()
    assert dataset.get_field("uniqueness_score") is None


def test_near_duplicates_tagged_split_checked_then_deleted(
        app_server, page, planted):
    """The whole near-duplicates flow through the forms; after the
    duplicates are deleted the grid shows what was kept, never groups of
    one image (defect 9)."""
    from playwright.sync_api import expect

    dataset = planted
    dataset.tag_samples("train")
    n = len(dataset)
    open_dataset(page, app_server, dataset)

    open_operator(page, "Find near-duplicates")
    execute(page)
    expect_notice(page, "Run 'near_dups': 14 duplicate(s) in 5 group(s)",
                  timeout=RUN)
    close_form(page)
    expect(page.get_by_text("5 groups", exact=True)).to_be_visible(
        timeout=STEP)

    open_operator(page, "Tag or delete duplicates")
    fill(page, "Tag", "dup")
    execute(page)
    expect_notice(page, "Tagged 14 duplicate(s) of run 'near_dups' 'dup'")
    dataset.reload()
    assert dataset.count_sample_tags()["dup"] == 14

    # One copy moves to the test split: its group leaks across splits.
    dup = dataset.match_tags("dup").first()
    dup.tags = ["test", "dup"]
    dup.save()
    open_operator(page, "Load duplicates view")
    choose(page, "Show", "Groups that cross splits")
    fill(page, "Split tags", "train")
    expect_notice(page, "Give at least two tags")
    expect(page.get_by_role("button", name="Execute")).to_be_disabled()
    fill(page, "Split tags", "train, test")
    execute(page)
    expect_notice(page, "1 group(s) cross splits")
    expect(page.get_by_text("1 group", exact=True)).to_be_visible(
        timeout=STEP)

    open_operator(page, "Load duplicates view")
    execute(page)
    expect(page.get_by_text("5 groups", exact=True)).to_be_visible(
        timeout=STEP)

    open_operator(page, "Tag or delete duplicates")
    choose(page, "Action", "Delete them from the dataset (files stay on "
           "disk)")
    expect_notice(page, "14 sample(s) will be DELETED from the dataset")
    expect_notice(page, "Type 14, the number of samples to delete")
    fill(page, "Type the count to confirm", 14)
    execute(page)
    expect_notice(page, "Deleted 14 duplicate(s) of run 'near_dups'; "
                  "showing the representatives that were kept")
    # The grid shows the 5 samples kept, not 5 "groups" of one image.
    expect(page.get_by_text("5 samples", exact=True)).to_be_visible(
        timeout=STEP)
    shot(page, "duplicates-deleted.png")
    assert len(dataset) == n - 14

    # Asked for the groups again, the App says none is left.
    open_operator(page, "Load duplicates view")
    execute(page)
    expect_notice(page, "Nothing to show: no group of more than one sample "
                  "of run 'near_dups' is left")
    expect(page.get_by_text("5 samples", exact=True)).to_be_visible()
