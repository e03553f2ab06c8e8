"""Uniqueness from embeddings, with the meaning of FiftyOne Brain's
``compute_uniqueness``: embeddings are centred on their mean (as Brain
does), and the score is a weighted mean (0.6, 0.3, 0.1) of the cosine
distances to a sample's three nearest neighbours, divided by the largest
such mean, so that 1 is the most unique sample. Unlike Brain (whose
neighbour lists leave out each sample's nearest neighbour, so that a sample
with one exact copy can still rank as unique), the three nearest are the
three nearest: a sample with a copy scores near 0. Neighbours come from the faiss engine of
:mod:`..clustering.neighbors`, which never holds an N x N matrix."""

import time

import numpy as np

from ..clustering import record, runs
from ..clustering.neighbors import EXACT_LIMIT, Neighbors
from ..clustering.pipeline import Reporter, Timings
from ..clustering.store import Column
from .common import Source, config_of, results_of

NEIGHBORS = 3
WEIGHTS = np.array([0.6, 0.3, 0.1])


def uniqueness_fields(key):
    return record.field_names(key, record.UNIQUENESS_FIELD_KINDS)


def compute_uniqueness(
    samples,
    embedder=None,
    embeddings_field=None,
    key="uniqueness",
    overwrite=False,
    num_workers=None,
    batch_size=None,
    decode="auto",
    executor=None,
    ray_address=None,
    progress=None,
):
    """Scores how unique each image of ``samples`` is, in [0, 1], into the
    field ``<key>_score``, and stores the run as ``key``.

    Args:
        samples: a FiftyOne dataset or view
        embedder: an embedder (name, dict or instance); its vectors are
            cached and shared with clustering and duplicates runs. By
            default the default preset's, unless ``embeddings_field`` is
            given
        embeddings_field: an existing vector field to use instead
        key: the run key
        overwrite: replace an existing run of this key (kept intact until
            the new one is complete)
        num_workers, batch_size, decode, executor, ray_address: as for
            :func:`~image_clustering.compute_clusters`
        progress: ``True`` for a bar on stderr, or ``progress(fraction,
            message)``

    Returns:
        a :class:`.results.UniquenessResults`
    """
    from .results import load_uniqueness

    source = Source(samples, embedder, embeddings_field, None, num_workers,
                    batch_size, decode, executor, "compute_uniqueness",
                    ray_address=ray_address)
    fields = uniqueness_fields(key)
    expect = runs.check_new_run(samples._dataset, key,
                                list(fields.values()), overwrite,
                                kind=record.UNIQUENESS_KIND)
    started = time.time()
    report = Reporter(progress)
    timings = Timings()
    with timings("embed"):
        emb = source.embed(report, 0.6)
    with timings("neighbors"):
        scores = uniqueness_scores(emb.vectors, report)
    timings.total = time.time() - started
    config = config_of(record.UNIQUENESS_KIND, "knn",
                       {"neighbors": NEIGHBORS, "weights": WEIGHTS,
                        "metric": "cosine"}, emb, source, fields)
    results = results_of(emb, timings, samples=len(emb.ids),
                         max_mean_distance=float(scores.max_mean))
    report(0.92, "writing fields")
    column = Column("score", fields["score"], scores.values,
                    record.UNIQUENESS_FIELD_KINDS["score"])
    runs.write_run(samples, key, config, results, emb.ids, [column], expect,
                   progress=lambda m: report(0.95, m))
    report(1.0, "done")
    return load_uniqueness(samples, key)


def centre_on_mean(X, chunk=65536):
    """Subtracts the mean row from every row, in place."""
    total = np.zeros(X.shape[1], dtype=np.float64)
    for start in range(0, len(X), chunk):
        total += X[start:start + chunk].sum(axis=0, dtype=np.float64)
    mean = (total / max(len(X), 1)).astype(X.dtype)
    for start in range(0, len(X), chunk):
        X[start:start + chunk] -= mean
    return X


class Scores:
    def __init__(self, values, max_mean):
        self.values = values
        self.max_mean = max_mean


def uniqueness_scores(X, report=None, share=(0.6, 0.9)):
    """:class:`Scores` of the rows of ``X`` (centred and normalised in
    place)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    if n <= NEIGHBORS:
        # Too few samples to have three neighbours: all equally unique.
        return Scores(np.ones(n), 1.0)
    report = report or Reporter(None)
    low, high = share

    def stage(offset, width, what):
        def progress(done, total, _=None):
            report(low + (offset + width * done / max(total, 1)) *
                   (high - low), f"neighbours: {what} {done:,} of {total:,}")
        return progress

    centre_on_mean(X)
    index = Neighbors(metric="cosine", compress=n > EXACT_LIMIT, nprobe=16)
    index.fit(X, progress=stage(0.0, 0.1, "indexing"), copy=False)
    _, D = index.search(index.data, NEIGHBORS,
                        progress=stage(0.1, 0.9, "searching"),
                        exclude_self=True)
    # An IVF search may miss a neighbour; count it at the farthest found.
    found = np.isfinite(D)
    farthest = np.where(found, D, -np.inf).max(axis=1, keepdims=True)
    D = np.where(found, D, np.where(np.isfinite(farthest), farthest, 2.0))
    means = (np.maximum(D, 0.0) * WEIGHTS).mean(axis=1)
    top = float(means.max())
    values = means / top if top > 0 else np.zeros(n)
    return Scores(values, top)
