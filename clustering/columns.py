"""Reading and writing per-sample values in chunks keyed by id, so that a
million samples never sit in memory as Python objects at once."""

import numpy as np

# Samples per round trip.
READ_CHUNK = 20000


# The .npy header of the last vector read, its length and dtype: vectors
# of one field share it, so each is read without parsing it again.
_npy_header = [None, 0, None]


def _decode_vector(value):
    """A stored vector (FiftyOne's zlib-compressed .npy bytes, or a list)
    as a 1-D numpy array."""
    import zlib

    if value is None:
        return None
    if not isinstance(value, (bytes, bytearray)) and \
            type(value).__name__ != "Binary":
        return np.asarray(value, dtype=np.float32).ravel()
    raw = zlib.decompress(bytes(value))
    header, length, dtype = _npy_header
    if header is None or not raw.startswith(header):
        import io

        with io.BytesIO(raw) as f:
            array = np.load(f)
        header_length = len(raw) - array.nbytes
        _npy_header[:] = [raw[:header_length], header_length, array.dtype]
        return array.ravel()
    return np.frombuffer(raw, dtype=dtype, offset=length)


def iter_rows(samples, paths, chunk=READ_CHUNK):
    """Yields ``(ids, {path: values})`` per chunk of ``samples`` (in the
    view's order); ``paths`` are top-level field names. Vector fields come
    back as numpy arrays, the rest as stored."""
    project = {"_id": 1}
    project.update({p: 1 for p in paths})
    cursor = samples._aggregate(
        post_pipeline=[{"$project": project}]
    ).batch_size(chunk)
    ids, values = [], {p: [] for p in paths}
    for doc in cursor:
        ids.append(str(doc["_id"]))
        for p in paths:
            values[p].append(doc.get(p))
        if len(ids) >= chunk:
            yield ids, values
            ids, values = [], {p: [] for p in paths}
    if ids:
        yield ids, values


def read_vectors(samples, field, progress=None, total=None):
    """All vectors of ``field`` on ``samples`` as ``(ids, matrix, missing)``:
    the ids with a vector, a float32 matrix with one row each, and the ids
    without one (or with a vector of another length, or not finite), each
    with its reason. The matrix is filled chunk by chunk."""
    total = total if total is not None else len(samples)
    ids, rows, missing = [], None, {}
    filled = 0
    done = 0
    dims = None
    for chunk_ids, values in iter_rows(samples, [field]):
        for sid, raw in zip(chunk_ids, values[field]):
            v = _decode_vector(raw)
            if v is None:
                missing[sid] = f"no embedding in field '{field}'"
                continue
            v = np.asarray(v, dtype=np.float32).ravel()
            if dims is None:
                dims = len(v)
                rows = np.empty((max(total, 1), dims), dtype=np.float32)
            elif filled == len(rows):
                # The collection grew since it was counted.
                rows = np.concatenate([rows, np.empty_like(rows)])
            if len(v) != dims:
                missing[sid] = (f"embedding has {len(v)} values, the others "
                                f"have {dims}")
                continue
            if not np.all(np.isfinite(v)):
                missing[sid] = "embedding contains NaN or infinite values"
                continue
            rows[filled] = v
            filled += 1
            ids.append(sid)
        done += len(chunk_ids)
        if progress is not None:
            progress(done, total)
    matrix = rows[:filled] if rows is not None else np.zeros(
        (0, 0), dtype=np.float32)
    return ids, matrix, missing


def write_by_id(dataset, updates, chunk=READ_CHUNK):
    """Writes ``updates`` (sample id -> dict of field -> raw value) with one
    atomic update per sample, in chunks."""
    from bson import ObjectId
    from pymongo import UpdateOne

    from fiftyone.core.odm import get_db_conn

    coll = get_db_conn()[dataset._sample_collection_name]
    items = list(updates.items())
    for start in range(0, len(items), chunk):
        ops = [UpdateOne({"_id": ObjectId(sid)}, {"$set": values})
               for sid, values in items[start:start + chunk]]
        if ops:
            coll.bulk_write(ops, ordered=False)
