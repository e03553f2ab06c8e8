"""Embedding on a Ray cluster: a Ray Data pipeline over the file paths,
mapped in batches by a pool of actors that each load the model once and
decode with the same code as the local path (:meth:`Embedder.embed`).

Rows travel with their ids and come back keyed by them, never by position:
Ray may return batches in any order, and a batch retried after a worker
died comes back whole. Ray Data restarts a dead actor and retries its
batch (its actor pools default to unlimited restarts and retries), so a
killed worker costs time, not rows; ``tests/test_ray.py`` kills one. A file the worker's machine cannot read is skipped
with the reason ``not readable on worker HOST``; every other failure keeps
the reason the embedder gave, exactly as locally.

Requires the ``ray`` extra (``pip install -e ".[ray]"``).
"""

import os
import socket
import threading

import numpy as np

from ..units import Param, ParamError
from .base import Embedded
from .images import Crop

CONCURRENCY = Param("ray_concurrency", "int", 2,
                    "Embedding actors (each loads the model once)", min=1)
BATCH = Param("ray_batch_size", "int", 256, "Images per actor call", min=1)
GPUS = Param("ray_gpus_per_actor", "float", None,
             "GPUs per actor (default: 1 where the cluster has GPUs)",
             min=0.0)


class RayExecutor:
    """Runs an embedder over images as a Ray Data job.

    Args:
        address: the Ray cluster (``ray://host:10001``, ``host:6379`` or
            ``auto``); ``None``: ``RAY_ADDRESS``, else a cluster already
            running on this machine. None is ever started, and one that
            does not answer is an error naming the address
        concurrency: the number of actors
        batch_size: images per actor call
        gpus_per_actor: GPUs each actor asks for; by default one where the
            cluster has GPUs, else none
        cpus_per_actor: CPUs each actor asks for
    """

    name = "ray"

    def __init__(self, address=None, concurrency=2, batch_size=256,
                 gpus_per_actor=None, cpus_per_actor=1):
        self.address = address
        self.concurrency = CONCURRENCY.clean("ray", concurrency)
        self.batch_size = BATCH.clean("ray", batch_size)
        self.gpus_per_actor = GPUS.clean("ray", gpus_per_actor)
        self.cpus_per_actor = cpus_per_actor

    def spec(self):
        return {"name": self.name, "address": self.address,
                "concurrency": self.concurrency,
                "batch_size": self.batch_size}

    def __call__(self, embedder, ids, sources, num_workers=None,
                 batch_size=None, progress=None, decode="auto"):
        ray = _connect(self.address)
        rows = [{"id": str(i), "source": _plain_source(s)}
                for i, s in zip(ids, sources)]
        if not rows:
            return Embedded(np.zeros((0, 0), np.float32), {})
        gpus = self.gpus_per_actor
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
        data = ray.data.from_items(rows, override_num_blocks=max(
            1, min(len(rows) // self.batch_size + 1, 4 * self.concurrency)))
        mapped = data.map_batches(
            _EmbedActor,
            fn_constructor_args=(embedder, num_workers, batch_size),
            batch_size=self.batch_size,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=self.concurrency),
            num_gpus=gpus,
            num_cpus=self.cpus_per_actor,
        )
        return _collect(mapped, ids, progress)


def connect_seconds():
    """How long to wait for a Ray cluster to answer
    (``IMAGE_CLUSTERING_RAY_CONNECT_SECONDS``, default 30)."""
    return float(os.environ.get("IMAGE_CLUSTERING_RAY_CONNECT_SECONDS", "30"))


def _connect(address):
    """Ray, connected to the cluster at ``address`` (``None``: the one in
    ``RAY_ADDRESS``, else one already running on this machine). A cluster
    is never started here, and an address that does not answer within
    :func:`connect_seconds` is an error that names it: Ray itself would
    wait for ever."""
    try:
        import ray
    except ImportError:
        raise ParamError(
            "executor 'ray' needs Ray: pip install -e \".[ray]\"") from None
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    timeout = connect_seconds()
    outcome = {}

    def init():
        try:
            ray.init(address=address, ignore_reinit_error=True,
                     log_to_driver=False, logging_level="ERROR")
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=init, name="ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ParamError(
            f"ray: no Ray cluster answered at '{address}' within "
            f"{timeout:g} s; check the address and that the cluster is "
            "running", "ray_address")
    if "error" in outcome:
        reason = str(outcome["error"]).strip().splitlines()[0]
        raise ParamError(f"ray: cannot join a Ray cluster at '{address}' "
                         f"({reason})", "ray_address")
    context = ray.data.DataContext.get_current()
    # Our own progress reaches the caller; Ray's bars would interleave.
    context.enable_progress_bars = False
    return ray


def _plain_source(source):
    """A path, or a crop as ``path|x,y,w,h`` (Arrow-friendly)."""
    if isinstance(source, str):
        return source
    return f"{source.path}|{','.join(repr(float(v)) for v in source.box)}"


def _source_of(text):
    if "|" not in text:
        return text
    path, box = text.rsplit("|", 1)
    return Crop(path, tuple(float(v) for v in box.split(",")))


class _EmbedActor:
    """One model load per actor; each call embeds one batch of rows."""

    def __init__(self, embedder, num_workers, batch_size):
        self.embedder = embedder
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.host = socket.gethostname()

    def __call__(self, batch):
        sources = [_source_of(s) for s in batch["source"]]
        out = self.embedder.embed(sources, num_workers=self.num_workers,
                                  batch_size=self.batch_size,
                                  decode="threads")
        reasons = []
        for j, source in enumerate(sources):
            reason = out.failures.get(j)
            path = source if isinstance(source, str) else source.path
            if reason is not None and not os.access(path, os.R_OK):
                reason = f"not readable on worker {self.host}"
            reasons.append(reason or "")
        batch = batch[["id"]].copy()
        batch["vector"] = [row.tobytes() for row in
                           np.ascontiguousarray(out.vectors, np.float32)]
        batch["dims"] = out.vectors.shape[1]
        batch["reason"] = reasons
        return batch


def _collect(mapped, ids, progress):
    """The rows of the mapped dataset, placed by id."""
    where = {str(i): k for k, i in enumerate(ids)}
    vectors = None
    failures = {}
    done = 0
    for batch in mapped.iter_batches(batch_size=1024, batch_format="pandas"):
        for sid, blob, dims, reason in zip(batch["id"], batch["vector"],
                                           batch["dims"], batch["reason"]):
            k = where[sid]
            if reason:
                failures[k] = reason
                continue
            row = np.frombuffer(blob, dtype=np.float32, count=int(dims))
            if vectors is None:
                vectors = np.zeros((len(ids), int(dims)), np.float32)
            vectors[k] = row
        done += len(batch)
        if progress is not None:
            progress(done, len(ids))
    if vectors is None:
        vectors = np.zeros((len(ids), 0), np.float32)
    return Embedded(vectors, failures)
