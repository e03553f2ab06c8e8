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
