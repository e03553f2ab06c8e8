"""The uniqueness and duplicates operators through FiftyOne's own executor,
forms included, on a real dataset with planted copies."""

import os

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext

import image_clustering as ic
from planted import write_planted

PLUGIN = "@image-clustering/clustering"


@pytest.fixture
def planted_dataset(tmp_path):
    paths, _ = write_planted(str(tmp_path), copies_of=3, exact_of=2)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
    yield ds
    ds.delete()


def _execute(name, dataset, params, **ctx):
    return foo.execute_operator(
        f"{PLUGIN}/{name}", dict(dataset=dataset, params=params, **ctx))


def _inputs(name, dataset, params):
    op = foo.get_operator(f"{PLUGIN}/{name}")
    ctx = ExecutionContext(request_params=dict(
        dataset_name=dataset.name, view=dataset.view()._serialize(),
        params=params))
    return op.resolve_input(ctx).type.properties


def _requests(result, suffix):
    return [r for r in result.executor.to_json()["requests"]
            if r["operator_uri"].endswith(suffix)]


def test_near_duplicates_from_the_form_show_the_groups(planted_dataset):
    ds = planted_dataset
    props = _inputs("find_near_duplicates", ds, {})
    assert props["run_key"].default == "near_dups"
    # No number in the form: the threshold is calibrated on the data, as
    # the SDK and the command line do by default.
    assert props["threshold"].default is None
    assert props["embedder"].default == "pixels"

    result = _execute("find_near_duplicates", ds, {"run_key": "nd"})

    assert result.error is None
    notice = _requests(result, "notify")[-1]["params"]["message"]
    assert "duplicate(s) in 5 group(s)" in notice
    assert _requests(result, "set_view")
    from_form = ic.load_duplicates(ds, "nd")
    assert len(from_form.groups()) == 5
    from_sdk = ic.find_near_duplicates(ds, key="sdk")
    assert from_form.threshold == from_sdk.threshold
    assert sorted(from_form.groups().values()) == \
        sorted(from_sdk.groups().values())


def test_a_bad_threshold_disables_execute(planted_dataset):
    props = _inputs("find_near_duplicates", planted_dataset,
                    {"threshold": 3.0})
    assert props["threshold"].invalid
    # said under the field, so without the parameter's name
    assert props["threshold"].error_message == (
        "Must be a finite number ≥ 0.0 and ≤ 2.0, got 3.0")


def test_delete_needs_the_count_typed_in_the_form(planted_dataset):
    ds = planted_dataset
    _execute("find_exact_duplicates", ds, {"run_key": "ex"})
    n = len(ds)

    props = _inputs("act_on_duplicates", ds,
                    {"run_key": "ex", "action": "delete", "confirm": 1})
    assert "2 sample(s) will be DELETED" in props["counts"].view.label
    assert props["confirm"].invalid

    from fiftyone.operators.executor import ExecutionError

    with pytest.raises(ExecutionError, match="Type 2 to delete them"):
        _execute("act_on_duplicates", ds, {
            "run_key": "ex", "action": "delete", "confirm": 1})
    assert len(ds) == n

    done = _execute("act_on_duplicates", ds, {
        "run_key": "ex", "action": "delete", "confirm": 2})
    assert done.result == {"count": 2}
    assert len(ds) == n - 2
    assert all(os.path.exists(p) for p in ds.values("filepath"))


def test_tag_view_leaks_and_delete_run_operators(planted_dataset):
    ds = planted_dataset
    _execute("find_near_duplicates", ds, {"run_key": "nd"})
    run = ic.load_duplicates(ds, "nd")
    first = list(run.groups().values())[0]
    ds.tag_samples("train")
    ds.select(first[1:]).untag_samples("train")
    ds.select(first[1:]).tag_samples("test")

    tagged = _execute("act_on_duplicates", ds, {"run_key": "nd",
                                                "tag": "dup"})
    assert tagged.result["count"] == len(ds.match_tags("dup")) > 0

    for show in ("groups", "duplicates", "representatives"):
        r = _execute("load_duplicates_view", ds, {"run_key": "nd",
                                                  "show": show})
        assert r.error is None and _requests(r, "set_view")
    leaks = _execute("load_duplicates_view", ds, {
        "run_key": "nd", "show": "leaks", "splits": "train, test"})
    assert leaks.result == {"count": 1}
    assert "1 group(s) cross splits" in _requests(leaks, "notify")[-1][
        "params"]["message"]

    _execute("delete_analysis_run", ds, {"run_key": "nd"})
    assert ic.list_analyses(ds) == {}
    assert ds.get_field("nd_group") is None


def test_uniqueness_operator_sorts_the_grid_most_unique_first(
        planted_dataset):
    ds = planted_dataset
    result = _execute("compute_uniqueness", ds, {"run_key": "u"})

    assert result.error is None
    assert ds.bounds("u_score")[1] == 1.0
    view = _requests(result, "set_view")[-1]["params"]["view"]
    assert "u_score" in str(view)

    op = foo.get_operator(f"{PLUGIN}/compute_uniqueness")
    again = op(ds, "u2", embeddings_field="pixels64_embedding")
    assert again.field == "u2_score"
    assert again.results["embedding"]["computed"] == 0


def test_a_key_of_another_kind_is_refused_in_the_form(planted_dataset):
    ds = planted_dataset
    ic.compute_uniqueness(ds, key="taken")

    props = _inputs("find_near_duplicates", ds,
                    {"run_key": "taken", "overwrite": True})

    assert props["run_key"].invalid
    assert "another kind" in props["run_key"].error_message


def test_a_failing_run_shows_its_error(tmp_path):
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=str(tmp_path / f"gone{i}.png"))
                    for i in range(3)], progress=False)
    try:
        result = _execute("find_near_duplicates", ds, {"run_key": "bad"})

        progress = _requests(result, "set_progress")
        assert progress and "variant" not in progress[-1]["params"]
        assert progress[-1]["params"]["label"].startswith("Failed:")
        message = _requests(result, "notify")[-1]["params"]["message"]
        assert "only 0 of 3 samples could be embedded" in message
        assert ic.list_analyses(ds) == {}

        props = _inputs("find_near_duplicates", ds, {"embedder": "field"})
        assert props["no_fields"].invalid
    finally:
        ds.delete()
