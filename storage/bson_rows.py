"""Staging rows as raw BSON built by numpy, with no Python object per
value: at a million rows, building a dict per row costs more than the
database takes to insert them.

A row is ``{_id, [s,] c0, c1, ...}``: its id (and, for objects, the id of
the sample that holds it), then one value per column. Columns of numbers,
booleans or fixed-length lists of numbers are laid out as fixed-width
records (one record type per pattern of missing values, since a missing
value is a BSON null without a payload); a column of anything else
(strings, mixed values) sends its chunk down the generic path, a dict per
row, which gives the same documents.
"""

import numpy as np

_INT32 = np.iinfo(np.int32)


class TypedColumn:
    """The values of one column as a numpy array of one BSON type.

    Attributes:
        code: the BSON element type (``0x01`` double, ``0x08`` boolean,
            ``0x10`` int32, ``0x12`` int64, ``0x04`` array of doubles)
        values: ``(n,)``, or ``(n, width)`` for arrays
        present: bool per row; the others are stored as null
    """

    def __init__(self, code, values, present):
        self.code = code
        self.values = values
        self.present = present


def typed_column(values):
    """``values`` (a numpy array or a list) as a :class:`TypedColumn`, or
    ``None`` when they are not all numbers, booleans or number lists of one
    length. ``None``, NaN and infinite numbers are missing (inside a list
    they are kept, as the generic path keeps them)."""
    present = None
    if not isinstance(values, np.ndarray):
        values = list(values)
        if any(v is None for v in values):
            present = np.array([v is not None for v in values])
            fill = next((v for v in values if v is not None), 0)
            values = [fill if v is None else v for v in values]
        try:
            values = np.asarray(values)
        except ValueError:
            return None
    n = len(values)
    if present is None:
        present = np.ones(n, dtype=bool)
    kind = values.dtype.kind
    if values.ndim == 2 and kind in "iuf":
        return TypedColumn(0x04, values.astype("<f8"), present)
    if values.ndim != 1:
        return None
    if kind == "b":
        return TypedColumn(0x08, values.astype("u1"), present)
    if kind in "iu":
        fits = n == 0 or (values.min() >= _INT32.min and
                          values.max() <= _INT32.max)
        return TypedColumn(0x10 if fits else 0x12,
                           values.astype("<i4" if fits else "<i8"), present)
    if kind == "f":
        return TypedColumn(0x01, values.astype("<f8"),
                           present & np.isfinite(values))
    return None


_PAYLOAD = {0x01: "<f8", 0x08: "u1", 0x10: "<i4", 0x12: "<i8"}


def _element_fields(i, key, column, present):
    """The record fields of column ``i`` (``key`` its name) when its value
    is ``present`` or null."""
    name = key.encode() + b"\0"
    if not present:
        return [(f"h{i}", bytes([0x0A]) + name, None)]
    if column.code != 0x04:
        return [(f"h{i}", bytes([column.code]) + name, None),
                (f"v{i}", _PAYLOAD[column.code], "value")]
    width = column.values.shape[1]
    items = [(f"e{i}_{j}", b"\x01" + str(j).encode() + b"\0", None)
             for j in range(width)]
    size = 4 + sum(len(h) + 8 for _, h, _ in items) + 1
    fields = [(f"h{i}", b"\x04" + name, None), (f"n{i}", "<i4", size)]
    for j, (field, header, _) in enumerate(items):
        fields += [(field, header, None), (f"x{i}_{j}", "<f8", ("item", j))]
    return fields + [(f"z{i}", b"\0", None)]


def encode_rows(ids, owners, keys, columns):
    """Raw BSON documents ``{_id, [s,] <key>: value, ...}`` for the rows,
    as a list of bytes (in no particular order).

    Args:
        ids, owners: 12-byte ids as a ``(n,)`` ``V12`` array (owners may be
            ``None``)
        keys: the element name of each column
        columns: one :class:`TypedColumn` each
    """
    n = len(ids)
    if not n:
        return []
    pattern = np.zeros(n, dtype=np.int64)
    for i, column in enumerate(columns):
        pattern |= (~column.present).astype(np.int64) << i
    out = []
    for code in np.unique(pattern):
        rows = np.flatnonzero(pattern == code)
        present = [not (int(code) >> i) & 1 for i in range(len(columns))]
        out += _encode_pattern(ids, owners, keys, columns, rows, present)
    return out


def _encode_pattern(ids, owners, keys, columns, rows, present):
    """The rows ``rows``, whose columns are present as ``present`` says,
    as fixed-width records: one BSON document each."""
    fields = [("len", "<i4", "length", None), ("hid", b"\x07_id\0", None, None),
              ("id", "V12", "ids", ids)]
    if owners is not None:
        fields += [("hs", b"\x07s\0", None, None), ("s", "V12", "ids", owners)]
    for i, (key, column) in enumerate(zip(keys, columns)):
        fields += [(name, kind, how, column) for name, kind, how in
                   _element_fields(i, key, column, present[i])]
    fields.append(("end", b"\0", None, None))
    dtype = np.dtype([(name, f"S{len(kind)}" if isinstance(kind, bytes)
                       else kind) for name, kind, _, _ in fields])
    records = np.empty(len(rows), dtype=dtype)
    for name, kind, how, source in fields:
        if isinstance(kind, bytes):
            records[name] = kind
        elif how == "length":
            records[name] = dtype.itemsize
        elif how == "ids":
            records[name] = source[rows]
        elif how == "value":
            records[name] = source.values[rows]
        elif isinstance(how, tuple):
            records[name] = source.values[rows, how[1]]
        else:
            records[name] = how
    buffer = records.tobytes()
    size = dtype.itemsize
    return [buffer[i:i + size] for i in range(0, len(buffer), size)]


def object_ids(hex_ids):
    """Hex id strings as a ``(n,)`` ``V12`` array."""
    if not len(hex_ids):
        return np.zeros(0, dtype="V12")
    return np.frombuffer(bytes.fromhex("".join(map(str, hex_ids))),
                         dtype="V12")
