"""Shared fixtures: a real FiftyOne database (a test-only database name on
the embedded MongoDB) and real image files in temp folders."""

import os
import sys

os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
os.environ.setdefault("FIFTYONE_DATABASE_NAME", "image_clustering_tests")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault(
    "NUMBA_CACHE_DIR",
    os.path.join(os.path.expanduser("~"), ".cache", "image-clustering-numba"),
)

import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# FiftyOne finds the plugin by walking its plugins directory; a symlink to
# this checkout makes the tests use the code under test.
_PLUGINS_DIR = tempfile.mkdtemp(prefix="image-clustering-plugins-")
os.symlink(REPO, os.path.join(_PLUGINS_DIR, "image-clustering"))
os.environ["FIFTYONE_PLUGINS_DIR"] = _PLUGINS_DIR

import numpy as np
import pytest
from PIL import Image


def write_gray(path, value, size=16, noise=None, seed=0):
    """Writes a ``size`` x ``size`` grayscale PNG of ``value`` (0-255),
    with optional uniform noise of +-``noise``."""
    arr = np.full((size, size), float(value))
    if noise:
        rng = np.random.default_rng(seed)
        arr += rng.uniform(-noise, noise, arr.shape)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").save(path)
    return path


@pytest.fixture
def make_dataset(tmp_path):
    """Builds a non-persistent dataset from a list of file paths (or of
    ``(path, label)`` pairs) and deletes it afterwards."""
    import fiftyone as fo

    created = []

    def make(paths, label_field="ground_truth"):
        dataset = fo.Dataset()
        samples = []
        for item in paths:
            path, label = item if isinstance(item, tuple) else (item, None)
            sample = fo.Sample(filepath=str(path))
            if label is not None:
                sample[label_field] = fo.Classification(label=label)
            samples.append(sample)
        dataset.add_samples(samples, progress=False)
        created.append(dataset)
        return dataset

    yield make
    for dataset in created:
        if not dataset.deleted:
            dataset.delete()


@pytest.fixture
def two_groups(tmp_path, make_dataset):
    """Twelve dark and twelve bright noisy gray images, shuffled: two groups
    no method should confuse. Labels are "dark" and "bright"."""
    rng = np.random.default_rng(7)
    items = []
    for i in range(24):
        label = "dark" if i % 2 == 0 else "bright"
        value = 40 if label == "dark" else 215
        path = write_gray(
            tmp_path / f"img_{i:02d}.png", value, noise=20, seed=int(rng.integers(1e6))
        )
        items.append((path, label))
    return make_dataset(items)


def run_python(code, env=None, timeout=300):
    """Runs ``code`` in a fresh Python process with the test environment."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=str(REPO),
    )


class Zygote:
    """A running ``tests/zygote.py``: forks real child processes on
    demand (see that module)."""

    def __init__(self, tmp_dir):
        import subprocess
        import fiftyone.core.odm.database as fod

        host, port = fod.get_db_client().address
        env = {
            **os.environ,
            # Children talk to this session's database directly.
            "FIFTYONE_DATABASE_URI": f"mongodb://{host}:{port}",
            "OPENBLAS_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore",
        }
        self.tmp_dir = tmp_dir
        self.n = 0
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "tests", "zygote.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=env, cwd=REPO,
        )

    def _out(self):
        self.n += 1
        return os.path.join(self.tmp_dir, f"out{self.n}.json")

    def run(self, action, **args):
        """Runs ``action`` in a forked child; returns ``(status, result)``
        where status is ``{"exit": code, "signal": number}``."""
        import json

        out = self._out()
        self.proc.stdin.write(json.dumps(
            {"action": action, "args": args, "out": out}) + "\n")
        self.proc.stdin.flush()
        status = json.loads(self.proc.stdout.readline())
        result = None
        if os.path.exists(out):
            with open(out) as f:
                result = json.load(f)
        return status, result

    def race(self, n, **args):
        """Forks ``n`` racers that start together; returns their results."""
        import json

        round_dir = tempfile.mkdtemp(dir=self.tmp_dir)
        outs = [os.path.join(round_dir, f"racer{i}.json") for i in range(n)]
        go = os.path.join(round_dir, "go")
        self.proc.stdin.write(json.dumps(
            {"action": "race", "args": args, "outs": outs, "go": go}) + "\n")
        self.proc.stdin.flush()
        statuses = json.loads(self.proc.stdout.readline())
        results = []
        for out, status in zip(outs, statuses):
            with open(out) as f:
                results.append({**json.load(f), **status})
        return results

    def kill_after_commit(self, dataset, undo, action="write", **args):
        """Runs ``action`` on ``dataset`` in a child killed just after the
        write's commit point, so that the dataset is left holding a
        committed journal for the next process to finish. The call to kill
        at is found by bisection over the write's database calls; after a
        kill that lands before or after that window the dataset is
        repaired and ``undo()`` undoes the write, returning whether it had
        completed. Returns the call number it was killed at."""
        import image_clustering as ic
        from image_clustering.storage.lease import collection

        def journal_state():
            doc = collection().find_one({"_id": dataset._doc.id}) or {}
            return (doc.get("journal") or {}).get("state")

        status, result = self.run(action, dataset=dataset.name, **args)
        assert status == {"exit": 0, "signal": None}, result
        undo()
        low, high = 1, result["calls"]
        while low <= high:
            n = (low + high) // 2
            status, _ = self.run(action, dataset=dataset.name,
                                 kill_at=n, **args)
            assert status["signal"] == 9
            state = journal_state()
            if state == "committed":
                return n
            ic.repair(dataset)
            if undo():
                high = n - 1
            else:
                low = n + 1
        raise AssertionError("no kill left the write committed")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    import fiftyone as fo

    fo.list_datasets()  # the database is up before children connect
    z = Zygote(str(tmp_path_factory.mktemp("zygote")))
    yield z
    z.close()


# -- the real App in Chromium (see app_ui.py) ---------------------------------


@pytest.fixture(scope="module")
def app_server(request):
    """One real App server process per test module (it takes ~20 s to
    start): its base URL. Its log is kept in test-artifacts/."""
    import fiftyone as fo

    import app_ui

    # The database is started by this process, so that it outlives the
    # server: FiftyOne stops the database with the process that started it.
    fo.list_datasets()
    name = request.module.__name__.rsplit(".", 1)[-1]
    server, url = app_ui.start_app_server(
        os.path.join(app_ui.ARTIFACTS, f"{name}-server.log"),
        env={"OPENAI_API_KEY": "sk-test-key"})
    yield url
    app_ui.stop_app_server(server)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module."""
    from playwright.sync_api import sync_playwright

    import app_ui

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=app_ui.CHROMIUM,
                                         args=app_ui.BROWSER_ARGS)
    yield browser
    browser.close()
    playwright.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(chromium, request):
    """A fresh browser context and page for each test; a failing test
    leaves a screenshot of what the page showed in test-artifacts/."""
    import app_ui

    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    app_ui.quiet_app(context)
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        app_ui.shot(page, f"FAILED-{request.node.name}.png")
    context.close()


@pytest.fixture
def grey_images(tmp_path, request):
    """Makes persistent datasets of noisy grey images
    (``grey_images(n=60, levels=(30, 128, 225))``) that the App server can
    open, and deletes them afterwards."""
    import app_ui

    made = []

    def make(n=60, levels=(30, 128, 225)):
        test = "".join(c if c.isalnum() else "-"
                       for c in request.node.name[5:45])
        name = f"ui-{test}-{len(made)}-{os.getpid()}"
        dataset = app_ui.grey_dataset(name, str(tmp_path / str(len(made))),
                                      n=n, levels=levels)
        made.append(dataset)
        return dataset

    yield make
    for dataset in made:
        if not dataset.deleted:
            dataset.delete()
