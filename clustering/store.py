"""Where runs are written: every change to a run's fields and record goes
through a journalled transaction on one dataset.

The guarantee: a process killed at any instant leaves the dataset either as
it was or with the change complete, once the next call of ours on that
dataset (any write, any read of a run, or :func:`repair`) has run.

How:

1. **Lock.** The transaction holds the dataset's lease (:mod:`.lease`), so
   schema changes never race, and first finishes whatever a dead holder left
   (its journal is in the same lease document).
2. **Stage.** Values go into a staging collection of their own
   (``imgclust_stage_<txid>``), keyed by sample (or object) id, and the new
   run record is written as a run document that nothing points to yet. The
   dataset itself is untouched. The journal, written before anything is
   staged, names what is staged, so a kill here is undone by dropping it.
3. **Commit.** One atomic update of the journal sets its state to
   ``committed``. From here on the change is rolled forward, never back.
4. **Swap.** A list of steps, each idempotent and marked done in the
   journal: declare the fields, merge the staged values into the samples by
   id, strip stale values, point the dataset's run key at the new record in
   one atomic update, and drop what the change replaced.
5. **Verify.** Every field is in the schema with the number of values that
   was staged; the journal is cleared and the lease released.

This module calls nothing of the App's presentation (sidebar groups,
colours, the Embeddings panel's map): that follows from a stored run, one
layer up.
"""

import datetime
import logging
import os
import socket
import uuid

import numpy as np

from ..units import ParamError
from . import record
from .lease import Lease

logger = logging.getLogger(__name__)

STAGE_PREFIX = "imgclust_stage_"
# Rows per round trip when staging values; bounds memory at any scale.
CHUNK = 20000


class StoreError(RuntimeError):
    """A write that could not be applied as asked; nothing was changed."""


class ConflictError(StoreError, ParamError):
    """Another process changed the run (or took its key) first."""


class IntegrityError(StoreError):
    """A committed run whose fields do not hold what was written."""


def _db():
    from fiftyone.core.odm import get_db_conn

    return get_db_conn()


def _fs():
    import gridfs

    return gridfs.GridFS(_db())


def _oid(value):
    from bson import ObjectId

    return value if isinstance(value, ObjectId) else ObjectId(value)


# -- reading the dataset document ---------------------------------------


def _dataset_doc(dataset):
    return _db().datasets.find_one(
        {"_id": dataset._doc.id}, {"runs": 1, "sample_fields": 1}
    )


def record_ids(dataset):
    """Run key -> run document id, as the database holds them now."""
    doc = _dataset_doc(dataset) or {}
    return {k: v for k, v in (doc.get("runs") or {}).items() if v is not None}


def record_id(dataset, key):
    return record_ids(dataset).get(key)


def load_record(record_oid):
    """The stored run document as ``(config, results, timestamp, doc)``;
    ``None`` when it is missing or unreadable."""
    from bson import json_util

    doc = _db().runs.find_one({"_id": record_oid})
    if doc is None:
        return None
    config = dict(doc.get("config") or {})
    results = {}
    if doc.get("results") is not None:
        try:
            blob = _fs().get(doc["results"]).read()
        except Exception:
            return None
        results = json_util.loads(blob.decode())
        results.pop("cls", None)
    return config, results, doc.get("timestamp"), doc


def is_clustering_config(config):
    return (config or {}).get("kind") == record.RUN_KIND


def is_our_config(config):
    """Whether a run record is one of this plugin's (any kind)."""
    return (config or {}).get("kind") in record.RUN_KINDS


# -- the lock and recovery ----------------------------------------------


def locked(samples, purpose, progress=None):
    """Takes the lock on ``samples``' dataset and finishes any change a
    dead holder left. Use as a context manager; the lease is released on
    exit."""
    dataset = samples._dataset
    lease = Lease(dataset, purpose, progress=progress)
    try:
        journal = (lease.previous or {}).get("journal")
        if journal:
            _recover(lease, journal)
    except BaseException:
        lease.release()
        raise
    return lease


def _recover(lease, journal):
    if journal.get("state") == "committed":
        logger.info("Finishing run write %s left by a stopped process",
                    journal["txid"])
        _roll_forward(lease, journal)
    else:
        logger.info("Undoing run write %s left by a stopped process",
                    journal["txid"])
        _roll_back(journal)
    lease.update_journal({"journal": None})
    lease.dataset.reload()
    lease.dataset._run_cache.clear()


def _roll_back(journal):
    if journal.get("stage"):
        _db().drop_collection(journal["stage"])
    if journal.get("record"):
        _delete_record_doc(_oid(journal["record"]))
    if journal.get("results"):
        _fs().delete(_oid(journal["results"]))
    for attachment in journal.get("attachments") or []:
        _fs().delete(_oid(attachment))


def _roll_forward(lease, journal):
    steps = journal.get("steps") or []
    for i in range(journal.get("next", 0), len(steps)):
        _apply(lease.dataset, steps[i])
        lease.update_journal({"journal.next": i + 1})


# -- transactions --------------------------------------------------------


class Column:
    """Values of one field for the rows being written.

    Args:
        suffix: the field suffix (a key of :data:`.record.FIELD_KINDS`)
        path: the field path the values land in
        values: one value per row (a numpy array or a list); NaN and
            ``None`` are stored as ``None``
        kind: the :class:`.record.FieldKind` (default: the suffix's)
    """

    def __init__(self, suffix, path, values, kind=None):
        self.suffix = suffix
        self.path = path
        self.values = values
        self.kind = kind or record.FIELD_KINDS[suffix]


class Transaction:
    """One change to one run, applied by :meth:`commit`.

    Args:
        lease: the held :class:`.lease.Lease`
        key: the run key the change is about
        expect: the run document id the caller saw for ``key`` (``None``
            when the key must be free)
        record_key: the key the new record is stored under (default
            ``key``; a rename gives the new key)
    """

    def __init__(self, lease, key, expect=None, record_key=None):
        self.lease = lease
        self.dataset = lease.dataset
        self.key = key
        self.record_key = record_key or key
        self.expect = expect
        self.txid = uuid.uuid4().hex[:16]
        self.stage = None
        self.new_record = None
        self.steps = []
        self.staged_counts = {}
        self.merged_paths = []
        self._check_expectation()

    def _check_expectation(self):
        current = record_id(self.dataset, self.key)
        if self.expect is None and current is not None:
            raise ConflictError(
                f"a run with key '{self.key}' already exists on dataset "
                f"'{self.dataset.name}' (another process may have just "
                "written it); nothing was written"
            )
        if self.expect is not None and current != self.expect:
            raise ConflictError(
                f"run '{self.key}' on dataset '{self.dataset.name}' was "
                "changed by another process while this one was working; "
                "nothing was written. Load it again and retry"
            )

    # -- planning ----------------------------------------------------------

    def begin(self):
        """Writes the journal before anything is staged, so that a kill
        from here on is undone by name."""
        self.stage = f"{STAGE_PREFIX}{self.txid}"
        self.lease.update_journal({"journal": {
            "txid": self.txid,
            "state": "staging",
            "key": self.key,
            "stage": self.stage,
            "record": None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }})

    def stage_rows(self, ids, columns, owners=None, progress=None):
        """Stages ``columns`` for the rows ``ids`` (sample ids, or label ids
        with ``owners`` the sample id of each)."""
        coll = _db()[self.stage]
        keys = {c.path: f"c{i}" for i, c in enumerate(columns)}
        counts = {c.path: 0 for c in columns}
        n = len(ids)
        for start in range(0, n, CHUNK):
            self.lease.check()
            stop = min(start + CHUNK, n)
            docs = []
            for j in range(start, stop):
                doc = {"_id": _oid(ids[j])}
                if owners is not None:
                    doc["s"] = _oid(owners[j])
                docs.append(doc)
            for c in columns:
                values = _plain_values(c.values[start:stop])
                k = keys[c.path]
                for doc, v in zip(docs, values):
                    doc[k] = v
                    if v is not None:
                        counts[c.path] += 1
            if docs:
                coll.insert_many(docs, ordered=False)
            if progress is not None:
                progress(f"writing: staged {stop:,} of {n:,}")
        if owners is not None:
            coll.create_index("s")
        self.staged_counts.update(counts)
        return keys

    def stage_attachment(self, blob, kind):
        """Writes a large binary the run keeps (its fitted stages) to
        GridFS, its id journalled first; returns the id as a string."""
        attachment = _new_oid()
        self.lease.append_journal("attachments", str(attachment))
        _fs().put(blob, _id=attachment, metadata={
            "image_clustering": kind, "dataset_id": self.dataset._doc.id})
        return str(attachment)

    def stage_record(self, view, config, results, timestamp=None,
                     view_stages=None, attachments=()):
        """Writes the new run document (and its results in GridFS), which
        nothing points to yet. Both ids are journalled first.
        ``attachments`` are the GridFS ids the record owns."""
        from bson import json_util
        import fiftyone.constants as foc
        import fiftyone.core.runs as fors

        record_oid, results_oid = _new_oid(), _new_oid()
        self.new_record = record_oid
        self.lease.update_journal({"journal.record": str(record_oid),
                                   "journal.results": str(results_oid)})
        blob = json_util.dumps(
            {"cls": "fiftyone.core.runs.RunResults", **results}
        ).encode()
        _fs().put(blob, _id=results_oid, content_type="application/json")
        _db().runs.insert_one({
            "_id": record_oid,
            "_dataset_id": self.dataset._doc.id,
            "key": self.record_key,
            "version": foc.VERSION,
            "timestamp": timestamp or datetime.datetime.utcnow(),
            "config": fors.RunConfig(**config).serialize(),
            "view_stages": (_view_stages(view) if view_stages is None
                            else view_stages),
            "results": results_oid,
            "results_meta": {"attachments": list(attachments)},
        })
        return record_oid

    # -- the steps of the swap ---------------------------------------------

    def declare(self, suffix, path, run_key, run_id, kind=None,
                run_kind=record.RUN_KIND):
        kind = kind or record.FIELD_KINDS[suffix]
        self.steps.append({
            "op": "declare",
            "path": path,
            "ftype": kind.ftype,
            "subfield": kind.subfield,
            "info": record.field_info(run_key, run_id, run_kind),
            "description": kind.describe(run_key),
        })

    def merge(self, keys, labels_path=None, single=False, replace=True):
        """Steps that move the staged values into the samples; with
        ``replace``, values of those fields on rows not staged are
        removed."""
        step = {"op": "merge", "stage": self.stage, "keys": keys,
                "labels_path": labels_path, "single": single}
        self.steps.append(step)
        if replace:
            self.steps.append({**step, "op": "strip"})
        self.merged_paths.extend(keys)

    def drop_field(self, path):
        self.steps.append({"op": "drop_field", "path": path})

    def rename_values(self, renames, labels_path=None, single=False):
        self.steps.append({"op": "rename_values", "renames": renames,
                           "labels_path": labels_path, "single": single})

    def point(self, key, record_oid, unset=()):
        """The atomic switch: the dataset's run ``key`` names the new record
        (and the keys in ``unset`` are removed) in one update."""
        self.steps.append({"op": "point", "key": key,
                           "record": str(record_oid) if record_oid else None,
                           "unset": list(unset)})

    def drop_record(self, record_oid, keep=()):
        """Removes a record and the attachments it owns, except ``keep``
        (those the new record owns too)."""
        if record_oid is not None:
            self.steps.append({"op": "drop_record",
                               "record": str(record_oid),
                               "keep": list(keep)})

    # -- commit --------------------------------------------------------------

    def commit(self, progress=None):
        """The commit point, then the swap."""
        if self.stage is not None:
            self.steps.append({"op": "drop_stage", "stage": self.stage})
        self.lease.update_journal({
            "journal.steps": self.steps, "journal.next": 0,
        })
        # The single atomic update after which the change always completes.
        self.lease.update_journal({"journal.state": "committed"})
        for i, step in enumerate(self.steps):
            if progress is not None:
                progress(f"writing: {_STEP_WORDS[step['op']]} "
                         f"({i + 1} of {len(self.steps)})")
            _apply(self.dataset, step)
            self.lease.update_journal({"journal.next": i + 1})
        self.lease.update_journal({"journal": None})
        self.dataset.reload()
        self.dataset._run_cache.clear()

    def abort(self):
        """Undoes what was staged (before :meth:`commit`)."""
        journal = self.lease.journal() or {}
        _roll_back(journal)
        self.lease.update_journal({"journal": None})


_STEP_WORDS = {
    "declare": "declaring fields",
    "merge": "merging values into the samples",
    "strip": "removing values the run no longer has",
    "drop_field": "removing replaced fields",
    "rename_values": "renaming values",
    "point": "switching the run key",
    "drop_record": "removing the replaced record",
    "drop_stage": "removing the staging collection",
}


def _new_oid():
    from bson import ObjectId

    return ObjectId()


def _view_stages(view):
    from bson import json_util
    import fiftyone.core.view as fov

    if isinstance(view, fov.DatasetView):
        return [json_util.dumps(s)
                for s in view._serialize(include_uuids=False)]
    return None


def _plain_values(values):
    out = []
    for v in (values.tolist() if isinstance(values, np.ndarray) else values):
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        elif isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = [float(x) for x in v]
        out.append(v)
    return out


# -- applying one step (each idempotent) ----------------------------------


def _apply(dataset, step):
    op = step["op"]
    if op == "declare":
        _declare(dataset, step)
    elif op == "merge":
        _merge(dataset, step)
    elif op == "strip":
        _strip(dataset, step)
    elif op == "drop_field":
        _drop_field(dataset, step["path"])
    elif op == "rename_values":
        _rename_values(dataset, step)
    elif op == "point":
        _point(dataset, step)
    elif op == "drop_record":
        _delete_record_doc(_oid(step["record"]), keep=step.get("keep", ()))
    elif op == "drop_stage":
        _db().drop_collection(step["stage"])
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


def _samples_coll(dataset):
    return _db()[dataset._sample_collection_name]


def _merge(dataset, step):
    stage = step["stage"]
    keys = step["keys"]
    target = dataset._sample_collection_name
    labels_path = step["labels_path"]
    now = datetime.datetime.utcnow()
    if not labels_path:
        project = {"_id": 1, "last_modified_at": {"$literal": now}}
        project.update({path: f"${k}" for path, k in keys.items()})
        _db()[stage].aggregate([
            {"$project": project},
            {"$merge": {"into": target, "on": "_id",
                        "whenMatched": "merge",
                        "whenNotMatched": "discard"}},
        ])
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
    _db()[stage].aggregate([
        {"$group": {"_id": "$s", "L": {"$push": "$$ROOT"}}},
        {"$merge": {"into": target, "on": "_id",
                    "whenMatched": [{"$set": update}],
                    "whenNotMatched": "discard"}},
    ])


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
        _samples_coll(dataset).aggregate([
            {"$match": {"$or": [{p: {"$exists": True}} for p in paths]}},
            {"$lookup": {"from": stage, "localField": "_id",
                         "foreignField": "_id", "as": "_staged"}},
            {"$match": {"_staged": {"$size": 0}}},
            {"$project": {"_id": 1}},
            {"$merge": {"into": target, "on": "_id",
                        "whenMatched": [{"$unset": paths}],
                        "whenNotMatched": "discard"}},
        ])
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
    _samples_coll(dataset).aggregate([
        {"$match": {"$or": [{p: {"$exists": True}} for p in paths]}},
        {"$lookup": {"from": stage, "localField": "_id",
                     "foreignField": "s", "as": "_staged"}},
        {"$project": {"_id": 1, "ids": "$_staged._id"}},
        {"$merge": {"into": target, "on": "_id",
                    "whenMatched": [{"$set": {field: keep}}],
                    "whenNotMatched": "discard"}},
    ])


def _drop_field(dataset, path):
    dataset.reload()
    if dataset.get_field(path) is not None:
        dataset.delete_sample_field(path)
    # FiftyOne unsets the values before it edits the schema; a kill between
    # leaves values that this removes.
    _samples_coll(dataset).update_many(
        {path: {"$exists": True}}, [{"$unset": path}]
    )


def _rename_values(dataset, step):
    renames = step["renames"]
    labels_path = step["labels_path"]
    coll = _samples_coll(dataset)
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
        update["$set"] = {f"runs.{key}": _oid(step["record"])}
        _db().runs.update_one({"_id": _oid(step["record"])},
                              {"$set": {"key": key}})
    unset = {f"runs.{k}": "" for k in step["unset"] if k != key}
    if step["record"] is None:
        unset[f"runs.{key}"] = ""
    if unset:
        update["$unset"] = unset
    _db().datasets.update_one({"_id": dataset._doc.id}, update)


def _delete_record_doc(record_oid, keep=()):
    doc = _db().runs.find_one({"_id": record_oid},
                              {"results": 1, "results_meta": 1})
    if doc is None:
        return
    for attachment in (doc.get("results_meta") or {}).get("attachments", []):
        if attachment not in keep:
            _fs().delete(_oid(attachment))
    if doc.get("results") is not None:
        _fs().delete(doc["results"])
    _db().runs.delete_one({"_id": record_oid})


def attachments_of(record_oid):
    doc = _db().runs.find_one({"_id": record_oid}, {"results_meta": 1})
    return list(((doc or {}).get("results_meta") or {}).get("attachments",
                                                            []))


def read_attachment(attachment):
    """The bytes of a run's attachment; raises ``StoreError`` when it is
    missing."""
    import gridfs

    try:
        return _fs().get(_oid(attachment)).read()
    except gridfs.errors.NoFile:
        raise StoreError(f"the run's stored data {attachment} is missing; "
                         "run repair, or compute the run again") from None


# -- verification ---------------------------------------------------------


def count_values(dataset, paths, labels_path=None, single=False):
    """Path -> number of non-null values in the whole dataset (per object
    for label paths), in one pass."""
    if not paths:
        return {}
    coll = _samples_coll(dataset)
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


def verify(dataset, expected, labels_path=None, single=False):
    """Raises :class:`IntegrityError` unless each path of ``expected`` (path
    -> count of non-null values) is declared with exactly that many
    values."""
    dataset.reload()
    missing = [p for p in expected if dataset.get_field(p) is None]
    if missing:
        raise IntegrityError(
            "fields missing from the dataset's schema after the write: "
            + ", ".join(missing) + " (a process outside this plugin changed "
            "the schema at the same time); run repair"
        )
    counts = count_values(dataset, list(expected), labels_path, single)
    wrong = {p: (counts[p], n) for p, n in expected.items() if counts[p] != n}
    if wrong:
        raise IntegrityError(
            "fields do not hold the values written: " + ", ".join(
                f"{p} has {got} of {want}" for p, (got, want) in wrong.items()
            )
        )


# -- repair ----------------------------------------------------------------


def repair(lease):
    """Removes what killed writes left behind on the lease's dataset and
    returns a list of sentences saying what was removed. (A journal left by
    a dead holder was already finished or undone when the lease was taken;
    that is reported too.)"""
    dataset = lease.dataset
    report = []
    journal = (lease.previous or {}).get("journal")
    if journal:
        verb = ("finished" if journal.get("state") == "committed"
                else "undid")
        report.append(f"{verb} the interrupted write of run "
                      f"'{journal.get('key')}' ({journal.get('txid')})")
    report += _drop_dangling_keys(dataset)
    report += _drop_staging_fields(dataset)
    report += _drop_orphan_records(dataset)
    report += _drop_orphan_stages(dataset)
    report += _drop_orphan_attachments(dataset)
    dataset.reload()
    dataset._run_cache.clear()
    return report


def _drop_dangling_keys(dataset):
    runs = record_ids(dataset)
    present = {d["_id"] for d in _db().runs.find(
        {"_id": {"$in": list(runs.values())}}, {"_id": 1})}
    gone = [k for k, v in runs.items() if v not in present]
    if gone:
        _db().datasets.update_one(
            {"_id": dataset._doc.id},
            {"$unset": {f"runs.{k}": "" for k in gone}},
        )
    return [f"removed run key '{k}', whose record was missing" for k in gone]


def _drop_staging_fields(dataset):
    dataset.reload()
    out = []
    for path in _all_field_paths(dataset):
        if record.is_staging_name(path):
            _drop_field(dataset, path)
            out.append(f"removed staging field '{path}'")
    return out


def _all_field_paths(dataset):
    schema = dataset.get_field_schema(flat=True)
    return sorted(schema)


def _drop_orphan_records(dataset):
    referenced = set(record_ids(dataset).values())
    out = []
    for doc in _db().runs.find({"_dataset_id": dataset._doc.id},
                               {"key": 1, "config": 1}):
        if doc["_id"] in referenced:
            continue
        if not is_our_config(doc.get("config")):
            continue
        _delete_record_doc(doc["_id"])
        out.append(f"removed an unreferenced record of run "
                   f"'{doc.get('key')}'")
    return out


def _drop_orphan_attachments(dataset):
    """Attachments of this dataset's runs that no record owns."""
    owned = set()
    for doc in _db().runs.find({"_dataset_id": dataset._doc.id},
                               {"results_meta": 1}):
        owned.update((doc.get("results_meta") or {}).get("attachments", []))
    out = []
    for f in _db()["fs.files"].find(
            {"metadata.dataset_id": dataset._doc.id,
             "metadata.image_clustering": {"$exists": True}}, {"_id": 1}):
        if str(f["_id"]) not in owned:
            _fs().delete(f["_id"])
            out.append(f"removed stored data {f['_id']} of a run that no "
                       "longer exists")
    return out


def _drop_orphan_stages(dataset):
    """Staging collections are only ever alive inside a held lease: any
    that this dataset's journal does not name is left over."""
    out = []
    for name in _db().list_collection_names(
            filter={"name": {"$regex": f"^{STAGE_PREFIX}"}}):
        doc = _db()[name].find_one({}, {"_id": 1, "s": 1})
        if doc is None:
            _db().drop_collection(name)
            continue
        owner = doc.get("s", doc["_id"])
        if _samples_coll(dataset).count_documents({"_id": owner},
                                                  limit=1):
            _db().drop_collection(name)
            out.append(f"removed staging collection '{name}'")
    return out
