"""A write killed after its commit point is finished by the next process
that takes the dataset's lock. What that process finishes must look as if
the writer had lived: the run is seen at once, and the App shows it."""

import pytest

import image_clustering as ic
from image_clustering.storage import schema
from image_clustering.storage.lease import collection
from image_clustering.storage.mongo import db, oid

PARAMS = dict(embedder={"name": "pixels", "size": 8}, reducer="none",
              method="kmeans", n_clusters=2, map="pca")


@pytest.fixture
def dataset(two_groups):
    two_groups.persistent = True
    ic.compute_clusters(two_groups, "warm", **PARAMS)  # fills the cache
    ic.delete_run(two_groups, "warm")
    return two_groups


def _undo_new_run(ds, key):
    def undo():
        if key in ic.list_runs(ds):
            ic.delete_run(ds, key)
            return True
        return False
    return undo


def _left_committed(ds):
    doc = collection().find_one({"_id": ds._doc.id}) or {}
    return (doc.get("journal") or {}).get("state") == "committed"


def test_a_run_finished_by_the_next_process_is_shown_in_the_app(
        zygote, dataset):
    ds = dataset
    zygote.kill_after_commit(ds, _undo_new_run(ds, "k"), key="k",
                             params=PARAMS)
    assert _left_committed(ds)

    assert ic.list_runs(ds) == ["k"]  # any call finishes the write

    ds.reload()
    assert not _left_committed(ds)
    groups = [g.name for g in ds.app_config.sidebar_groups or []]
    assert "clusters: k" in groups
    assert schema.map_key("k") in ds.list_brain_runs()
    # Nothing was left for a repair to do.
    assert ic.repair(ds) == []


def test_a_delete_finished_by_the_next_process_leaves_nothing_shown(
        zygote, dataset):
    ds = dataset
    ic.compute_clusters(ds, "k", **PARAMS)

    def undo():
        if "k" not in ic.list_runs(ds):
            ic.compute_clusters(ds, "k", **PARAMS)
            return True
        return False

    zygote.kill_after_commit(ds, undo, action="delete", key="k")
    assert ic.list_runs(ds) == []

    ds.reload()
    groups = [g.name for g in ds.app_config.sidebar_groups or []]
    assert "clusters: k" not in groups
    assert schema.map_key("k") not in ds.list_brain_runs()
    assert ic.repair(ds) == []


def test_writing_again_sees_the_finished_run_before_any_work(zygote,
                                                             dataset):
    from image_clustering.storage.transaction import ConflictError

    ds = dataset
    zygote.kill_after_commit(ds, _undo_new_run(ds, "k"), key="k",
                             params=PARAMS)
    messages = []

    with pytest.raises(ic.ParamError, match="already exists") as error:
        ic.compute_clusters(ds, "k", progress=lambda f, m: messages.append(m),
                            **PARAMS)

    # Refused as an existing run at once, not after the whole pipeline as
    # a run "changed by another process".
    assert not isinstance(error.value, ConflictError)
    assert not any("embed" in m for m in messages)
    assert ic.list_runs(ds) == ["k"]


def test_undoing_a_killed_amend_keeps_the_fitted_stages_it_shares(
        zygote, dataset):
    ds = dataset
    fit = ds.select(ds.values("id")[::2])
    ic.compute_clusters(fit, "k", **PARAMS)
    args = dict(action="amend", dataset=ds.name, verb="assign",
                args={"run_key": "k"})
    # A kill after the amend staged its new record (which names the same
    # fitted stages as the live one) and before it committed.
    for n in range(1, 40):
        status, _ = zygote.run(kill_at=n, **args)
        assert status["signal"] == 9
        doc = collection().find_one({"_id": ds._doc.id}) or {}
        journal = doc.get("journal") or {}
        if journal.get("state") == "staging" and journal.get("record") and \
                db().runs.find_one({"_id": oid(journal["record"])}):
            break
        ic.repair(ds)
    else:
        raise AssertionError("no kill left an amend staged")

    ic.repair(ds)  # undoes the amend

    run = ic.load_run(ds, "k")
    assert run.results.get("assigned") is None
    placed = ic.assign_clusters(ds, "k")  # needs the fitted stages
    assert placed.results["assigned"]["count"] == len(ds) - len(fit)


def test_an_analysis_run_left_committed_is_finished_when_loaded(zygote,
                                                                dataset):
    ds = dataset

    def undo():
        if "d" in ic.list_analyses(ds):
            ic.delete_analysis(ds, "d")
            return True
        return False

    zygote.kill_after_commit(ds, undo, action="exact_duplicates", key="d")
    assert _left_committed(ds)

    run = ic.load_duplicates(ds, "d")

    assert run.results["samples"] == 24
    assert not _left_committed(ds)
    assert ic.list_analyses(ds) == {"d": "duplicates"}
