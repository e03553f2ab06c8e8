"""Reading and writing per-sample values in chunks keyed by id, so that a
million samples never sit in memory as Python objects at once.

Reads take the database's raw BSON batches, fetched one ahead in a thread
while the last one is decoded (:func:`iter_rows`). Vectors (FiftyOne's
zlib-compressed ``.npy`` bytes) are inflated by a few threads straight into
one preallocated matrix (:class:`VectorColumn`). Inflating runs without the
interpreter lock, so the database, the decoding and the inflating overlap;
it is done by ISA-L, which reads zlib's format in about 60% of zlib's
time.
"""

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from isal.isal_zlib import decompress as inflate

from ..support import in_background
from ..units import ParamError
from .mongo import samples_coll

# Samples per round trip.
READ_CHUNK = 20000
# Threads that inflate stored vectors.
INFLATE_THREADS = max(2, min(4, os.cpu_count() or 1))
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
    raw = inflate(bytes(value))
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


def raw_batches(samples, paths, chunk=READ_CHUNK):
    """The raw BSON batches of ``{_id, paths}`` of each sample of
    ``samples``, in the view's order, each next one fetched while the last
    is decoded."""
    project = {"_id": 1}
    project.update({p: 1 for p in paths})
    pipeline = samples._pipeline(post_pipeline=[{"$project": project}])
    cursor = samples._dataset._sample_collection.aggregate_raw_batches(
        pipeline, allowDiskUse=True, batchSize=chunk)
    return in_background(cursor)


def iter_rows(samples, paths, chunk=READ_CHUNK):
    """Yields ``(ids, {path: values})`` per batch of ``samples`` (in the
    view's order). ``paths`` are field paths of the samples, dotted ones
    (``split.label``) included."""
    import bson

    for batch in raw_batches(samples, paths, chunk):
        docs = bson.decode_all(batch)
        ids = [str(d["_id"]) for d in docs]
        yield ids, {p: [_get_path(d, p) for d in docs] for p in paths}


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
    The matrix is filled batch by batch. Returns :class:`VectorRows`."""
    import bson

    total = total if total is not None else len(samples)
    ids = []
    with VectorColumn(field, total) as column:
        for batch in raw_batches(samples, [field]):
            parsed = vector_docs(batch, field)
            if parsed is None:
                docs = bson.decode_all(batch)
                parsed = ([str(d["_id"]) for d in docs],
                          [_get_path(d, field) for d in docs])
            ids.extend(parsed[0])
            column.add(parsed[1])
            if progress is not None:
                progress(len(ids), total)
        decoded = column.finish()
    return decoded.by_majority(ids)


def vector_docs(batch, field):
    """``(ids, stored vectors)`` of a raw batch of ``{_id, field}``
    documents, read from their fixed layout without decoding each into a
    dict; ``None`` when a document does not have that layout (a list
    vector, a null, another id type), and the caller decodes the batch the
    generic way."""
    name = field.encode() + b"\0"
    if "." in field:
        return None
    starts, pos, size = [], 0, len(batch)
    while pos < size:
        starts.append(pos)
        pos += int.from_bytes(batch[pos:pos + 4], "little")
    buf = np.frombuffer(batch, dtype=np.uint8)
    at = np.asarray(starts, dtype=np.int64)
    head = b"\x07_id\0"
    element = at + 4 + len(head) + 12
    value = element + 1 + len(name)
    if (value + 5 > size).any():
        return None
    expect = np.frombuffer(head, np.uint8)
    if not (buf[at[:, None] + 4 + np.arange(len(head))] == expect).all() \
            or not (buf[element] == 0x05).all() \
            or not (buf[element[:, None] + 1 + np.arange(len(name))] ==
                    np.frombuffer(name, np.uint8)).all():
        return None
    lengths = buf[value[:, None] + np.arange(4)].astype(np.int64) @ \
        (256 ** np.arange(4))
    first = value + 5
    if ((first + lengths + 1) != np.r_[at[1:], size]).any():
        return None
    raw_ids = buf[at[:, None] + 4 + len(head) + np.arange(12)].tobytes().hex()
    ids = [raw_ids[i:i + 24] for i in range(0, len(raw_ids), 24)]
    return ids, [batch[b:b + n] for b, n in zip(first.tolist(),
                                                lengths.tolist())]


class VectorColumn:
    """Stored vectors of one field, added batch by batch in row order and
    inflated by a pool of threads straight into one matrix (sized for
    ``capacity`` rows, grown when more come). Use as a context manager;
    :meth:`finish` waits for the threads and returns :class:`Decoded`."""

    def __init__(self, field, capacity):
        self.field = field
        self.capacity = max(int(capacity), 1)
        self.n = 0
        self.matrix = None
        self.stored = None
        self.others = {}
        self.missing = {}
        self._pool = ThreadPoolExecutor(INFLATE_THREADS)
        self._pending = []
        self._fast = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._pool.shutdown(wait=True, cancel_futures=True)

    def add(self, values):
        """Queues ``values`` (stored vectors) as the next rows."""
        start, self.n = self.n, self.n + len(values)
        if self.matrix is None:
            self._first_vector(values)
        if self.matrix is not None and self.n > len(self.matrix):
            self._grow()
        # A bounded queue: batches wait in memory only while the threads
        # are busy with earlier ones.
        while len(self._pending) >= 2 * INFLATE_THREADS:
            self._pending.pop(0).result()
        step = -(-len(values) // INFLATE_THREADS)
        for i in range(0, len(values), step):
            self._pending.append(self._pool.submit(
                self._decode, start + i, values[i:i + step]))

    def _first_vector(self, values):
        """Sizes the matrix from the first non-empty vector, and keeps its
        ``.npy`` header: the rows that share it are read without parsing
        one."""
        for raw in values:
            v = decode_vector(raw)
            if v is None or not v.size:
                continue
            self.matrix = np.empty((max(self.capacity, self.n), len(v)),
                                   dtype=np.float32)
            self.stored = np.zeros(len(self.matrix), dtype=bool)
            if isinstance(raw, (bytes, bytearray)):
                data = inflate(raw)
                header = data[:len(data) - v.nbytes]
                self._fast = (header, len(data), v.dtype)
            return

    def _grow(self):
        """More rows than counted (the collection grew since)."""
        self._wait()
        extra = max(self.n, 2 * len(self.matrix)) - len(self.matrix)
        self.matrix = np.concatenate(
            [self.matrix, np.empty((extra, self.matrix.shape[1]),
                                   dtype=np.float32)])
        self.stored = np.concatenate([self.stored,
                                      np.zeros(extra, dtype=bool)])

    def _decode(self, start, values):
        if self._fast is not None and self._decode_block(start, values):
            return
        d = self.matrix.shape[1] if self.matrix is not None else None
        fast = self._fast
        for j, raw in enumerate(values):
            row = start + j
            if raw is None:
                self.missing[row] = f"no embedding in field '{self.field}'"
                continue
            if fast is not None and isinstance(raw, bytes):
                data = inflate(raw)
                if len(data) == fast[1] and data.startswith(fast[0]):
                    self.matrix[row] = np.frombuffer(
                        data, dtype=fast[2], offset=len(fast[0]))
                    self.stored[row] = True
                    continue
            v = decode_vector(raw)
            if d is not None and len(v) == d:
                self.matrix[row] = v
                self.stored[row] = True
            else:
                self.others[row] = np.asarray(v, dtype=np.float32)

    def _decode_block(self, start, values):
        """Inflates ``values`` and copies them into the matrix in one block
        when every one has the first vector's ``.npy`` header and size;
        says whether it did."""
        header, size, dtype = self._fast
        if not all(isinstance(raw, bytes) for raw in values):
            return False
        block = list(map(inflate, values))
        if any(len(data) != size for data in block):
            return False
        rows = np.frombuffer(b"".join(block), dtype=np.uint8).reshape(
            len(block), size)
        if not (rows[:, :len(header)] ==
                np.frombuffer(header, np.uint8)).all():
            return False
        stop = start + len(block)
        self.matrix[start:stop] = rows[:, len(header):].view(dtype)
        self.stored[start:stop] = True
        return True

    def _wait(self):
        while self._pending:
            self._pending.pop(0).result()

    def finish(self):
        self._wait()
        n = self.n
        stored = self.stored[:n] if self.stored is not None else \
            np.zeros(n, dtype=bool)
        matrix = self.matrix if self.matrix is not None else \
            np.zeros((n, 0), dtype=np.float32)
        for start in range(0, n, READ_CHUNK):
            for row in _not_finite(matrix, stored, start,
                                   min(start + READ_CHUNK, n)):
                stored[row] = False
                self.missing[int(row)] = NOT_FINITE
        for row, v in list(self.others.items()):
            if not np.all(np.isfinite(v)):
                del self.others[row]
                self.missing[row] = NOT_FINITE
        return Decoded(self.field, matrix, stored, self.others, self.missing)


NOT_FINITE = "embedding contains NaN or infinite values"


def _not_finite(matrix, stored, start, stop):
    """The stored rows ``start:stop`` of ``matrix`` that hold a NaN or an
    infinity. A row's sum is finite when all its values are, so only rows
    whose sum is not (a NaN, an infinity, or finite values whose sum
    overflows) are looked at value by value."""
    with np.errstate(over="ignore", invalid="ignore"):
        sums = matrix[start:stop].sum(axis=1)
    suspect = np.flatnonzero(~np.isfinite(sums) & stored[start:stop]) + start
    return suspect[~np.isfinite(matrix[suspect]).all(axis=1)]


class Decoded:
    """Vectors of rows ``0..n-1`` as :class:`VectorColumn` decoded them.

    Attributes:
        matrix: rows of the common length (valid where ``stored``)
        stored: bool per row: its vector is in ``matrix``
        others: row -> a vector of another length
        missing: row -> why it has no vector
    """

    def __init__(self, field, matrix, stored, others, missing):
        self.field = field
        self.matrix = matrix
        self.stored = stored
        self.others = others
        self.missing = missing

    def by_majority(self, ids):
        """:class:`VectorRows` for rows named by ``ids``: those of the
        length most rows have (a tie is refused, with the counts)."""
        first = self.matrix.shape[1]
        rows = np.flatnonzero(self.stored)
        lengths = {first: len(rows)} if len(rows) else {}
        aside = {}
        for row, v in self.others.items():
            aside.setdefault(len(v), []).append(row)
        lengths.update({d: len(r) for d, r in aside.items()})
        missing = {ids[row]: reason for row, reason in self.missing.items()}
        if not lengths:
            return VectorRows([], np.zeros((0, 0), np.float32), missing, {})
        ranked = sorted(lengths.items(), key=lambda kv: -kv[1])
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            counts = ", ".join(f"{n:,} of length {d}" for d, n in ranked)
            raise ParamError(
                f"embeddings_field '{self.field}' holds vectors of several "
                f"lengths ({counts}); no length has a majority. Recompute "
                "the field with one model", "embeddings_field")
        winner = ranked[0][0]
        if winner == first and len(rows):
            matrix = compact(self.matrix, rows)
            losers = aside
        else:
            kept = sorted(aside.pop(winner))
            rows = np.asarray(kept, dtype=np.int64)
            matrix = np.stack([self.others[r] for r in kept])
            losers = {**aside, first: np.flatnonzero(self.stored)}
        for d, lost in losers.items():
            for row in lost:
                missing[ids[row]] = (
                    f"embedding has {d} values; {lengths[winner]:,} other "
                    f"sample(s) have {winner}")
        return VectorRows([ids[r] for r in rows], matrix, missing, lengths)


def compact(matrix, rows, chunk=READ_CHUNK):
    """``matrix[rows]`` for increasing ``rows``, built in place in the first
    ``len(rows)`` rows of ``matrix`` (no second matrix at scale)."""
    if len(rows) == len(matrix) or (len(rows) and rows[-1] == len(rows) - 1):
        return matrix[:len(rows)]
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        matrix[start:start + len(part)] = matrix[part]
    return matrix[:len(rows)]


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
