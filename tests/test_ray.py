"""The Ray executor on a real two-node Ray cluster started on this machine
(``ray start --head`` and a second ``ray start --address``): the same
vectors and clusters as the local executor, failures with their reasons, a
killed worker, and a killed driver."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fiftyone as fo

import image_clustering as ic
from conftest import REPO, write_gray

pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from ray_cluster import cluster  # noqa: F401  (a fixture)


@pytest.fixture
def images(tmp_path):
    paths = [write_gray(tmp_path / f"{i}.png", (40, 200)[i % 2], size=24,
                        noise=20, seed=i) for i in range(60)]
    return [str(p) for p in paths]


def _executor(address, **kwargs):
    from image_clustering.embedders.ray_executor import RayExecutor

    return RayExecutor(address=address, **kwargs)


def test_pixels_equal_the_local_executor_row_for_row(cluster, images,
                                                     tmp_path):
    from image_clustering.embedders import get_embedder
    from image_clustering.embedders.executors import local_executor

    missing = str(tmp_path / "elsewhere" / "x.png")
    paths = images + [missing]
    ids = [f"s{i}" for i in range(len(paths))]
    embedder = get_embedder({"name": "pixels", "size": 16})

    local = local_executor(embedder, ids, paths)
    remote = _executor(cluster, concurrency=2, batch_size=7)(
        embedder, ids, paths)

    assert np.array_equal(local.vectors, remote.vectors)
    assert set(remote.failures) == {len(paths) - 1}
    assert remote.failures[len(paths) - 1] == \
        f"not readable on worker {socket.gethostname()}"


def test_a_tiny_transformers_model_matches_within_tolerance(cluster, images,
                                                            tmp_path):
    import tiny_models
    from image_clustering.embedders import get_embedder
    from image_clustering.embedders.executors import local_executor

    folder = str(tmp_path / "dino")
    tiny_models.dinov2(folder)
    embedder = get_embedder({"name": "dino", "model": folder})
    ids = [f"s{i}" for i in range(len(images))]

    local = local_executor(embedder, ids, images)
    remote = _executor(cluster, concurrency=1, batch_size=16)(
        embedder, ids, images)

    assert remote.failures == {}
    assert np.allclose(local.vectors, remote.vectors, atol=1e-4)


def test_a_run_on_ray_gives_the_same_clusters(cluster, images):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in images], progress=False)
    try:
        common = dict(embedder={"name": "pixels", "size": 8},
                      reducer="none", method="kmeans", n_clusters=2,
                      map="none")
        remote = ic.compute_clusters(ds, "remote", executor="ray",
                                     ray_address=cluster, **common)
        ds.delete_sample_field("pixels8_embedding")
        ds.delete_sample_field("pixels8_embedding_file")
        local = ic.compute_clusters(ds, "local", **common)

        assert remote.results["embedding"]["computed"] == len(images)
        assert ds.values("remote_cluster") == ds.values("local_cluster")
        near = ic.find_near_duplicates(ds, executor="ray",
                                       ray_address=cluster)
        assert near.results["samples"] == len(images)
    finally:
        ds.delete()


class _HeldPixels:
    """Pixels whose batches wait until one worker has been killed: each
    batch says which process runs it, then waits for the test's word, so
    that the kill always lands in a running batch. Shipped to the workers
    by value (they cannot import this module)."""

    def __init__(self, folder):
        from image_clustering.embedders import get_embedder

        self.inner = get_embedder({"name": "pixels", "size": 16})
        self.folder = folder

    def embed(self, paths, **kwargs):
        open(os.path.join(self.folder, f"running-{os.getpid()}"), "w").close()
        released = os.path.join(self.folder, "killed")
        deadline = time.time() + 120
        while not os.path.exists(released) and time.time() < deadline:
            time.sleep(0.05)
        return self.inner.embed(paths, **kwargs)


def test_a_killed_worker_is_retried_and_the_result_is_the_same(cluster,
                                                               images,
                                                               tmp_path):
    from image_clustering.embedders.executors import local_executor

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ids = [f"s{i}" for i in range(len(images))]
    held = _HeldPixels(str(tmp_path))
    killed = []

    def kill_a_running_worker():
        deadline = time.time() + 120
        while time.time() < deadline:
            running = [f for f in os.listdir(tmp_path)
                       if f.startswith("running-")]
            if running:
                pid = int(running[0].split("-")[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)
        open(tmp_path / "killed", "w").close()

    killer = threading.Thread(target=kill_a_running_worker, daemon=True)
    killer.start()
    remote = _executor(cluster, concurrency=2, batch_size=4)(held, ids,
                                                             images)
    killer.join(timeout=5)

    assert killed, "no embedding worker was seen running a batch"
    assert remote.failures == {}
    assert np.array_equal(remote.vectors,
                          local_executor(held.inner, ids, images).vectors)


def test_a_killed_driver_leaves_the_dataset_as_it_was(cluster, images,
                                                      tmp_path):
    ds = fo.Dataset(f"ray-driver-{os.getpid()}", persistent=True)
    ds.add_samples([fo.Sample(filepath=p) for p in images * 5],
                   progress=False)
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {os.path.join(REPO, 'tests')!r})\n"
        "import conftest, fiftyone as fo, image_clustering as ic\n"
        f"ds = fo.load_dataset({ds.name!r})\n"
        "ic.compute_clusters(ds, 'doomed', embedder={'name': 'pixels',\n"
        "    'size': 16},\n"
        "    reducer='none', method='kmeans', n_clusters=2, map='none',\n"
        f"    executor='ray', ray_address={cluster!r},\n"
        "    progress=lambda f, m: print(f, m, flush=True))\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", code],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    try:
        for line in driver.stdout:
            if "embedded" in line:
                break
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        ds.reload()
        assert ic.list_runs(ds) == []
        assert ds.get_field("doomed_cluster") is None
        run = ic.compute_clusters(ds, "doomed", embedder={
            "name": "pixels", "size": 16}, reducer="none", method="kmeans",
            n_clusters=2, map="none")
        assert run.metrics["n_samples"] == len(ds)
    finally:
        if driver.poll() is None:
            driver.kill()
        ds.delete()
        shutil.rmtree(tmp_path, ignore_errors=True)
