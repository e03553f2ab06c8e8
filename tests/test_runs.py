"""Run storage: lifecycle, fresh processes, atomic writes and overwrite."""

import json

import pytest

import image_clustering as ic

from conftest import run_python

PIXELS8 = {"name": "pixels", "size": 8}
KMEANS2 = dict(embedder=PIXELS8, reducer="none", method="kmeans", n_clusters=2)


def _fields(dataset):
    return set(dataset.get_field_schema())


def test_run_lifecycle(two_groups):
    before = _fields(two_groups)
    ic.compute_clusters(two_groups, "one", **KMEANS2)
    ic.compute_clusters(
        two_groups, "two", embedder=PIXELS8, reducer="none", method="gmm",
        n_components=2,
    )
    assert ic.list_runs(two_groups) == ["one", "two"]
    assert ic.list_runs(two_groups, method="gmm") == ["two"]

    info = ic.get_run_info(two_groups, "one")
    assert info["config"]["method"] == "kmeans"
    assert info["config"]["params"]["n_clusters"] == 2
    assert info["config"]["fields"]["cluster"] == "one_cluster"
    assert info["config"]["libraries"]["scikit-learn"]
    assert info["results"]["metrics"]["n_clusters"] == 2
    json.dumps(info)  # plain JSON throughout

    view = ic.load_clusters_view(two_groups, "one")
    assert len(view) == 2  # two dynamic groups
    one = ic.load_clusters_view(two_groups, "one", cluster=0)
    dists = one.values("one_dist")
    assert dists == sorted(dists) and len(one) == 12

    ic.rename_run(two_groups, "one", "first")
    assert ic.list_runs(two_groups) == ["first", "two"]
    assert {"first_cluster", "first_dist"} <= _fields(two_groups)
    assert "one_cluster" not in _fields(two_groups)
    run = ic.load_run(two_groups, "first")
    assert run.fields["cluster"] == "first_cluster"
    assert two_groups.get_field("first_cluster").info["run_key"] == "first"
    assert len(run.clusters_view(cluster=1)) == 12

    ic.delete_run(two_groups, "first")
    assert ic.list_runs(two_groups) == ["two"]
    remaining = _fields(two_groups) - before
    assert not any(f.startswith("first_") for f in remaining)
    # the other run's fields and the shared embeddings cache stay
    assert {"two_cluster", "two_prob", "pixels8_embedding"} <= remaining


def test_rename_refuses_a_taken_key(two_groups):
    ic.compute_clusters(two_groups, "a", **KMEANS2)
    ic.compute_clusters(two_groups, "b", **KMEANS2)
    with pytest.raises(ic.ParamError, match="already exists"):
        ic.rename_run(two_groups, "a", "b")
    assert ic.list_runs(two_groups) == ["a", "b"]


def test_unknown_run_is_a_clear_error(two_groups):
    with pytest.raises(ValueError, match="no clustering run 'nope'"):
        ic.load_run(two_groups, "nope")


def test_runs_load_in_a_fresh_process_without_the_plugin(two_groups):
    two_groups.persistent = True
    ic.compute_clusters(two_groups, "fresh", **KMEANS2)
    code = f"""
import logging, json
logging.basicConfig(level=logging.WARNING)
import fiftyone as fo
ds = fo.load_dataset({two_groups.name!r})
keys = ds.list_runs(kind="image_clustering")
info = ds.get_run_info("fresh")
res = ds.load_run_results("fresh")
import sys
assert "image_clustering" not in sys.modules
print(json.dumps({{"keys": keys, "method": info.config.method,
    "sizes": [c["size"] for c in res.clusters],
    "cls": type(info.config).__module__}}))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert "Unable to load" not in out.stderr
    assert "WARNING" not in out.stderr and "Traceback" not in out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {
        "keys": ["fresh"],
        "method": "kmeans",
        "sizes": [12, 12],
        "cls": "fiftyone.core.runs",
    }


def test_failed_run_leaves_nothing_behind(two_groups):
    before = _fields(two_groups)
    with pytest.raises(ic.ParamError, match="larger than the number"):
        ic.compute_clusters(
            two_groups, "big", embedder=PIXELS8, reducer="none",
            method="kmeans", n_clusters=50,
        )
    assert not two_groups.has_run("big")
    # refused before embedding: not even the embeddings cache is written
    assert _fields(two_groups) == before


def test_failure_while_staging_rolls_back(two_groups, monkeypatch):
    from image_clustering.storage import transaction as store

    ic.compute_clusters(two_groups, "cache", **KMEANS2)  # fills the cache
    ic.delete_run(two_groups, "cache")
    before = _fields(two_groups)

    def failing(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(store.Transaction, "stage_record", failing)
    with pytest.raises(RuntimeError, match="went away"):
        ic.compute_clusters(two_groups, "w", **KMEANS2)
    monkeypatch.undo()
    assert ic.list_runs(two_groups) == []
    assert _fields(two_groups) == before
    assert ic.repair(two_groups) == []


def test_overwrite_replaces_only_when_complete(two_groups):
    ic.compute_clusters(two_groups, "k", **KMEANS2)
    old = dict(zip(*two_groups.values(["id", "k_cluster"])))
    old_config = ic.get_run_info(two_groups, "k")["config"]

    with pytest.raises(ic.ParamError, match="already exists"):
        ic.compute_clusters(two_groups, "k", **KMEANS2)

    # a replacement that fails while running leaves the old run whole
    with pytest.raises(ic.ParamError):
        ic.compute_clusters(
            two_groups, "k", overwrite=True, embedder=PIXELS8,
            reducer="none", method="hdbscan", min_cluster_size=100,
        )
    assert dict(zip(*two_groups.values(["id", "k_cluster"]))) == old
    assert ic.get_run_info(two_groups, "k")["config"] == old_config

    run = ic.compute_clusters(
        two_groups, "k", overwrite=True, embedder=PIXELS8, reducer="none",
        method="hdbscan", min_cluster_size=5,
    )
    assert run.config["method"] == "hdbscan"
    assert ic.list_runs(two_groups) == ["k"]
    assert two_groups.get_field("k_prob") is not None
    leftovers = [f for f in _fields(two_groups) if f.startswith("imgclust_tmp")]
    assert leftovers == []

    # the new run has fewer fields than an old one had: old fields go
    run = ic.compute_clusters(two_groups, "k", overwrite=True, **KMEANS2)
    assert two_groups.get_field("k_prob") is None


def test_a_field_of_someone_else_is_not_overwritten(two_groups):
    import fiftyone as fo

    two_groups.add_sample_field("mine_cluster", fo.StringField)
    with pytest.raises(ic.ParamError, match="does not belong to run"):
        ic.compute_clusters(two_groups, "mine", **KMEANS2)
    run = ic.compute_clusters(two_groups, "mine", field_prefix="mine2", **KMEANS2)
    assert run.fields["cluster"] == "mine2_cluster"


def test_other_run_types_are_not_touched(two_groups):
    config = two_groups.init_run(foo="bar")
    two_groups.register_run("other", config)
    assert ic.list_runs(two_groups) == []
    with pytest.raises(ic.ParamError, match="not a clustering run"):
        ic.compute_clusters(two_groups, "other", overwrite=True, **KMEANS2)
    with pytest.raises(ValueError, match="no clustering run"):
        ic.delete_run(two_groups, "other")
    assert two_groups.has_run("other")


def test_representatives_are_nearest_the_centre(two_groups):

    run = ic.compute_clusters(two_groups, "rep", **KMEANS2)
    reps = run.representatives(per_cluster=3)
    assert sorted(reps) == [0, 1]
    for c, chosen in reps.items():
        view = run.clusters_view(cluster=c)
        assert [sid for sid, _ in chosen] == view.values("id")[:3]


def test_groups_come_largest_first_each_ordered_by_distance(tmp_path, make_dataset):
    from conftest import write_gray

    # the smallest group's images are added first
    paths = [write_gray(tmp_path / f"s{i}.png", 20, noise=5, seed=i) for i in range(3)]
    paths += [write_gray(tmp_path / f"l{i}.png", 230, noise=30, seed=i) for i in range(9)]
    dataset = make_dataset(paths)
    ic.compute_clusters(dataset, "g", **KMEANS2)
    view = ic.load_clusters_view(dataset, "g")
    groups = list(view.iter_dynamic_groups())
    assert [len(g) for g in groups] == [9, 3]
    for group in groups:
        dists = group.values("g_dist")
        assert dists == sorted(dists)


def test_overwrite_failing_at_the_map_keeps_the_old_run(two_groups, monkeypatch):
    from image_clustering.clustering import pipeline

    ic.compute_clusters(two_groups, "m", map="pca", **KMEANS2)
    old = dict(zip(*two_groups.values(["id", "m_cluster"])))
    fields = _fields(two_groups)

    def failing(*args, **kwargs):
        raise RuntimeError("map failed")

    monkeypatch.setattr(pipeline, "map_points", failing)
    with pytest.raises(RuntimeError, match="map failed"):
        ic.compute_clusters(two_groups, "m", overwrite=True, map="pca", **KMEANS2)
    monkeypatch.undo()

    assert dict(zip(*two_groups.values(["id", "m_cluster"]))) == old
    assert _fields(two_groups) == fields
    assert two_groups.list_runs() == ["m"]
    assert two_groups.list_brain_runs() == ["m_map"]
