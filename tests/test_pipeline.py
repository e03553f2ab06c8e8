"""compute_clusters end to end on real images and the real database."""

import re

import numpy as np
import pytest

import image_clustering as ic
from image_clustering.algorithms.clusterers import CLUSTERERS
from image_clustering.algorithms.reducers import REDUCERS

from conftest import write_gray

PIXELS8 = {"name": "pixels", "size": 8}


def _truth_and_clusters(dataset, key):
    truth, clusters = dataset.values(["ground_truth.label", f"{key}_cluster"])
    return truth, clusters


def _splits_exactly(truth, clusters):
    by_label = {}
    for t, c in zip(truth, clusters):
        by_label.setdefault(t, set()).add(c)
    groups = list(by_label.values())
    return all(len(g) == 1 for g in groups) and len(
        set().union(*groups)
    ) == len(groups)


def test_two_groups_split_exactly_and_fields_match_numpy(two_groups):
    run = ic.compute_clusters(
        two_groups, "two", embedder=PIXELS8, reducer="none",
        method="kmeans", n_clusters=2,
    )
    ids, paths, truth, cl, dist, sim, size, emb = two_groups.values(
        ["id", "filepath", "ground_truth.label", "two_cluster", "two_dist",
         "two_sim", "two_size", "pixels8_embedding"]
    )
    assert _splits_exactly(truth, cl)
    assert sorted(set(cl)) == [0, 1]

    # Recompute every field from the image files themselves, by sample, so
    # that a value landing on the wrong sample would fail.
    from PIL import Image

    X = np.stack([
        np.asarray(Image.open(p).convert("L").resize((8, 8), Image.BILINEAR),
                   dtype=np.float64).ravel() / 255.0
        for p in paths
    ])
    np.testing.assert_allclose(np.stack(emb), X, atol=1e-6)
    cl = np.array(cl)
    for c in (0, 1):
        members = X[cl == c]
        centre = members.mean(axis=0)
        d = np.linalg.norm(members - centre, axis=1)
        s = members @ centre / (
            np.linalg.norm(members, axis=1) * np.linalg.norm(centre)
        )
        np.testing.assert_allclose(np.array(dist)[cl == c], d, rtol=1e-5)
        np.testing.assert_allclose(np.array(sim)[cl == c], s, rtol=1e-5)
        assert set(np.array(size)[cl == c]) == {len(members)}
        stored = run.clusters[c]
        assert stored["size"] == len(members)
        np.testing.assert_allclose(stored["centre"], centre, rtol=1e-5)
        np.testing.assert_allclose(stored["mean_dist"], d.mean(), rtol=1e-5)

    m = run.metrics
    assert m["n_clusters"] == 2 and m["fraction_clustered"] == 1.0
    assert m["silhouette"] > 0.5 and m["inertia"] > 0
    assert m["davies_bouldin"] > 0 and m["calinski_harabasz"] > 0


def test_silhouette_of_a_sample_with_one_cluster_is_left_empty(monkeypatch):
    from image_clustering.algorithms import quality as metrics

    X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    labels = np.array([0, 0, 1, 1])
    # a sample of one point holds one cluster, for which silhouette is undefined
    monkeypatch.setattr(metrics, "SILHOUETTE_SAMPLE", 1)
    m = metrics.internal_quality(X, labels, seed=0)
    assert m["silhouette"] is None and m["davies_bouldin"] is not None


def test_clusters_are_numbered_by_size(tmp_path, make_dataset):
    paths = [write_gray(tmp_path / f"a{i}.png", 20, noise=5, seed=i) for i in range(3)]
    paths += [write_gray(tmp_path / f"b{i}.png", 230, noise=5, seed=i) for i in range(7)]
    dataset = make_dataset(paths)
    run = ic.compute_clusters(
        dataset, "k", embedder=PIXELS8, reducer="none", method="kmeans",
        n_clusters=2,
    )
    assert [c["size"] for c in run.clusters] == [7, 3]
    clusters = dict(zip(*dataset.values(["filepath", "k_cluster"])))
    assert {clusters[str(p)] for p in paths[3:]} == {0}


@pytest.mark.parametrize("method", sorted(CLUSTERERS))
def test_every_clusterer_splits_two_groups(two_groups, method):
    params = {
        "kmeans": {"n_clusters": 2},
        "minibatch_kmeans": {"n_clusters": 2, "batch_size": 8},
        "agglomerative": {"n_clusters": 2},
        "birch": {"n_clusters": 2},
        "dbscan": {"eps": 1.5, "min_samples": 3},
        "hdbscan": {"min_cluster_size": 5},
        "optics": {"min_samples": 4},
        "gmm": {"n_components": 2},
        "hierarchy": {"cut": 2},
    }[method]
    run = ic.compute_clusters(
        two_groups, "m", embedder=PIXELS8, reducer="none", method=method,
        **params,
    )
    truth, clusters = _truth_and_clusters(two_groups, "m")
    clustered = [(t, c) for t, c in zip(truth, clusters) if c != -1]
    assert len(clustered) >= 20, (method, clusters)
    assert _splits_exactly(*zip(*clustered)), (method, clusters)
    assert run.config["method"] == method
    fields = set(run.fields)
    if method == "hdbscan":
        assert {"prob", "outlier"} <= fields
        prob = two_groups.values("m_prob")
        assert all(0.0 <= p <= 1.0 for p in prob)
    elif method == "gmm":
        assert "prob" in fields and "outlier" not in fields
    elif method == "hierarchy":
        layers = {f for f in fields if f.startswith("layer")}
        assert layers and fields - layers == {
            "cluster", "dist", "sim", "size", "map"}
    else:
        assert fields == {"cluster", "dist", "sim", "size", "map"}


@pytest.mark.parametrize(
    "reducer,dims",
    [
        ({"name": "pca", "n_components": 3}, 3),
        ({"name": "pca", "n_components": 0.9}, None),
        ({"name": "umap", "n_components": 2, "n_neighbors": 5}, 2),
        ({"name": "tsne", "perplexity": 5}, 2),
        ([{"name": "pca", "n_components": 5},
          {"name": "umap", "n_components": 2, "n_neighbors": 5}], 2),
    ],
)
def test_every_reducer_keeps_the_split(two_groups, reducer, dims):
    run = ic.compute_clusters(
        two_groups, "r", embedder=PIXELS8, reducer=reducer,
        method="kmeans", n_clusters=2,
    )
    assert _splits_exactly(*_truth_and_clusters(two_groups, "r"))
    centre_dims = len(run.clusters[0]["centre"])
    if dims is not None:
        assert centre_dims == dims
    else:
        explained = run.results["reductions"][0]["result"]
        assert explained["explained_variance"] >= 0.9
        assert centre_dims == explained["n_components"]
    names = [r["name"] for r in run.config["reducers"]]
    assert names == [r["name"] for r in (reducer if isinstance(reducer, list) else [reducer])]


def test_normalize_scales_rows_before_clustering(two_groups):
    run = ic.compute_clusters(
        two_groups, "n", embedder=PIXELS8, reducer="none", normalize=True,
        method="kmeans", n_clusters=2,
    )
    centre = np.array(run.clusters[0]["centre"])
    # means of unit vectors have length at most 1
    assert np.linalg.norm(centre) <= 1.0 + 1e-9
    assert run.config["normalize"] is True


def test_existing_embeddings_field_is_used_without_an_embedder(make_dataset, tmp_path):
    import fiftyone as fo

    paths = [tmp_path / f"missing{i}.png" for i in range(8)]  # never opened
    dataset = make_dataset(paths)
    ids = dataset.values("id")
    vectors = {sid: np.array([0.0, float(i % 2) * 10 + i * 0.01]) for i, sid in enumerate(ids)}
    vectors[ids[3]] = None  # one sample without an embedding
    dataset.add_sample_field("emb", fo.VectorField)
    dataset.set_values("emb", vectors, key_field="id")
    run = ic.compute_clusters(
        dataset, "f", embeddings_field="emb", reducer="none",
        method="kmeans", n_clusters=2,
    )
    assert run.config["embedder"] is None
    assert run.config["embeddings_field"] == "emb"
    assert run.results["embedding"]["computed"] == 0
    assert run.skipped["count"] == 1
    assert run.skipped["samples"][0]["id"] == ids[3]
    assert "no embedding" in run.skipped["samples"][0]["reason"]
    got = dict(zip(*dataset.values(["id", "f_cluster"])))
    assert got[ids[3]] is None
    odd = {got[s] for i, s in enumerate(ids) if i % 2 and i != 3}
    even = {got[s] for i, s in enumerate(ids) if not i % 2}
    assert len(odd) == len(even) == 1 and odd != even


def test_embeddings_are_cached_and_reused(two_groups):
    first = ic.compute_clusters(
        two_groups, "a", embedder=PIXELS8, reducer="none", method="kmeans",
        n_clusters=2,
    )
    assert first.results["embedding"]["computed"] == 24
    field = two_groups.get_field("pixels8_embedding")
    assert field.info["fingerprint"]["size"] == 8
    second = ic.compute_clusters(
        two_groups, "b", embedder=PIXELS8, reducer="none", method="kmeans",
        n_clusters=2,
    )
    assert second.results["embedding"]["computed"] == 0
    assert second.results["embedding"]["reused"] == 24


def test_a_field_from_another_embedder_is_never_mixed_in(two_groups):
    ic.compute_clusters(
        two_groups, "a", embedder=PIXELS8, reducer="none", method="kmeans",
        n_clusters=2,
    )
    with pytest.raises(ic.ParamError, match="another source"):
        ic.compute_clusters(
            two_groups, "b", embedder={"name": "pixels", "size": 4},
            embeddings_field="pixels8_embedding", reducer="none",
            method="kmeans", n_clusters=2,
        )
    assert not two_groups.has_run("b")


def test_clustering_a_view_writes_only_its_samples(two_groups):
    from fiftyone import ViewField as F

    view = two_groups.match(F("ground_truth.label") == "dark").limit(8)
    run = ic.compute_clusters(
        view, "v", embedder=PIXELS8, reducer="none", method="kmeans",
        n_clusters=2,
    )
    assert run.metrics["n_samples"] == 8
    assert len(two_groups.exists("v_cluster")) == 8
    assert set(run.view().values("id")) == set(view.values("id"))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"method": "kmeans", "n_clusters": "many"}, "'n_clusters' must be an integer"),
        ({"method": "kmeans", "n_clusters": 0}, "'n_clusters' must be an integer ≥ 1"),
        ({"method": "kmeans", "k": 3}, "unknown parameter\\(s\\) k"),
        ({"method": "spectral"}, "unknown method 'spectral'"),
        ({"method": "agglomerative", "n_clusters": None}, "exactly one of"),
        ({"method": "agglomerative", "linkage": "ward", "metric": "cosine"}, "ward needs"),
        ({"method": "hdbscan", "metric": "cosine"}, "'metric' must be one of"),
        ({"reducer": "pca:3"}, "unknown reducer"),
        ({"reducer": {"name": "pca", "n_components": 1.5}}, "variance fraction"),
        ({"reducer": {"name": "umap", "min_dist": -1}}, "'min_dist'"),
        ({"embedder": {"name": "pixels", "size": 1}}, "'size' must be an integer ≥ 2"),
        ({"embedder": "vgg"}, "unknown embedder 'vgg'"),
        ({"preset": "best"}, "unknown preset"),
    ],
)
def test_bad_parameters_fail_before_any_work(two_groups, kwargs, message):
    with pytest.raises(ic.ParamError, match=message):
        ic.compute_clusters(two_groups, "bad", **kwargs)
    assert not two_groups.has_run("bad")
    assert two_groups.get_field("pixels64_embedding") is None


@pytest.mark.parametrize("key", ["1st", "with space", "_hidden", ""])
def test_bad_run_keys_are_rejected(two_groups, key):
    with pytest.raises(ic.ParamError, match="run key"):
        ic.compute_clusters(two_groups, key, method="kmeans", n_clusters=2)


def test_progress_is_reported_in_order(two_groups):
    seen = []
    ic.compute_clusters(
        two_groups, "p", embedder=PIXELS8, reducer="pca", method="kmeans",
        n_clusters=2, progress=lambda f, m: seen.append(m),
    )
    # Each stage says so, in the order the stages run (the reporter keeps
    # fractions from moving back, so the messages are what can go wrong).
    stages = ["embedding", "embedded 24 of 24", "PCA",
              "clustering with K-means", "2-D map", "writing fields",
              "writing: switching the run key", "writing: checking every "
              "field", "done"]
    first = [next(i for i, m in enumerate(seen) if m.startswith(stage))
             for stage in stages]
    assert first == sorted(first)
    assert seen[-1] == "done"
    steps = [re.search(r"\((\d+) of (\d+)\)$", m) for m in seen
             if m.startswith("writing: ") and m.endswith(")")]
    assert [int(s.group(1)) for s in steps] == \
        list(range(1, int(steps[0].group(2)) + 1))


def test_default_preset_runs_on_pixels(tmp_path, make_dataset):
    paths = []
    for i in range(60):
        value = (30, 128, 225)[i % 3]
        paths.append(write_gray(tmp_path / f"{i}.png", value, noise=8, seed=i))
    dataset = make_dataset(paths)
    run = ic.compute_clusters(dataset, "auto")
    assert run.config["method"] == "hierarchy"
    assert len(run.layers) > 1
    assert [r["name"] for r in run.config["reducers"]] == ["pca", "umap"]
    assert run.config["embedder"]["name"] == "pixels"
    clusters = dict(zip(*dataset.values(["filepath", "auto_cluster"])))
    groups = {}
    for i, p in enumerate(paths):
        groups.setdefault(i % 3, set()).add(clusters[str(p)])
    assert all(len(g) == 1 and -1 not in g for g in groups.values())
    assert len(set().union(*groups.values())) == 3


def test_progress_true_draws_a_bar(two_groups, capsys):
    ic.compute_clusters(
        two_groups, "bar", embedder=PIXELS8, reducer="none", method="kmeans",
        n_clusters=2, map="none", progress=True,
    )
    err = capsys.readouterr().err
    assert "embedded 24 of 24" in err and "100% done" in err


def test_umap_reports_its_epochs_and_the_bar_is_shared_by_cost(two_groups):
    """The bar moves inside UMAP's layout, about 50 times whatever the time
    an epoch takes; with the embeddings cached, the stages after embedding
    fill the whole bar in proportion to their cost, so UMAP's layout is
    not one frozen step."""
    ic.compute_clusters(two_groups, "warm", embedder=PIXELS8,
                        reducer="none", method="kmeans", n_clusters=2,
                        map="none")
    seen = []
    ic.compute_clusters(two_groups, "p", embedder=PIXELS8,
                        reducer=[{"name": "umap", "n_epochs": 200}],
                        method="kmeans", n_clusters=2, map="none",
                        progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)
    epochs = [(f, m) for f, m in seen if m.startswith("UMAP: epoch")]
    assert 40 <= len(epochs) <= 60
    assert epochs[-1][1] == "UMAP: epoch 200 of 200"
    # UMAP is most of the cost here (4 of 6 parts, its layout 70% of
    # that): its epochs move the bar across more than 40% of it.
    assert epochs[-1][0] - epochs[0][0] > 0.4
