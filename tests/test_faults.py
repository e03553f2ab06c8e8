"""The fault matrix: a real child process SIGKILLs itself just before each
database call that changes anything while a run is written, overwritten,
renamed or deleted. After each kill the dataset must be in one of two
states (as it was, or with the change complete) once the next call has
run, with nothing left behind, and the same change must then succeed.

Slow (hundreds of processes): marked ``faults``; CI runs it."""

import json
import os

import fiftyone as fo
import pytest

import image_clustering as ic
from image_clustering.storage import schema as record
from image_clustering.storage import transaction as store
from image_clustering.storage.lease import collection

from conftest import REPO

pytestmark = pytest.mark.faults

BASE = dict(embedder={"name": "pixels", "size": 8}, reducer="none",
            method="kmeans", map="pca")
OLD = dict(BASE, n_clusters=2)
NEW = dict(BASE, n_clusters=3)


@pytest.fixture
def fault_dataset(two_groups):
    two_groups.persistent = True
    ic.compute_clusters(two_groups, "warm", **OLD)  # fills the cache
    ic.delete_run(two_groups, "warm")
    return two_groups


def _amended(results):
    """What amends change in a run's results (the time of the last
    assignment aside, which differs from one assignment to the next)."""
    assigned = dict(results.get("assigned") or {})
    if assigned.get("last"):
        assigned["last"] = {k: v for k, v in assigned["last"].items()
                            if k != "at"}
    return {"names": results.get("names"), "groups": results.get("groups"),
            "assigned": assigned, "carried": results.get("carried"),
            "cut": (results.get("hierarchy") or {}).get("cut"),
            "layers": [layer["nodes"] for layer in
                       (results.get("hierarchy") or {}).get("layers", [])]}


def snapshot(dataset):
    """Everything a run is made of, and the samples' tags, as plain
    values."""
    dataset.reload()
    state = {"runs": {}, "values": {}, "maps": sorted(
        dataset.list_brain_runs())}
    for key in ic.list_runs(dataset):
        run = ic.load_run(dataset, key)
        state["runs"][key] = {"params": run.config["params"],
                              "fields": run.fields,
                              "results": _amended(run.results)}
        for path in run.fields.values():
            state["values"][path] = dict(zip(*dataset.values(["id", path])))
    state["tags"] = {i: sorted(t) for i, t in
                     zip(*dataset.values(["id", "tags"]))}
    state["schema"] = sorted(
        p for p, f in dataset.get_field_schema(flat=True).items()
        if (getattr(f, "info", None) or {}).get("run_kind") ==
        record.RUN_KIND
    )
    return state


def leftovers(dataset):
    """What a finished write must never leave: staging fields, staging
    collections, unreferenced records, a journal, a held lease."""
    from fiftyone.core.odm import get_db_conn

    db = get_db_conn()
    found = [p for p in dataset.get_field_schema(flat=True)
             if record.is_staging_name(p)]
    found += db.list_collection_names(
        filter={"name": {"$regex": f"^{store.STAGE_PREFIX}"}})
    doc = db.datasets.find_one({"_id": dataset._doc.id})
    referenced = {v for kind in ("runs", "brain_methods", "evaluations",
                                 "annotation_runs")
                  for v in (doc.get(kind) or {}).values()}
    found += [f"record {d['_id']}" for d in db.runs.find(
        {"_dataset_id": dataset._doc.id}) if d["_id"] not in referenced]
    lease = collection().find_one({"_id": dataset._doc.id}) or {}
    if lease.get("journal"):
        found.append("journal")
    if lease.get("owner"):
        found.append("lease held")
    return found


def _kill_everywhere(zygote, dataset, scenario, before, after, reset,
                     snap=snapshot):
    """Kills a child at every mutating call of the scenario; returns the
    matrix row. ``snap(dataset)`` is the state compared."""
    status, result = zygote.run(**scenario(None))
    assert status == {"exit": 0, "signal": None}, result
    calls = result["calls"]
    assert snap(dataset) == after
    reset()
    assert snap(dataset) == before

    row = {"tried": 0, "as_before": 0, "complete": 0, "lost": 0,
           "failures": []}
    for n in range(1, calls + 1):
        status, result = zygote.run(**scenario(n))
        row["tried"] += 1
        if status["signal"] != 9:
            row["failures"].append((n, f"child was not killed: {result}"))
            continue
        repaired = ic.repair(dataset)
        state = snap(dataset)
        if state == before:
            row["as_before"] += 1
        elif state == after:
            row["complete"] += 1
        else:
            row["lost"] += 1
            row["failures"].append((n, "neither state", repaired))
        left = leftovers(dataset)
        if left:
            row["failures"].append((n, "left behind", left))
        if ic.repair(dataset):
            row["failures"].append((n, "a second repair found more"))
        # The same change (or its undoing) goes through: no key is stuck.
        reset()
        if snap(dataset) != before:
            row["failures"].append((n, "reset did not restore the start"))
    return row


def _record(name, row):
    os.makedirs(os.path.join(REPO, "test-artifacts"), exist_ok=True)
    path = os.path.join(REPO, "test-artifacts", "fault-matrix.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps({"scenario": name, **{
            k: v for k, v in row.items() if k != "failures"}}) + "\n")
    print(f"fault matrix {name}: tried {row['tried']}, "
          f"as before {row['as_before']}, complete {row['complete']}, "
          f"lost {row['lost']}")


def test_kill_while_writing_a_new_run(zygote, fault_dataset):
    ds = fault_dataset
    before = snapshot(ds)

    def scenario(kill_at):
        return dict(action="write", dataset=ds.name, key="k", params=NEW,
                    kill_at=kill_at)

    def reset():
        if "k" in ic.list_runs(ds):
            ic.delete_run(ds, "k")

    ic.compute_clusters(ds, "k", **NEW)
    after = snapshot(ds)
    reset()
    row = _kill_everywhere(zygote, ds, scenario, before, after, reset)
    _record("new run", row)
    assert row["failures"] == [] and row["lost"] == 0, row["failures"]
    assert row["as_before"] and row["complete"]


def test_kill_while_overwriting_a_run(zygote, fault_dataset):
    ds = fault_dataset
    ic.compute_clusters(ds, "k", **OLD)
    before = snapshot(ds)

    def scenario(kill_at):
        return dict(action="write", dataset=ds.name, key="k",
                    params=dict(NEW, overwrite=True), kill_at=kill_at)

    def reset():
        if ic.load_run(ds, "k").config["params"]["n_clusters"] != 2:
            ic.compute_clusters(ds, "k", overwrite=True, **OLD)

    ic.compute_clusters(ds, "k", overwrite=True, **NEW)
    after = snapshot(ds)
    reset()
    row = _kill_everywhere(zygote, ds, scenario, before, after, reset)
    _record("overwrite", row)
    assert row["failures"] == [] and row["lost"] == 0
    assert row["as_before"] and row["complete"]


def test_kill_while_renaming_a_run(zygote, fault_dataset):
    ds = fault_dataset
    ic.compute_clusters(ds, "k", **OLD)
    before = snapshot(ds)

    def scenario(kill_at):
        return dict(action="rename", dataset=ds.name, key="k",
                    new_key="renamed", kill_at=kill_at)

    def reset():
        if "renamed" in ic.list_runs(ds):
            ic.rename_run(ds, "renamed", "k")

    ic.rename_run(ds, "k", "renamed")
    after = snapshot(ds)
    reset()
    row = _kill_everywhere(zygote, ds, scenario, before, after, reset)
    _record("rename", row)
    assert row["failures"] == [] and row["lost"] == 0
    assert row["as_before"] and row["complete"]


def test_kill_while_deleting_a_run(zygote, fault_dataset):
    ds = fault_dataset
    ic.compute_clusters(ds, "k", **OLD)
    ic.compute_clusters(ds, "other", **NEW)
    before = snapshot(ds)

    def scenario(kill_at):
        return dict(action="delete", dataset=ds.name, key="k",
                    kill_at=kill_at)

    def reset():
        if "k" not in ic.list_runs(ds):
            ic.compute_clusters(ds, "k", **OLD)

    ic.delete_run(ds, "k")
    after = snapshot(ds)
    reset()
    row = _kill_everywhere(zygote, ds, scenario, before, after, reset)
    _record("delete", row)
    assert row["failures"] == [] and row["lost"] == 0
    # The other run came through every kill as it was.
    assert snapshot(ds)["runs"]["other"] == before["runs"]["other"]


# Each amend: what it does, run through the SDK call the zygote scopes.
AMENDS = {
    "name": {"run_key": "k", "cluster": 0, "name": "first"},
    "group": {"run_key": "k", "groups": {"both": [0, 1]}},
    "tag": {"run_key": "k", "clusters": [0], "tags": ["review"]},
    "assign": {"run_key": "k"},
    "label": {"run_key": "k", "namer": "openai", "api_key": "sk-test",
              "model": "vision-test", "max_retries": 0},
}


@pytest.mark.parametrize("verb", sorted(AMENDS))
def test_kill_while_amending_a_run(zygote, fault_dataset, verb):
    from openai_server import FakeOpenAI

    ds = fault_dataset
    # The run is fitted on half the samples, so that assignment has the
    # other half to place.
    fit = ds.select(ds.values("id")[::2])

    def fitted():
        # Deleted first: an overwrite would carry the amend's names and
        # groups onto the new run.
        if "k" in ic.list_runs(ds):
            ic.delete_run(ds, "k")
        ic.compute_clusters(fit, "k", **OLD)

    fitted()
    before = snapshot(ds)
    server = FakeOpenAI()
    args = dict(AMENDS[verb])
    if verb == "label":
        args["base_url"] = server.url

    def scenario(kill_at):
        return dict(action="amend", dataset=ds.name, verb=verb, args=args,
                    kill_at=kill_at)

    def reset():
        if verb == "tag":
            ic.tag_clusters(ds, "k", [0], "review", remove=True)
        elif snapshot(ds) != before:
            fitted()

    try:
        status, result = zygote.run(**scenario(None))
        assert status == {"exit": 0, "signal": None}, result
        after = snapshot(ds)
        assert after != before
        reset()
        row = _kill_everywhere(zygote, ds, scenario, before, after, reset)
    finally:
        server.close()
    _record(f"amend: {verb}", row)
    assert row["failures"] == [] and row["lost"] == 0, row["failures"]
    assert row["as_before"] and row["complete"]


# Each change to a hierarchy's cut, as a method of the run and its
# arguments (``None``: worked out from the run).
TREE_CHANGES = {
    "set_cut": {"layer": 0},
    "coarser": {},
    "accept_merge": None,
    "cluster_misfits": {},
}


@pytest.mark.parametrize("method", sorted(TREE_CHANGES))
def test_kill_while_moving_a_hierarchys_cut(zygote, fault_dataset, method,
                                            tmp_path):
    from conftest import write_gray

    ds = fault_dataset
    fit = ds.select(ds.values("id"))
    hier = dict(BASE, method="hierarchy", micro_clusters=8, cut=4)

    def fitted():
        if "h" in ic.list_runs(ds):
            ic.delete_run(ds, "h")
        run = ic.compute_clusters(fit, "h", **hier)
        if method == "cluster_misfits":
            ic.assign_clusters(ds, "h")
        return run

    if method == "cluster_misfits":
        ds.add_samples([fo.Sample(filepath=str(write_gray(
            tmp_path / f"mid{i}.png", 128, noise=4, seed=i)))
            for i in range(4)], progress=False)
    run = fitted()
    args = TREE_CHANGES[method]
    if args is None:
        args = {"clusters": run.suggest_merges(n=1)[0]["clusters"]}
    before = snapshot(ds)

    def scenario(kill_at):
        return dict(action="tree", dataset=ds.name, key="h", method=method,
                    args=args, kill_at=kill_at)

    def reset():
        if snapshot(ds) != before:
            fitted()

    status, result = zygote.run(**scenario(None))
    assert status == {"exit": 0, "signal": None}, result
    after = snapshot(ds)
    assert after != before
    reset()
    row = _kill_everywhere(zygote, ds, scenario, before, after, reset)
    _record(f"tree: {method}", row)
    assert row["failures"] == [] and row["lost"] == 0, row["failures"]
    assert row["as_before"] and row["complete"]


def test_kill_while_carrying_decisions_over(zygote, fault_dataset):
    ds = fault_dataset
    ic.compute_clusters(ds, "k", **OLD)
    ic.name_cluster(ds, "k", 0, "first")
    ic.group_clusters(ds, "k", {"second": [1]})

    def fitted():
        if "n" in ic.list_runs(ds):
            ic.delete_run(ds, "n")
        ic.compute_clusters(ds, "n", **NEW)

    fitted()
    before = snapshot(ds)

    def scenario(kill_at):
        return dict(action="amend", dataset=ds.name, verb="carry",
                    args={"from_key": "k", "to_key": "n"}, kill_at=kill_at)

    def reset():
        if snapshot(ds) != before:
            fitted()

    status, result = zygote.run(**scenario(None))
    assert status == {"exit": 0, "signal": None}, result
    after = snapshot(ds)
    assert after != before
    reset()
    row = _kill_everywhere(zygote, ds, scenario, before, after, reset)
    _record("carry over", row)
    assert row["failures"] == [] and row["lost"] == 0, row["failures"]
    assert row["as_before"] and row["complete"]


def _duplicates_snapshot(dataset):
    """The samples (by file) and the duplicates run's fields on each."""
    dataset.reload()
    f = ic.load_duplicates(dataset, "d").fields
    paths, groups, reps = dataset.values(["filepath", f["group"], f["rep"]])
    return {"samples": sorted(zip(paths, groups, reps),
                              key=lambda row: row[0]),
            "analyses": ic.list_analyses(dataset)}


def test_kill_while_deleting_duplicates(zygote, tmp_path, make_dataset):
    from conftest import write_gray

    # Four files and an exact copy of each of the first three.
    paths = [write_gray(tmp_path / f"f{i}.png", 40 * (i % 4) + 20,
                        noise=10, seed=i % 4) for i in range(7)]
    ds = make_dataset(paths)
    ds.persistent = True

    def restore():
        present = set(ds.values("filepath"))
        missing = [str(p) for p in paths if str(p) not in present]
        if missing:
            import fiftyone as fo

            ds.add_samples([fo.Sample(filepath=p) for p in missing],
                           progress=False)
        ic.find_exact_duplicates(ds, key="d", overwrite=True)
        return bool(missing)

    restore()
    before = _duplicates_snapshot(ds)
    confirm = ic.load_duplicates(ds, "d").counts()["duplicates"]
    assert confirm == 3

    def scenario(kill_at):
        return dict(action="delete_duplicates", dataset=ds.name, key="d",
                    confirm=confirm, kill_at=kill_at)

    status, result = zygote.run(**scenario(None))
    assert status == {"exit": 0, "signal": None}, result
    after = _duplicates_snapshot(ds)
    assert len(after["samples"]) == 4
    restore()
    row = _kill_everywhere(zygote, ds, scenario, before, after, restore,
                           snap=_duplicates_snapshot)
    _record("delete duplicates", row)
    assert row["failures"] == [] and row["lost"] == 0, row["failures"]
    assert row["as_before"] and row["complete"]
