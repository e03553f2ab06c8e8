"""Runs as stored, whatever their kind: reading their records, the checks
before a write, and every write (a new run, an amendment, a rename, a
delete), each one transaction of :mod:`.transaction` under the dataset's
lease. :class:`StoredRun` is the base of every results object.

Nothing here knows what a kind means (clusters, duplicates, scores) or how
the App shows a run: callers one layer up do that after a write returns.
"""

from ..units import ParamError
from . import schema
from .lease import collection, current_holder
from .mongo import db
from .records import (
    attachments_of,
    load_record,
    record_id,
    record_ids,
    read_attachment,
)
from .repair import repair as repair_leftovers
from .steps import drop_field, verify
from .transaction import ConflictError, Transaction, locked


class RunNotFound(ValueError):
    """No run of that key (and kind) on the dataset."""


# -- reading -------------------------------------------------------------


def finish_abandoned_write(dataset):
    """Reads see a run either as it was or as written: a write that a dead
    process left half done is finished (or undone) first."""
    doc = collection().find_one({"_id": dataset._doc.id},
                                {"journal": 1, "owner": 1})
    if not doc or not doc.get("journal"):
        return
    if doc.get("owner") and current_holder(dataset) is not None:
        # A live writer is mid-swap; it finishes on its own.
        return
    with locked(dataset, "recovering an interrupted write"):
        pass


def records_of(dataset, kinds):
    """Key -> (record id, config) of every complete run of ``kinds``."""
    ids = record_ids(dataset)
    out = {}
    docs = db().runs.find({"_id": {"$in": list(ids.values())}},
                          {"config": 1})
    by_id = {d["_id"]: d.get("config") or {} for d in docs}
    for key, rid in ids.items():
        config = by_id.get(rid)
        if (config or {}).get("kind") in kinds:
            out[key] = (rid, config)
    return out


def free_run_key(dataset, base="clusters"):
    """The first of ``base``, ``base2``, ... used by no run and no field."""
    key, i = base, 1
    keys = set(record_ids(dataset))
    while key in keys or dataset.get_field(f"{key}_cluster") or \
            any(f.startswith(f"{key}_") for f in dataset.get_field_schema()):
        i += 1
        key = f"{base}{i}"
    return key


class StoredRun:
    """A run of one of this plugin's kinds, as it was read from the
    database: the base of every results object.

    Attributes:
        key: the run key
        config, results: plain JSON (see :mod:`.schema`)
        timestamp: when the run was written (UTC)
        record_id: the id of the record this object was read from; writes
            through the object fail cleanly if another process has changed
            the run since
    """

    #: The kinds this class loads, and how messages name it.
    KINDS = ()
    WHAT = "run"

    def __init__(self, dataset, key, config, results, timestamp, record_id,
                 view_stages=None):
        self._dataset = dataset
        self.key = key
        self.config = config
        self.results = results
        self.timestamp = timestamp
        self.record_id = record_id
        self._view_stages = view_stages

    @classmethod
    def load(cls, samples, key):
        """The run ``key`` of ``samples``' dataset; raises
        :class:`RunNotFound` when it has no run of this class's kinds."""
        dataset = samples._dataset
        finish_abandoned_write(dataset)
        found = records_of(dataset, cls.KINDS).get(key)
        loaded = load_record(found[0]) if found is not None else None
        if loaded is None:
            available = ", ".join(cls.keys(dataset)) or "none"
            raise RunNotFound(
                f"no {cls.WHAT} '{key}' on dataset '{dataset.name}' "
                f"({cls.WHAT}s: {available})")
        config, results, timestamp, doc = loaded
        config = {k: v for k, v in config.items() if k not in ("cls", "type")}
        return cls(dataset, key, config, results, timestamp, found[0],
                   view_stages=doc.get("view_stages"))

    @classmethod
    def keys(cls, samples):
        """The keys of the dataset's runs of this class's kinds, sorted."""
        dataset = samples._dataset
        finish_abandoned_write(dataset)
        return sorted(records_of(dataset, cls.KINDS))

    def reload(self):
        """The run as the database holds it now."""
        return type(self).load(self._dataset, self.key)

    # -- what every run holds ------------------------------------------------

    @property
    def dataset(self):
        return self._dataset

    @property
    def kind(self):
        return self.config.get("kind")

    @property
    def run_id(self):
        """Stable identity of the run, kept across renames and updates."""
        return self.config.get("run_id")

    @property
    def fields(self):
        """Suffix -> field path of each field the run wrote."""
        return self.config["fields"]

    @property
    def patches_field(self):
        """The label field whose objects the run is about, or ``None``."""
        return schema.patches_field_of(self.config)

    @property
    def labels_path(self):
        return schema.labels_path_of(self.config)

    @property
    def single_object(self):
        return schema.is_single_object(self.config)

    def view(self):
        """The samples the run was computed on (samples deleted since are
        simply absent)."""
        from bson import json_util
        import fiftyone.core.view as fov

        if self._view_stages is None:
            return self._dataset.view()
        stages = [json_util.loads(s) for s in self._view_stages]
        return fov.DatasetView._build(self._dataset, stages)

    def attachment(self, name):
        """The bytes of an attachment the run keeps (``results[name]``)."""
        return read_attachment(self.results[name]["file"])

    def info(self):
        """The run as plain JSON: key, timestamp, config and results."""
        return {
            "key": self.key,
            "timestamp": self.timestamp.isoformat() if self.timestamp
            else None,
            "config": self.config,
            "results": self.results,
        }

    def summary(self):
        """The facts of the run every entry point shows, as plain JSON."""
        return {"key": self.key, "kind": self.kind,
                "timestamp": self.info()["timestamp"]}

    # -- writes through the object ---------------------------------------------

    def amend(self, rows, columns, results, config=None, replace=False,
              progress=None, attachments=None):
        """Writes ``columns`` for ``rows`` and the new ``results`` (and
        ``config``, and ``attachments``) in one transaction; fails cleanly
        if another process changed the run since this object was read.
        Returns the run as written."""
        amend_run(self, rows, columns, results, config=config,
                  replace=replace, progress=progress,
                  attachments=attachments)
        return self.reload()

    def delete(self):
        """Deletes the run and the fields it wrote (never samples or
        files)."""
        delete_run(self._dataset, self.key, self.KINDS)

    def __repr__(self):
        return f"<{type(self).__name__} '{self.key}'>"


# -- checks before any work ------------------------------------------------


def check_new_run(dataset, key, paths, overwrite, kind):
    """Raises unless a run ``key`` (of ``kind``) writing ``paths`` may be
    stored; returns the record id it would replace (``None`` for a new
    key). A write that a stopped process left half done is finished (or
    undone) first, so that a run it completed is seen now, not when this
    one is written."""
    schema.validate_run_key(key)
    finish_abandoned_write(dataset)
    records = records_of(dataset, (kind,))
    rid = record_id(dataset, key)
    if rid is not None:
        if key not in records:
            what = "a clustering run" if kind == schema.RUN_KIND else \
                "a run of this kind"
            raise ParamError(
                f"run '{key}' is not {what}; it will not be overwritten",
                "run_key")
        if not overwrite:
            raise ParamError(
                f"a run with key '{key}' already exists on dataset "
                f"'{dataset.name}'", "overwrite", True)
    check_field_owners(dataset, key, paths)
    return rid


def check_field_owners(dataset, key, paths):
    """Raises if one of ``paths`` holds something that is neither the run
    ``key``'s own field nor a leftover of a run that no longer exists."""
    records = records_of(dataset, schema.RUN_KINDS)
    live = {config.get("run_id"): k for k, (_, config) in records.items()}
    own = records.get(key, (None, {}))[1].get("run_id")
    for path in paths:
        field = dataset.get_field(path)
        if field is None:
            continue
        info = field.info or {}
        owner = info.get("run_id")
        if info.get("run_kind") in schema.RUN_KINDS and (
                (own is not None and owner == own) or owner not in live):
            continue
        raise ParamError(
            f"field '{path}' already exists and does not belong to run "
            f"'{key}'; choose another run key or field prefix", "run_key")


# -- writing ---------------------------------------------------------------


def write_run(samples, key, config, results, rows, columns, expect,
              owners=None, progress=None, attachments=None, check=None):
    """Stores a computed run (new, or replacing the record ``expect``) in
    one transaction, and checks that every field holds what was written.

    Args:
        samples: the collection the run was computed on
        key: the run key
        config, results: plain JSON (see :mod:`.schema`)
        rows: the ids the columns' values belong to (sample ids, or label
            ids with ``owners`` the sample id of each)
        columns: a list of :class:`.transaction.Column`
        expect: the record id the caller validated against
        attachments: name -> bytes kept with the record (the fitted
            stages); ``results[name]`` then says where
        check: ``check(dataset)``, run under the lock before anything is
            written, for what only the caller knows to check

    Returns:
        the config of the run it replaced (``{}`` for a new key)
    """
    labels_path = schema.labels_path_of(config)
    single = schema.is_single_object(config)
    with locked(samples, f"writing run '{key}'", progress=progress) as lease:
        dataset = lease.dataset
        tx = Transaction(lease, key, expect)
        old = _replaced_config(expect)
        check_field_owners(dataset, key, [c.path for c in columns])
        if check is not None:
            check(dataset)
        results = {**results, "timings": {**results.get("timings", {}),
                                          "lock_wait": round(lease.waited, 3)}}
        try:
            tx.begin()
            keys = tx.stage_rows(rows, columns, owners, progress=progress)
            owned = []
            for name, blob in (attachments or {}).items():
                owned.append(tx.stage_attachment(blob, name))
                results = {**results, name: {
                    **results.get(name, {}), "file": owned[-1],
                    "bytes": len(blob)}}
            tx.stage_record(samples, config, results, attachments=owned)
        except BaseException:
            tx.abort()
            raise
        for c in columns:
            tx.declare(c.suffix, c.path, key, config["run_id"], c.kind,
                       run_kind=config["kind"])
        tx.merge(keys, labels_path, single, replace=True)
        new_paths = {c.path for c in columns}
        for path in (old.get("fields") or {}).values():
            if path not in new_paths:
                tx.drop_field(path)
        tx.point(key, tx.new_record)
        tx.drop_record(expect)
        tx.commit(progress=progress)
        if progress is not None:
            progress("writing: checking every field")
        verify(dataset, {c.path: tx.staged_counts[c.path] for c in columns},
               labels_path, single)
        return old


def amend_run(run, rows, columns, results, config=None, replace=False,
              progress=None, attachments=None):
    """Writes more fields of ``run`` (a :class:`StoredRun` as the caller
    read it) and its updated results, in one transaction: with
    ``replace`` the given fields are replaced whole, else the rows given
    are added or updated and the others kept. ``attachments`` (name ->
    bytes) replace the run's attachments of those names. Fails cleanly if
    another process changed the run since it was read, and checks every
    field it wrote as :func:`write_run` does."""
    config = dict(config or run.config)
    config["fields"] = {**config.get("fields", run.fields),
                        **{c.suffix: c.path for c in columns}}
    labels_path = run.labels_path
    single = run.single_object
    with locked(run.dataset, f"updating run '{run.key}'",
                progress=progress) as lease:
        dataset = lease.dataset
        tx = Transaction(lease, run.key, run.record_id)
        check_field_owners(dataset, run.key, [c.path for c in columns])
        owners = _owners_of(run, rows) if labels_path else None
        replaced = {(run.results.get(name) or {}).get("file")
                    for name in attachments or {}}
        kept = [a for a in attachments_of(run.record_id)
                if a not in replaced]
        try:
            tx.begin()
            keys = tx.stage_rows(rows, columns, owners, progress=progress)
            owned = list(kept)
            for name, blob in (attachments or {}).items():
                owned.append(tx.stage_attachment(blob, name))
                results = {**results, name: {
                    **results.get(name, {}), "file": owned[-1],
                    "bytes": len(blob)}}
            tx.stage_record(None, config, results, timestamp=run.timestamp,
                            view_stages=run._view_stages,
                            attachments=owned)
        except BaseException:
            tx.abort()
            raise
        for c in columns:
            tx.declare(c.suffix, c.path, run.key, run.run_id, c.kind,
                       run_kind=config["kind"])
        tx.merge(keys, labels_path, single, replace=replace)
        tx.point(run.key, tx.new_record)
        tx.drop_record(run.record_id, keep=kept)
        tx.commit(progress=progress)
        expected = {c.path: tx.staged_counts[c.path] for c in columns}
        if replace:
            verify(dataset, expected, labels_path, single)
        else:
            verify(dataset, expected, labels_path, single, at_least=True)


def check_unchanged(run, dataset):
    """Raises :class:`.transaction.ConflictError` if the run's key no
    longer names the record ``run`` was read from."""
    if record_id(dataset, run.key) != run.record_id:
        raise ConflictError(
            f"run '{run.key}' on dataset '{dataset.name}' was changed by "
            "another process since it was read; nothing was written. Load "
            "it again and retry")


def tag_rows(run, view, tags, remove=False):
    """Adds (or removes) sample tags on ``view`` (for an object run, label
    tags on its objects) under the dataset's lock, after checking that the
    run is unchanged. Returns how many samples (or objects) were tagged."""
    with locked(run.dataset, f"tagging samples of run '{run.key}'") as lease:
        check_unchanged(run, lease.dataset)
        if run.patches_field:
            count = view.count(f"{run.labels_path}.id")
            act = view.untag_labels if remove else view.tag_labels
            act(tags, label_fields=run.patches_field)
            return count
        count = len(view)
        (view.untag_samples if remove else view.tag_samples)(tags)
        return count


def delete_rows(run, choose, confirm):
    """Deletes the samples (for an object run, the objects) that
    ``choose()`` returns, under the dataset's lock: the run must be
    unchanged and ``confirm`` must equal the number chosen, both checked
    under the lock, so that nothing is deleted that the caller did not
    count. Returns the number deleted."""
    with locked(run.dataset, f"deleting samples of run '{run.key}'") as \
            lease:
        check_unchanged(run, lease.dataset)
        ids = choose()
        if confirm != len(ids):
            raise ParamError(
                f"confirm: {len(ids)} sample(s) of run '{run.key}' would be "
                f"deleted, not {confirm!r}", "confirm", len(ids))
        if not ids:
            return 0
        if run.labels_path:
            lease.dataset.delete_labels(ids=ids, fields=run.patches_field)
        else:
            lease.dataset.delete_samples(ids)
        return len(ids)


def _owners_of(run, label_ids):
    """The sample id of each of ``label_ids`` (objects of the run's
    patches field), in one read."""
    wanted = set(label_ids)
    owner = {}
    ids, label_lists = run.dataset.values(["id", f"{run.labels_path}.id"])
    for sid, labels in zip(ids, label_lists):
        for label_id in ([labels] if run.single_object else labels or []):
            if label_id in wanted:
                owner[label_id] = sid
    missing = [i for i in label_ids if i not in owner]
    if missing:
        raise ParamError(
            f"{len(missing)} object(s) of run '{run.key}' no longer exist "
            f"(first: {missing[0]})")
    return [owner[i] for i in label_ids]


def _replaced_config(expect):
    if expect is None:
        return {}
    loaded = load_record(expect)
    return loaded[0] if loaded else {}


def rename_run(samples, key, new_key, kinds, edit_config=None):
    """Renames run ``key`` (of ``kinds``) to ``new_key``; fields named
    after the key are renamed with it. ``edit_config(config, dataset)``
    may change the new config under the lock (and raise to refuse).
    Returns ``(old config, new config)``."""
    dataset = samples._dataset
    schema.validate_run_key(new_key)
    _record_of_kind(dataset, key, kinds)
    with locked(dataset, f"renaming run '{key}'") as lease:
        dataset = lease.dataset
        rid, _ = _record_of_kind(dataset, key, kinds)
        if record_id(dataset, new_key) is not None:
            raise ParamError(
                f"a run with key '{new_key}' already exists on dataset "
                f"'{dataset.name}'", "new_run_key")
        config, results, timestamp, doc = load_record(rid)
        config = {k: v for k, v in config.items() if k not in ("cls", "type")}
        old = dict(config)
        renames = _renamed_fields(config, key, new_key)
        check_field_owners(dataset, new_key, list(renames.values()))
        config["fields"] = {s: renames.get(p, p)
                            for s, p in config["fields"].items()}
        if edit_config is not None:
            config = edit_config(config, dataset)
        tx = Transaction(lease, key, rid, record_key=new_key)
        attachments = attachments_of(rid)
        try:
            tx.begin()
            tx.stage_record(None, config, results, timestamp=timestamp,
                            view_stages=doc.get("view_stages"),
                            attachments=attachments)
        except BaseException:
            tx.abort()
            raise
        labels_path = schema.labels_path_of(config)
        single = schema.is_single_object(config)
        # New names are declared before values move into them, so that no
        # sample ever holds a value its dataset's schema does not know.
        for suffix, path in config["fields"].items():
            tx.declare(suffix, path, new_key, config["run_id"],
                       kind=schema.field_kind(config["kind"], suffix),
                       run_kind=config["kind"])
        if renames:
            tx.rename_values(renames, labels_path, single)
        for old_path in renames:
            tx.drop_field(old_path)
        tx.point(new_key, tx.new_record, unset=[key])
        tx.drop_record(rid, keep=attachments)
        tx.commit()
        return old, config


def _renamed_fields(config, key, new_key):
    """Old path -> new path of the fields named after the run key."""
    labels_path = schema.labels_path_of(config)
    out = {}
    for suffix, path in config["fields"].items():
        if path == schema.field_path(key, suffix, labels_path):
            out[path] = schema.field_path(new_key, suffix, labels_path)
    return out


def delete_run(samples, key, kinds):
    """Deletes run ``key`` (of one of ``kinds``), the fields it wrote and
    nothing else. Returns the deleted run's config."""
    dataset = samples._dataset
    _record_of_kind(dataset, key, kinds)
    with locked(dataset, f"deleting run '{key}'") as lease:
        rid, config = _record_of_kind(lease.dataset, key, kinds)
        tx = Transaction(lease, key, rid)
        tx.begin()
        tx.point(key, None)
        for path in _owned_fields(lease.dataset, config):
            tx.drop_field(path)
        tx.drop_record(rid)
        tx.commit()
        return config


def _record_of_kind(dataset, key, kinds):
    found = records_of(dataset, kinds).get(key)
    if found is None:
        available = ", ".join(sorted(records_of(dataset, kinds))) or "none"
        what = "clustering run" if tuple(kinds) == (schema.RUN_KIND,) else \
            "run of this kind"
        raise RunNotFound(f"no {what} '{key}' on dataset '{dataset.name}' "
                          f"(runs: {available})")
    return found


def _owned_fields(dataset, config):
    """The run's fields that carry its own run id: a field that another run
    owns is never deleted with this one."""
    out = []
    for path in (config.get("fields") or {}).values():
        field = dataset.get_field(path)
        if field is None:
            continue
        if (field.info or {}).get("run_id") == config.get("run_id"):
            out.append(path)
    return out


def repair(samples, after=None):
    """Removes the leftovers of killed writes on ``samples``' dataset, and
    the fields of runs that no longer exist. ``after(dataset)``, run under
    the same lock, returns more sentences (the App's view of the runs).
    Returns a list of sentences saying what was done."""
    with locked(samples._dataset, "repair") as lease:
        report = repair_leftovers(lease)
        report += _unowned_run_fields(lease.dataset)
        if after is not None:
            report += after(lease.dataset)
    return report


def _unowned_run_fields(dataset):
    """Fields of ours whose run is gone (written by an older version, or
    left by hand): removed."""
    live = {config.get("run_id") for _, config in
            records_of(dataset, schema.RUN_KINDS).values()}
    out = []
    for path, field in dataset.get_field_schema(flat=True).items():
        info = getattr(field, "info", None) or {}
        if info.get("run_kind") not in schema.RUN_KINDS:
            continue
        if info.get("run_id") in live:
            continue
        drop_field(dataset, path)
        out.append(f"removed field '{path}' of run '{info.get('run_key')}', "
                   "which no longer exists")
    return out
