"""Synthetic datasets for the benchmarks: FiftyOne datasets of any size
with an existing embeddings field, written straight into the database
(adding a million samples through ``add_samples`` would take longer than
the runs being measured). The benchmarks use their own database,
``image_clustering_bench``, unless ``FIFTYONE_DATABASE_NAME`` says
otherwise."""

import datetime
import os
import resource
import time

import numpy as np

os.environ.setdefault("FIFTYONE_DATABASE_NAME", "image_clustering_bench")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


def mixture(n, d, n_true, seed=0, spread=1.0, chunk=100_000):
    """Yields chunks of a Gaussian mixture with ``n_true`` components of
    random sizes; returns labels too."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_true, d)).astype(np.float32)
    weights = rng.dirichlet(np.full(n_true, 2.0))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        labels = rng.choice(n_true, m, p=weights)
        X = centres[labels] + rng.normal(scale=spread, size=(m, d)).astype(
            np.float32)
        yield X.astype(np.float32), labels


def with_copies(chunks, every, noise=0.1, seed=0):
    """Mixture chunks in which each ``every``-th row is a near copy of the
    row before it (tiny noise): planted duplicates. Yields ``(X,
    labels)``; a copy's label is its original's row number negated minus
    one, so benchmarks can count the pairs found."""
    rng = np.random.default_rng(seed + 7)
    offset = 0
    for X, labels in chunks:
        labels = labels.astype(np.int64)
        rows = np.arange(every - 1 - offset % every, len(X), every)
        rows = rows[rows > 0]
        X[rows] = X[rows - 1] + rng.normal(
            scale=noise, size=(len(rows), X.shape[1])).astype(np.float32)
        labels[rows] = -(offset + rows - 1) - 1
        offset += len(X)
        yield X, labels


def embeddings_dataset(name, n, d=512, n_true=100, seed=0, field="emb",
                       log=print, copies_every=None):
    """A dataset ``name`` of ``n`` samples whose ``field`` holds mixture
    vectors (reused when it already exists with that many samples); with
    ``copies_every``, every such row is a planted near copy (see
    :func:`with_copies`)."""
    import fiftyone as fo
    import fiftyone.core.utils as fou
    from bson import ObjectId
    from fiftyone.core.odm import get_db_conn

    if fo.dataset_exists(name):
        ds = fo.load_dataset(name)
        if len(ds) == n and ds.get_field(field) is not None:
            return ds
        ds.delete()
    ds = fo.Dataset(name, persistent=True)
    ds.add_sample_field(field, fo.VectorField)
    ds.add_sample_field("truth", fo.IntField)
    coll = get_db_conn()[ds._sample_collection_name]
    now = datetime.datetime.utcnow()
    rng = np.random.default_rng(seed + 1)
    t = time.time()
    written = 0
    chunks = mixture(n, d, n_true, seed)
    if copies_every:
        chunks = with_copies(chunks, copies_every, seed=seed)
    for X, labels in chunks:
        docs = [{
            "_id": ObjectId(),
            "filepath": f"/synthetic/{name}/{written + i:08d}.jpg",
            "tags": [],
            "_media_type": "image",
            "_rand": float(rng.random()),
            "_dataset_id": ds._doc.id,
            "created_at": now,
            "last_modified_at": now,
            field: fou.serialize_numpy_array(x),
            "truth": int(label),
        } for i, (x, label) in enumerate(zip(X, labels))]
        coll.insert_many(docs, ordered=False)
        written += len(docs)
        log(f"  wrote {written:,} of {n:,} samples "
            f"({time.time() - t:.0f} s)")
    # The database writes a fresh collection out to disk for a while after
    # the inserts return, busy on the same cores the first timed run needs:
    # the flush is waited for here, so that no benchmark times it.
    coll.database.client.admin.command("fsync")
    ds.reload()
    return ds


def peak_rss_gb():
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def write_part(message):
    """The part of a run's write a progress message starts (``None`` for
    messages of other stages)."""
    for words, part in (("writing fields", "record"),
                        ("staged", "staging insert"),
                        ("declaring", "schema"),
                        ("merging", "merge"),
                        ("removing values", "strip"),
                        ("checking", "verify"),
                        ("showing", "App presentation"),
                        ("writing:", "other steps")):
        if words in message:
            return part
    return None
