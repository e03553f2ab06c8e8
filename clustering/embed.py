"""Embeddings for a collection: read from a field, or computed and cached.

A computed vector is cached in a vector field whose ``info`` holds the
embedder's fingerprint, beside a string field ``<field>_file`` that holds
the identity of the file it was computed from: a hash of its path, size and
modification time (nanoseconds). A cached vector is reused only when the
sample's file still has that identity, so a changed ``filepath`` or a file
rewritten on disk is embedded again. Path + size + mtime is what ``make``
and ``rsync`` trust: one ``stat`` per file, where a content hash would read
every byte of every image on every run. (A file rewritten in place with the
same size *and* the same mtime, to the nanosecond, would be missed.)

Each sample's vector and identity are written in one update, so a cache
write killed half-way leaves every sample either with a matching pair or
with its old one (whose identity then no longer matches, or still does and
still describes its vector). Vectors are written in slices as embedding
goes, so a killed run keeps what it had embedded.
"""

import logging

import numpy as np

from ..embedders import get_embedder
from ..embedders.executors import local_executor
from ..embedders.images import Crop, file_identity
from ..storage import vector_cache
from ..storage.sample_io import VectorColumn, iter_rows, read_vectors
from ..storage.vector_cache import fingerprint_of, identity_field
from ..support import count_reasons
from ..units import ParamError

logger = logging.getLogger(__name__)

# How many skipped samples are listed one by one in a run's results.
MAX_SKIPPED_LISTED = 1000

# Images embedded between two cache writes.
CACHE_SLICE = 4096


class Embeddings:
    """Vectors for the samples (or objects) of a collection.

    Attributes:
        ids: ids of the rows of ``vectors`` (samples, or objects)
        vectors: float32 array, one row per embedded sample
        skipped: dict of id -> reason it has no vector
        field: the field the vectors live in
        source: plain JSON describing where the vectors came from
        computed: how many vectors this call computed
        owners: for objects, the sample id of each row; else ``None``
        skipped_paths: dict of skipped id -> file path
    """

    def __init__(self, ids, vectors, skipped, field, source, computed,
                 owners=None, skipped_paths=None):
        self.ids = ids
        self.vectors = vectors
        self.skipped = skipped
        self.field = field
        self.source = source
        self.computed = computed
        self.owners = owners
        self.skipped_paths = skipped_paths or {}

    @property
    def reused(self):
        return max(0, len(self.ids) - self.computed)


def check_embeddings_field(samples, embedder, field):
    """Raises before any work if ``field`` cannot hold (with an embedder) or
    provide (without one) vectors. Returns the field name to use."""
    import fiftyone as fo

    dataset = samples._dataset
    if embedder is None:
        if not field:
            raise ParamError(
                "give an embedder or an existing 'embeddings_field'",
                "embedder")
        f = dataset.get_field(field)
        if f is None:
            raise ParamError(
                f"embeddings_field '{field}' does not exist on dataset "
                f"'{dataset.name}'", "embeddings_field")
        if not isinstance(f, (fo.VectorField, fo.ListField)):
            raise ParamError(
                f"embeddings_field '{field}' is a {type(f).__name__}, not a "
                "vector field", "embeddings_field")
        return field

    field = field or embedder.field_name
    if not isinstance(field, str) or not field.isidentifier() or \
            field.startswith("_"):
        raise ParamError(
            f"embeddings_field {field!r} must be a top-level field name "
            "(letters, digits and underscores): computed embeddings are "
            "never written inside another field", "embeddings_field")
    existing = dataset.get_field(field)
    if existing is not None:
        if not isinstance(existing, fo.VectorField):
            raise ParamError(
                f"embeddings_field '{field}' is a {type(existing).__name__}, "
                "not a vector field; computed embeddings need a field of "
                "their own", "embeddings_field")
        found = fingerprint_of(dataset, field)
        if found != embedder.fingerprint():
            raise ParamError(
                f"field '{field}' already holds embeddings from another "
                f"source ({found or 'no fingerprint'}); give another "
                "embeddings field, or delete the field to recompute it",
                "embeddings_field")
    sidecar = dataset.get_field(identity_field(field))
    if sidecar is not None and not isinstance(sidecar, fo.StringField):
        raise ParamError(
            f"field '{identity_field(field)}' exists and is not the file "
            f"identity of the cached embeddings in '{field}'",
            "embeddings_field")
    return field


def get_embeddings(
    samples,
    embedder=None,
    field=None,
    num_workers=None,
    batch_size=None,
    progress=None,
    executor=None,
    decode="auto",
):
    """Returns :class:`Embeddings` for every sample of ``samples``.

    With no ``embedder``, vectors are read from the existing ``field`` and
    no model is loaded. With one, cached vectors in its field are reused
    where the file is unchanged, and the others are computed and cached.
    ``executor`` runs the embedding (default: on this machine).
    """
    if embedder is not None:
        embedder = get_embedder(embedder)
    field = check_embeddings_field(samples, embedder, field)
    if embedder is None:
        ids, vectors, skipped = read_vectors(samples, field,
                                             progress=progress)
        source = {"embedder": None,
                  "fingerprint": fingerprint_of(samples._dataset, field),
                  "field": field}
        return Embeddings(ids, vectors, skipped, field, source, 0,
                          skipped_paths=_paths_of(samples, skipped))

    plan = _cache_plan(samples, embedder, field)
    computed = _embed_missing(samples, embedder, field, plan, num_workers,
                              batch_size, progress, executor, decode)
    ids, vectors, skipped = _assemble(plan, computed)
    source = {"embedder": embedder.spec(),
              "fingerprint": embedder.fingerprint(), "field": field}
    return Embeddings(ids, vectors, skipped, field, source,
                      len(computed.vectors),
                      skipped_paths={sid: plan.paths[plan.index[sid]]
                                     for sid in skipped})


class _CachePlan:
    """Which samples have a usable cached vector, and which need one.

    Attributes:
        ids, paths, identities: per sample, in the collection's order
        index: sample id -> its position
        cached: the cached vectors as read (a :class:`Decoded`), or
            ``None``
        usable: per sample, whether its cached vector is reused
        todo: the ids to embed
    """

    def __init__(self):
        self.ids = []
        self.paths = []
        self.identities = []
        self.index = {}
        self.cached = None
        self.usable = np.zeros(0, dtype=bool)
        self.todo = []


class _Computed:
    def __init__(self):
        self.vectors = {}
        self.failures = {}


def _cache_plan(samples, embedder, field):
    """Reads every sample's file path, and with a cache its vectors and
    their file identities (the vectors through the same batched reader as
    an embeddings field's, :class:`.sample_io.VectorColumn`)."""
    dataset = samples._dataset
    sidecar = identity_field(field)
    wanted = ["filepath"]
    has_cache = dataset.get_field(field) is not None and \
        dataset.get_field(sidecar) is not None
    if has_cache:
        wanted += [field, sidecar]
    plan = _CachePlan()
    matches = []
    with VectorColumn(field, len(samples)) as column:
        for ids, values in iter_rows(samples, wanted):
            for j, sid in enumerate(ids):
                path = values["filepath"][j]
                identity = file_identity(path)
                plan.index[sid] = len(plan.ids)
                plan.ids.append(sid)
                plan.paths.append(path)
                plan.identities.append(identity)
                matches.append(has_cache and identity is not None and
                               values[sidecar][j] == identity)
            if has_cache:
                column.add(values[field])
        if has_cache:
            plan.cached = column.finish()
    plan.usable = np.asarray(matches, dtype=bool)
    if plan.cached is not None:
        loose = np.zeros(len(plan.ids), dtype=bool)
        loose[[r for r, v in plan.cached.others.items() if v.size]] = True
        plan.usable &= plan.cached.stored | loose
    plan.todo = [sid for sid, ok in zip(plan.ids, plan.usable) if not ok]
    return plan


def _embed_missing(samples, embedder, field, plan, num_workers, batch_size,
                   progress, executor, decode):
    computed = _Computed()
    todo = plan.todo
    if not todo:
        return computed
    run = executor or local_executor
    declared = False
    total = len(todo)
    for start in range(0, total, CACHE_SLICE):
        chunk = todo[start:start + CACHE_SLICE]
        paths = [plan.paths[plan.index[sid]] for sid in chunk]

        def slice_progress(done, _n, offset=start):
            if progress is not None:
                progress(offset + done, total)

        out = run(embedder, chunk, paths, num_workers=num_workers,
                  batch_size=batch_size, progress=slice_progress,
                  decode=decode)
        new = {}
        for j, sid in enumerate(chunk):
            reason = out.failures.get(j)
            vector = None if reason else out.vectors[j]
            if reason is None and (vector is None or vector.size == 0):
                reason = "the embedder returned an empty vector"
            if reason is not None:
                computed.failures[sid] = reason
                continue
            computed.vectors[sid] = vector
            new[sid] = vector
        if new:
            if not declared:
                _declare_cache(samples, embedder, field)
                declared = True
            _write_cache(samples, field, plan, new)
    return computed


def _declare_cache(samples, embedder, field):
    vector_cache.declare(
        samples, field, embedder.fingerprint(),
        f"Image embeddings from {embedder.name}",
        # Checked again under the lock: another process may have taken the
        # name since.
        lambda s: check_embeddings_field(s, embedder, field))


def _write_cache(samples, field, plan, new):
    vector_cache.write(samples._dataset, field, new, {
        sid: plan.identities[plan.index[sid]] for sid in new})


def _assemble(plan, computed):
    """The rows in sample order: cached or computed vectors, with every
    other sample skipped with its reason. Cached rows of the common length
    are copied from the cache's matrix in blocks."""
    ids, lengths, skipped = [], [], {}
    from_cache, loose = [], {}
    cached = plan.cached
    width = cached.matrix.shape[1] if cached is not None else None
    for row, sid in enumerate(plan.ids):
        if plan.usable[row]:
            if cached.stored[row]:
                from_cache.append(len(ids))
                ids.append(sid)
                lengths.append(width)
                continue
            vector = cached.others[row]
        else:
            vector = computed.vectors.get(sid)
        if vector is None:
            skipped[sid] = computed.failures.get(sid, "not embedded")
            continue
        if not np.all(np.isfinite(vector)):
            skipped[sid] = "embedding contains NaN or infinite values"
            continue
        loose[len(ids)] = vector
        ids.append(sid)
        lengths.append(len(vector))
    keep = _common_length(list(range(len(ids))), lengths, ids, skipped)
    if not keep:
        return [], np.zeros((0, 0), dtype=np.float32), skipped
    width = lengths[keep[0]]
    matrix = np.empty((len(keep), width), dtype=np.float32)
    position = np.full(len(ids), -1, dtype=np.int64)
    position[keep] = np.arange(len(keep))
    if from_cache and width == cached.matrix.shape[1]:
        at = np.asarray(from_cache, dtype=np.int64)
        source = np.flatnonzero(plan.usable & cached.stored)
        for start in range(0, len(at), 65536):
            matrix[position[at[start:start + 65536]]] = \
                cached.matrix[source[start:start + 65536]]
    for i, vector in loose.items():
        if position[i] >= 0:
            matrix[position[i]] = vector
    return [ids[i] for i in keep], matrix, skipped


def _common_length(rows, lengths, ids, skipped):
    """The rows whose vectors have the length most rows have (``lengths``
    holds each row's); the others are skipped with both lengths and the
    count. (Vectors of one fingerprint have one length: a mismatch means a
    cache or attribute written by hand.)"""
    by_length = {}
    for i in rows:
        by_length.setdefault(lengths[i], []).append(i)
    if len(by_length) <= 1:
        return rows
    common = max(by_length, key=lambda d: len(by_length[d]))
    for d, members in by_length.items():
        if d != common:
            for i in members:
                skipped[ids[i]] = (
                    f"embedding has {d} values; {len(by_length[common]):,} "
                    f"other(s) have {common}")
    return by_length[common]


def _paths_of(samples, ids):
    """Sample id -> file path, for ``ids``."""
    if not ids:
        return {}
    view = samples.select(list(ids))
    return dict(zip(*view.values(["id", "filepath"])))


def label_list_path(samples, patches_field):
    """The path of the labels in ``patches_field``: ``field.detections`` for
    Detections, ``field`` for a single Detection."""
    import fiftyone as fo

    field = samples._dataset.get_field(patches_field)
    doc_type = getattr(field, "document_type", None)
    if doc_type is fo.Detections:
        return f"{patches_field}.detections"
    if doc_type is fo.Detection:
        return patches_field
    raise ParamError(
        f"patches_field '{patches_field}' must be a Detections or Detection "
        f"field, not {type(field).__name__ if field else 'missing'}",
        "patches_field")


def get_patch_embeddings(
    samples,
    patches_field,
    embedder=None,
    attribute=None,
    num_workers=None,
    batch_size=None,
    progress=None,
    executor=None,
    decode="auto",
):
    """Returns :class:`Embeddings` for every object in ``patches_field``,
    keyed by label id, with the sample id of each in ``owners``.

    With an ``embedder``, each object's bounding box is cut out of its image
    and embedded (crops are not cached). Without one, vectors are read from
    the label attribute ``attribute``.
    """
    path = label_list_path(samples, patches_field)
    single = path == patches_field
    objects = _objects(samples, path, single, attribute if embedder is None
                       else None)
    ids = [o[0] for o in objects]
    owners = [o[1] for o in objects]
    sources = [o[2] for o in objects]
    skipped = {}
    if embedder is not None:
        embedder = get_embedder(embedder)
        run = executor or local_executor
        out = run(embedder, ids, sources, num_workers=num_workers,
                  batch_size=batch_size, progress=progress, decode=decode)
        vectors = [None if j in out.failures else out.vectors[j]
                   for j in range(len(ids))]
        skipped = {ids[j]: r for j, r in out.failures.items()}
        source = {"embedder": embedder.spec(),
                  "fingerprint": embedder.fingerprint(), "field": None}
    else:
        if not attribute:
            raise ParamError(
                "give an embedder, or the label attribute holding the "
                "patches' embeddings as 'embeddings_field'",
                "embeddings_field")
        vectors = [None if o[3] is None
                   else np.asarray(o[3], np.float32).ravel()
                   for o in objects]
        for j, v in enumerate(vectors):
            if v is None:
                skipped[ids[j]] = f"no embedding in attribute '{attribute}'"
        source = {"embedder": None, "fingerprint": None, "field": attribute}

    keep = []
    for j, v in enumerate(vectors):
        if v is None:
            continue
        if v.size and np.all(np.isfinite(v)):
            keep.append(j)
        else:
            skipped[ids[j]] = "embedding is empty or not finite"
    keep = _common_length(keep, [len(v) if v is not None else 0
                                 for v in vectors], ids, skipped)
    matrix = (np.stack([vectors[j] for j in keep]).astype(np.float32)
              if keep else np.zeros((0, 0), dtype=np.float32))
    return Embeddings(
        [ids[j] for j in keep], matrix, skipped, attribute, source,
        len(keep) if embedder is not None else 0,
        owners=[owners[j] for j in keep],
        skipped_paths={ids[j]: sources[j].path for j in range(len(ids))
                       if ids[j] in skipped},
    )


def _objects(samples, path, single, attribute):
    """``(label id, sample id, Crop, stored vector)`` per object."""
    want = ["id", "filepath", f"{path}.id", f"{path}.bounding_box"]
    if attribute:
        want.append(f"{path}.{attribute}")
    columns = samples.values(want)
    out = []
    for k, sample_id in enumerate(columns[0]):
        label_ids, boxes = columns[2][k], columns[3][k]
        stored = columns[4][k] if attribute else None
        if single:
            label_ids, boxes, stored = [label_ids], [boxes], [stored]
        label_ids = label_ids or []
        boxes = boxes or []
        stored = stored if attribute else [None] * len(label_ids)
        for label_id, box, vec in zip(label_ids, boxes, stored or []):
            if label_id is None:
                continue
            crop = Crop(columns[1][k], tuple(box or (0, 0, 0, 0)))
            out.append((label_id, sample_id, crop, vec))
    return out


# -- the embed step of a run ---------------------------------------------------


def embed_samples(samples, embedder, embeddings_field, patches_field, report,
                  share=0.7, minimum=2, **common):
    """Vectors for every sample (or object, with ``patches_field``) of
    ``samples``, computed (and cached) by ``embedder`` or read from
    ``embeddings_field``; progress fills ``[0, share]`` of ``report``.
    Raises unless at least ``minimum`` rows have a vector."""
    verb = "embedded" if embedder is not None else "read"
    report(0.0, "embedding" if embedder is not None else "reading")
    last_percent = [-1]

    def embed_progress(done, total):
        # At most one update per percent: a delegated run stores each one.
        percent = 100 * done // max(total, 1)
        if percent != last_percent[0] or done == total:
            last_percent[0] = percent
            report(share * done / max(total, 1), f"{verb} {done} of {total}")

    if patches_field:
        emb = get_patch_embeddings(
            samples, patches_field, embedder=embedder,
            attribute=embeddings_field, progress=embed_progress, **common)
    else:
        emb = get_embeddings(samples, embedder=embedder,
                             field=embeddings_field, progress=embed_progress,
                             **common)
    total = len(emb.ids) + len(emb.skipped)
    if total == 0:
        raise ParamError("there are no samples to work on: the view is "
                         "empty", "samples")
    if len(emb.ids) < minimum:
        raise ValueError(
            f"only {len(emb.ids)} of {total} samples could be embedded; "
            "nothing to do" + skip_reasons(emb.skipped))
    if emb.skipped:
        logger.warning("%d sample(s) skipped%s", len(emb.skipped),
                       skip_reasons(emb.skipped))
    return emb


def skipped_summary(emb):
    """The samples that have no vector, as a run's results record them:
    the count, the count per reason, and the first ones with their file."""
    listed = list(emb.skipped.items())[:MAX_SKIPPED_LISTED]
    return {
        "count": len(emb.skipped),
        "by_reason": count_reasons(emb.skipped),
        "samples": [
            {"id": sid, "filepath": emb.skipped_paths.get(sid), "reason": r}
            for sid, r in listed
        ],
    }


def skip_reasons(skipped):
    """``": 3 x reason; ..."`` for a message, or ``""``."""
    if not skipped:
        return ""
    parts = [f"{n} × {r}" for r, n in count_reasons(skipped).items()]
    return ": " + "; ".join(parts)
