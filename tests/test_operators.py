"""The operators through FiftyOne's own executor, forms included, and a
delegated run executed by the real `fiftyone delegated launch`."""

import os
import subprocess
import sys
import threading

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionContext

import image_clustering as ic

PLUGIN = "@image-clustering/clustering"
FAST = {
    "embedder": "pixels",
    "embedder_pixels__size": 8,
    "reducer": "none",
    "method": "kmeans",
    "method_kmeans__n_clusters": 2,
    "map": "none",
}


def _execute(name, dataset, params, **ctx):
    return foo.execute_operator(
        f"{PLUGIN}/{name}", dict(dataset=dataset, params=params, **ctx)
    )


def _inputs(name, dataset, params):
    op = foo.get_operator(f"{PLUGIN}/{name}")
    ctx = ExecutionContext(
        request_params=dict(
            dataset_name=dataset.name, view=dataset.view()._serialize(),
            params=params,
        )
    )
    return op.resolve_input(ctx).type.properties


def test_plugin_registers_every_operator_and_the_panel():
    from fiftyone.operators.registry import OperatorRegistry

    registry = OperatorRegistry()
    names = {op.uri for op in registry.list_operators()}
    from image_clustering.operators import OPERATORS, PANELS

    for name in [cls().config.name for cls in OPERATORS + PANELS]:
        assert f"{PLUGIN}/{name}" in names
    assert [e for e in registry.list_errors() if "image-clustering" in str(e)] == []


@pytest.mark.parametrize("method", ["kmeans", "hdbscan", "agglomerative"])
def test_form_shows_only_the_chosen_methods_parameters(two_groups, method):
    props = _inputs("compute_clusters", two_groups, {"method": method})
    shown = {name.split("__")[0] for name in props if name.startswith("method_")}
    assert shown == {f"method_{method}"}
    from image_clustering.algorithms.clusterers import CLUSTERERS

    expected = {f"method_{method}__{p.name}" for p in CLUSTERERS[method].PARAMS}
    assert expected <= set(props)


def test_form_shows_the_reducers_of_the_chain(two_groups):
    props = _inputs("compute_clusters", two_groups, {"reducer": "pca+umap"})
    assert "reducer_pca__n_components" in props
    assert "reducer_umap__n_neighbors" in props
    assert not any(n.startswith("reducer_tsne") for n in props)
    props = _inputs("compute_clusters", two_groups, {"reducer": "none"})
    assert not any(n.startswith("reducer_") and "__" in n for n in props)


def test_form_offers_existing_embeddings_fields(two_groups):
    props = _inputs("compute_clusters", two_groups, {})
    assert "field" not in [c.value for c in props["embedder"].view.choices]
    two_groups.add_sample_field("clip", fo.VectorField)
    props = _inputs("compute_clusters", two_groups, {"embedder": "field"})
    assert [c.value for c in props["embeddings_field"].view.choices] == ["clip"]
    assert not any(n.startswith("embedder_pixels") for n in props)


@pytest.mark.parametrize(
    "key,message",
    [("1abc", "valid variable names"), ("bad key", "valid variable names"),
     ("taken", "already exists")],
)
def test_bad_run_keys_are_rejected_in_the_form(two_groups, key, message):
    ic.compute_clusters(two_groups, "taken", embedder={"name": "pixels", "size": 8},
                        reducer="none", method="kmeans", n_clusters=2, map="none")
    props = _inputs("compute_clusters", two_groups, {"run_key": key})
    assert props["run_key"].invalid
    assert message in props["run_key"].error_message
    with pytest.raises(Exception, match="run_key"):
        _execute("compute_clusters", two_groups, {**FAST, "run_key": key})
    ok = _inputs("compute_clusters", two_groups,
                 {"run_key": "taken", "overwrite": True})
    assert not ok["run_key"].invalid


def test_every_operator_runs_on_a_real_dataset(two_groups):
    result = _execute("compute_clusters", two_groups,
                      {**FAST, "run_key": "ops"})
    assert result.error is None
    assert set(two_groups.values("ops_cluster")) == {0, 1}
    requests = result.executor.to_json()["requests"]
    progress = [r for r in requests if r["operator_uri"].endswith("set_progress")]
    assert progress and progress[-1]["params"]["progress"] == 1.0

    info = _execute("get_clustering_run_info", two_groups, {"run_key": "ops"})
    assert info.result["method"] == "kmeans"
    assert [c["size"] for c in info.result["clusters"]] == [12, 12]

    view = _execute("load_clusters_view", two_groups, {"run_key": "ops"})
    set_view = [r for r in view.executor.to_json()["requests"]
                if r["operator_uri"].endswith("set_view")]
    assert set_view and view.result["groups_or_samples"] == 2

    _execute("rename_clustering_run", two_groups,
             {"run_key": "ops", "new_run_key": "renamed"})
    assert ic.list_runs(two_groups) == ["renamed"]
    assert two_groups.get_field("renamed_cluster") is not None

    _execute("delete_clustering_run", two_groups, {"run_key": "renamed"})
    assert ic.list_runs(two_groups) == []
    assert not any(f.startswith("renamed_") for f in two_groups.get_field_schema())


def test_operators_are_callable_from_python(two_groups):
    op = foo.get_operator(f"{PLUGIN}/compute_clusters")
    run = op(two_groups, "py", embedder_params={"size": 8}, reducer="pca",
             reducer_params={"pca": {"n_components": 3}}, method="gmm",
             n_components=2, map="none")
    assert type(run).__name__ == "ClusterRun" and run.key == "py"
    assert run.config["method"] == "gmm"
    assert run.config["reducers"][0]["params"]["n_components"] == 3
    info = foo.get_operator(f"{PLUGIN}/get_clustering_run_info")(two_groups, "py")
    assert info["n_clusters"] == 2
    foo.get_operator(f"{PLUGIN}/rename_clustering_run")(two_groups, "py", "py2")
    foo.get_operator(f"{PLUGIN}/delete_clustering_run")(two_groups, "py2")
    assert ic.list_runs(two_groups) == []


def test_a_run_on_a_view_and_on_selected_samples(two_groups):
    ids = two_groups.values("id")[:10]
    _execute("compute_clusters", two_groups, {**FAST, "run_key": "sel",
             "view_target": "SELECTED_SAMPLES"}, selected=ids)
    assert set(ic.load_run(two_groups, "sel").view().values("id")) == set(ids)
    assert len(two_groups.exists("sel_cluster")) == 10


def test_the_app_shows_the_run(two_groups):
    params = {**FAST, "run_key": "shown", "map": "auto"}
    _execute("compute_clusters", two_groups, params)
    two_groups.reload()
    groups = {g.name: g.paths for g in two_groups.app_config.sidebar_groups}
    assert set(groups["clusters: shown"]) == {
        "shown_cluster", "shown_dist", "shown_sim", "shown_size", "shown_map"}
    colors = [f for f in two_groups.app_config.color_scheme.fields
              if f["path"] == "shown_cluster"]
    assert len(colors[0]["valueColors"]) == 3  # noise + 2 clusters
    assert two_groups.list_brain_runs() == ["shown_map"]
    viz = two_groups.load_brain_results("shown_map")
    assert viz.points.shape == (24, 2)

    ic.rename_run(two_groups, "shown", "seen")
    assert two_groups.list_brain_runs() == ["seen_map"]
    ic.delete_run(two_groups, "seen")
    assert two_groups.list_brain_runs() == []
    two_groups.reload()
    assert "clusters: seen" not in [g.name for g in two_groups.app_config.sidebar_groups]


def test_panel_rows_follow_the_run(two_groups):
    from image_clustering.operators.panel import cluster_rows

    ic.compute_clusters(two_groups, "p", embedder={"name": "pixels", "size": 8},
                        reducer="none", method="hdbscan", min_cluster_size=5,
                        map="none")
    two_groups.take(3, seed=1).tag_samples("check")
    run, rows = cluster_rows(two_groups, "p", "size_desc")
    sizes = [r["size"] for r in rows if r["id"] >= 0]
    assert sizes == sorted(sizes, reverse=True)
    assert sum(r["size"] for r in rows) == 24
    assert sum(r["tags"].get("check", 0) for r in rows) == 3
    for r in rows:
        if r["id"] >= 0:
            assert os.path.exists(r["thumbnail"])


def test_delegated_run_completes_under_fiftyone_delegated_launch(two_groups):
    from fiftyone.operators.delegated import DelegatedOperationService

    two_groups.persistent = True
    op = foo.get_operator(f"{PLUGIN}/compute_clusters")
    queued = op(two_groups, "later", embedder_params={"size": 8},
                reducer="none", method="kmeans", n_clusters=2, map="none",
                delegate=True)
    assert queued.delegated
    service = DelegatedOperationService()
    fiftyone = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    launcher = subprocess.Popen(
        [fiftyone, "delegated", "launch"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
    )
    # The launcher logs "Operation ID complete" (or "failed") when it is
    # done with the operation: wait for that line, not for a clock.
    finished = threading.Event()
    lines = []

    def read():
        for line in launcher.stdout:
            lines.append(line)
            if line.startswith("Operation ") and (
                    " complete" in line or " failed" in line):
                finished.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert finished.wait(600), "".join(lines)
    finally:
        launcher.terminate()
        launcher.wait(timeout=30)
        reader.join(30)
    output = "".join(lines)
    doc = service.list_operations(dataset_name=two_groups.name)[0]
    try:
        assert doc.run_state == "completed", (doc.result, output)
        assert doc.status.progress == 1.0
        assert doc.status.label == "done"
        two_groups.reload()
        assert set(two_groups.values("later_cluster")) == {0, 1}
    finally:
        service.delete_for_dataset(two_groups._doc.id)


def test_form_offers_model_embedders_but_not_python_objects(two_groups):
    props = _inputs("compute_clusters", two_groups, {"embedder": "dino"})
    choices = [c.value for c in props["embedder"].view.choices]
    assert {"pixels", "dino", "clip", "fiftyone"} <= set(choices)
    assert "torch" not in choices
    assert props["embedder_dino__model"].default == "facebook/dinov2-small"
    assert "embedder_dino__pooling" in props


def _requests(result, name):
    return [r for r in result.executor.to_json()["requests"]
            if r["operator_uri"].endswith(name)]


def test_a_failing_immediate_run_ends_its_progress_and_says_why(two_groups):
    # what the App sends: no raise_errors; the failure must come back as a
    # notification, not an empty stream
    result = _execute("compute_clusters", two_groups, {
        **FAST, "run_key": "bad", "method_kmeans__n_clusters": 2,
        "embedder_pixels__size": 8, "seed": -4})
    notes = _requests(result, "notify")
    assert notes and notes[-1]["params"]["variant"] == "error"
    # the field to change named as the form labels it
    assert notes[-1]["params"]["message"] == (
        "Compute clusters failed: Random seed: must be an integer ≥ 0 and "
        "≤ 4294967295, got -4")
    progress = _requests(result, "set_progress")
    # the App's progress bar takes only its own variants: none is sent
    assert "variant" not in progress[-1]["params"]
    assert progress[-1]["params"]["label"].startswith("Failed:")
    assert ic.list_runs(two_groups) == []


def test_checks_that_need_the_sample_count_disable_execute(two_groups):
    props = _inputs("compute_clusters", two_groups, {
        "method": "kmeans", "method_kmeans__n_clusters": 1000})
    prop = props["method_kmeans__n_clusters"]
    assert prop.invalid
    assert "larger than the number of samples (24)" in prop.error_message
    props = _inputs("compute_clusters", two_groups, {
        "method": "hdbscan", "method_hdbscan__min_cluster_size": 1})
    assert props["method_hdbscan__min_cluster_size"].invalid
    assert "≥ 2" in props["method_hdbscan__min_cluster_size"].error_message


def test_a_model_folder_that_does_not_exist_disables_execute(two_groups):
    props = _inputs("compute_clusters", two_groups, {
        "embedder": "dino", "embedder_dino__model": "/no/such/model"})
    assert props["embedder_dino__model"].invalid
    assert "No folder" in props["embedder_dino__model"].error_message
    props = _inputs("compute_clusters", two_groups, {
        "embedder": "dino", "embedder_dino__model": "someone/not-cached"})
    assert props["embedder_dino__model"].invalid
    assert "offline" in props["embedder_dino__model"].error_message


def test_choosing_dino_turns_normalisation_on(two_groups):
    props = _inputs("compute_clusters", two_groups, {"embedder": "dino"})
    assert props["normalize_dino"].default is True
    props = _inputs("compute_clusters", two_groups, {"embedder": "pixels"})
    assert props["normalize_pixels"].default is False


def test_noise_is_offered_only_for_methods_that_make_it(two_groups):
    assert "noise" in _inputs("compute_clusters", two_groups,
                              {"method": "hdbscan"})
    assert "noise" not in _inputs("compute_clusters", two_groups,
                                  {"method": "kmeans"})


def test_stage_parameters_carry_their_stage_as_a_heading(two_groups):
    props = _inputs("compute_clusters", two_groups, {"reducer": "pca+umap"})
    headings = [p.view.label for name, p in props.items()
                if name.endswith("__header")]
    assert {"PCA", "UMAP", "Hierarchy", "Raw luminance pixels"} <= \
        set(headings)


def test_a_grouped_view_is_clustered_by_its_samples(two_groups):
    ic.compute_clusters(two_groups, "first", embedder={"name": "pixels",
                        "size": 8}, reducer="none", method="kmeans",
                        n_clusters=2, map="none")
    grouped = ic.load_clusters_view(two_groups, "first")
    assert len(grouped) == 2  # two groups on screen
    result = foo.execute_operator(
        f"{PLUGIN}/compute_clusters",
        dict(view=grouped, params={**FAST, "run_key": "second",
                                   "view_target": "CURRENT_VIEW"}))
    assert result.error is None
    assert len(two_groups.exists("second_cluster")) == 24
    message = _requests(result, "notify")[-1]["params"]["message"]
    assert "24 of 24 samples clustered" in message
    props = _inputs_on(grouped, {"view_target": "CURRENT_VIEW"})
    assert "Clusters 24 samples" in props["target_count"].view.label


def _inputs_on(view, params):
    op = foo.get_operator(f"{PLUGIN}/compute_clusters")
    ctx = ExecutionContext(request_params=dict(
        dataset_name=view._dataset.name, view=view._serialize(),
        params=params))
    return op.resolve_input(ctx).type.properties


def test_run_pickers_default_to_the_run_on_screen(two_groups):
    for key in ("a_run", "b_run"):
        ic.compute_clusters(two_groups, key, embedder={"name": "pixels",
                            "size": 8}, reducer="none", method="kmeans",
                            n_clusters=2, map="none")
    op = foo.get_operator(f"{PLUGIN}/get_clustering_run_info")
    on_screen = ic.load_clusters_view(two_groups, "a_run")
    ctx = ExecutionContext(request_params=dict(
        dataset_name=two_groups.name, view=on_screen._serialize(),
        params={}))
    assert op.resolve_input(ctx).type.properties["run_key"].default == \
        "a_run"
    # no run on screen: the newest
    ctx = ExecutionContext(request_params=dict(
        dataset_name=two_groups.name, view=two_groups.view()._serialize(),
        params={}))
    assert op.resolve_input(ctx).type.properties["run_key"].default == \
        "b_run"


def test_deleting_the_run_on_screen_resets_the_view(two_groups):
    ic.compute_clusters(two_groups, "gone", embedder={"name": "pixels",
                        "size": 8}, reducer="none", method="kmeans",
                        n_clusters=2, map="none")
    view = ic.load_clusters_view(two_groups, "gone")
    result = foo.execute_operator(
        f"{PLUGIN}/delete_clustering_run",
        dict(view=view, params={"run_key": "gone"}))
    assert _requests(result, "clear_view")
    assert "Deleted run 'gone'" in \
        _requests(result, "notify")[-1]["params"]["message"]
    ic.compute_clusters(two_groups, "old", embedder={"name": "pixels",
                        "size": 8}, reducer="none", method="kmeans",
                        n_clusters=2, map="none")
    view = ic.load_clusters_view(two_groups, "old")
    result = foo.execute_operator(
        f"{PLUGIN}/rename_clustering_run",
        dict(view=view, params={"run_key": "old", "new_run_key": "new"}))
    set_view = _requests(result, "set_view")
    assert set_view and "new_cluster" in str(set_view[-1]["params"])


def test_run_info_shows_percentages_timings_quality_and_the_choice_of_k(
        two_groups):
    ic.compute_clusters(two_groups, "k", embedder={"name": "pixels",
                        "size": 8}, reducer="none", method="kmeans",
                        n_clusters="auto", map="none",
                        gt_field="ground_truth")
    info = _execute("get_clustering_run_info", two_groups,
                    {"run_key": "k"}).result
    assert info["clustered"] == "24 of 24 (100.0%)"
    assert {t["stage"] for t in info["timings"]} >= {"embed", "cluster"}
    assert info["choice_of_k"].startswith("n_clusters = 2 by silhouette")
    assert info["against_ground_truth"]["ari"] == 1.0
    assert info["quality"]["silhouette"] > 0.5


def test_curation_and_run_operators_on_a_real_dataset(two_groups, tmp_path):
    ic.compute_clusters(two_groups, "c", embedder={"name": "pixels",
                        "size": 8}, reducer="none", method="kmeans",
                        n_clusters=2, map="pca")
    ic.compute_clusters(two_groups, "d", embedder={"name": "pixels",
                        "size": 8}, reducer="none", method="gmm",
                        n_components=2, map="none")
    call = lambda name: foo.get_operator(f"{PLUGIN}/{name}")  # noqa: E731
    call("name_cluster")(two_groups, "c", 0, "first")
    assert ic.load_run(two_groups, "c").results["names"]["0"]["name"] == \
        "first"
    out = call("tag_clusters")(two_groups, "c", [0], ["picked"])
    assert out["count"] == len(two_groups.match_tags("picked")) == 12
    call("group_clusters")(two_groups, "c", "both", [0, 1])
    assert set(two_groups.values("c_group")) == {"both"}
    out = call("export_clusters")(two_groups, "c", str(tmp_path / "x"),
                                  images="symlink")
    assert out["rows"] == 24 and out["images"] == 24
    cmp = call("compare_clustering_runs")(two_groups, "c", "d")
    assert cmp["ari"] == 1.0 and len(cmp["matches"]) == 2
    chart = call("plot_clustering_run")(two_groups, "c", kind="scatter")
    assert chart["path"].endswith("c_scatter.png")
    assert call("repair_clustering_runs")(two_groups)["report"] == []


def test_label_clusters_operator_reads_the_key_from_secrets(
        two_groups, monkeypatch):
    from openai_server import FakeOpenAI

    server = FakeOpenAI()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-from-env")
    try:
        ic.compute_clusters(two_groups, "n", embedder={"name": "pixels",
                            "size": 8}, reducer="none", method="kmeans",
                            n_clusters=2, map="pca")
        props = _inputs("label_clusters", two_groups,
                        {"run_key": "n", "base_url": server.url})
        assert "2 request(s)" in props["estimate"].view.label
        foo.get_operator(f"{PLUGIN}/label_clusters")(
            two_groups, "n", base_url=server.url, model="m")
    finally:
        server.close()
    names = ic.load_run(two_groups, "n").results["names"]
    assert {v["name"] for v in names.values()} == {"dark images",
                                                   "bright images"}
    assert all(r.headers.get("Authorization", r.headers.get(
        "authorization")) == "Bearer sk-secret-from-env"
        for r in server.requests)


def test_a_failing_delegated_run_fills_its_error_message(two_groups):
    from fiftyone.operators.delegated import DelegatedOperationService

    two_groups.persistent = True
    op = foo.get_operator(f"{PLUGIN}/compute_clusters")
    # A bad value is refused before anything is queued ...
    with pytest.raises(ValueError, match="'seed'"):
        op(two_groups, "doomed", embedder_params={"size": 8},
           reducer="none", method="kmeans", n_clusters=2, map="none",
           seed=-3, delegate=True)
    # ... and what goes wrong while it runs fails the queued run: here the
    # images were removed while it waited.
    op(two_groups, "doomed", embedder_params={"size": 8}, reducer="none",
       method="kmeans", n_clusters=2, map="none", delegate=True)
    for path in two_groups.values("filepath"):
        os.remove(path)
    service = DelegatedOperationService()
    try:
        service.execute_queued_operations(dataset_name=two_groups.name)
        doc = service.list_operations(dataset_name=two_groups.name)[0]
        assert doc.run_state == "failed"
        # FiftyOne's document class reads back only the traceback; the
        # message is in the stored operation, where the App reads it
        from fiftyone.core.odm import get_db_conn

        stored = get_db_conn().delegated_ops.find_one({"_id": doc.id})
        assert "only 0 of 24 samples could be embedded" in \
            stored["result"]["error_message"]
        assert "Traceback" in stored["result"]["error"]
    finally:
        service.delete_for_dataset(two_groups._doc.id)
