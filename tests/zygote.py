"""A process that has already imported FiftyOne and this package, and forks
one real child process per command. Fork-based children start in a fraction
of a second, where a fresh interpreter takes several, which makes matrices
of hundreds of killed processes affordable. It forks before it ever opens a
database connection, so every child connects afresh.

Protocol: one JSON command per line on stdin,
``{"action": NAME, "args": {...}, "out": PATH}``; the child writes its JSON
result to PATH; the zygote answers one JSON line ``{"exit": code,
"signal": number}`` once the child has ended. ``{"action": "race", ...}``
forks several children that start their work together.
"""

import json
import os
import signal
import sys
import time
import traceback

import fiftyone as fo  # noqa: F401  (imported once, before forking)

import image_clustering as ic
from image_clustering.clustering import api as runs

import pymongo.collection
import pymongo.database

# The calls that change the database; a kill before any of them is a kill
# between two states the store must survive.
MUTATING = (
    "insert_one", "insert_many", "update_one", "update_many", "replace_one",
    "delete_one", "delete_many", "find_one_and_update",
    "find_one_and_replace", "find_one_and_delete", "bulk_write",
    "aggregate", "drop", "create_index", "rename",
)


class KillSwitch:
    """Counts the mutating database calls made inside the scoped functions
    and SIGKILLs this process just before call number ``kill_at``."""

    def __init__(self, kill_at):
        self.kill_at = kill_at
        self.active = False
        self.calls = 0

    def before_call(self, cls_name, name, args, kwargs):
        if not self.active:
            return
        if name == "aggregate":
            pipeline = args[0] if args else kwargs.get("pipeline", [])
            if not any("$merge" in s or "$out" in s for s in pipeline):
                return
        self.calls += 1
        if self.kill_at is not None and self.calls >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self, scopes=None):
        switch = self

        def wrap(cls, name):
            original = getattr(cls, name)

            def call(self, *args, **kwargs):
                switch.before_call(cls.__name__, name, args, kwargs)
                return original(self, *args, **kwargs)

            setattr(cls, name, call)

        for name in MUTATING:
            wrap(pymongo.collection.Collection, name)
        wrap(pymongo.database.Database, "drop_collection")

        def scoped(fn):
            def run(*args, **kwargs):
                switch.active = True
                try:
                    return fn(*args, **kwargs)
                finally:
                    switch.active = False

            return run

        for module, name in scopes or [(runs, "store_run"),
                                       (runs, "rename_run"),
                                       (runs, "delete_run")]:
            setattr(module, name, scoped(getattr(module, name)))


def _dataset(name):
    return fo.load_dataset(name)


def action_write(dataset, key, params, kill_at=None):
    switch = KillSwitch(kill_at)
    switch.install()
    ic.compute_clusters(_dataset(dataset), key, **params)
    return {"calls": switch.calls}


def action_rename(dataset, key, new_key, kill_at=None):
    switch = KillSwitch(kill_at)
    switch.install()
    runs.rename_run(_dataset(dataset), key, new_key)
    return {"calls": switch.calls}


def action_delete(dataset, key, kill_at=None):
    switch = KillSwitch(kill_at)
    switch.install()
    runs.delete_run(_dataset(dataset), key)
    return {"calls": switch.calls}


# Changes to a stored run (amends, tags), each scoped to the one SDK call
# that makes it.
AMENDS = {
    "carry": "carry_over",
    "name": "name_cluster",
    "label": "label_clusters",
    "group": "group_clusters",
    "tag": "tag_clusters",
    "assign": "assign_clusters",
}


def action_amend(dataset, verb, args, kill_at=None):
    name = AMENDS[verb]
    switch = KillSwitch(kill_at)
    switch.install([(runs, name)])
    getattr(runs, name)(_dataset(dataset), **args)
    return {"calls": switch.calls}


def action_tree(dataset, key, method, args, kill_at=None):
    """A change to a hierarchy's cut (a method of the run object)."""
    from image_clustering.clustering.results import ClusterRun

    switch = KillSwitch(kill_at)
    switch.install([(ClusterRun, method)])
    getattr(runs.load_run(_dataset(dataset), key), method)(**args)
    return {"calls": switch.calls}


def action_exact_duplicates(dataset, key, kill_at=None):
    from image_clustering.analysis import duplicates

    switch = KillSwitch(kill_at)
    switch.install([(duplicates, "find_exact_duplicates")])
    duplicates.find_exact_duplicates(_dataset(dataset), key=key)
    return {"calls": switch.calls}


def action_delete_duplicates(dataset, key, confirm, kill_at=None):
    from image_clustering.analysis.results import DuplicatesResults

    switch = KillSwitch(kill_at)
    switch.install([(DuplicatesResults, "delete_duplicates")])
    DuplicatesResults.load(_dataset(dataset), key).delete_duplicates(confirm)
    return {"calls": switch.calls}


def action_embed(dataset, slice_size, kill_at=None):
    """Embeds with pixels8 and writes the cache every ``slice_size``
    images, killed at cache write ``kill_at``."""
    from image_clustering.clustering import embed as embeddings

    embeddings.CACHE_SLICE = slice_size
    switch = KillSwitch(kill_at)
    switch.install([(embeddings, "_write_cache")])
    embeddings.get_embeddings(_dataset(dataset),
                              embedder={"name": "pixels", "size": 8},
                              batch_size=2)
    return {"calls": switch.calls}


def action_import(folder, name, kill_at=None):
    """Builds dataset ``name`` from ``folder`` as the command line does."""
    from image_clustering.cli import folders as datasets

    switch = KillSwitch(kill_at)
    switch.install([(datasets, "dataset_from_folder")])
    datasets.dataset_from_folder(folder, name)
    return {"calls": switch.calls}


def _wait_for(predicate, seconds=120):
    deadline = time.time() + seconds
    while not predicate() and time.time() < deadline:
        time.sleep(0.005)


def action_racer(dataset, key, params, go_file, together=None):
    """Loads the dataset, then waits for ``go_file`` so that all racers
    start at once; reports success or the error, with times. With
    ``together`` (the number of racers), each also waits, once its request
    has been checked against the dataset, until all have been: every racer
    then works from what it saw before any of them wrote."""
    ds = _dataset(dataset)
    open(go_file + f".ready.{os.getpid()}", "w").close()
    while not os.path.exists(go_file):
        time.sleep(0.005)
    started = time.time()
    stamps = {}
    folder = os.path.dirname(go_file)

    def validated():
        return len([f for f in os.listdir(folder) if ".validated." in f])

    def progress(fraction, message):
        if "validated" in stamps:
            return
        stamps["validated"] = time.time()
        if together:
            open(go_file + f".validated.{os.getpid()}", "w").close()
            _wait_for(lambda: validated() >= together)

    try:
        run = ic.compute_clusters(ds, key, progress=progress, **params)
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}",
                "started": started, **stamps}
    return {"ok": True, "run_id": run.run_id, "started": started,
            "finished": time.time(), **stamps}


ACTIONS = {
    "write": action_write,
    "rename": action_rename,
    "delete": action_delete,
    "racer": action_racer,
    "embed": action_embed,
    "import": action_import,
    "amend": action_amend,
    "tree": action_tree,
    "delete_duplicates": action_delete_duplicates,
    "exact_duplicates": action_exact_duplicates,
}


def _fork(action, args, out):
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        result = ACTIONS[action](**args)
    except BaseException as e:
        result = {"error": f"{type(e).__name__}: {e}",
                  "traceback": traceback.format_exc()}
        code = 3
    with open(out, "w") as f:
        json.dump(result, f)
    os._exit(code)


def _status(raw):
    if os.WIFSIGNALED(raw):
        return {"exit": None, "signal": os.WTERMSIG(raw)}
    return {"exit": os.WEXITSTATUS(raw), "signal": None}


def main():
    for line in sys.stdin:
        command = json.loads(line)
        if command["action"] == "race":
            args = command["args"]
            pids = [
                _fork("racer", {**args, "key": args["key"].format(i=i),
                                "go_file": command["go"]}, out)
                for i, out in enumerate(command["outs"])
            ]
            deadline = time.time() + 120
            while len([f for f in os.listdir(os.path.dirname(command["go"]))
                       if ".ready." in f]) < len(pids):
                if time.time() > deadline:
                    break
                time.sleep(0.01)
            open(command["go"], "w").close()
            answer = [_status(os.waitpid(pid, 0)[1]) for pid in pids]
        else:
            pid = _fork(command["action"], command["args"], command["out"])
            answer = _status(os.waitpid(pid, 0)[1])
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
