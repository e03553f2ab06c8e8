"""Repair: what killed writes left behind, found and removed, with a
sentence for each thing done."""

from . import schema
from .mongo import db, fs, samples_coll
from .records import (
    StoreError,
    delete_record_doc,
    is_our_config,
    load_record,
    record_ids,
)
from .steps import drop_field
from .transaction import STAGE_PREFIX


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
    report += _drop_damaged_records(dataset)
    report += _drop_staging_fields(dataset)
    report += _drop_orphan_records(dataset)
    report += _drop_orphan_stages(dataset)
    report += _drop_orphan_attachments(dataset)
    dataset.reload()
    dataset._run_cache.clear()
    return report


def _drop_dangling_keys(dataset):
    runs = record_ids(dataset)
    present = {d["_id"] for d in db().runs.find(
        {"_id": {"$in": list(runs.values())}}, {"_id": 1})}
    gone = [k for k, v in runs.items() if v not in present]
    if gone:
        db().datasets.update_one(
            {"_id": dataset._doc.id},
            {"$unset": {f"runs.{k}": "" for k in gone}},
        )
    return [f"removed run key '{k}', whose record was missing" for k in gone]


def _drop_staging_fields(dataset):
    dataset.reload()
    out = []
    for path in sorted(dataset.get_field_schema(flat=True)):
        if schema.is_staging_name(path):
            drop_field(dataset, path)
            out.append(f"removed staging field '{path}'")
    return out


def _drop_damaged_records(dataset):
    """Runs of ours whose results can no longer be read (their stored
    results were removed by hand, or lost): unusable, so removed; their
    fields go with the other fields of runs that no longer exist."""
    out = []
    for key, rid in record_ids(dataset).items():
        doc = db().runs.find_one({"_id": rid}, {"config": 1})
        if doc is None or not is_our_config(doc.get("config")):
            continue
        try:
            load_record(rid)
        except StoreError:
            db().datasets.update_one({"_id": dataset._doc.id},
                                     {"$unset": {f"runs.{key}": ""}})
            delete_record_doc(rid)
            out.append(f"removed run '{key}', whose results could not be "
                       "read")
    return out


def _drop_orphan_records(dataset):
    referenced = set(record_ids(dataset).values())
    out = []
    for doc in db().runs.find({"_dataset_id": dataset._doc.id},
                               {"key": 1, "config": 1}):
        if doc["_id"] in referenced:
            continue
        if not is_our_config(doc.get("config")):
            continue
        delete_record_doc(doc["_id"])
        out.append(f"removed an unreferenced record of run "
                   f"'{doc.get('key')}'")
    return out


def _drop_orphan_attachments(dataset):
    """Attachments of this dataset's runs that no record owns."""
    owned = set()
    for doc in db().runs.find({"_dataset_id": dataset._doc.id},
                               {"results_meta": 1}):
        owned.update((doc.get("results_meta") or {}).get("attachments", []))
    out = []
    for f in db()["fs.files"].find(
            {"metadata.dataset_id": dataset._doc.id,
             "metadata.image_clustering": {"$exists": True}}, {"_id": 1}):
        if str(f["_id"]) not in owned:
            fs().delete(f["_id"])
            out.append(f"removed stored data {f['_id']} of a run that no "
                       "longer exists")
    return out


def _drop_orphan_stages(dataset):
    """Staging collections are only ever alive inside a held lease: any
    that this dataset's journal does not name is left over."""
    out = []
    for name in db().list_collection_names(
            filter={"name": {"$regex": f"^{STAGE_PREFIX}"}}):
        doc = db()[name].find_one({}, {"_id": 1, "s": 1})
        if doc is None:
            db().drop_collection(name)
            continue
        owner = doc.get("s", doc["_id"])
        if samples_coll(dataset).count_documents({"_id": owner},
                                                  limit=1):
            db().drop_collection(name)
            out.append(f"removed staging collection '{name}'")
    return out
