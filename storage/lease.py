"""A per-dataset lock held in MongoDB itself, as a lease that expires.

FiftyOne saves a dataset's schema as a whole list, so two processes that
change one dataset's schema at once lose each other's fields. Every step of
ours that changes a dataset's schema, runs or App config therefore holds
this lock: one document per dataset in the ``image_clustering_leases``
collection of FiftyOne's database, so that it works across machines that
share the database.

The holder renews the lease from a background thread. A holder that dies
stops renewing, and its lease expires after ``IMAGE_CLUSTERING_LEASE_SECONDS``
(default 30); a holder on the same host whose process is gone is replaced at
once. Time is the database server's (``$$NOW``), so clocks on different
machines do not matter.

The lease document also carries the journal of the write in progress (see
:mod:`.store`), so that whoever takes over an expired lease finds, in the
same document, what the dead holder left half done.
"""

import os
import socket
import threading
import time
import uuid

COLLECTION = "image_clustering_leases"


class LeaseLost(RuntimeError):
    """The lease expired or was taken over while this process held it."""


def lease_seconds():
    return float(os.environ.get("IMAGE_CLUSTERING_LEASE_SECONDS", "30"))


def collection():
    from fiftyone.core.odm import get_db_conn

    return get_db_conn()[COLLECTION]


def _process_started(pid):
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def _host_identity():
    """This host as far as process ids go: its name and its PID namespace.
    Containers that share a host name but not a PID namespace cannot see
    each other's processes, so they must not judge each other's holders
    by pid."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    name = socket.gethostname()
    return f"{name}/{namespace}" if namespace else name


_HOST = _host_identity()


def holder_is_gone(doc):
    """Whether the holder recorded in ``doc`` is a process of this host (and
    PID namespace) that no longer runs (a recycled pid has another start
    time)."""
    if not doc or doc.get("host") != _HOST or not doc.get("pid"):
        return False
    started = _process_started(doc["pid"])
    return started is None or started != doc.get("pid_started")


def describe_holder(doc):
    return (
        f"{doc.get('purpose') or 'a write'} by {doc.get('host')} "
        f"pid {doc.get('pid')}"
    )


class Lease:
    """The lock on one dataset, held by this object until :meth:`release`.

    Attributes:
        dataset: the FiftyOne dataset, reloaded when the lease was taken
        previous: the lease document as the previous holder left it
            (``None`` if there was none); its ``journal`` is what a dead
            holder left unfinished
        waited: seconds spent waiting for the lease
    """

    def __init__(self, dataset, purpose, progress=None, timeout=None):
        self.dataset = dataset
        self.purpose = purpose
        self.owner = uuid.uuid4().hex
        self._coll = collection()
        self._id = dataset._doc.id
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._heartbeat = None
        self.previous = None
        self.waited = 0.0
        #: Called, in order, once the lease is given back (work that needs
        #: the lock again, such as showing a run a dead holder left).
        self.after_release = []
        self._acquire(progress, timeout)

    # -- taking and giving back -------------------------------------------

    def _claim(self, ttl_ms, extra_filter):
        """Takes the lease if ``extra_filter`` matches; returns whether it
        did and the document as it was before."""
        from pymongo import ReturnDocument

        pid = os.getpid()
        before = self._coll.find_one_and_update(
            {"_id": self._id, **extra_filter},
            [{"$set": {
                "owner": self.owner,
                "host": _HOST,
                "pid": pid,
                "pid_started": _process_started(pid),
                "purpose": self.purpose,
                "acquired": "$$NOW",
                "expires": {"$add": ["$$NOW", ttl_ms]},
            }}],
            return_document=ReturnDocument.BEFORE,
        )
        return before is not None, before

    def _acquire(self, progress, timeout):
        ttl_ms = int(lease_seconds() * 1000)
        self._coll.update_one(
            {"_id": self._id}, {"$setOnInsert": {"owner": None}}, upsert=True
        )
        free = {"$or": [
            {"owner": None},
            {"$expr": {"$lt": ["$expires", "$$NOW"]}},
        ]}
        started = time.time()
        delay = 0.05
        told = None
        while True:
            ok, before = self._claim(ttl_ms, free)
            if not ok:
                holder = self._coll.find_one({"_id": self._id})
                if holder and holder.get("owner") and holder_is_gone(holder):
                    ok, before = self._claim(
                        ttl_ms, {"owner": holder["owner"]}
                    )
            if ok:
                # A lease released cleanly leaves no journal; one with a
                # journal was left by a holder that stopped mid-write.
                self.previous = before if before.get("journal") else None
                break
            waited = time.time() - started
            if timeout is not None and waited > timeout:
                raise TimeoutError(
                    f"dataset '{self.dataset.name}' is locked by "
                    f"{describe_holder(holder or {})}"
                )
            if progress is not None and holder and holder != told:
                told = holder
                progress(
                    f"waiting for the lock on dataset '{self.dataset.name}', "
                    f"held for {describe_holder(holder)}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        self.waited = time.time() - started
        self._heartbeat = threading.Thread(
            target=self._renew, args=(ttl_ms,), daemon=True
        )
        self._heartbeat.start()
        # What other processes did to the dataset while we waited.
        self.dataset.reload()

    def _renew(self, ttl_ms):
        interval = max(ttl_ms / 1000 / 4, 0.05)
        while not self._stop.wait(interval):
            try:
                result = self._coll.update_one(
                    {"_id": self._id, "owner": self.owner},
                    [{"$set": {"expires": {"$add": ["$$NOW", ttl_ms]}}}],
                )
            except Exception:
                # A passing network error: the next beat tries again, and
                # the owner-conditional writes catch a real loss.
                continue
            if result.matched_count == 0:
                self._lost.set()
                return

    def release(self):
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self._coll.update_one(
            {"_id": self._id, "owner": self.owner},
            {"$set": {"owner": None, "expires": None, "purpose": None}},
        )
        actions, self.after_release = self.after_release, []
        for action in actions:
            action()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    # -- the journal kept in the lease document ----------------------------

    def check(self):
        """Raises :class:`LeaseLost` if another process took the lease."""
        if self._lost.is_set():
            raise LeaseLost(
                f"lost the lock on dataset '{self.dataset.name}' (this "
                "process stalled for longer than the lease); nothing of "
                "this write was committed"
            )

    def confirm(self):
        """Renews the lease in the database and raises :class:`LeaseLost`
        unless it is still this holder's: called before each step of a
        committed write, so that a holder that stalled past its lease (and
        whose heartbeat has not noticed yet) applies nothing more."""
        self.check()
        ttl_ms = int(lease_seconds() * 1000)
        result = self._coll.update_one(
            {"_id": self._id, "owner": self.owner},
            [{"$set": {"expires": {"$add": ["$$NOW", ttl_ms]}}}],
        )
        if result.matched_count == 0:
            self._lost.set()
            self.check()

    def update_journal(self, changes):
        """Sets ``journal.<k>`` for each item of ``changes`` (or the whole
        journal with ``{"journal": ...}``), only while the lease is ours."""
        self.check()
        result = self._coll.update_one(
            {"_id": self._id, "owner": self.owner}, {"$set": changes}
        )
        if result.matched_count == 0:
            self._lost.set()
            self.check()

    def append_journal(self, name, value):
        """Appends ``value`` to the list ``journal.<name>``, only while the
        lease is ours."""
        self.check()
        result = self._coll.update_one(
            {"_id": self._id, "owner": self.owner},
            {"$push": {f"journal.{name}": value}})
        if result.matched_count == 0:
            self._lost.set()
            self.check()

    def journal(self):
        doc = self._coll.find_one({"_id": self._id}, {"journal": 1})
        return (doc or {}).get("journal")


def current_holder(dataset):
    """The lease document of ``dataset`` if a live process holds it."""
    doc = collection().find_one({"_id": dataset._doc.id})
    if not doc or not doc.get("owner"):
        return None
    from fiftyone.core.odm import get_db_conn

    now = get_db_conn().command("hello").get("localTime")
    expires = doc.get("expires")
    if expires is not None and now is not None and expires < now:
        return None
    if holder_is_gone(doc):
        return None
    return doc

