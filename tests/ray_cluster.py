"""A real two-node Ray cluster on 127.0.0.1 for the tests that need one
(``ray start --head`` and a second ``ray start --address``)."""

import os
import socket
import subprocess
import sys

import pytest

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A cluster on 127.0.0.1 for one test run needs no token (Ray's token mode
# is for clusters that other machines can reach).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _ray(*args):
    env = dict(os.environ)
    subprocess.run([RAY, *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=180)


@pytest.fixture(scope="module")
def cluster():
    """A head node and a worker node, one CPU each; yields the address."""
    import ray

    port = _free_port()
    address = f"127.0.0.1:{port}"
    _ray("start", "--head", f"--port={port}", "--num-cpus=1",
         "--node-ip-address=127.0.0.1", "--include-dashboard=false",
         "--disable-usage-stats")
    try:
        _ray("start", f"--address={address}", "--num-cpus=1",
             "--node-ip-address=127.0.0.1")
        yield address
    finally:
        ray.shutdown()
        _ray("stop", "--force")


