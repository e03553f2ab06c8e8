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
layer up. When the next process finishes a write that a dead one left
committed, that layer hears of it through :func:`on_rolled_forward`.
"""

import datetime
import logging
import os
import socket
import uuid

import numpy as np

from ..units import ParamError
from . import bson_rows, schema
from .lease import Lease
from .mongo import db, fs, new_oid, oid
from .records import (
    StoreError,
    attachments_of,
    delete_record_doc,
    record_id,
    serialize_view,
)
from . import steps
from .steps import apply

logger = logging.getLogger(__name__)

STAGE_PREFIX = "imgclust_stage_"
# Rows per round trip when staging values; bounds memory at any scale.
CHUNK = 100_000
# Sample ids that choose where the staged rows are split for merging in
# parallel.
SPLIT_SAMPLE = 1000


class ConflictError(StoreError, ParamError):
    """Another process changed the run (or took its key) first."""

    def __init__(self, message):
        ParamError.__init__(self, message, "run_key")


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


# Called as ``callback(dataset, key, kind)`` after a write that a stopped
# process left committed has been finished (see :func:`on_rolled_forward`).
_ROLLED_FORWARD = []


def on_rolled_forward(callback):
    """Registers ``callback(dataset, key, kind)``, called for each run key a
    write changed once that write, left committed by a stopped process,
    has been finished by this one: ``kind`` is the kind of the run the key
    now names (:data:`.schema.RUN_KINDS`), or ``None`` when the write
    removed the key (a delete, or the old key of a rename). It is called
    after the lock is given back, so it may take the lock itself; what it
    raises is logged, never passed on (the write is complete either way).
    Returns ``callback``."""
    if callback not in _ROLLED_FORWARD:
        _ROLLED_FORWARD.append(callback)
    return callback


def _changed_keys(journal):
    """``(key, kind)`` for each run key the journal's steps point anew or
    remove, in the order of the steps."""
    out = []
    for step in journal.get("steps") or []:
        if step["op"] != "point":
            continue
        kind = None
        if step.get("record"):
            doc = db().runs.find_one({"_id": oid(step["record"])},
                                     {"config.kind": 1})
            kind = ((doc or {}).get("config") or {}).get("kind")
        out.append((step["key"], kind))
        out.extend((key, None) for key in step.get("unset") or [])
    return out


def _tell_rolled_forward(dataset, changed):
    for key, kind in changed:
        for callback in list(_ROLLED_FORWARD):
            try:
                callback(dataset, key, kind)
            except Exception as e:
                logger.warning("After finishing the interrupted write of run "
                               "'%s': %s", key, e)


def _recover(lease, journal):
    if journal.get("state") == "committed":
        logger.info("Finishing run write %s left by a stopped process",
                    journal["txid"])
        _roll_forward(lease, journal)
        changed = _changed_keys(journal)
        lease.after_release.append(
            lambda: _tell_rolled_forward(lease.dataset, changed))
    else:
        logger.info("Undoing run write %s left by a stopped process",
                    journal["txid"])
        _roll_back(journal)
    lease.update_journal({"journal": None})
    lease.dataset.reload()
    lease.dataset._run_cache.clear()


def _roll_back(journal):
    if journal.get("stage"):
        db().drop_collection(journal["stage"])
    if journal.get("record"):
        # The staged record may share attachments with the live one (an
        # amend keeps the run's fitted stages): only the attachments this
        # write staged itself, listed in the journal, are removed below.
        record = oid(journal["record"])
        delete_record_doc(record, keep=attachments_of(record))
    if journal.get("results"):
        fs().delete(oid(journal["results"]))
    for attachment in journal.get("attachments") or []:
        fs().delete(oid(attachment))


def _roll_forward(lease, journal):
    steps = journal.get("steps") or []
    for i in range(journal.get("next", 0), len(steps)):
        lease.confirm()
        apply(lease.dataset, steps[i])
        lease.update_journal({"journal.next": i + 1})


# -- transactions --------------------------------------------------------


class Column:
    """Values of one field for the rows being written.

    Args:
        suffix: the field suffix (a key of :data:`.schema.FIELD_KINDS`)
        path: the field path the values land in
        values: one value per row (a numpy array or a list); NaN and
            ``None`` are stored as ``None``
        kind: the :class:`.schema.FieldKind` (default: the suffix's)
    """

    def __init__(self, suffix, path, values, kind=None):
        self.suffix = suffix
        self.path = path
        self.values = values
        self.kind = kind or schema.field_kind(schema.RUN_KIND, suffix)


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
        self.split_points = []
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
        with ``owners`` the sample id of each), as raw BSON built by numpy
        where the values allow (:mod:`.bson_rows`)."""
        coll = db()[self.stage]
        keys = {c.path: f"c{i}" for i, c in enumerate(columns)}
        counts = {c.path: 0 for c in columns}
        n = len(ids)
        for start in range(0, n, CHUNK):
            self.lease.check()
            stop = min(start + CHUNK, n)
            part_owners = owners[start:stop] if owners is not None else None
            docs, present = _staged_docs(ids[start:stop], part_owners,
                                         list(keys.values()), columns,
                                         start, stop)
            for c, count in zip(columns, present):
                counts[c.path] += count
            if docs:
                coll.insert_many(docs, ordered=False)
            if progress is not None:
                progress(f"writing: staged {stop:,} of {n:,}")
        if owners is not None:
            coll.create_index("s")
        self.staged_counts.update(counts)
        self.split_points = _split_points(ids, steps.MERGE_PARTS)
        return keys

    def stage_attachment(self, blob, kind):
        """Writes a large binary the run keeps (its fitted stages) to
        GridFS, its id journalled first; returns the id as a string."""
        attachment = new_oid()
        self.lease.append_journal("attachments", str(attachment))
        fs().put(blob, _id=attachment, metadata={
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

        record_oid, results_oid = new_oid(), new_oid()
        self.new_record = record_oid
        self.lease.update_journal({"journal.record": str(record_oid),
                                   "journal.results": str(results_oid)})
        blob = json_util.dumps(
            {"cls": "fiftyone.core.runs.RunResults", **results}
        ).encode()
        fs().put(blob, _id=results_oid, content_type="application/json")
        db().runs.insert_one({
            "_id": record_oid,
            "_dataset_id": self.dataset._doc.id,
            "key": self.record_key,
            "version": foc.VERSION,
            "timestamp": timestamp or datetime.datetime.now(
                datetime.timezone.utc).replace(tzinfo=None),
            "config": fors.RunConfig(**config).serialize(),
            "view_stages": (serialize_view(view) if view_stages is None
                            else view_stages),
            "results": results_oid,
            "results_meta": {"attachments": list(attachments)},
        })
        return record_oid

    # -- the steps of the swap ---------------------------------------------

    def declare(self, suffix, path, run_key, run_id, kind=None,
                run_kind=schema.RUN_KIND):
        kind = kind or schema.field_kind(run_kind, suffix)
        self.steps.append({
            "op": "declare",
            "path": path,
            "ftype": kind.ftype,
            "subfield": kind.subfield,
            "info": schema.field_info(run_key, run_id, run_kind),
            "description": kind.describe(run_key),
        })

    def merge(self, keys, labels_path=None, single=False, replace=True):
        """Steps that move the staged values into the samples; with
        ``replace``, values of those fields on rows not staged are
        removed."""
        # The time the merged rows are stamped with is fixed here, so that
        # a repair that merges again stamps them alike: the strip tells
        # the rows this write merged by it.
        step = {"op": "merge", "stage": self.stage, "keys": keys,
                "labels_path": labels_path, "single": single,
                "bounds": self.split_points, "stamp": steps.stamp_now()}
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
            # A holder that stalled past its lease must not apply another
            # step while a new holder finishes this write.
            self.lease.confirm()
            apply(self.dataset, step)
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


def _split_points(ids, parts):
    """``parts - 1`` ids that split ``ids`` into parts of about one size,
    from a sample of them (any split is correct: the parts only share the
    work)."""
    if parts < 2 or len(ids) < 2 * SPLIT_SAMPLE:
        return []
    rng = np.random.default_rng(0)
    sample = sorted(str(ids[i]) for i in rng.choice(len(ids), SPLIT_SAMPLE,
                                                    replace=False))
    return sorted({sample[len(sample) * i // parts] for i in range(1, parts)})


def _staged_docs(ids, owners, keys, columns, start, stop):
    """The staging documents of rows ``start:stop`` and the number of
    non-null values of each column among them."""
    from bson.raw_bson import RawBSONDocument

    typed = [bson_rows.typed_column(c.values[start:stop]) for c in columns]
    if all(t is not None for t in typed):
        raw = bson_rows.encode_rows(
            bson_rows.object_ids(ids),
            bson_rows.object_ids(owners) if owners is not None else None,
            keys, typed)
        return ([RawBSONDocument(b) for b in raw],
                [int(t.present.sum()) for t in typed])
    docs = []
    for j, sid in enumerate(ids):
        doc = {"_id": oid(sid)}
        if owners is not None:
            doc["s"] = oid(owners[j])
        docs.append(doc)
    present = []
    for c, k in zip(columns, keys):
        values = _plain_values(c.values[start:stop])
        for doc, v in zip(docs, values):
            doc[k] = v
        present.append(sum(v is not None for v in values))
    return docs, present


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

