"""The same choices make the same run from Python, the command line (a real
subprocess) and the App's operator (through FiftyOne's executor): the
stored config is the same, and so is the cluster of every sample."""

import os
import subprocess
import sys

import pytest

import fiftyone as fo
import fiftyone.operators as foo

import image_clustering as ic

import tiny_models
from conftest import REPO, write_gray
from openai_server import FakeOpenAI
from ray_cluster import cluster  # noqa: F401  (a fixture)

PLUGIN = "@image-clustering/clustering"
CLI = os.path.join(os.path.dirname(sys.executable), "image-clustering")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    tiny_models.dinov2(str(folder / "dino"))
    tiny_models.clip(str(folder / "clip"))
    return {"dino": str(folder / "dino"), "clip": str(folder / "clip")}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """36 grey images at three levels, persistent so that the command
    line's process sees it."""
    folder = tmp_path_factory.mktemp("images")
    ds = fo.Dataset("image-clustering-parity", persistent=True,
                    overwrite=True)
    samples = []
    for i in range(36):
        path = write_gray(folder / f"{i}.png", (30, 128, 225)[i % 3],
                          size=16, noise=12, seed=i)
        samples.append(fo.Sample(filepath=str(path)))
    ds.add_samples(samples, progress=False)
    yield ds
    ds.delete()


def _requests(models):
    small = {"reducer": "pca"}
    return {
        "default": {},
        "preset_pixels": {"preset": "pixels", "map": "none"},
        "preset_dino": {"preset": "dino", "embedder": {
            "name": "dino", "model": models["dino"]}, **small},
        "preset_clip": {"preset": "clip", "embedder": {
            "name": "clip", "model": models["clip"]}, **small},
        "dino": {"embedder": {"name": "dino", "model": models["dino"]},
                 "method": "kmeans", "n_clusters": 3, **small},
        "clip": {"embedder": {"name": "clip", "model": models["clip"]},
                 "method": "kmeans", "n_clusters": 3, **small},
        "noise_default": {"method": "hdbscan", "min_cluster_size": 5,
                          **small},
        "noise_keep": {"method": "hdbscan", "min_cluster_size": 5,
                       "noise": "keep", **small},
        "noise_assign": {"method": "hdbscan", "min_cluster_size": 5,
                         "noise": "assign", **small},
        "noise_budget": {"method": "hdbscan", "min_cluster_size": 5,
                         "max_noise": 0.1, **small},
        "preset_params_changed": {"cut": 3, "map": "pca"},
        "kmeans_auto": {"embedder": {"name": "pixels", "size": 8},
                        "reducer": "none", "method": "kmeans",
                        "n_clusters": "auto", "seed": 7},
        "agglomerative": {"reducer": [{"name": "pca", "n_components": 4}],
                          "method": "agglomerative", "n_clusters": 3,
                          "normalize": True},
        "hierarchy": {"method": "hierarchy", "micro_clusters": 12,
                      "max_noise": 0.1, **small},
    }


def cli_args(request):
    """The command line's flags for a request given as ``compute_clusters``
    keywords."""
    args = []
    for name, value in request.items():
        if name == "embedder":
            args += ["--embedder", value["name"]]
            for k, v in value.items():
                if k != "name":
                    args += ["--embedder-param", f"{k}={v}"]
        elif name == "reducer":
            if isinstance(value, str):
                args += ["--reducer", value]
            else:
                args += ["--reducer", "+".join(
                    r["name"] + (":" + ",".join(
                        f"{k}={v}" for k, v in r.items() if k != "name")
                        if len(r) > 1 else "") for r in value)]
        elif name in ("preset", "method", "noise", "max_noise", "seed",
                      "map", "executor", "ray_address"):
            args += [f"--{name.replace('_', '-')}", str(value)]
        elif name == "normalize":
            args += ["--normalize" if value else "--no-normalize"]
        else:
            args += ["--param", f"{name}={value}"]
    return args


def _comparable(config):
    """The config, less what differs by run key and by the moment."""
    out = {k: v for k, v in config.items()
           if k not in ("run_id", "fields", "field_prefix")}
    out["map"] = dict(config["map"] or {}, brain_key=None) \
        if config.get("map") else None
    return out


def _clusters(ds, key):
    return dict(zip(*ds.values(["id", f"{key}_cluster"])))


def _assert_same_runs(dataset, sdk, cli, op):
    want = _comparable(sdk.config)
    assert _comparable(cli.config) == want
    assert _comparable(op.config) == want
    clusters = _clusters(dataset, sdk.key)
    assert _clusters(dataset, cli.key) == clusters
    assert _clusters(dataset, op.key) == clusters


def _three_ways(ds, name, request):
    ic.compute_clusters(ds, f"sdk_{name}", **request)
    out = subprocess.run(
        [CLI, "cluster", "--dataset", ds.name, "--run-key", f"cli_{name}",
         "--quiet", *cli_args(request)],
        capture_output=True, text=True, env=dict(os.environ), cwd=REPO,
        timeout=600)
    assert out.returncode == 0, out.stderr
    from image_clustering.operators.compute import form_from_request

    result = foo.execute_operator(
        f"{PLUGIN}/compute_clusters",
        dict(dataset=ds, params=form_from_request(f"op_{name}", **request)))
    assert result.error is None, result.error
    ds.reload()
    return [ic.load_run(ds, f"{way}_{name}") for way in ("sdk", "cli", "op")]


@pytest.mark.parametrize("name", list(_requests({"dino": "", "clip": ""})))
def test_python_the_command_line_and_the_app_make_the_same_run(
        dataset, models, name):
    request = _requests(models)[name]
    sdk, cli, op = _three_ways(dataset, name, request)
    _assert_same_runs(dataset, sdk, cli, op)


@pytest.mark.ray
@pytest.mark.parametrize("with_address", [True, False])
def test_a_ray_run_is_the_same_from_every_entry_point(dataset, cluster,
                                                      with_address,
                                                      monkeypatch):
    """With an address, and without one (then ``RAY_ADDRESS`` names the
    cluster, as on a machine that belongs to it)."""
    pytest.importorskip("ray")
    request = {"embedder": {"name": "pixels", "size": 8}, "reducer": "none",
               "method": "kmeans", "n_clusters": 3, "map": "none",
               "executor": "ray"}
    if with_address:
        request["ray_address"] = cluster
    else:
        monkeypatch.setenv("RAY_ADDRESS", cluster)
    name = f"ray_{with_address}"
    sdk, cli, op = _three_ways(dataset, name, request)
    assert sdk.config["executor"] == {
        "name": "ray", "address": cluster if with_address else None}
    _assert_same_runs(dataset, sdk, cli, op)


def test_a_namer_with_its_own_parameters_names_the_same_way(dataset,
                                                            monkeypatch):
    server = FakeOpenAI()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    namer = {"model": "tiny-vision", "base_url": server.url,
             "max_side": 48, "concurrency": 2}
    try:
        for way in ("sdk", "cli", "op"):
            ic.compute_clusters(dataset, f"{way}_named",
                                embedder={"name": "pixels", "size": 8},
                                reducer="none", method="kmeans",
                                n_clusters=3, map="none")
        ic.label_clusters(dataset, "sdk_named", per_cluster=2, **namer)
        out = subprocess.run(
            [CLI, "label", dataset.name, "cli_named", "--quiet",
             "--per-cluster", "2", "--model", namer["model"],
             "--base-url", server.url, "--max-side", "48",
             "--concurrency", "2"],
            capture_output=True, text=True, env=dict(os.environ), cwd=REPO,
            timeout=600)
        assert out.returncode == 0, out.stderr
        foo.execute_operator(f"{PLUGIN}/label_clusters", dict(
            dataset=dataset, params={
                "run_key": "op_named", "namer": "openai", "per_cluster": 2,
                **{f"namer_openai__{k}": v for k, v in namer.items()}}))
    finally:
        server.close()
    dataset.reload()
    names = [ic.load_run(dataset, f"{way}_named").names
             for way in ("sdk", "cli", "op")]
    assert names[0] and names[0] == names[1] == names[2]
    assert {n["namer"]["model"] for n in names[0].values()} == \
        {"tiny-vision"}
    assert {n["namer"]["max_side"] for n in names[0].values()} == {48}
