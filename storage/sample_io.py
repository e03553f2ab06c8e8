"""Reading and writing per-sample values in chunks keyed by id, so that a
million samples never sit in memory as Python objects at once."""

import io
import threading
import zlib

import numpy as np

from ..units import ParamError
from .mongo import samples_coll

# Samples per round trip.
READ_CHUNK = 20000


class _HeaderCache(threading.local):
    """The .npy header of the last vector decoded in this thread: vectors of
    one field share it, so each is read without parsing it again."""

    header = None
    length = 0
    dtype = None


_npy = _HeaderCache()


def decode_vector(value):
    """A stored vector (FiftyOne's zlib-compressed .npy bytes, or a list)
    as a 1-D numpy array; ``None`` stays ``None``."""
    if value is None:
        return None
    if not isinstance(value, (bytes, bytearray)) and \
            type(value).__name__ != "Binary":
        return np.asarray(value, dtype=np.float32).ravel()
    raw = zlib.decompress(bytes(value))
    if _npy.header is None or not raw.startswith(_npy.header):
        with io.BytesIO(raw) as f:
            array = np.load(f)
        length = len(raw) - array.nbytes
        _npy.header, _npy.length, _npy.dtype = raw[:length], length, \
            array.dtype
        return array.ravel()
    return np.frombuffer(raw, dtype=_npy.dtype, offset=_npy.length)


def _get_path(doc, path):
    """The value at a dotted ``path`` of a document (``None`` if absent)."""
    value = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def iter_rows(samples, paths, chunk=READ_CHUNK):
    """Yields ``(ids, {path: values})`` per chunk of ``samples`` (in the
    view's order). ``paths`` are field paths of the samples, dotted ones
    (``split.label``) included."""
    project = {"_id": 1}
    project.update({p: 1 for p in paths})
    cursor = samples._aggregate(
        post_pipeline=[{"$project": project}]
    ).batch_size(chunk)
    ids, values = [], {p: [] for p in paths}
    for doc in cursor:
        ids.append(str(doc["_id"]))
        for p in paths:
            values[p].append(_get_path(doc, p))
        if len(ids) >= chunk:
            yield ids, values
            ids, values = [], {p: [] for p in paths}
    if ids:
        yield ids, values


class VectorRows:
    """What :func:`read_vectors` read.

    Attributes:
        ids: the ids that have a usable vector, one per row of ``matrix``
        matrix: float32, one row each
        missing: id -> the reason it has no usable vector
        lengths: vector length -> how many samples had one of that length
    """

    def __init__(self, ids, matrix, missing, lengths):
        self.ids = ids
        self.matrix = matrix
        self.missing = missing
        self.lengths = lengths

    def __iter__(self):
        return iter((self.ids, self.matrix, self.missing))


def read_vectors(samples, field, progress=None, total=None):
    """Every vector of ``field`` on ``samples``. Vectors of one field should
    have one length; where they do not, the length most samples have wins
    and the others are reported with their length (a tie is refused, with
    the counts). Vectors that are missing or not finite are reported too.
    The matrix is filled chunk by chunk. Returns :class:`VectorRows`."""
    total = total if total is not None else len(samples)
    reader = _Reader(field, total)
    done = 0
    for chunk_ids, values in iter_rows(samples, [field]):
        for sid, raw in zip(chunk_ids, values[field]):
            reader.add(sid, decode_vector(raw))
        done += len(chunk_ids)
        if progress is not None:
            progress(done, total)
    return reader.result()


class _Reader:
    """Rows of the first length go straight into one preallocated matrix;
    rows of other lengths are kept aside until the end decides which
    length wins."""

    def __init__(self, field, total):
        self.field = field
        self.total = max(total, 1)
        self.first = None
        self.rows = None
        self.ids = []
        self.aside = {}
        self.missing = {}

    def add(self, sid, v):
        if v is None:
            self.missing[sid] = f"no embedding in field '{self.field}'"
            return
        v = np.asarray(v, dtype=np.float32).ravel()
        if not np.all(np.isfinite(v)):
            self.missing[sid] = "embedding contains NaN or infinite values"
            return
        if self.first is None:
            self.first = len(v)
            self.rows = np.empty((self.total, self.first), dtype=np.float32)
        if len(v) != self.first:
            self.aside.setdefault(len(v), []).append((sid, v))
            return
        if len(self.ids) == len(self.rows):
            # The collection grew since it was counted.
            self.rows = np.concatenate([self.rows, np.empty_like(self.rows)])
        self.rows[len(self.ids)] = v
        self.ids.append(sid)

    def result(self):
        lengths = {self.first: len(self.ids)} if self.first else {}
        lengths.update({d: len(rows) for d, rows in self.aside.items()})
        if not lengths:
            return VectorRows([], np.zeros((0, 0), np.float32), self.missing,
                              {})
        ranked = sorted(lengths.items(), key=lambda kv: -kv[1])
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            counts = ", ".join(f"{n:,} of length {d}" for d, n in ranked)
            raise ParamError(
                f"embeddings_field '{self.field}' holds vectors of several "
                f"lengths ({counts}); no length has a majority. Recompute "
                "the field with one model", "embeddings_field")
        winner = ranked[0][0]
        if winner == self.first:
            ids, matrix = self.ids, self.rows[:len(self.ids)]
            losers = self.aside
        else:
            kept = self.aside.pop(winner)
            ids = [sid for sid, _ in kept]
            matrix = np.stack([v for _, v in kept])
            losers = {**self.aside, self.first: list(zip(
                self.ids, self.rows[:len(self.ids)]))}
        for d, rows in losers.items():
            for sid, _ in rows:
                self.missing[sid] = (
                    f"embedding has {d} values; {lengths[winner]:,} other "
                    f"sample(s) have {winner}")
        return VectorRows(ids, matrix, self.missing, lengths)


def write_by_id(dataset, updates, chunk=READ_CHUNK):
    """Writes ``updates`` (sample id -> dict of field -> raw value) with one
    atomic update per sample, in chunks, stamping ``last_modified_at``."""
    import datetime

    from bson import ObjectId
    from pymongo import UpdateOne

    coll = samples_coll(dataset)
    items = list(updates.items())
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for start in range(0, len(items), chunk):
        ops = [UpdateOne({"_id": ObjectId(sid)},
                         {"$set": {**values, "last_modified_at": now}})
               for sid, values in items[start:start + chunk]]
        if ops:
            coll.bulk_write(ops, ordered=False)
