"""Run records as the database holds them: which key names which record,
a record's config and results, and the large attachments it owns."""

from .mongo import db, fs, oid
from .schema import RUN_KINDS


class StoreError(RuntimeError):
    """A write that could not be applied as asked; nothing was changed."""


def dataset_doc(dataset):
    return db().datasets.find_one(
        {"_id": dataset._doc.id}, {"runs": 1, "sample_fields": 1}
    )


def record_ids(dataset):
    """Run key -> run document id, as the database holds them now."""
    doc = dataset_doc(dataset) or {}
    return {k: v for k, v in (doc.get("runs") or {}).items() if v is not None}


def record_id(dataset, key):
    return record_ids(dataset).get(key)




def load_record(record_oid):
    """The stored run document as ``(config, results, timestamp, doc)``;
    ``None`` when no record has that id. A record whose results cannot be
    read raises :class:`StoreError`: the run exists but is damaged, which
    is not the same as no run."""
    from bson import json_util

    doc = db().runs.find_one({"_id": record_oid})
    if doc is None:
        return None
    config = dict(doc.get("config") or {})
    results = {}
    if doc.get("results") is not None:
        results = _read_results(doc)
    return config, results, doc.get("timestamp"), doc


def _read_results(doc):
    import gridfs
    from bson import json_util

    try:
        blob = fs().get(doc["results"]).read()
    except gridfs.errors.NoFile:
        raise StoreError(
            f"the results of run '{doc.get('key')}' are missing from the "
            "database; run repair to remove the run, or compute it again"
        ) from None
    try:
        results = json_util.loads(blob.decode())
    except ValueError as e:
        raise StoreError(
            f"the results of run '{doc.get('key')}' cannot be read ({e}); "
            "run repair to remove the run, or compute it again") from None
    results.pop("cls", None)
    return results


def is_our_config(config):
    """Whether a run record is one of this plugin's (any kind)."""
    return (config or {}).get("kind") in RUN_KINDS


def delete_record_doc(record_oid, keep=()):
    doc = db().runs.find_one({"_id": record_oid},
                              {"results": 1, "results_meta": 1})
    if doc is None:
        return
    for attachment in (doc.get("results_meta") or {}).get("attachments", []):
        if attachment not in keep:
            fs().delete(oid(attachment))
    if doc.get("results") is not None:
        fs().delete(doc["results"])
    db().runs.delete_one({"_id": record_oid})


def attachments_of(record_oid):
    doc = db().runs.find_one({"_id": record_oid}, {"results_meta": 1})
    return list(((doc or {}).get("results_meta") or {}).get("attachments",
                                                            []))


def read_attachment(attachment):
    """The bytes of a run's attachment; raises ``StoreError`` when it is
    missing."""
    import gridfs

    try:
        return fs().get(oid(attachment)).read()
    except gridfs.errors.NoFile:
        raise StoreError(f"the run's stored data {attachment} is missing; "
                         "run repair, or compute the run again") from None


def serialize_view(view):
    """The serialized stages of a view (``None`` for a whole dataset)."""
    from bson import json_util
    import fiftyone.core.view as fov

    if isinstance(view, fov.DatasetView):
        return [json_util.dumps(s)
                for s in view._serialize(include_uuids=False)]
    return None
