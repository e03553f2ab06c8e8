"""Choosing k, quality on every run, comparing runs, and the noise
policy, on hand-checkable data."""

import numpy as np
import pytest

import image_clustering as ic
from image_clustering.algorithms import quality
from image_clustering.algorithms import sweep as choose_k
from image_clustering.algorithms.clusterers import get_clusterer


def _blobs(k=4, per=60, d=2, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(k, d))
    X = np.concatenate([c + rng.normal(scale=spread, size=(per, d))
                        for c in centres])
    truth = np.repeat(np.arange(k), per)
    return X.astype(np.float32), truth


@pytest.fixture
def blob_dataset(make_dataset, tmp_path):
    """240 samples whose 'vec' field holds 4 well-separated 2-D blobs;
    their 'ground_truth' says which."""
    import fiftyone as fo

    X, truth = _blobs()
    ds = make_dataset([(str(tmp_path / f"{i}.png"), f"blob{t}")
                       for i, t in enumerate(truth)])
    ds.add_sample_field("vec", fo.VectorField)
    ds.set_values("vec", [x for x in X])
    return ds


@pytest.mark.parametrize("method,param", [
    ("kmeans", "n_clusters"), ("minibatch_kmeans", "n_clusters"),
    ("agglomerative", "n_clusters"), ("birch", "n_clusters"),
    ("gmm", "n_components"),
])
def test_auto_k_finds_the_true_number_of_blobs(method, param):
    X, truth = _blobs()
    clusterer = get_clusterer(method, random_state=0, **{param: "auto"})
    fit = clusterer.fit(X)
    assert fit.sweep_["chosen"] == 4, fit.sweep_
    assert len(set(fit.labels_)) == 4
    assert fit.sweep_["candidates"][0] == 2
    assert len(fit.sweep_["scores"]) == len(fit.sweep_["candidates"])


@pytest.mark.parametrize("criterion", ["silhouette", "davies_bouldin",
                                       "calinski_harabasz"])
def test_each_criterion_chooses_the_true_k(criterion):
    X, _ = _blobs(k=5, seed=2)
    fit = get_clusterer("kmeans", n_clusters="auto",
                        criterion=criterion, random_state=0).fit(X)
    assert fit.sweep_["criterion"] == criterion
    assert fit.sweep_["chosen"] == 5


def test_bic_chooses_the_true_number_of_components():
    X, _ = _blobs(k=3, seed=4, d=3)
    fit = get_clusterer("gmm", n_components="auto", random_state=0).fit(X)
    assert fit.sweep_["criterion"] == "bic"
    assert fit.sweep_["chosen"] == 3


@pytest.mark.parametrize("criterion", ["relative_validity", "dbcv"])
def test_hdbscan_chooses_its_smallest_cluster(criterion):
    X, truth = _blobs(k=4, per=80)
    fit = get_clusterer("hdbscan", min_cluster_size="auto",
                        criterion=criterion, random_state=0).fit(X)
    assert fit.sweep_["parameter"] == "min_cluster_size"
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, fit.labels_) > 0.95


def test_the_sweep_is_fit_on_a_sample_when_n_is_large(monkeypatch):
    monkeypatch.setattr(choose_k, "SWEEP_SAMPLE", 100)
    X, _ = _blobs(k=3, per=200)
    fit = get_clusterer("kmeans", n_clusters="auto", random_state=0).fit(X)
    assert fit.sweep_["fitted_on"] == 100
    assert fit.sweep_["chosen"] == 3
    assert len(fit.labels_) == 600


def test_k_candidates_grow_with_n_and_are_capped():
    assert choose_k.k_candidates(100, 2, None) == list(range(2, 11))
    assert choose_k.k_candidates(10_000, 2, None)[-1] == 50
    assert len(choose_k.k_candidates(10_000, 2, 500)) == \
        choose_k.MAX_CANDIDATES
    assert choose_k.k_candidates(5, 2, 20) == [2, 3, 4]


def test_auto_is_refused_where_it_makes_no_sense():
    with pytest.raises(ic.ParamError, match="'min_samples'"):
        get_clusterer("dbscan", min_samples="auto")
    with pytest.raises(ic.ParamError, match="'n_clusters'"):
        get_clusterer("kmeans", n_clusters="lots")


def test_internal_quality_matches_sklearn():
    from sklearn import metrics

    X, truth = _blobs(k=3, per=40)
    labels = truth.copy()
    labels[:5] = -1
    got = quality.internal_quality(X, labels, seed=0, density=True)
    member = labels >= 0
    assert got["n_noise"] == 5 and got["n_clusters"] == 3
    assert got["fraction_clustered"] == pytest.approx(115 / 120)
    assert got["silhouette"] == pytest.approx(
        metrics.silhouette_score(X[member], labels[member]))
    assert got["davies_bouldin"] == pytest.approx(
        metrics.davies_bouldin_score(X[member], labels[member]))
    assert got["calinski_harabasz"] == pytest.approx(
        metrics.calinski_harabasz_score(X[member], labels[member]))
    assert got["dbcv"] is not None and 0 < got["dbcv"] <= 1
    assert got["sizes"] == {"min": 35, "median": 40.0, "max": 40,
                            "largest_share": 40 / 115}
    assert got["sampled"] == {}


def test_spread_scores_from_the_geometry_match_sklearn_block_by_block(
        monkeypatch):
    from sklearn import metrics

    from image_clustering.algorithms import geometry

    # Cluster ids with gaps (as a hierarchy's node ids are), noise, and
    # centre distances taken two centres at a time.
    monkeypatch.setattr(quality, "CENTRE_BLOCK", 2)
    X, truth = _blobs(k=5, per=30, d=6, seed=3)
    labels = truth * 3 + 1
    labels[::7] = -1
    geo = geometry.measure(X, labels)
    got = quality.internal_quality(X, labels, seed=0, geometry=geo)
    member = labels >= 0
    assert got["davies_bouldin"] == pytest.approx(
        metrics.davies_bouldin_score(X[member], labels[member]), rel=1e-6)
    assert got["calinski_harabasz"] == pytest.approx(
        metrics.calinski_harabasz_score(X[member], labels[member]),
        rel=1e-6)
    assert got["sampled"] == {}


def test_external_quality_matches_sklearn_and_counts_purity_by_hand():
    from sklearn import metrics

    truth = ["a"] * 6 + ["b"] * 4 + [None]
    clusters = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0]
    got = quality.external_quality(clusters, truth)
    t, c = truth[:10], clusters[:10]
    assert got["labelled"] == 10
    assert got["ari"] == pytest.approx(metrics.adjusted_rand_score(t, c))
    assert got["ami"] == pytest.approx(
        metrics.adjusted_mutual_info_score(t, c))
    h, comp, v = metrics.homogeneity_completeness_v_measure(t, c)
    assert (got["homogeneity"], got["completeness"], got["v_measure"]) == \
        pytest.approx((h, comp, v))
    # cluster 0: 4 of a; cluster 1: 4 of b out of 6
    assert got["per_cluster"]["0"] == {"top_class": "a", "purity": 1.0,
                                       "labelled": 4}
    assert got["per_cluster"]["1"]["purity"] == pytest.approx(4 / 6)
    assert got["purity"] == pytest.approx(8 / 10)


def test_every_run_stores_its_quality_and_sweep(blob_dataset):
    run = ic.compute_clusters(blob_dataset, "auto", embeddings_field="vec",
                              reducer="none", method="kmeans",
                              n_clusters="auto", gt_field="ground_truth")
    assert run.config["params"]["n_clusters"] == "auto"
    assert run.sweep["chosen"] == 4 and run.metrics["n_clusters"] == 4
    assert run.results["external"]["ari"] == 1.0
    for key in ("silhouette", "davies_bouldin", "calinski_harabasz",
                "sizes", "fraction_clustered"):
        assert run.metrics[key] is not None
    info = ic.get_run_info(blob_dataset, "auto")
    assert info["results"]["sweep"]["chosen"] == 4
    assert run.score("ground_truth")["ari"] == 1.0


def test_a_bad_gt_field_is_refused_before_any_work(blob_dataset):
    with pytest.raises(ic.ParamError, match="gt_field 'vec'"):
        ic.compute_clusters(blob_dataset, "x", embeddings_field="vec",
                            reducer="none", method="kmeans", n_clusters=2,
                            gt_field="vec")


def test_compare_two_known_labelings(blob_dataset):
    ic.compute_clusters(blob_dataset, "four", embeddings_field="vec",
                        reducer="none", method="kmeans", n_clusters=4)
    ic.compute_clusters(blob_dataset, "two", embeddings_field="vec",
                        reducer="none", method="agglomerative",
                        n_clusters=2, linkage="single")
    same = ic.compare_runs(blob_dataset, "four", "four")
    assert same.ari == 1.0 and same.ami == pytest.approx(1.0)
    assert same.shared == 240
    c = ic.compare_runs(blob_dataset, "four", "two")
    # every cluster of 'four' lies whole inside one cluster of 'two'
    best = c.best_matches("a")
    assert sorted(best) == [0, 1, 2, 3]
    assert all(m["share"] == 1.0 and m["count"] == 60 for m in best.values())
    assert sum(sum(row.values()) for row in c.table.values()) == 240
    back = c.best_matches("b")
    assert sum(m["size"] for m in back.values()) == 240
    a, b = 0, best[0]["match"]
    view = c.cell_view(a, b)
    assert len(view) == 60
    assert set(view.values("four_cluster")) == {0}


def test_compare_uses_only_the_samples_both_runs_clustered(blob_dataset):
    ic.compute_clusters(blob_dataset, "all", embeddings_field="vec",
                        reducer="none", method="kmeans", n_clusters=4)
    ic.compute_clusters(blob_dataset.limit(100), "part",
                        embeddings_field="vec", reducer="none",
                        method="kmeans", n_clusters=2)
    c = ic.compare_runs(blob_dataset, "all", "part")
    assert c.shared == 100


def test_noise_can_be_assigned_and_is_marked(blob_dataset):
    import fiftyone as fo

    # a few far-away points become noise
    far = blob_dataset.take(6, seed=3)
    far.set_values("vec", [np.array([60.0 + i, -60.0]) for i in range(6)])
    kept = ic.compute_clusters(blob_dataset, "kept", embeddings_field="vec",
                               reducer="none", method="hdbscan",
                               min_cluster_size=15)
    noise = kept.metrics["n_noise"]
    assert noise >= 6
    moved = ic.compute_clusters(blob_dataset, "moved",
                                embeddings_field="vec", reducer="none",
                                method="hdbscan", min_cluster_size=15,
                                noise="assign")
    assert moved.config["noise"] == "assign"
    assert moved.metrics["n_noise"] == 0
    assert moved.results["reassigned"] == noise
    marks = dict(zip(*blob_dataset.values(["id", "moved_reassigned"])))
    was_noise = {i for i, c in zip(
        *blob_dataset.values(["id", "kept_cluster"])) if c == -1}
    assert {i for i, m in marks.items() if m} == was_noise
    assert isinstance(blob_dataset.get_field("moved_reassigned"),
                      fo.BooleanField)


def test_dbscan_noise_goes_to_the_nearest_centre():
    from image_clustering.algorithms.clusterers import DBSCANClusterer
    from image_clustering.algorithms.geometry import cluster_means
    from image_clustering.algorithms.noise import place_noise

    X = np.array([[0, 0], [0, 1], [10, 10], [10, 11], [1, 1], [9, 9]],
                 np.float32)
    # A fit that left the last two points as noise.
    fitted = DBSCANClusterer()
    fitted.labels_ = np.array([0, 0, 1, 1, -1, -1])
    fitted.centres_ = cluster_means(X, fitted.labels_, 2)[0]
    labels, moved = place_noise(X, fitted)
    assert labels.tolist() == [0, 0, 1, 1, 0, 1]
    assert moved.tolist() == [False] * 4 + [True] * 2
