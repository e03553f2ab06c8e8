"""Near-duplicates from embeddings, exact duplicates from file contents.

Near-duplicates (:mod:`..algorithms.dedup`): each sample's nearest
neighbours (the faiss engine of :mod:`..algorithms.neighbors`, exact up to
200,000 vectors, IVF with 8-bit codes and exact re-ranking beyond) are the
candidates; thumbnails are compared as images (blind to brightness, to
small differences of contrast, to small crops and shifts), other vectors
by cosine; the threshold is calibrated on the data unless one is given;
and groups are stars, every member within the threshold of its group's
centre, so that no chain of small steps joins distinct images.
Exact duplicates: files whose bytes hash the same. Either way each group
gets a representative and every grouped sample three fields: its group,
its distance to the representative, and whether it is the representative.
"""

import numpy as np

from ..algorithms import dedup as grouping
from ..algorithms.dedup import near_duplicate_groups
from ..embedders.images import file_identity
from ..storage import digest_cache, runs
from ..storage import schema as record
from ..storage.sample_io import iter_rows
from ..storage.transaction import Column
from ..support import Reporter, Timings
from ..units import Param, ParamError
from .hashing import DIGEST_FINGERPRINT, hash_files
from .results import DuplicatesResults
from .source import Source, config_of, results_of

# Without an embedder or a field: a 32 x 32 thumbnail, compared as an
# image (benchmarks/duplicates_threshold.py compares it with the 8 x 8 one
# it replaced, on photos, faces, textures and digits).
DEFAULT_EMBEDDER = {"name": "pixels", "size": 32}
# The largest threshold calibration may choose, per embedder. dino and
# clip follow published practice for those models and are not measured
# here (no weights on this machine).
THRESHOLD_CEILINGS = {
    "pixels": 0.10,
    "dino": 0.08,
    "clip": 0.05,
}
# For vectors of an existing field, whose model is unknown.
FALLBACK_CEILING = 0.05

THRESHOLD = Param("threshold", "float", None,
                  "Distance under which two samples are duplicates "
                  "(default: calibrated on the data; see the README)",
                  min=0.0, max=2.0)
REPRESENTATIVE = Param("representative", "choice", "centre",
                       "Which sample represents a group: the one nearest "
                       "its centre, or the largest file",
                       choices=grouping.REPRESENTATIVES)
DUPLICATE_PARAMS = (THRESHOLD, REPRESENTATIVE)
HASH_WORKERS = Param("num_workers", "int", None,
                     "Threads hashing files (default: two per core)", min=1)


def threshold_ceiling(embedder):
    """The largest threshold calibration may choose for ``embedder``
    (``None``: vectors of an existing field)."""
    if embedder is None:
        return FALLBACK_CEILING
    return THRESHOLD_CEILINGS.get(embedder.name, FALLBACK_CEILING)


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
        threshold: the distance under which two samples are duplicates
            (for thumbnails, see :mod:`..algorithms.thumbnail_distance`;
            for other vectors, ``1 - cos``); by default calibrated on the
            data (:func:`..algorithms.dedup.calibrate`), at most the
            embedder's ceiling (:data:`THRESHOLD_CEILINGS`)
        embedder: an embedder (name, dict or instance); its vectors are
            cached and shared with clustering runs. By default a 32 x 32
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
    side = source.embedder.thumbnail_side if source.embedder else None
    with timings("neighbors"):
        found = near_duplicate_groups(
            emb.vectors, threshold, threshold_ceiling(source.embedder),
            side, report)
    groups = found.groups
    with timings("representatives"):
        reps = _representatives(samples, emb, found.unit, groups,
                                representative)
        dist = grouping.distances_to_representatives(groups, reps,
                                                     found.distance)
    timings.finish()
    params = {"threshold": found.threshold,
              "calibration": found.calibration,
              "compared_as": "thumbnails" if side else "cosine",
              "representative": representative,
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
    group represents it. Files are hashed (BLAKE2b, in parallel threads)
    and the digests cached with each file's identity (path, size,
    modification time) in ``file_digest``, so a later run hashes only the
    files that changed. An existing ``filehash`` field is not used: nothing
    says it still matches the file. Files that cannot be read are reported
    and skipped."""
    caller = "find_exact_duplicates"
    num_workers = HASH_WORKERS.clean(caller, num_workers)
    digest_cache.check(samples._dataset, DIGEST_FINGERPRINT)
    fields = duplicate_fields(key)
    expect = runs.check_new_run(samples._dataset, key,
                                list(fields.values()), overwrite,
                                kind=record.DUPLICATES_KIND)
    report = Reporter(progress)
    timings = Timings()
    with timings("hash"):
        digests = _digests(samples, num_workers, report)
    with timings("groups"):
        groups = grouping.groups_from_keys(digests.values)
        reps = grouping.representatives_first(groups)
        dist = grouping.distances_to_representatives(groups, reps)
    timings.finish()
    config = config_of(record.DUPLICATES_KIND, "exact", {"hash": "blake2b"},
                       None, None, fields)
    skipped = digests.skipped
    listed = [{"id": i, "reason": r} for i, r in list(skipped.items())[:20]]
    results = results_of(None, timings, **_summary(groups, len(digests.ids)),
                         hashing={"hashed": digests.hashed,
                                  "reused": digests.reused},
                         skipped={"count": len(skipped), "samples": listed})
    return _store(samples, key, config, digests.ids, None, groups, reps,
                  dist, expect, report, results)


class _Digests:
    """Sample ids, one digest each (``None``: unreadable), the skipped ids
    with their reasons, and how many digests were computed or reused."""

    def __init__(self):
        self.ids, self.values, self.skipped = [], [], {}
        self.hashed = self.reused = 0


def _digests(samples, num_workers, report):
    dataset = samples._dataset
    cached = digest_cache.present(dataset)
    read = ["filepath"] + ([digest_cache.DIGEST_FIELD,
                            digest_cache.IDENTITY_FIELD] if cached else [])
    out = _Digests()
    paths, identities, todo = [], [], []
    for chunk_ids, values in iter_rows(samples, read):
        for j, sid in enumerate(chunk_ids):
            path = values["filepath"][j]
            # Taken before hashing: a file that changes meanwhile is hashed
            # again next time.
            identity = file_identity(path)
            out.ids.append(sid)
            paths.append(path)
            identities.append(identity)
            if cached and identity is not None and \
                    values[digest_cache.IDENTITY_FIELD][j] == identity and \
                    values[digest_cache.DIGEST_FIELD][j]:
                out.values.append(values[digest_cache.DIGEST_FIELD][j])
            else:
                out.values.append(None)
                todo.append(len(out.ids) - 1)
    out.reused = len(out.ids) - len(todo)
    if out.reused:
        report(0.05, f"{out.reused:,} file digest(s) reused, "
               f"{len(todo):,} to compute")
    computed, failures = hash_files(
        [paths[i] for i in todo], num_workers,
        progress=lambda d, t: report(0.8 * d / max(t, 1),
                                     f"hashing {d:,} of {t:,} files"))
    new, new_identities = {}, {}
    for i, digest in zip(todo, computed):
        out.values[i] = digest
        if digest is not None and identities[i] is not None:
            new[out.ids[i]] = digest
            new_identities[out.ids[i]] = identities[i]
    out.hashed = len(todo) - len(failures)
    out.skipped = {out.ids[todo[j]]: reason for j, reason in failures.items()}
    if new:
        digest_cache.declare(samples, DIGEST_FINGERPRINT)
        digest_cache.write(dataset, new, new_identities)
    return out


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
