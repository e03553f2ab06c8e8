"""The steps of a committed write, each idempotent, so that whoever finds
a write half done can apply the rest again; and the check that a write
landed whole."""

import datetime
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .mongo import db, oid, samples_coll
from .records import StoreError, delete_record_doc

# Parallel merges of disjoint ranges of staged ids: the database runs each
# on a core of its own.
MERGE_PARTS = max(1, min(4, os.cpu_count() or 1))
# Ids per update when unsetting stale values.
STRIP_CHUNK = 50_000


class IntegrityError(StoreError):
    """A committed run whose fields do not hold what was written."""


def apply(dataset, step):
    op = step["op"]
    if op == "declare":
        _declare(dataset, step)
    elif op == "merge":
        _merge(dataset, step)
    elif op == "strip":
        _strip(dataset, step)
    elif op == "drop_field":
        drop_field(dataset, step["path"])
    elif op == "rename_values":
        _rename_values(dataset, step)
    elif op == "point":
        _point(dataset, step)
    elif op == "drop_record":
        delete_record_doc(oid(step["record"]), keep=step.get("keep", ()))
    elif op == "drop_stage":
        db().drop_collection(step["stage"])
    else:
        raise StoreError(f"unknown journal step {op!r}")


def _field_type(step):
    import fiftyone as fo

    ftype = getattr(fo, step["ftype"])
    subfield = getattr(fo, step["subfield"]) if step.get("subfield") \
        else None
    return ftype, subfield


def _declare(dataset, step):
    dataset.reload()
    path = step["path"]
    ftype, subfield = _field_type(step)
    field = dataset.get_field(path)
    if field is not None and not isinstance(field, ftype):
        # Another writer's field of another type: the earlier checks refuse
        # this, so it is only reachable through a foreign concurrent write.
        raise IntegrityError(
            f"field '{path}' exists as {type(field).__name__}; expected "
            f"{ftype.__name__}"
        )
    if field is None:
        dataset.add_sample_field(
            path, ftype, subfield=subfield,
            description=step["description"], info=step["info"],
        )
        return
    field.info = step["info"]
    field.description = step["description"]
    field.save()


_last_stamp = [datetime.datetime.min]
_stamp_lock = threading.Lock()


def stamp_now():
    """The time now as the database keeps it (UTC, to the millisecond),
    later than any stamp this process gave before: where the clock moves in
    coarse ticks, two writes in one tick would otherwise share a stamp, and
    the strip would take the first write's rows for the second's."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    with _stamp_lock:
        _last_stamp[0] = max(now, _last_stamp[0] +
                             datetime.timedelta(milliseconds=1))
        return _last_stamp[0]


def _merge(dataset, step):
    stage = step["stage"]
    keys = step["keys"]
    target = dataset._sample_collection_name
    labels_path = step["labels_path"]
    # Journals written before merges carried their stamp have none.
    now = step.get("stamp") or stamp_now()
    if not labels_path:
        project = {"_id": 1, "last_modified_at": {"$literal": now}}
        project.update({path: f"${k}" for path, k in keys.items()})
        pipelines = [[{"$match": match}] if match else []
                     for match in _id_ranges(step.get("bounds") or [])]
        for pipeline in pipelines:
            pipeline += [
                {"$project": project},
                {"$merge": {"into": target, "on": "_id",
                            "whenMatched": "merge",
                            "whenNotMatched": "discard"}},
            ]
        _in_parallel([lambda p=p: db()[stage].aggregate(p)
                      for p in pipelines])
        return
    names = {path.rsplit(".", 1)[-1]: k for path, k in keys.items()}
    new_values = {name: f"$$m.{k}" for name, k in names.items()}
    if step["single"]:
        field = labels_path
        update = {field: {"$let": {
            "vars": {"m": {"$arrayElemAt": ["$$new.L", 0]}},
            "in": {"$cond": [
                {"$eq": [f"${field}._id", "$$m._id"]},
                {"$mergeObjects": [f"${field}", new_values]},
                f"${field}",
            ]},
        }}}
    else:
        field = labels_path
        update = {field: {"$map": {
            "input": f"${field}", "as": "d",
            "in": {"$let": {
                "vars": {"m": {"$arrayElemAt": [{"$filter": {
                    "input": "$$new.L",
                    "cond": {"$eq": ["$$this._id", "$$d._id"]},
                }}, 0]}},
                "in": {"$cond": [
                    {"$eq": [{"$type": "$$m"}, "missing"]},
                    "$$d",
                    {"$mergeObjects": ["$$d", new_values]},
                ]},
            }},
        }}}
    update["last_modified_at"] = {"$literal": now}
    db()[stage].aggregate([
        {"$group": {"_id": "$s", "L": {"$push": "$$ROOT"}}},
        {"$merge": {"into": target, "on": "_id",
                    "whenMatched": [{"$set": update}],
                    "whenNotMatched": "discard"}},
    ])


def _id_ranges(bounds):
    """``$match`` filters of the id ranges that ``bounds`` (sorted id
    strings) cut; ``[None]`` (everything) without bounds."""
    if not bounds:
        return [None]
    edges = [None] + [oid(b) for b in bounds] + [None]
    out = []
    for low, high in zip(edges, edges[1:]):
        rule = {}
        if low is not None:
            rule["$gte"] = low
        if high is not None:
            rule["$lt"] = high
        out.append({"_id": rule})
    return out


def _in_parallel(calls):
    if len(calls) == 1:
        calls[0]()
        return
    with ThreadPoolExecutor(len(calls)) as pool:
        for future in [pool.submit(call) for call in calls]:
            future.result()


def _without_keys(expr, names):
    return {"$arrayToObject": {"$filter": {
        "input": {"$objectToArray": expr},
        "cond": {"$not": [{"$in": ["$$this.k", names]}]},
    }}}


def _strip(dataset, step):
    """Removes the merged fields from rows that were not staged."""
    stage = step["stage"]
    target = dataset._sample_collection_name
    labels_path = step["labels_path"]
    paths = list(step["keys"])
    if not labels_path:
        _strip_samples(dataset, stage, paths, step.get("stamp"))
        return
    names = [p.rsplit(".", 1)[-1] for p in paths]
    field = labels_path
    if step["single"]:
        keep = {"$cond": [
            {"$in": [f"${field}._id", "$$new.ids"]},
            f"${field}",
            _without_keys(f"${field}", names),
        ]}
    else:
        keep = {"$map": {
            "input": f"${field}", "as": "d",
            "in": {"$cond": [
                {"$in": ["$$d._id", "$$new.ids"]},
                "$$d",
                _without_keys("$$d", names),
            ]},
        }}
    samples_coll(dataset).aggregate([
        {"$match": {"$or": [{p: {"$exists": True}} for p in paths]}},
        {"$lookup": {"from": stage, "localField": "_id",
                     "foreignField": "s", "as": "_staged"}},
        {"$project": {"_id": 1, "ids": "$_staged._id"}},
        {"$merge": {"into": target, "on": "_id",
                    "whenMatched": [{"$set": {field: keep}}],
                    "whenNotMatched": "discard"}},
    ])


def _strip_samples(dataset, stage, paths, stamp=None):
    """Unsets ``paths`` on the samples that hold one of them and were not
    staged. The ids of both sides are read and compared here: two scans of
    ids, where a lookup per sample costs more at a million. First, one
    count: where every sample that holds a value bears the merge's
    ``stamp``, no other sample holds one and nothing is read."""
    coll = samples_coll(dataset)
    holds = {"$or": [{p: {"$exists": True}} for p in paths]}
    if stamp is not None and not coll.count_documents(
            {**holds, "last_modified_at": {"$ne": stamp}}):
        return
    holding = _ids(coll, holds)
    if not len(holding):
        return
    stale = holding[~np.isin(holding, _ids(db()[stage], {}))]
    for start in range(0, len(stale), STRIP_CHUNK):
        raw = stale[start:start + STRIP_CHUNK].tobytes()
        coll.update_many(
            {"_id": {"$in": [oid(raw[i:i + 12].hex())
                             for i in range(0, len(raw), 12)]}},
            {"$unset": {p: "" for p in paths}})


_ID_DOC = np.dtype([("length", "<i4"), ("head", "S5"), ("id", "S12"),
                    ("end", "S1")])


def _ids(coll, match):
    """The ids of the documents of ``coll`` that ``match``, as ``S12``
    bytes (read from raw batches of ``{_id}`` documents)."""
    import bson

    parts = []
    for batch in coll.aggregate_raw_batches(
            [{"$match": match}, {"$project": {"_id": 1}}],
            allowDiskUse=True, batchSize=100_000):
        if len(batch) % _ID_DOC.itemsize == 0:
            docs = np.frombuffer(batch, dtype=_ID_DOC)
            if (docs["length"] == _ID_DOC.itemsize).all() and \
                    (docs["head"] == b"\x07_id").all():
                parts.append(docs["id"].copy())
                continue
        parts.append(np.array([d["_id"].binary
                               for d in bson.decode_all(batch)],
                              dtype="S12"))
    return np.concatenate(parts) if parts else np.zeros(0, dtype="S12")


def drop_field(dataset, path):
    dataset.reload()
    if dataset.get_field(path) is not None:
        dataset.delete_sample_field(path)
    # FiftyOne unsets the values before it edits the schema; a kill between
    # leaves values that this removes.
    samples_coll(dataset).update_many(
        {path: {"$exists": True}}, [{"$unset": path}]
    )


def _rename_values(dataset, step):
    renames = step["renames"]
    labels_path = step["labels_path"]
    coll = samples_coll(dataset)
    if not labels_path:
        todo = {old: new for old, new in renames.items()}
        coll.update_many(
            {"$or": [{old: {"$exists": True}} for old in todo]},
            {"$rename": todo},
        )
        return
    names = {o.rsplit(".", 1)[-1]: n.rsplit(".", 1)[-1]
             for o, n in renames.items()}
    branches = [{"case": {"$eq": ["$$kv.k", old]}, "then": new}
                for old, new in names.items()]

    def renamed(expr):
        return {"$arrayToObject": {"$map": {
            "input": {"$objectToArray": expr}, "as": "kv",
            "in": {"k": {"$switch": {"branches": branches,
                                     "default": "$$kv.k"}},
                   "v": "$$kv.v"},
        }}}

    field = labels_path
    if step["single"]:
        value = {"$cond": [{"$eq": [{"$type": f"${field}"}, "object"]},
                           renamed(f"${field}"), f"${field}"]}
    else:
        value = {"$map": {"input": f"${field}", "as": "d",
                          "in": renamed("$$d")}}
    coll.update_many(
        {"$or": [{o: {"$exists": True}} for o in renames]},
        [{"$set": {field: value}}],
    )


def _point(dataset, step):
    update = {}
    key = step["key"]
    if step["record"] is not None:
        update["$set"] = {f"runs.{key}": oid(step["record"])}
        db().runs.update_one({"_id": oid(step["record"])},
                              {"$set": {"key": key}})
    unset = {f"runs.{k}": "" for k in step["unset"] if k != key}
    if step["record"] is None:
        unset[f"runs.{key}"] = ""
    if unset:
        update["$unset"] = unset
    db().datasets.update_one({"_id": dataset._doc.id}, update)




def count_values(dataset, paths, labels_path=None, single=False):
    """Path -> number of non-null values in the whole dataset (per object
    for label paths), in one pass."""
    if not paths:
        return {}
    coll = samples_coll(dataset)
    if labels_path:
        names = {p: p.rsplit(".", 1)[-1] for p in paths}
        pipeline = []
        if not single:
            pipeline.append({"$unwind": f"${labels_path}"})
        group = {"_id": None}
        for i, p in enumerate(paths):
            group[f"n{i}"] = {"$sum": {"$cond": [
                {"$gt": [f"${labels_path}.{names[p]}", None]}, 1, 0]}}
        pipeline.append({"$group": group})
    else:
        group = {"_id": None}
        for i, p in enumerate(paths):
            group[f"n{i}"] = {"$sum": {"$cond": [{"$gt": [f"${p}", None]},
                                                 1, 0]}}
        pipeline = [{"$group": group}]
    got = next(coll.aggregate(pipeline), None) or {}
    return {p: got.get(f"n{i}", 0) for i, p in enumerate(paths)}


def verify(dataset, expected, labels_path=None, single=False,
           at_least=False):
    """Raises :class:`IntegrityError` unless each path of ``expected`` (path
    -> count of non-null values) is declared with exactly that many values
    (with ``at_least``, that many or more: an amendment that added rows to
    a field that had others)."""
    dataset.reload()
    missing = [p for p in expected if dataset.get_field(p) is None]
    if missing:
        raise IntegrityError(
            "fields missing from the dataset's schema after the write: "
            + ", ".join(missing) + " (a process outside this plugin changed "
            "the schema at the same time); run repair"
        )
    counts = count_values(dataset, list(expected), labels_path, single)
    wrong = {p: (counts[p], n) for p, n in expected.items()
             if counts[p] < n or (counts[p] != n and not at_least)}
    if wrong:
        raise IntegrityError(
            "fields do not hold the values written: " + ", ".join(
                f"{p} has {got} of {want}" for p, (got, want) in wrong.items()
            )
        )
