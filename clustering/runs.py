"""Clustering runs as users see them: list, load, write, rename, delete and
repair. Each change goes through the store (:mod:`.store`) and is then
shown in the App (:mod:`.presentation`), under one hold of the dataset's
lock."""

import logging

from ..units import ParamError
from . import presentation, record, store
from .lease import current_holder
from .results import ClusterRun

logger = logging.getLogger(__name__)


class RunNotFound(ValueError):
    """No clustering run of that key on the dataset."""


# -- reading -------------------------------------------------------------


def _finish_abandoned_write(dataset):
    """Reads see a run either as it was or as written: a write that a dead
    process left half done is finished (or undone) first."""
    from .lease import _collection

    doc = _collection().find_one({"_id": dataset._doc.id}, {"journal": 1,
                                                            "owner": 1})
    if not doc or not doc.get("journal"):
        return
    if doc.get("owner") and current_holder(dataset) is not None:
        # A live writer is mid-swap; it finishes on its own.
        return
    with store.locked(dataset, "recovering an interrupted write"):
        pass


def records_of(dataset, kinds):
    """Key -> (record id, config) of every complete run of ``kinds``."""
    from fiftyone.core.odm import get_db_conn

    ids = store.record_ids(dataset)
    out = {}
    docs = get_db_conn().runs.find(
        {"_id": {"$in": list(ids.values())}}, {"config": 1})
    by_id = {d["_id"]: d.get("config") or {} for d in docs}
    for key, rid in ids.items():
        config = by_id.get(rid)
        if (config or {}).get("kind") in kinds:
            out[key] = (rid, config)
    return out


def _clustering_records(dataset):
    return records_of(dataset, (record.RUN_KIND,))


def list_runs(samples, method=None):
    """The keys of the clustering runs on ``samples``' dataset, sorted."""
    dataset = samples._dataset
    _finish_abandoned_write(dataset)
    return sorted(
        key for key, (_, config) in _clustering_records(dataset).items()
        if method is None or config.get("method") == method
    )


def load_run(samples, key):
    """Returns the :class:`.results.ClusterRun` stored under ``key``."""
    dataset = samples._dataset
    _finish_abandoned_write(dataset)
    rid = store.record_id(dataset, key)
    loaded = store.load_record(rid) if rid is not None else None
    if loaded is None or not store.is_clustering_config(loaded[0]):
        available = ", ".join(list_runs(dataset)) or "none"
        raise RunNotFound(
            f"no clustering run '{key}' on dataset '{dataset.name}' "
            f"(clustering runs: {available})"
        )
    config, results, timestamp, doc = loaded
    config = {k: v for k, v in config.items()
              if k not in ("cls", "type")}
    return ClusterRun(dataset, key, config, results, timestamp, rid,
                      view_stages=doc.get("view_stages"))


def get_run_info(samples, key):
    """The run's key, timestamp, config, results and the changes to its
    samples since, as plain JSON."""
    return load_run(samples, key).info()


def free_run_key(dataset, base="clusters"):
    """The first of ``clusters``, ``clusters2``, ... not used by a run or a
    field."""
    key, i = base, 1
    keys = set(store.record_ids(dataset))
    while key in keys or dataset.get_field(f"{key}_cluster"):
        i += 1
        key = f"{base}{i}"
    return key


# -- checks before any work ------------------------------------------------


def check_new_run(dataset, key, paths, overwrite, kind=record.RUN_KIND):
    """Raises unless a run ``key`` (of ``kind``) writing ``paths`` may be
    stored; returns the record id it would replace (``None`` for a new
    key)."""
    record.validate_run_key(key)
    records = records_of(dataset, (kind,))
    rid = store.record_id(dataset, key)
    if rid is not None:
        if key not in records:
            what = "a clustering run" if kind == record.RUN_KIND else \
                "a run of this kind"
            raise ParamError(
                f"run '{key}' is not {what}; it will not be overwritten"
            )
        if not overwrite:
            raise ParamError(
                f"a run with key '{key}' already exists on dataset "
                f"'{dataset.name}'; pass overwrite=True to replace it"
            )
    check_field_owners(dataset, key, paths)
    return rid


def check_field_owners(dataset, key, paths):
    """Raises if one of ``paths`` holds something that is neither the run
    ``key``'s own field nor a leftover of a run that no longer exists."""
    records = records_of(dataset, record.RUN_KINDS)
    live = {config.get("run_id"): k for k, (_, config) in records.items()}
    own = records.get(key, (None, {}))[1].get("run_id")
    for path in paths:
        field = dataset.get_field(path)
        if field is None:
            continue
        info = field.info or {}
        owner = info.get("run_id")
        if info.get("run_kind") in record.RUN_KINDS and (
                (own is not None and owner == own) or owner not in live):
            continue
        raise ParamError(
            f"field '{path}' already exists and does not belong to run "
            f"'{key}'; choose another run key or field_prefix"
        )


def check_brain_key(dataset, key, brain_key):
    """Raises if the run's map would replace a brain run that is not the
    map of run ``key``."""
    if brain_key is None or not dataset.has_brain_run(brain_key):
        return
    maps = dataset.info.get(presentation.MAPS_INFO) or {}
    if maps.get(brain_key) == key:
        return
    raise ParamError(
        f"brain run '{brain_key}' already exists and does not belong to run "
        f"'{key}'; choose another run key, or map='none'"
    )


# -- writing ---------------------------------------------------------------


def write_run(samples, key, config, results, rows, columns, expect,
              owners=None, progress=None, fitted=None):
    """Stores a computed run (new, or replacing the record ``expect``) and
    shows it in the App. Returns the :class:`.results.ClusterRun`.

    Args:
        samples: the collection the run was computed on
        key: the run key
        config, results: plain JSON (see :mod:`.record`)
        rows: the ids the columns' values belong to (sample ids, or label
            ids with ``owners`` the sample id of each)
        columns: a list of :class:`.store.Column`
        expect: the record id the caller validated against
        fitted: the bytes of the run's fitted stages (:mod:`.fitted`), kept
            with the record
    """
    labels_path = record.labels_path_of(config)
    single = bool(labels_path) and labels_path == \
        record.patches_field_of(config)
    clustering = config["kind"] == record.RUN_KIND
    with store.locked(samples, f"writing run '{key}'",
                      progress=progress) as lease:
        dataset = lease.dataset
        tx = store.Transaction(lease, key, expect)
        old = _replaced_config(dataset, key, expect)
        check_field_owners(dataset, key, [c.path for c in columns])
        if clustering:
            check_brain_key(dataset, key, record.brain_key_of(config))
        results = {**results, "timings": {**results.get("timings", {}),
                                          "lock_wait": round(lease.waited, 3)}}
        try:
            tx.begin()
            keys = tx.stage_rows(rows, columns, owners, progress=progress)
            attachments = []
            if fitted is not None:
                from .fitted import FORMAT

                attachments.append(tx.stage_attachment(fitted, "fitted"))
                results = {**results, "fitted": {
                    "file": attachments[0], "bytes": len(fitted),
                    "format": FORMAT}}
            tx.stage_record(samples, config, results,
                            attachments=attachments)
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
        store.verify(dataset, {c.path: tx.staged_counts[c.path]
                               for c in columns}, labels_path, single)
        if not clustering:
            return store.record_id(dataset, key)
        run = load_run(dataset, key)
        _present(dataset, run, old)
        return run


def _present(dataset, run, replaced=None):
    """Shows the stored run in the App. The run is complete whether or not
    this succeeds; a failure is logged and :func:`repair` tries again."""
    try:
        if replaced and record.brain_key_of(replaced) != \
                record.brain_key_of(run.config):
            presentation.hide(dataset, run.key, {"map": replaced.get("map")})
        presentation.present(dataset, run)
    except Exception as e:
        logger.warning("Run '%s' is stored, but showing it in the App "
                       "failed (%s); run repair to try again", run.key, e)


def amend_run(samples, run, rows, columns, results, config=None,
              replace=False, progress=None):
    """Writes more fields of ``run`` (a :class:`.results.ClusterRun` as the
    caller loaded it) and its updated results, in one transaction: with
    ``replace`` the given fields are replaced whole, else the rows given
    are added or updated and the others kept. Fails cleanly if another
    process changed the run since it was loaded. Returns the updated
    run."""
    config = dict(config or run.config)
    config["fields"] = {**run.fields, **{c.suffix: c.path for c in columns}}
    labels_path = run.labels_path
    single = bool(labels_path) and labels_path == run.patches_field
    with store.locked(samples, f"updating run '{run.key}'",
                      progress=progress) as lease:
        dataset = lease.dataset
        tx = store.Transaction(lease, run.key, run.record_id)
        check_field_owners(dataset, run.key, [c.path for c in columns])
        owners = None
        if labels_path:
            owners = _owners_of(run, rows)
        attachments = store.attachments_of(run.record_id)
        try:
            tx.begin()
            keys = tx.stage_rows(rows, columns, owners, progress=progress)
            tx.stage_record(None, config, results, timestamp=run.timestamp,
                            view_stages=run._view_stages,
                            attachments=attachments)
        except BaseException:
            tx.abort()
            raise
        for c in columns:
            tx.declare(c.suffix, c.path, run.key, run.run_id, c.kind)
        tx.merge(keys, labels_path, single, replace=replace)
        tx.point(run.key, tx.new_record)
        tx.drop_record(run.record_id, keep=attachments)
        tx.commit(progress=progress)
        updated = load_run(dataset, run.key)
        _present(dataset, updated)
        return updated


def _owners_of(run, label_ids):
    m = run.members()
    owner = dict(zip(m["id"], m["sample_id"]))
    return [owner[i] for i in label_ids]


def _replaced_config(dataset, key, expect):
    if expect is None:
        return {}
    loaded = store.load_record(expect)
    return loaded[0] if loaded else {}


def rename_run(samples, key, new_key):
    """Renames run ``key`` to ``new_key``. Fields and the map named after the
    key (the default) are renamed with it."""
    dataset = samples._dataset
    run = load_run(dataset, key)
    record.validate_run_key(new_key)
    with store.locked(dataset, f"renaming run '{key}'") as lease:
        run = load_run(lease.dataset, key)
        if store.record_id(dataset, new_key) is not None:
            raise ParamError(
                f"a run with key '{new_key}' already exists on dataset "
                f"'{dataset.name}'"
            )
        config = dict(run.config)
        renames = _renamed_fields(run, new_key)
        check_field_owners(dataset, new_key, list(renames.values()))
        brain_key = record.brain_key_of(config)
        if brain_key == record.map_key(key):
            check_brain_key(dataset, new_key, record.map_key(new_key))
            config["map"] = {**config["map"],
                             "brain_key": record.map_key(new_key)}
        config["fields"] = {s: renames.get(p, p)
                            for s, p in run.fields.items()}
        tx = store.Transaction(lease, key, run.record_id,
                               record_key=new_key)
        attachments = store.attachments_of(run.record_id)
        try:
            tx.begin()
            tx.stage_record(None, config, run.results,
                            timestamp=run.timestamp,
                            view_stages=run._view_stages,
                            attachments=attachments)
        except BaseException:
            tx.abort()
            raise
        labels_path = run.labels_path
        single = bool(labels_path) and labels_path == run.patches_field
        if renames:
            tx.rename_values(renames, labels_path, single)
        for suffix, path in config["fields"].items():
            tx.declare(suffix, path, new_key, run.run_id)
        for old_path in renames:
            tx.drop_field(old_path)
        tx.point(new_key, tx.new_record, unset=[key])
        tx.drop_record(run.record_id, keep=attachments)
        tx.commit()
        presentation.hide(lease.dataset, key, run.config)
        _present(lease.dataset, load_run(lease.dataset, new_key))


def _renamed_fields(run, new_key):
    """Old path -> new path of the fields named after the run key."""
    labels_path = run.labels_path
    out = {}
    for suffix, path in run.fields.items():
        if path == record.field_path(run.key, suffix, labels_path):
            out[path] = record.field_path(new_key, suffix, labels_path)
    return out


def delete_run(samples, key, kinds=(record.RUN_KIND,)):
    """Deletes run ``key`` (of one of ``kinds``), the fields it wrote and
    its map; nothing else."""
    dataset = samples._dataset
    _record_of_kind(dataset, key, kinds)
    with store.locked(dataset, f"deleting run '{key}'") as lease:
        rid, config = _record_of_kind(lease.dataset, key, kinds)
        tx = store.Transaction(lease, key, rid)
        tx.begin()
        tx.point(key, None)
        for path in _owned_fields(lease.dataset, config):
            tx.drop_field(path)
        tx.drop_record(rid)
        tx.commit()
        if config.get("kind") == record.RUN_KIND:
            presentation.hide(lease.dataset, key, config)


def _record_of_kind(dataset, key, kinds):
    found = records_of(dataset, kinds).get(key)
    if found is None:
        available = ", ".join(sorted(records_of(dataset, kinds))) or "none"
        what = "clustering run" if tuple(kinds) == (record.RUN_KIND,) else \
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


def repair(samples):
    """Removes the leftovers of killed runs on ``samples``' dataset and
    brings the App's view of its runs up to date. Returns a list of
    sentences saying what was done (empty when there was nothing)."""
    dataset = samples._dataset
    with store.locked(dataset, "repair") as lease:
        report = store.repair(lease)
        runs = {}
        for key in list_runs(lease.dataset):
            try:
                runs[key] = load_run(lease.dataset, key)
            except RunNotFound:
                continue
        report += presentation.repair(lease.dataset, runs)
        report += _unowned_run_fields(lease.dataset)
    return report


def _unowned_run_fields(dataset):
    """Fields of ours whose run is gone (written by an older version, or
    left by hand): removed."""
    live = {config.get("run_id") for _, config in
            records_of(dataset, record.RUN_KINDS).values()}
    out = []
    for path, field in dataset.get_field_schema(flat=True).items():
        info = getattr(field, "info", None) or {}
        if info.get("run_kind") not in record.RUN_KINDS:
            continue
        if info.get("run_id") in live:
            continue
        store._drop_field(dataset, path)
        out.append(f"removed field '{path}' of run '{info.get('run_key')}', "
                   "which no longer exists")
    return out
