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

import hashlib
import os

import numpy as np

from ..embedders import get_embedder
from ..embedders.images import Crop
from ..units import ParamError
from . import record
from .columns import iter_rows, read_vectors, write_by_id

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


def file_identity(path):
    """A short hash of ``path`` and its size and modification time, or
    ``None`` when the file cannot be read."""
    try:
        st = os.stat(path)
    except (OSError, ValueError, TypeError):
        return None
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def identity_field(field):
    return f"{field}_file"


def fingerprint_of(dataset, field):
    f = dataset.get_field(field)
    return (f.info or {}).get("fingerprint") if f is not None else None


def check_embeddings_field(samples, embedder, field):
    """Raises before any work if ``field`` cannot hold (with an embedder) or
    provide (without one) vectors. Returns the field name to use."""
    import fiftyone as fo

    dataset = samples._dataset
    if embedder is None:
        if not field:
            raise ParamError(
                "give an embedder or an existing 'embeddings_field'"
            )
        f = dataset.get_field(field)
        if f is None:
            raise ParamError(
                f"embeddings_field '{field}' does not exist on dataset "
                f"'{dataset.name}'"
            )
        if not isinstance(f, (fo.VectorField, fo.ListField)):
            raise ParamError(
                f"embeddings_field '{field}' is a {type(f).__name__}, not a "
                "vector field"
            )
        return field

    field = field or embedder.field_name
    if not isinstance(field, str) or not field.isidentifier() or \
            field.startswith("_"):
        raise ParamError(
            f"embeddings_field {field!r} must be a top-level field name "
            "(letters, digits and underscores): computed embeddings are "
            "never written inside another field"
        )
    if record.is_staging_name(field):
        raise ParamError(f"embeddings_field {field!r} is a reserved name")
    existing = dataset.get_field(field)
    if existing is not None:
        if not isinstance(existing, fo.VectorField):
            raise ParamError(
                f"embeddings_field '{field}' is a {type(existing).__name__}, "
                "not a vector field; computed embeddings need a field of "
                "their own"
            )
        found = fingerprint_of(dataset, field)
        if found != embedder.fingerprint():
            raise ParamError(
                f"field '{field}' already holds embeddings from another "
                f"source ({found or 'no fingerprint'}); pass "
                "embeddings_field= a new name, or delete the field to "
                "recompute it"
            )
    sidecar = dataset.get_field(identity_field(field))
    if sidecar is not None and not isinstance(sidecar, fo.StringField):
        raise ParamError(
            f"field '{identity_field(field)}' exists and is not the file "
            f"identity of the cached embeddings in '{field}'"
        )
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
        return Embeddings(ids, vectors, skipped, field, source, 0)

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
    """Which samples have a usable cached vector, and which need one."""

    def __init__(self):
        self.ids = []
        self.paths = []
        self.identities = []
        self.index = {}
        self.cached = {}
        self.todo = []


class _Computed:
    def __init__(self):
        self.vectors = {}
        self.failures = {}


def _cache_plan(samples, embedder, field):
    dataset = samples._dataset
    sidecar = identity_field(field)
    wanted = ["filepath"]
    has_cache = dataset.get_field(field) is not None and \
        dataset.get_field(sidecar) is not None
    if has_cache:
        wanted += [field, sidecar]
    plan = _CachePlan()
    from .columns import _decode_vector

    for ids, values in iter_rows(samples, wanted):
        for j, sid in enumerate(ids):
            path = values["filepath"][j]
            identity = file_identity(path)
            plan.index[sid] = len(plan.ids)
            plan.ids.append(sid)
            plan.paths.append(path)
            plan.identities.append(identity)
            if has_cache and identity is not None and \
                    values[sidecar][j] == identity:
                vector = _decode_vector(values[field][j])
                if vector is not None and vector.size:
                    plan.cached[sid] = vector
                    continue
            plan.todo.append(sid)
    return plan


def _embed_missing(samples, embedder, field, plan, num_workers, batch_size,
                   progress, executor, decode):
    from ..embedders.executors import local_executor

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
    import fiftyone as fo

    from . import store

    with store.locked(samples, "embeddings cache") as lease:
        dataset = lease.dataset
        # Checked again under the lock: another process may have taken the
        # name since.
        check_embeddings_field(samples, embedder, field)
        if dataset.get_field(field) is None:
            dataset.add_sample_field(
                field, fo.VectorField,
                description=f"Image embeddings from {embedder.name}",
                info={"fingerprint": embedder.fingerprint()},
            )
        sidecar = identity_field(field)
        if dataset.get_field(sidecar) is None:
            dataset.add_sample_field(
                sidecar, fo.StringField,
                description=f"Identity (path, size, mtime) of the file each "
                f"vector in '{field}' was computed from",
            )


def _write_cache(samples, field, plan, new):
    import fiftyone.core.utils as fou

    sidecar = identity_field(field)
    write_by_id(samples._dataset, {
        sid: {
            field: fou.serialize_numpy_array(
                np.asarray(vector, dtype=np.float32)),
            sidecar: plan.identities[plan.index[sid]],
        }
        for sid, vector in new.items()
    })


def _assemble(plan, computed):
    """The rows in sample order: cached or computed vectors, with every
    other sample skipped with its reason."""
    ids, rows, skipped = [], [], {}
    for sid in plan.ids:
        vector = plan.cached.get(sid)
        if vector is None:
            vector = computed.vectors.get(sid)
        if vector is None:
            skipped[sid] = computed.failures.get(sid, "not embedded")
            continue
        ids.append(sid)
        rows.append(vector)
    dims = {len(r) for r in rows}
    if len(dims) > 1:
        # Vectors of one fingerprint have one length; a mismatch means a
        # cache written by hand.
        common = max(dims, key=lambda d: sum(len(r) == d for r in rows))
        keep = [i for i, r in enumerate(rows) if len(r) == common]
        for i, r in enumerate(rows):
            if len(r) != common:
                skipped[ids[i]] = (f"embedding has {len(r)} values, the "
                                   f"others have {common}")
        ids = [ids[i] for i in keep]
        rows = [rows[i] for i in keep]
    finite = [i for i, r in enumerate(rows) if np.all(np.isfinite(r))]
    for i in set(range(len(rows))) - set(finite):
        skipped[ids[i]] = "embedding contains NaN or infinite values"
    matrix = (np.stack([rows[i] for i in finite]).astype(np.float32)
              if finite else np.zeros((0, 0), dtype=np.float32))
    return [ids[i] for i in finite], matrix, skipped


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
        f"field, not {type(field).__name__ if field else 'missing'}"
    )


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
    from ..embedders.executors import local_executor

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
                "patches' embeddings as 'embeddings_field'"
            )
        vectors = [None if o[3] is None
                   else np.asarray(o[3], np.float32).ravel()
                   for o in objects]
        for j, v in enumerate(vectors):
            if v is None:
                skipped[ids[j]] = f"no embedding in attribute '{attribute}'"
        source = {"embedder": None, "fingerprint": None, "field": attribute}

    keep = [j for j, v in enumerate(vectors)
            if v is not None and v.size and np.all(np.isfinite(v))]
    for j, v in enumerate(vectors):
        if v is not None and j not in set(keep):
            skipped[ids[j]] = "embedding is empty or not finite"
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
