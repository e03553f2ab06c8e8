"""Driving the real FiftyOne App in headless Chromium, as a person does:
the App server in its own process, the operator palette (backtick, type the
label, Enter), forms filled by clicking and typing, Execute, and what the
page then shows. Every wait is on something the page shows
(``expect(...)`` with a timeout), never a fixed sleep.

The fixtures built on these live in ``conftest.py``: one App server and
one Chromium per test module, a fresh browser context per test."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import fiftyone as fo
import pytest

from conftest import REPO, write_gray

CHROMIUM = "/usr/bin/chromium"
#: The marks of every browser test module: slow, and only with Chromium.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is "
                       "not installed (bash .ci/setup test installs it)"),
]
ARTIFACTS = os.path.join(REPO, "test-artifacts")
BROWSER_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-quic",
]
# Long enough for a clustering run on two shared cores.
RUN = 180_000
STEP = 30_000


# -- the App server -----------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app_server(log_path, env=None):
    """Starts ``fo.launch_app(remote=True)`` in its own process on a free
    port; returns ``(process, base_url)`` once it answers."""
    port = free_port()
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = open(log_path, "w")
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import fiftyone as fo\n"
         "s = fo.launch_app(remote=True, address='127.0.0.1', "
         f"port={port})\n"
         "s.wait(-1)\n"],
        env={**os.environ, **(env or {})}, stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return server, url
        except OSError:
            # Polling a process that is starting: nothing on the page to
            # wait on yet.
            time.sleep(1)
    server.kill()
    raise RuntimeError(f"the App server did not answer within 120 s "
                       f"(log: {log_path})")


def stop_app_server(server):
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


# -- datasets the tests browse ------------------------------------------------


def grey_dataset(name, folder, n=60, levels=(30, 128, 225)):
    """A persistent dataset of ``n`` noisy grey images, cycling through
    ``levels``: ``len(levels)`` clusters no method should confuse."""
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    os.makedirs(folder, exist_ok=True)
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples([
        fo.Sample(filepath=str(write_gray(
            os.path.join(folder, f"{i}.png"), levels[i % len(levels)],
            size=32, noise=10, seed=i)))
        for i in range(n)], progress=False)
    return dataset


# -- the page -----------------------------------------------------------------


def shot(page, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path)
    return path


def quiet_app(context):
    """The App's own end-to-end tests set ``window.IS_PLAYWRIGHT``: no
    promotion pop-up over the grid, no analytics."""
    context.add_init_script("window.IS_PLAYWRIGHT = true;")


def open_dataset(page, base_url, dataset, shown=None):
    """Loads ``dataset`` in the App and waits for its grid (``shown``: the
    count text, default ``"N samples"``)."""
    from playwright.sync_api import expect

    page.goto(f"{base_url}/datasets/{dataset.name}",
              wait_until="domcontentloaded")
    expect(page.get_by_text(shown or f"{len(dataset)} samples",
                            exact=True)).to_be_visible(timeout=60_000)


def open_operator(page, label):
    """Opens an operator from the palette as a person does: backtick, its
    label, Enter; waits for its form."""
    from playwright.sync_api import expect

    page.keyboard.press("`")
    palette = page.locator('[data-cy="operators-browser"]')
    expect(palette).to_be_visible(timeout=STEP)
    page.keyboard.type(label)
    expect(palette.get_by_text(label, exact=True)).to_be_visible(
        timeout=STEP)
    page.keyboard.press("Enter")
    expect(form(page)).to_be_visible(timeout=STEP)


def form(page):
    """The operator's dialog."""
    return page.locator("[role=dialog]").last


def _label(page, label):
    return form(page).get_by_text(label, exact=True).first


def text_input(page, label):
    """The text box of the form field labelled ``label``."""
    return _label(page, label).locator(
        "xpath=following::input[not(@type='checkbox')][1]")


def fill(page, label, text):
    text_input(page, label).fill(str(text))


def combobox(page, label):
    """The dropdown of the form field labelled ``label``."""
    return _label(page, label).locator(
        "xpath=following::*[@role='combobox'][1]")


def open_menu(page, opener, item):
    """Clicks ``opener`` (a dropdown or a menu button) until ``item`` shows.
    A click that lands while the App re-renders (a form after a field
    changed, a panel drawing what it just loaded) opens nothing: a person
    closes the menu if one did open, and clicks again."""
    from playwright.sync_api import expect

    opener.click()
    try:
        expect(item).to_be_visible(timeout=5000)
    except AssertionError:
        if page.get_by_role("listbox").count():
            page.keyboard.press("Escape")
            expect(page.get_by_role("listbox")).to_have_count(0)
        opener.click()
        expect(item).to_be_visible(timeout=STEP)


def choose(page, label, option):
    """Picks ``option`` in the dropdown labelled ``label``."""
    from playwright.sync_api import expect

    item = page.get_by_role("option", name=option, exact=True)
    open_menu(page, combobox(page, label), item)
    item.click()
    try:
        expect(item).to_be_hidden(timeout=5000)
    except AssertionError:
        # The form re-rendered as the option was picked and the menu
        # stayed open over the chosen option: a person presses Escape.
        expect(item).to_have_attribute("aria-selected", "true")
        page.keyboard.press("Escape")
        expect(item).to_be_hidden(timeout=STEP)


def choose_many(page, label, options):
    """Picks each of ``options`` in the multiple-choice dropdown labelled
    ``label``: click the box, click the option, again for the next."""
    from playwright.sync_api import expect

    for option in options:
        if not page.get_by_role("listbox").count():
            _label(page, label).locator(
                "xpath=following::input[@role='combobox'][1]").click()
        item = page.get_by_role("option", name=option, exact=True)
        expect(item).to_be_visible(timeout=STEP)
        item.click()
        expect(form(page).get_by_text(option, exact=True)).to_be_visible(
            timeout=STEP)


def tick(page, label):
    _label(page, label).click()


def execute(page):
    """Clicks Execute once the form allows it: enabled, and the form no
    longer being checked (the App shows a spinner beside the buttons while
    it asks the server about the values)."""
    from playwright.sync_api import expect

    button = form(page).get_by_role("button", name="Execute")
    expect(button).to_be_enabled(timeout=STEP)
    expect(form(page).locator(".MuiCircularProgress-root")).to_have_count(
        0, timeout=STEP)
    button.click()


def close_form(page):
    """Closes the dialog an operator leaves open when it is done: its
    progress (Done) or its results (Close). (An operator with neither
    closes its own form.)"""
    from playwright.sync_api import expect

    button = form(page).get_by_role("button", name=re.compile(
        "^(Done|Close)$"))
    dialogs = page.locator("[role=dialog]")
    # Done can show while the operator is still finishing (the App's
    # "Executing..." bar), when a click does not close it yet: a person
    # clicks again.
    for _ in range(STEP // 5000):
        if button.count():
            button.first.click()
        try:
            expect(dialogs).to_have_count(0, timeout=5000)
            return
        except AssertionError:
            continue
    expect(dialogs).to_have_count(0)


def expect_notice(page, text, timeout=STEP):
    """Waits for the App to show ``text`` (a notification, a progress
    label, a form message)."""
    from playwright.sync_api import expect

    expect(page.get_by_text(text, exact=False).first).to_be_visible(
        timeout=timeout)


def open_panel(page, name):
    """Opens the panel ``name`` (Clusters, Embeddings) from the ``+``
    beside the Samples tab."""
    from playwright.sync_api import expect

    page.locator('[data-cy="new-panel-btn"]').first.click()
    item = page.get_by_text(name, exact=True).last
    expect(item).to_be_visible(timeout=STEP)
    item.click()


def open_map(page, brain_key, points):
    """Opens the map ``brain_key`` in the Embeddings panel and waits for its
    ``points``."""
    from playwright.sync_api import expect

    card = page.locator(".emb-run-card").filter(has_text=brain_key)
    expect(card).to_be_visible(timeout=STEP)
    card.click()
    expect(page.get_by_text(f"{points} points", exact=False)).to_be_visible(
        timeout=STEP)


def color_map_by(page, field):
    """Chooses ``field`` under the Embeddings panel's "Color by"."""
    from playwright.sync_api import expect

    button = page.get_by_role("button", name="Color by")
    expect(button).to_be_enabled(timeout=STEP)
    option = page.get_by_role("option", name=field, exact=True)
    open_menu(page, button, option)
    option.click()


def badge_colors(page, path):
    """``{value: css colour}`` of the badges of field ``path`` on the grid's
    tiles."""
    return page.evaluate(
        """(path) => {
            const out = {};
            document.querySelectorAll(`[data-cy="tag-${path}"]`)
                .forEach(e => { out[e.textContent] =
                                getComputedStyle(e).backgroundColor; });
            return out;
        }""", path)


def legend_colors(page):
    """``{value: css colour}`` of the Embeddings panel's legend."""
    return page.evaluate(
        """() => {
            const out = {};
            document.querySelectorAll('.emb-legend-row').forEach(row => {
                const label = row.querySelector('.emb-legend-label');
                const swatch = row.querySelector('.emb-legend-swatch');
                out[label.getAttribute('title')] =
                    getComputedStyle(swatch).backgroundColor;
            });
            return out;
        }""")


def css_rgb(hex_color):
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"
