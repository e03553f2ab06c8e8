"""The embeddings cache as stored: a vector field whose ``info`` holds the
embedder's fingerprint, and beside it a string field with the identity of
the file each vector was computed from. Each sample's vector and identity
are written in one update (see :mod:`..clustering.embed` for when a cached
vector is reused)."""

import numpy as np

from .sample_io import write_by_id
from .transaction import locked


def identity_field(field):
    return f"{field}_file"


def fingerprint_of(dataset, field):
    f = dataset.get_field(field)
    return (f.info or {}).get("fingerprint") if f is not None else None


def declare(samples, field, fingerprint, description, check):
    """Declares the cache's two fields under the dataset's lock;
    ``check(samples)`` runs first, under the lock, and raises if another
    process has taken the name since it was checked."""
    import fiftyone as fo

    with locked(samples, "embeddings cache") as lease:
        dataset = lease.dataset
        check(samples)
        if dataset.get_field(field) is None:
            dataset.add_sample_field(
                field, fo.VectorField, description=description,
                info={"fingerprint": fingerprint})
        sidecar = identity_field(field)
        if dataset.get_field(sidecar) is None:
            dataset.add_sample_field(
                sidecar, fo.StringField,
                description=f"Identity (path, size, mtime) of the file each "
                f"vector in '{field}' was computed from")


def write(dataset, field, vectors, identities):
    """Writes ``vectors`` (sample id -> vector) with the file identity of
    each (sample id -> identity), one atomic update per sample."""
    import fiftyone.core.utils as fou

    sidecar = identity_field(field)
    write_by_id(dataset, {
        sid: {field: fou.serialize_numpy_array(
                  np.asarray(vector, dtype=np.float32)),
              sidecar: identities[sid]}
        for sid, vector in vectors.items()
    })
