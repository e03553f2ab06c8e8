"""Cached file digests for exact duplicates, stored as the embeddings cache
is (:mod:`.vector_cache`): ``file_digest`` holds each file's digest, and
beside it ``file_digest_file`` the identity (path, size, modification
time) of the file it was computed from; both are written in one update
per sample. A digest is reused only while its file keeps that identity, so
an edited, replaced or moved file is hashed again."""

from ..units import ParamError
from .sample_io import write_by_id
from .transaction import locked

DIGEST_FIELD = "file_digest"
IDENTITY_FIELD = "file_digest_file"


def check(dataset, fingerprint):
    """Raises before any work if the cache's fields exist and do not hold
    digests of this kind."""
    import fiftyone as fo

    for name in (DIGEST_FIELD, IDENTITY_FIELD):
        field = dataset.get_field(name)
        if field is not None and not isinstance(field, fo.StringField):
            raise ParamError(
                f"field '{name}' is a {type(field).__name__}; exact "
                "duplicates keep their file digests there. Rename or delete "
                "it")
    field = dataset.get_field(DIGEST_FIELD)
    found = (field.info or {}).get("fingerprint") if field is not None \
        else None
    if field is not None and found != fingerprint:
        raise ParamError(
            f"field '{DIGEST_FIELD}' holds digests of another kind "
            f"({found or 'no fingerprint'}); delete it to hash again")


def present(dataset):
    return dataset.get_field(DIGEST_FIELD) is not None and \
        dataset.get_field(IDENTITY_FIELD) is not None


def declare(samples, fingerprint):
    """Declares the cache's two fields under the dataset's lock."""
    import fiftyone as fo

    with locked(samples, "file digests") as lease:
        dataset = lease.dataset
        check(dataset, fingerprint)
        if dataset.get_field(DIGEST_FIELD) is None:
            dataset.add_sample_field(
                DIGEST_FIELD, fo.StringField,
                description="Digest of the file's bytes (exact duplicates)",
                info={"fingerprint": fingerprint})
        if dataset.get_field(IDENTITY_FIELD) is None:
            dataset.add_sample_field(
                IDENTITY_FIELD, fo.StringField,
                description=f"Identity (path, size, mtime) of the file each "
                f"digest in '{DIGEST_FIELD}' was computed from")


def write(dataset, digests, identities):
    """Writes ``digests`` (sample id -> digest) with the file identity of
    each (sample id -> identity), one atomic update per sample."""
    write_by_id(dataset, {
        sid: {DIGEST_FIELD: digest, IDENTITY_FIELD: identities[sid]}
        for sid, digest in digests.items()})
