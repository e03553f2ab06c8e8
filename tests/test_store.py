"""The run store beyond the matrices: repair, reads of a half-written run,
ownership of fields, the lock, and the checks after each write."""

import threading
import time

import numpy as np
import pytest

import image_clustering as ic
from image_clustering.storage import schema as record
from image_clustering.storage import transaction as store
from image_clustering.storage.lease import Lease, collection

PIXELS8 = {"name": "pixels", "size": 8}
KMEANS2 = dict(embedder=PIXELS8, reducer="none", method="kmeans",
               n_clusters=2, map="pca")


@pytest.fixture
def shared(two_groups):
    """The two-groups dataset, persistent so that child processes see it,
    with its embeddings cached."""
    two_groups.persistent = True
    ic.compute_clusters(two_groups, "warm", **KMEANS2)
    ic.delete_run(two_groups, "warm")
    return two_groups


def _kill_at(zygote, ds, key, n, **params):
    status, _ = zygote.run("write", dataset=ds.name, key=key,
                           params={**KMEANS2, **params}, kill_at=n)
    assert status["signal"] == 9
    ds.reload()


def test_repair_reports_and_removes_what_killed_writes_left(zygote, shared):
    ds = shared
    # killed while staging: a journal, a staging collection, a record
    for n in range(1, 20):
        _kill_at(zygote, ds, "k", n)
        journal = collection().find_one({"_id": ds._doc.id})["journal"]
        if journal and journal["state"] == "staging" and journal["record"]:
            break
    else:
        pytest.fail("no kill point fell while staging")
    report = ic.repair(ds)
    assert any("undid the interrupted write of run 'k'" in line
               for line in report), report
    assert ic.list_runs(ds) == []
    assert ic.repair(ds) == []

    # a field of ours whose run is gone, a staging field, a dangling key
    import fiftyone as fo

    ds.add_sample_field("gone_cluster", fo.IntField,
                        info=record.field_info("gone", "no-such-run"))
    ds.add_sample_field(record.staging_name("abc", "cluster"), fo.IntField)
    from fiftyone.core.odm import get_db_conn
    from bson import ObjectId

    get_db_conn().datasets.update_one(
        {"_id": ds._doc.id}, {"$set": {"runs.dangling": ObjectId()}})
    report = ic.repair(ds)
    text = "\n".join(report)
    assert "removed field 'gone_cluster'" in text
    assert "removed staging field" in text
    assert "removed run key 'dangling'" in text
    ds.reload()
    assert ds.get_field("gone_cluster") is None
    assert not ds.has_run("dangling")
    assert ic.repair(ds) == []


def test_reads_finish_a_write_that_a_killed_process_committed(zygote,
                                                              shared):
    from image_clustering.operators.panel import cluster_rows

    ds = shared
    ic.compute_clusters(ds, "k", **KMEANS2)
    # find a kill point after the commit: the journal is committed
    for n in range(20, 60):
        _kill_at(zygote, ds, "k", n, n_clusters=3, overwrite=True)
        journal = collection().find_one({"_id": ds._doc.id})["journal"]
        if journal and journal["state"] == "committed":
            break
        ic.repair(ds)
        if ic.load_run(ds, "k").config["params"]["n_clusters"] == 3:
            ic.compute_clusters(ds, "k", overwrite=True, **KMEANS2)
    else:
        pytest.fail("no kill point fell after the commit")
    # list, info and the panel read the finished run, never half of it
    assert ic.list_runs(ds) == ["k"]
    info = ic.get_run_info(ds, "k")
    assert info["config"]["params"]["n_clusters"] == 3
    assert sorted(set(ds.values("k_cluster"))) == [0, 1, 2]
    run, rows = cluster_rows(ds, "k")
    assert sum(r["size"] for r in rows) == 24
    assert collection().find_one({"_id": ds._doc.id})["journal"] is None


def test_deleting_a_run_leaves_every_other_run_whole(two_groups):
    ic.compute_clusters(two_groups, "a", **KMEANS2)
    ic.compute_clusters(two_groups, "b", field_prefix="a_b", **KMEANS2)
    b_values = dict(zip(*two_groups.values(["id", "a_b_cluster"])))
    ic.delete_run(two_groups, "a")
    two_groups.reload()
    assert ic.list_runs(two_groups) == ["b"]
    assert dict(zip(*two_groups.values(["id", "a_b_cluster"]))) == b_values
    assert two_groups.list_brain_runs() == ["b_map"]
    assert two_groups.get_field("a_cluster") is None


def test_a_field_another_run_owns_is_never_deleted_with_this_one(two_groups):
    ic.compute_clusters(two_groups, "a", **KMEANS2)
    ic.compute_clusters(two_groups, "b", **KMEANS2)
    # run b's record is edited to claim a field of run a
    run_b = ic.load_run(two_groups, "b")
    from fiftyone.core.odm import get_db_conn

    get_db_conn().runs.update_one(
        {"_id": run_b.record_id},
        {"$set": {"config.fields.cluster": "a_cluster"}})
    ic.delete_run(two_groups, "b")
    two_groups.reload()
    assert two_groups.get_field("a_cluster") is not None
    assert len(two_groups.exists("a_cluster")) == 24


def test_a_process_waiting_for_the_lock_says_so(two_groups):
    ic.compute_clusters(two_groups, "cache", **KMEANS2)
    messages = []
    waiting = threading.Event()
    done = threading.Event()
    errors = []

    def progress(fraction, message):
        messages.append(message)
        if "waiting for the lock" in message:
            waiting.set()

    def run():
        try:
            ic.compute_clusters(two_groups, "waiter", progress=progress,
                                **KMEANS2)
        except Exception as e:
            errors.append(e)
        done.set()

    holder = Lease(two_groups, "a test holding the lock")
    try:
        thread = threading.Thread(target=run)
        thread.start()
        assert waiting.wait(120), messages
        said = time.time()
        assert any("a test holding the lock" in m for m in messages)
        # It waits for as long as the lock is held: not done yet.
        assert not done.is_set()
    finally:
        released = time.time()
        holder.release()
    thread.join(120)
    assert not errors and done.is_set()
    assert ic.load_run(two_groups, "waiter").results["timings"][
        "lock_wait"] >= released - said


def test_an_expired_lease_of_another_machine_is_taken_over(two_groups):
    import datetime

    collection().update_one(
        {"_id": two_groups._doc.id},
        {"$set": {"owner": "someone", "host": "another-machine", "pid": 1,
                  "expires": datetime.datetime.utcnow() -
                  datetime.timedelta(seconds=5)}},
        upsert=True)
    # the lease is free once expired, whoever held it
    run = ic.compute_clusters(two_groups, "after", **KMEANS2)
    assert run.results["timings"]["lock_wait"] < 5


def test_the_write_is_checked_against_what_was_staged(two_groups,
                                                      monkeypatch):
    from image_clustering.storage import steps

    real = steps._merge

    def merge_dropping_a_field(dataset, step):
        keys = dict(step["keys"])
        keys.pop(next(p for p in keys if p.endswith("_dist")))
        real(dataset, {**step, "keys": keys})

    monkeypatch.setattr(steps, "_merge", merge_dropping_a_field)
    with pytest.raises(steps.IntegrityError, match="k_dist has 0 of 24"):
        ic.compute_clusters(two_groups, "k", **KMEANS2)


def test_samples_deleted_or_added_since_the_run_are_reported(two_groups,
                                                             tmp_path):
    import fiftyone as fo
    from conftest import write_gray

    ic.compute_clusters(two_groups, "k", **KMEANS2)
    assert ic.get_run_info(two_groups, "k")["changes"] == {
        "deleted": 0, "added": 0, "assigned": 0}
    two_groups.delete_samples(two_groups.take(3, seed=1))
    two_groups.add_sample(fo.Sample(filepath=str(
        write_gray(tmp_path / "new.png", 100))))
    info = ic.get_run_info(two_groups, "k")
    assert info["changes"] == {"deleted": 3, "added": 1, "assigned": 0}
    view = ic.load_clusters_view(two_groups, "k")
    assert sum(len(g) for g in view.iter_dynamic_groups()) == 21


def test_empty_and_reserved_run_keys_are_refused(two_groups):
    for key in ("", "_x", record.STAGING_PREFIX + "x"):
        with pytest.raises(ic.ParamError, match="run key"):
            ic.compute_clusters(two_groups, key, **KMEANS2)
    assert ic.list_runs(two_groups) == []


@pytest.mark.parametrize(
    "kwargs,name",
    [
        (dict(method="dbscan", eps=float("inf")), "eps"),
        (dict(reducer={"name": "umap", "min_dist": float("inf")}),
         "min_dist"),
        (dict(seed="abc"), "seed"),
        (dict(seed=-1), "seed"),
        (dict(num_workers=-1), "num_workers"),
        (dict(batch_size=-5), "batch_size"),
        (dict(method="hdbscan", min_cluster_size=5, min_samples=500),
         "min_samples"),
    ],
)
def test_raw_parameters_are_refused_by_name_before_any_work(two_groups,
                                                            kwargs, name):
    before = set(two_groups.get_field_schema())
    params = {**KMEANS2, **kwargs}
    if "method" in kwargs and kwargs["method"] != "kmeans":
        params.pop("n_clusters")
    with pytest.raises(ic.ParamError, match=f"'{name}'"):
        ic.compute_clusters(two_groups, "bad", **params)
    assert set(two_groups.get_field_schema()) == before


@pytest.mark.parametrize("field", ["ground_truth.evil", "metadata.width2",
                                   "ground_truth", "filepath"])
def test_embeddings_are_never_written_into_another_field(two_groups, field):
    before = two_groups.get_field_schema(flat=True)
    with pytest.raises(ic.ParamError, match="embeddings_field"):
        ic.compute_clusters(two_groups, "k", embeddings_field=field,
                            **KMEANS2)
    assert two_groups.get_field_schema(flat=True).keys() == before.keys()
    assert ic.list_runs(two_groups) == []
    assert ic.repair(two_groups) == []


def test_store_writes_values_by_id_whatever_the_order(two_groups):
    # the run's view is in reverse order: values must still land by id
    view = two_groups.sort_by("filepath", reverse=True)
    run = ic.compute_clusters(view, "rev", **KMEANS2)
    ids, clusters, dists = two_groups.values(["id", "rev_cluster",
                                              "rev_dist"])
    X = {i: np.asarray(v) for i, v in
         zip(*two_groups.values(["id", "pixels8_embedding"]))}
    for c in run.clusters:
        centre = np.asarray(c["centre"])
        for sid, cl, d in zip(ids, clusters, dists):
            if cl == c["id"]:
                assert abs(np.linalg.norm(X[sid] - centre) - d) < 1e-5


def test_an_amend_is_checked_against_what_was_staged(two_groups,
                                                     monkeypatch):
    from image_clustering.storage import steps

    ic.compute_clusters(two_groups, "k", **KMEANS2)
    real = steps._merge

    def merge_dropping_the_names(dataset, step):
        keys = {p: k for p, k in step["keys"].items()
                if not p.endswith("_label")}
        real(dataset, {**step, "keys": keys})

    monkeypatch.setattr(steps, "_merge", merge_dropping_the_names)
    with pytest.raises(steps.IntegrityError, match="k_label has 0 of 12"):
        ic.name_cluster(two_groups, "k", 0, "first")


def test_a_writer_that_lost_its_lease_after_committing_applies_no_step(
        two_groups, monkeypatch):
    from image_clustering.storage.lease import LeaseLost

    real = Lease.update_journal

    def commit_then_lose_the_lease(self, changes):
        real(self, changes)
        if changes.get("journal.state") == "committed":
            # As when this process stalls past its lease and another takes
            # the dataset over.
            collection().update_one({"_id": self._id},
                                    {"$set": {"owner": "another-writer"}})

    monkeypatch.setattr(Lease, "update_journal", commit_then_lose_the_lease)
    with pytest.raises(LeaseLost):
        ic.compute_clusters(two_groups, "k", **KMEANS2)
    monkeypatch.undo()
    try:
        doc = collection().find_one({"_id": two_groups._doc.id})
        two_groups.reload()
        applied = doc["journal"]["next"], two_groups.get_field("k_cluster")
    finally:
        # The new holder (here: the next call, once the other lets go)
        # finishes the write, whatever the checks below say.
        collection().update_one({"_id": two_groups._doc.id},
                                {"$set": {"owner": None}})
        keys = ic.list_runs(two_groups)

    assert doc["journal"]["state"] == "committed"
    assert applied == (0, None)
    assert keys == ["k"]
    assert len(two_groups.exists("k_cluster")) == 24


def test_a_holder_is_known_by_host_and_pid_namespace(two_groups):
    import os
    import socket

    from image_clustering.storage import lease as leases

    namespace = os.readlink("/proc/self/ns/pid")
    identity = f"{socket.gethostname()}/{namespace}"
    held = Lease(two_groups, "a test")
    try:
        doc = collection().find_one({"_id": two_groups._doc.id})
    finally:
        held.release()
    assert doc["host"] == identity
    # A pid of this host and namespace whose process is gone (its start
    # time differs) frees the lease at once ...
    me = os.getpid()
    assert leases.holder_is_gone({"host": identity, "pid": me,
                                  "pid_started": 1.0})
    # ... but a holder in a container that shares the host name and not the
    # PID namespace cannot be judged by pid: it waits for the lease to expire.
    assert not leases.holder_is_gone({
        "host": f"{socket.gethostname()}/pid:[1]", "pid": me,
        "pid_started": 1.0})
