"""Near-duplicates from embeddings, exact duplicates from file contents.

Near-duplicates: vectors are centred (each row minus its own mean, so that
the cosine becomes a correlation, blind to brightness), and each sample's
nearest neighbours (the faiss engine of
:mod:`..clustering.neighbors`, exact up to 200,000 vectors, IVF with 8-bit
codes and exact re-ranking beyond) within a cosine distance ``threshold``
are linked, and the groups are the connected components of those links.
Exact duplicates: files whose bytes hash the same. Either way each group
gets a representative and every grouped sample three fields: its group,
its distance to the representative, and whether it is the representative.
"""

import numpy as np

from ..algorithms import dedup as grouping
from ..algorithms.dedup import near_duplicate_groups
from ..storage import runs
from ..storage import schema as record
from ..storage.sample_io import iter_rows
from ..storage.transaction import Column
from ..support import Reporter, Timings
from ..units import Param, ParamError
from .hashing import hash_files
from .results import DuplicatesResults
from .source import Source, config_of, results_of

# Without an embedder or a field: an 8 x 8 thumbnail, which, centred, is a
# perceptual hash that survives resizing, re-encoding, small crops and
# colour shifts (benchmarks/duplicates_threshold.py measured larger ones).
DEFAULT_EMBEDDER = {"name": "pixels", "size": 8}
# pixels: between the farthest planted copy (0.06, a 3% crop) and the
# nearest distinct pair (0.15) of benchmarks/duplicates_threshold.py.
# dino, clip: from published practice, not measured here (no weights).
DEFAULT_THRESHOLDS = {
    "pixels": 0.10,
    "dino": 0.08,
    "clip": 0.05,
}
# For vectors of an existing field, whose model is unknown.
FALLBACK_THRESHOLD = 0.05

THRESHOLD = Param("threshold", "float", None,
                  "Cosine distance under which two samples are duplicates "
                  "(default: the embedder's; see the README)",
                  min=0.0, max=2.0)
REPRESENTATIVE = Param("representative", "choice", "centre",
                       "Which sample represents a group: the one nearest "
                       "its centre, or the largest file",
                       choices=grouping.REPRESENTATIVES)
DUPLICATE_PARAMS = (THRESHOLD, REPRESENTATIVE)
HASH_WORKERS = Param("num_workers", "int", None,
                     "Threads hashing files (default: two per core)", min=1)


def default_threshold(embedder):
    """The default near-duplicate threshold for an embedder (or ``None``
    for vectors of an existing field)."""
    if embedder is None:
        return FALLBACK_THRESHOLD
    return DEFAULT_THRESHOLDS.get(embedder.name, FALLBACK_THRESHOLD)


def duplicate_fields(key, labels_path=None):
    return record.field_names(key, record.DUPLICATE_FIELD_KINDS,
                              labels_path)


def find_near_duplicates(
    samples,
    threshold=None,
    embedder=None,
    embeddings_field=None,
    patches_field=None,
    representative="centre",
    key="near_dups",
    overwrite=False,
    num_workers=None,
    batch_size=None,
    decode="auto",
    executor=None,
    ray_address=None,
    progress=None,
):
    """Finds groups of near-duplicate images (or objects) in ``samples``
    and stores them as run ``key``.

    Args:
        samples: a FiftyOne dataset or view
        threshold: the cosine distance under which two samples are
            duplicates; by default the embedder's (see
            :data:`DEFAULT_THRESHOLDS`)
        embedder: an embedder (name, dict or instance); its vectors are
            cached and shared with clustering runs. By default an 8 x 8
            thumbnail (:data:`DEFAULT_EMBEDDER`), unless
            ``embeddings_field`` is given
        embeddings_field: an existing vector field to use instead (or, with
            ``patches_field``, the label attribute holding each object's
            vector)
        patches_field: a Detections (or Detection) field: find duplicate
            objects; their fields are written on each object
        representative: ``centre`` (the member nearest the group's mean)
            or ``largest`` (the largest file; whole images only)
        key: the run key; fields are ``<key>_group``, ``<key>_dist`` and
            ``<key>_rep``
        overwrite: replace an existing run of this key (kept intact until
            the new one is complete)
        num_workers, batch_size, decode, executor, ray_address: as for
            :func:`~image_clustering.compute_clusters`
        progress: ``True`` for a bar on stderr, or ``progress(fraction,
            message)``

    Returns:
        a :class:`.results.DuplicatesResults`
    """
    caller = "find_near_duplicates"
    representative = REPRESENTATIVE.clean(caller, representative)
    source = Source(samples, embedder, embeddings_field, patches_field,
                    num_workers, batch_size, decode, executor, caller,
                    default_embedder=DEFAULT_EMBEDDER,
                    ray_address=ray_address)
    if threshold is None:
        threshold = default_threshold(source.embedder)
    threshold = THRESHOLD.clean(caller, threshold)
    if patches_field and representative == "largest":
        raise ParamError("representative: 'largest' compares image files; "
                         "objects are represented by their 'centre'")
    fields = duplicate_fields(key, source.labels_path)
    expect = runs.check_new_run(samples._dataset, key,
                                list(fields.values()), overwrite,
                                kind=record.DUPLICATES_KIND)
    report = Reporter(progress)
    timings = Timings()
    with timings("embed"):
        emb = source.embed(report, 0.6)
    with timings("neighbors"):
        groups, X = near_duplicate_groups(emb.vectors, threshold, report)
    with timings("representatives"):
        reps = _representatives(samples, emb, X, groups, representative)
        dist = grouping.distances_to_representatives(X, groups, reps)
    timings.finish()
    params = {"threshold": threshold, "representative": representative,
              "neighbors": grouping.DUPLICATE_NEIGHBORS}
    config = config_of(record.DUPLICATES_KIND, "near", params, emb, source,
                       fields)
    return _store(samples, key, config, emb.ids, emb.owners, groups, reps,
                  dist, expect, report, results_of(
                      emb, timings, **_summary(groups, len(emb.ids))))


def _representatives(samples, emb, X, groups, representative):
    if representative == "centre":
        return grouping.representatives_by_centre(X, groups)
    paths = _paths_of(samples, emb.ids, groups)
    return grouping.representatives_by_size(paths, groups)


def _paths_of(samples, ids, groups):
    """Row -> file path, for the grouped rows only."""
    wanted = {ids[r]: r for r in np.where(groups >= 0)[0]}
    paths = {}
    view = samples.select(list(wanted))
    for chunk_ids, values in iter_rows(view, ["filepath"]):
        for sid, path in zip(chunk_ids, values["filepath"]):
            paths[wanted[sid]] = path
    return paths


def find_exact_duplicates(samples, key="exact_dups", overwrite=False,
                          num_workers=None, progress=None):
    """Finds files with identical contents in ``samples`` and stores the
    groups as run ``key``, with the same fields as
    :func:`find_near_duplicates` (distances are 0). The earliest sample of a
    group represents it. A ``filehash`` field set on every sample is used
    as it is; otherwise files are hashed (BLAKE2b, in parallel threads).
    Files that cannot be read are reported and skipped."""
    caller = "find_exact_duplicates"
    num_workers = HASH_WORKERS.clean(caller, num_workers)
    fields = duplicate_fields(key)
    expect = runs.check_new_run(samples._dataset, key,
                                list(fields.values()), overwrite,
                                kind=record.DUPLICATES_KIND)
    report = Reporter(progress)
    timings = Timings()
    with timings("hash"):
        ids, digests, skipped, how = _digests(samples, num_workers, report)
    with timings("groups"):
        groups = grouping.groups_from_keys(digests)
        reps = grouping.representatives_first(groups)
        dist = grouping.distances_to_representatives(None, groups, reps)
    timings.finish()
    config = config_of(record.DUPLICATES_KIND, "exact", {"hash": how}, None,
                       None, fields)
    listed = [{"id": i, "reason": r} for i, r in list(skipped.items())[:20]]
    results = results_of(None, timings, **_summary(groups, len(ids)),
                         skipped={"count": len(skipped), "samples": listed})
    return _store(samples, key, config, ids, None, groups, reps, dist,
                  expect, report, results)


def _digests(samples, num_workers, report):
    """Sample ids, one digest each (``None``: unreadable), the skipped ids
    with their reasons, and where the digests came from."""
    ids, paths, stored = [], [], []
    has_field = samples._dataset.get_field("filehash") is not None
    read = ["filepath", "filehash"] if has_field else ["filepath"]
    for chunk_ids, values in iter_rows(samples, read):
        ids.extend(chunk_ids)
        paths.extend(values["filepath"])
        if has_field:
            stored.extend(values["filehash"])
    if has_field and ids and all(h is not None for h in stored):
        report(0.8, f"using the 'filehash' field of {len(ids):,} samples")
        return ids, [str(h) for h in stored], {}, "filehash field"
    digests, failures = hash_files(
        paths, num_workers,
        progress=lambda d, t: report(0.8 * d / max(t, 1),
                                     f"hashing {d:,} of {t:,} files"))
    skipped = {ids[i]: reason for i, reason in failures.items()}
    return ids, digests, skipped, "blake2b"


def _summary(groups, n):
    sizes = np.bincount(groups[groups >= 0]) if (groups >= 0).any() \
        else np.zeros(0, dtype=np.int64)
    return {
        "samples": n,
        "groups": int(len(sizes)),
        "in_groups": int(sizes.sum()),
        "duplicates": int(sizes.sum() - len(sizes)),
        "largest_group": int(sizes.max()) if len(sizes) else 0,
    }


def _store(samples, key, config, ids, owners, groups, reps, dist, expect,
           report, results):
    """Writes the grouped rows' fields and the run record."""
    rows = np.where(groups >= 0)[0]
    rep_rows = set(reps.values())
    fields = config["fields"]
    kinds = record.DUPLICATE_FIELD_KINDS
    columns = [
        Column("group", fields["group"], groups[rows], kinds["group"]),
        Column("dist", fields["dist"], dist[rows], kinds["dist"]),
        Column("rep", fields["rep"], [int(r) in rep_rows for r in rows],
               kinds["rep"]),
    ]
    report(0.92, "writing fields")
    runs.write_run(
        samples, key, config, results, [ids[r] for r in rows], columns,
        expect, owners=[owners[r] for r in rows] if owners else None,
        progress=lambda m: report(0.95, m))
    report(1.0, "done")
    return DuplicatesResults.load(samples, key)
