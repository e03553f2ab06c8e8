"""Embeddings for a collection: read from a field, or computed and cached.

A computed embedding is cached in a vector field whose ``info`` holds the
embedder's fingerprint. A later run with the same fingerprint reuses it and
embeds only the samples that lack a vector; a field holding another
embedder's vectors is never mixed with new ones.
"""

import numpy as np

from ..embedders import get_embedder
from ..embedders.images import Crop
from ..embedders.params import ParamError


class Embeddings:
    """Vectors for the samples of a collection.

    Attributes:
        ids: sample ids of the rows of ``vectors``
        vectors: float32 array, one row per embedded sample
        skipped: dict of sample id -> reason it has no vector
        field: the field the vectors live in
        source: plain JSON describing where the vectors came from
        computed: how many vectors this call computed
        skipped_paths: dict of skipped id -> file path, where the ids are
            not sample ids (objects)
    """

    def __init__(self, ids, vectors, skipped, field, source, computed,
                 skipped_paths=None):
        self.ids = ids
        self.vectors = vectors
        self.skipped = skipped
        self.field = field
        self.source = source
        self.computed = computed
        self.skipped_paths = skipped_paths or {}


def fingerprint_of(dataset, field):
    f = dataset.get_field(field)
    return (f.info or {}).get("fingerprint") if f is not None else None


def check_embeddings_field(samples, embedder, field):
    """Raises before any work if ``field`` cannot hold or provide vectors.

    Returns the field name that will be used.
    """
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
    existing = dataset.get_field(field)
    if existing is None:
        return field
    found = fingerprint_of(dataset, field)
    if found != embedder.fingerprint():
        raise ParamError(
            f"field '{field}' already holds embeddings from another source "
            f"({found or 'no fingerprint'}); pass embeddings_field= a new "
            "name, or delete the field to recompute it"
        )
    return field


def get_embeddings(
    samples,
    embedder=None,
    field=None,
    num_workers=None,
    batch_size=None,
    progress=None,
):
    """Returns :class:`Embeddings` for every sample of ``samples``.

    With no ``embedder``, vectors are read from the existing ``field`` and
    no model is loaded. With one, cached vectors in its field are reused and
    the missing ones are computed, then written to the field.
    """
    if embedder is not None:
        embedder = get_embedder(embedder)
    field = check_embeddings_field(samples, embedder, field)

    has_field = samples._dataset.get_field(field) is not None
    if has_field:
        ids, paths, stored = samples.values(["id", "filepath", field])
    else:
        ids, paths = samples.values(["id", "filepath"])
        stored = [None] * len(ids)

    vectors = [None] * len(ids)
    skipped = {}
    for i, v in enumerate(stored):
        if v is not None:
            vectors[i] = np.asarray(v, dtype=np.float32).ravel()

    computed = 0
    if embedder is not None:
        todo = [i for i, v in enumerate(vectors) if v is None]
        if todo:
            out = embedder.embed(
                [paths[i] for i in todo],
                num_workers=num_workers,
                batch_size=batch_size,
                progress=progress,
            )
            new = {}
            for j, i in enumerate(todo):
                if j in out.failures:
                    skipped[ids[i]] = out.failures[j]
                else:
                    vectors[i] = out.vectors[j]
                    new[ids[i]] = out.vectors[j]
            computed = len(new)
            if new:
                _write_cache(samples, field, embedder, new)
        source = {
            "embedder": embedder.spec(),
            "fingerprint": embedder.fingerprint(),
            "field": field,
        }
    else:
        for i, v in enumerate(vectors):
            if v is None:
                skipped[ids[i]] = f"no embedding in field '{field}'"
        source = {
            "embedder": None,
            "fingerprint": fingerprint_of(samples._dataset, field),
            "field": field,
        }

    keep = [i for i, v in enumerate(vectors) if v is not None]
    dims = {len(vectors[i]) for i in keep}
    if len(dims) > 1:
        common = max(dims, key=lambda d: sum(len(vectors[i]) == d for i in keep))
        for i in keep:
            if len(vectors[i]) != common:
                skipped[ids[i]] = (
                    f"embedding has {len(vectors[i])} values, the others "
                    f"have {common}"
                )
        keep = [i for i in keep if len(vectors[i]) == common]
    for i in keep:
        if not np.all(np.isfinite(vectors[i])):
            skipped[ids[i]] = "embedding contains NaN or infinite values"
    keep = [i for i in keep if ids[i] not in skipped]

    matrix = (
        np.stack([vectors[i] for i in keep]).astype(np.float32)
        if keep
        else np.zeros((0, 0), dtype=np.float32)
    )
    return Embeddings(
        [ids[i] for i in keep], matrix, skipped, field, source, computed
    )


def _write_cache(samples, field, embedder, new):
    import fiftyone as fo

    dataset = samples._dataset
    if dataset.get_field(field) is None:
        dataset.add_sample_field(
            field,
            fo.VectorField,
            description=f"Image embeddings from {embedder!r}",
            info={"fingerprint": embedder.fingerprint()},
        )
    dataset.set_values(field, new, key_field="id")


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


def _flatten(per_sample, single):
    return [[v] if single else (v or []) for v in per_sample]


def get_patch_embeddings(
    samples,
    patches_field,
    embedder=None,
    attribute=None,
    num_workers=None,
    batch_size=None,
    progress=None,
):
    """Returns :class:`Embeddings` for every object in ``patches_field``,
    keyed by label id.

    With an ``embedder``, each object's bounding box is cut out of its image
    and embedded (crops are not cached). Without one, vectors are read from
    the label attribute ``attribute``.
    """
    path = label_list_path(samples, patches_field)
    single = path == patches_field
    want = ["filepath", f"{path}.id", f"{path}.bounding_box"]
    if embedder is None:
        if not attribute:
            raise ParamError(
                "give an embedder, or the label attribute holding the "
                "patches' embeddings as 'embeddings_field'"
            )
        want.append(f"{path}.{attribute}")
    columns = samples.values(want)
    filepaths = columns[0]
    ids, sources, stored = [], [], []
    for k, filepath in enumerate(filepaths):
        label_ids = _flatten([columns[1][k]], single)[0]
        boxes = _flatten([columns[2][k]], single)[0]
        vecs = (
            _flatten([columns[3][k]], single)[0]
            if embedder is None else [None] * len(label_ids)
        )
        for label_id, box, vec in zip(label_ids, boxes, vecs):
            if label_id is None:
                continue
            ids.append(label_id)
            sources.append(Crop(filepath, tuple(box or (0, 0, 0, 0))))
            stored.append(vec)

    skipped = {}
    if embedder is not None:
        embedder = get_embedder(embedder)
        out = embedder.embed(
            sources, num_workers=num_workers, batch_size=batch_size,
            progress=progress,
        )
        vectors = [None if j in out.failures else out.vectors[j]
                   for j in range(len(ids))]
        skipped = {ids[j]: r for j, r in out.failures.items()}
        source = {"embedder": embedder.spec(),
                  "fingerprint": embedder.fingerprint(), "field": None}
    else:
        vectors = [None if v is None else np.asarray(v, np.float32).ravel()
                   for v in stored]
        for j, v in enumerate(vectors):
            if v is None:
                skipped[ids[j]] = f"no embedding in attribute '{attribute}'"
        source = {"embedder": None, "fingerprint": None, "field": attribute}

    keep = [j for j, v in enumerate(vectors)
            if v is not None and np.all(np.isfinite(v))]
    for j, v in enumerate(vectors):
        if v is not None and j not in keep:
            skipped[ids[j]] = "embedding contains NaN or infinite values"
    matrix = (np.stack([vectors[j] for j in keep]).astype(np.float32)
              if keep else np.zeros((0, 0), dtype=np.float32))
    return Embeddings(
        [ids[j] for j in keep], matrix, skipped, attribute, source,
        len(keep) if embedder is not None else 0,
        skipped_paths={ids[j]: sources[j].path for j in range(len(ids))
                       if ids[j] in skipped},
    )
