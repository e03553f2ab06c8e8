"""The concurrency matrix: 2-4 real processes released together by a
barrier write runs on one dataset, with different keys, the same key, and
overwriting one run. Nothing may be lost; where two want the same key,
exactly one wins and the others get a clear error.

Slow: marked ``concurrency``; CI runs it."""

import json
import os

import pytest

import image_clustering as ic

from conftest import REPO

pytestmark = pytest.mark.concurrency

ROUNDS = 10
BASE = dict(embedder={"name": "pixels", "size": 8}, reducer="none",
            method="kmeans", map="pca")


@pytest.fixture
def race_dataset(two_groups):
    two_groups.persistent = True
    ic.compute_clusters(two_groups, "warm", n_clusters=2, **BASE)
    ic.delete_run(two_groups, "warm")
    return two_groups


def _intact(dataset, key):
    """The run is listed and every one of its fields has a value on every
    sample it clustered."""
    dataset.reload()
    run = ic.load_run(dataset, key)
    n = run.metrics["n_samples"]
    for suffix, path in run.fields.items():
        assert dataset.get_field(path) is not None, (key, path)
        assert len(dataset.exists(path)) == n, (key, path)
    return run


def _record(mode, row):
    os.makedirs(os.path.join(REPO, "test-artifacts"), exist_ok=True)
    with open(os.path.join(REPO, "test-artifacts",
                           "concurrency-matrix.jsonl"), "a") as f:
        f.write(json.dumps({"mode": mode, **row}) + "\n")
    print(f"concurrency {mode}: {row}")


def test_different_keys_all_land(zygote, race_dataset):
    ds = race_dataset
    row = {"rounds": 0, "runs": 0, "lost": 0, "max_lock_wait": 0.0}
    for r in range(ROUNDS):
        n = 2 + r % 3
        # racer i writes run "p<i>"
        results = zygote.race(n, dataset=ds.name, key="p{i}",
                              params=dict(BASE, n_clusters=2))
        row["rounds"] += 1
        for i, res in enumerate(results):
            assert res["ok"], res
            run = _intact(ds, f"p{i}")
            row["runs"] += 1
            row["max_lock_wait"] = max(row["max_lock_wait"],
                                       run.results["timings"]["lock_wait"])
        assert sorted(ic.list_runs(ds)) == [f"p{i}" for i in range(n)]
        for key in ic.list_runs(ds):
            ic.delete_run(ds, key)
    _record("different keys", row)


def test_the_same_key_has_exactly_one_winner(zygote, race_dataset):
    ds = race_dataset
    row = {"rounds": 0, "winners": 0, "clear_losers": 0}
    for r in range(ROUNDS):
        n = 2 + r % 3
        results = zygote.race(n, dataset=ds.name, key="same",
                              params=dict(BASE, n_clusters=2), together=n)
        winners = [res for res in results if res["ok"]]
        losers = [res for res in results if not res["ok"]]
        assert len(winners) == 1, results
        for res in losers:
            assert "already exists" in res["error"], res
        run = _intact(ds, "same")
        assert run.run_id == winners[0]["run_id"]
        row["rounds"] += 1
        row["winners"] += 1
        row["clear_losers"] += len(losers)
        ic.delete_run(ds, "same")
    _record("same key", row)


def test_overwriting_one_run_has_exactly_one_winner(zygote, race_dataset):
    ds = race_dataset
    row = {"rounds": 0, "winners": 0, "clear_losers": 0}
    for r in range(ROUNDS):
        n = 2 + r % 3
        ic.compute_clusters(ds, "shared", n_clusters=2, **BASE)
        # Every racer checks the run it will replace before any writes
        # (the zygote holds them together there), so the rounds always
        # overlap and exactly one can win.
        results = zygote.race(n, dataset=ds.name, key="shared",
                              params=dict(BASE, n_clusters=3,
                                          overwrite=True), together=n)
        winners = [res for res in results if res["ok"]]
        losers = [res for res in results if not res["ok"]]
        first_finish = min(res["finished"] for res in winners)
        assert all(res["validated"] < first_finish for res in results)
        assert len(winners) == 1, results
        for res in losers:
            assert "changed by another process" in res["error"], res
        run = _intact(ds, "shared")
        assert run.run_id == winners[0]["run_id"]
        row["rounds"] += 1
        row["winners"] += len(winners)
        row["clear_losers"] += len(losers)
        ic.delete_run(ds, "shared")
    _record("overwrite", row)
