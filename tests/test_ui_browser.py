"""The real App server on 127.0.0.1, driven by headless Chromium: the
operator palette, the compute form, the grouped grid and the Clusters
panel. Screenshots are kept in ``test-artifacts/``."""

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, write_gray

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = os.path.join(REPO, "test-artifacts")
BROWSER_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason="Chromium is not installed (bash .ci/setup test installs it)",
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_dataset(tmp_path):
    """90 images in three grey levels, in a persistent dataset served by a
    real App server process."""
    import fiftyone as fo

    name = f"ui-test-{os.getpid()}"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples(
        [
            fo.Sample(filepath=str(write_gray(
                tmp_path / f"{i}.png", (30, 128, 225)[i % 3], size=32,
                noise=10, seed=i,
            )))
            for i in range(90)
        ],
        progress=False,
    )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import fiftyone as fo, sys\n"
         f"s = fo.launch_app(fo.load_dataset({name!r}), remote=True, "
         f"address='127.0.0.1', port={port})\n"
         "s.wait(-1)\n"],
        env=dict(os.environ), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                break
        except OSError:
            time.sleep(1)
    else:
        server.kill()
        pytest.fail("the App server did not answer within 120 s")
    try:
        yield dataset, f"{url}/datasets/{name}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        dataset.delete()


def _shot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name))


def test_compute_clusters_from_the_palette_and_browse_them(app_dataset):
    from playwright.sync_api import expect, sync_playwright

    dataset, url = app_dataset
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        expect(page.get_by_text("90 samples")).to_be_visible(timeout=60000)
        _shot(page, "1-grid.png")

        page.keyboard.press("`")
        page.keyboard.type("Compute clusters")
        option = page.get_by_text("Compute clusters", exact=True).last
        expect(option).to_be_visible(timeout=15000)
        _shot(page, "2-palette.png")
        page.keyboard.press("Enter")

        expect(page.get_by_text("Run key", exact=True)).to_be_visible(timeout=15000)
        # the form proposes a free run key and the recommended pipeline
        expect(page.get_by_text("PCA, then UMAP (recommended)")).to_be_visible()
        page.get_by_text("PCA, then UMAP (recommended)").click()
        page.get_by_role("option", name="PCA", exact=True).click()
        expect(page.get_by_text("Min cluster size", exact=True)).to_be_visible()
        _shot(page, "3-form.png")
        page.get_by_role("button", name="Execute").click()

        expect(page.get_by_text("Run 'clusters': 3 clusters")).to_be_visible(
            timeout=180000
        )
        expect(page.get_by_text("3 groups")).to_be_visible(timeout=30000)
        _shot(page, "4-grouped.png")

        dataset.reload()
        assert dataset.list_runs() == ["clusters"]
        for suffix in ("cluster", "dist", "sim", "size", "prob", "outlier"):
            assert dataset.get_field(f"clusters_{suffix}") is not None
        assert sorted(dataset.count_values("clusters_cluster").values()) == [
            30, 30, 30]

        # the Clusters panel lists the run's clusters with their names;
        # Show opens one
        import image_clustering as ic

        ic.name_cluster(dataset, "clusters", 0, "first named cluster")
        page.reload(wait_until="domcontentloaded")
        page.get_by_text("Dismiss").click(timeout=60000)
        page.locator('[data-cy="new-panel-btn"]').first.click()
        page.get_by_text("Clusters", exact=True).first.click()
        expect(page.get_by_text("Cluster 2", exact=True)).to_be_visible(
            timeout=30000
        )
        expect(page.get_by_text("30 images").first).to_be_visible()
        expect(page.get_by_text("first named cluster").first).to_be_visible(
            timeout=30000)
        _shot(page, "5-panel.png")
        page.get_by_role("button", name="Show", exact=True).first.click()
        expect(page.get_by_text("30 samples")).to_be_visible(timeout=30000)
        _shot(page, "6-cluster.png")
        browser.close()


def _browser(p):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    return browser, page


def _open_operator(page, label):
    from playwright.sync_api import expect

    page.keyboard.press("`")
    page.keyboard.type(label)
    option = page.get_by_text(label, exact=True).last
    expect(option).to_be_visible(timeout=15000)
    page.keyboard.press("Enter")


def _run_pca_clustering(page):
    """The compute form with the PCA reducer, executed."""
    from playwright.sync_api import expect

    _open_operator(page, "Compute clusters")
    expect(page.get_by_text("Run key", exact=True)).to_be_visible(
        timeout=15000)
    page.get_by_text("PCA, then UMAP (recommended)").click()
    page.get_by_role("option", name="PCA", exact=True).click()
    page.get_by_role("button", name="Execute").click()


def test_a_failing_run_shows_its_error_in_the_app(app_dataset):
    from playwright.sync_api import expect, sync_playwright

    dataset, url = app_dataset
    for path in dataset.values("filepath"):
        os.remove(path)
    with sync_playwright() as p:
        browser, page = _browser(p)
        page.goto(url, wait_until="domcontentloaded")
        expect(page.get_by_text("90 samples")).to_be_visible(timeout=60000)
        _run_pca_clustering(page)
        expect(page.get_by_text("Compute clusters failed: only 0 of 90 "
                                "samples could be embedded").first
               ).to_be_visible(timeout=120000)
        _shot(page, "error-notice.png")
        browser.close()
    dataset.reload()
    assert dataset.list_runs() == []


def test_too_many_clusters_disable_execute_with_the_reason(app_dataset):
    from playwright.sync_api import expect, sync_playwright

    dataset, url = app_dataset
    with sync_playwright() as p:
        browser, page = _browser(p)
        page.goto(url, wait_until="domcontentloaded")
        expect(page.get_by_text("90 samples")).to_be_visible(timeout=60000)
        _open_operator(page, "Compute clusters")
        expect(page.get_by_text("Run key", exact=True)).to_be_visible(
            timeout=15000)
        page.get_by_text("HDBSCAN", exact=False).first.click()
        page.get_by_role("option", name="K-means", exact=False).first.click()
        auto = page.get_by_text("Choose n clusters automatically")
        expect(auto).to_be_visible(timeout=15000)
        if not page.get_by_text("N clusters", exact=True).count():
            auto.click()
        label = page.get_by_text("N clusters", exact=True)
        expect(label).to_be_visible(timeout=15000)
        # The App's number inputs carry no label; the input follows it.
        field = label.locator("xpath=following::input[1]")
        field.fill("1000")
        expect(page.get_by_text("larger than the number of samples (90)",
                                exact=False).first).to_be_visible(
            timeout=15000)
        expect(page.get_by_role("button", name="Execute")).to_be_disabled()
        _shot(page, "n-clusters-refused.png")
        browser.close()


def test_second_run_from_a_grouped_view_and_delete_while_viewing(
        app_dataset):
    from playwright.sync_api import expect, sync_playwright

    dataset, url = app_dataset
    with sync_playwright() as p:
        browser, page = _browser(p)
        page.goto(url, wait_until="domcontentloaded")
        expect(page.get_by_text("90 samples")).to_be_visible(timeout=60000)
        _run_pca_clustering(page)
        expect(page.get_by_text("3 groups")).to_be_visible(timeout=180000)
        _shot(page, "colours-after-first-run.png")
        page.get_by_role("button", name="Done").click(timeout=30000)

        # A second run from the grouped grid clusters every sample.
        _open_operator(page, "Compute clusters")
        expect(page.get_by_text("Clusters 90 samples (every sample of the "
                                "groups on screen)")).to_be_visible(
            timeout=15000)
        _shot(page, "second-run-form.png")
        page.get_by_text("PCA, then UMAP (recommended)").click()
        page.get_by_role("option", name="PCA", exact=True).click()
        page.get_by_role("button", name="Execute").click()
        expect(page.get_by_text("Run 'clusters2': 3 clusters; 90 of 90 "
                                "samples clustered").first).to_be_visible(
            timeout=180000)
        _shot(page, "second-run-notice.png")
        page.get_by_role("button", name="Done").click(timeout=30000)

        # Deleting the run on screen brings the whole dataset back.
        _open_operator(page, "Delete clustering run")
        expect(page.get_by_role("button", name="Execute")).to_be_visible(
            timeout=15000)
        expect(page.get_by_text("You are about to delete run "
                                "'clusters2'")).to_be_visible(timeout=15000)
        page.get_by_role("button", name="Execute").click()
        expect(page.get_by_text("Deleted run 'clusters2' and its fields")
               .first).to_be_visible(timeout=60000)
        _shot(page, "after-delete-while-viewing.png")
        expect(page.get_by_text("90 samples")).to_be_visible(timeout=60000)
        browser.close()

    dataset.reload()
    assert dataset.list_runs() == ["clusters"]
    # Each run's clusters have their own colours; the deleted run's went.
    scheme = dataset.app_config.color_scheme
    paths = {f.get("path") for f in (scheme.fields or [])}
    assert "clusters_cluster" in paths
    assert "clusters2_cluster" not in paths
