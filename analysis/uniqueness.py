"""Uniqueness from embeddings, with the meaning of FiftyOne Brain's
``compute_uniqueness``: embeddings are centred on their mean (as Brain
does), and the score is a weighted mean (0.6, 0.3, 0.1) of the cosine
distances to a sample's three nearest neighbours, divided by the largest
such mean, so that 1 is the most unique sample. Unlike Brain (whose
neighbour lists leave out each sample's nearest neighbour, so that a sample
with one exact copy can still rank as unique), the three nearest are the
three nearest: a sample with a copy scores near 0. Neighbours come from the faiss engine of
:mod:`..algorithms.neighbors`, which never holds an N x N matrix."""

import numpy as np

from ..algorithms.dedup import (
    UNIQUENESS_NEIGHBORS,
    UNIQUENESS_WEIGHTS,
    uniqueness_scores,
)
from ..storage import runs
from ..storage import schema as record
from ..storage.transaction import Column
from ..support import Reporter, Timings
from .results import UniquenessResults
from .source import Source, config_of, results_of


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
    source = Source(samples, embedder, embeddings_field, None, num_workers,
                    batch_size, decode, executor, "compute_uniqueness",
                    ray_address=ray_address)
    fields = uniqueness_fields(key)
    expect = runs.check_new_run(samples._dataset, key,
                                list(fields.values()), overwrite,
                                kind=record.UNIQUENESS_KIND)
    report = Reporter(progress)
    timings = Timings()
    with timings("embed"):
        emb = source.embed(report, 0.6)
    with timings("neighbors"):
        scores = uniqueness_scores(emb.vectors, report)
    timings.finish()
    config = config_of(record.UNIQUENESS_KIND, "knn",
                       {"neighbors": UNIQUENESS_NEIGHBORS,
                        "weights": UNIQUENESS_WEIGHTS,
                        "metric": "cosine"}, emb, source, fields)
    results = results_of(emb, timings, samples=len(emb.ids),
                         max_mean_distance=float(scores.max_mean))
    report(0.92, "writing fields")
    column = Column("score", fields["score"], scores.values,
                    record.UNIQUENESS_FIELD_KINDS["score"])
    runs.write_run(samples, key, config, results, emb.ids, [column], expect,
                   progress=lambda m: report(0.95, m))
    report(1.0, "done")
    return UniquenessResults.load(samples, key)
