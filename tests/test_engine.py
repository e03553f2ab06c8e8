"""The speed engine's parts against their references: k-means against
scikit-learn, faiss neighbours against exact ones, the sampled 2-D map,
UMAP's on-disk kernel cache, GPU preprocessing against the PIL path (on
the CPU), decoding in worker processes, and chunked reads and writes."""

import json
import os
import pickle

import numpy as np
import pytest

import image_clustering as ic
from image_clustering.algorithms import kmeans, neighbors
from image_clustering.algorithms import layout2d as maps

from conftest import run_python, write_gray


def _blobs(n, d, k, spread, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10, size=(k, d))
    labels = rng.integers(0, k, n)
    X = centres[labels] + rng.normal(scale=spread, size=(n, d))
    return X.astype(np.float32), labels


def test_faiss_kmeans_finds_the_same_partition_as_sklearn():
    from sklearn.metrics import adjusted_rand_score

    X, truth = _blobs(3000, 16, 6, spread=0.5)
    ours = kmeans.KMeans(6, engine="faiss", seed=1).fit(X)
    theirs = kmeans.KMeans(6, engine="sklearn", seed=1).fit(X)
    assert adjusted_rand_score(truth, ours.labels_) == 1.0
    assert adjusted_rand_score(theirs.labels_, ours.labels_) == 1.0
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)


def test_faiss_kmeans_inertia_is_within_a_percent_of_sklearn():
    from sklearn.cluster import KMeans

    X, _ = _blobs(30000, 32, 60, spread=4.0, seed=3)
    ours = kmeans.KMeans(40, engine="faiss", seed=0).fit(X)
    reference = KMeans(40, random_state=0).fit(X)
    assert ours.inertia_ <= reference.inertia_ * 1.01
    labels, dist = kmeans.nearest(X, ours.cluster_centers_)
    np.testing.assert_array_equal(labels, ours.labels_)
    assert abs(dist.sum() - ours.inertia_) / ours.inertia_ < 1e-4


def test_faiss_kmeans_stops_when_the_centres_settle_and_counts_the_iterations_run():
    X, truth = _blobs(3000, 16, 6, spread=0.5)
    settled = kmeans.KMeans(6, engine="faiss", seed=1, max_iter=300).fit(X)

    assert 1 <= settled.n_iter_ < 300
    # Run again with exactly that many iterations: the same centres, so
    # that is where it stopped.
    again = kmeans.KMeans(6, engine="faiss", seed=1,
                          max_iter=settled.n_iter_).fit(X)
    np.testing.assert_allclose(again.cluster_centers_,
                               settled.cluster_centers_)
    assert again.n_iter_ == settled.n_iter_
    # A limit it reaches first is the count.
    assert kmeans.KMeans(6, engine="faiss", seed=1,
                         max_iter=1).fit(X).n_iter_ == 1


def test_kmeans_refuses_more_clusters_than_points():
    with pytest.raises(ic.ParamError, match="n_clusters"):
        kmeans.KMeans(10, seed=0).fit(np.zeros((5, 2), np.float32))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_neighbours_match_exact_search(metric):
    from sklearn.neighbors import NearestNeighbors

    X, _ = _blobs(2000, 24, 5, spread=2.0)
    index = neighbors.Neighbors(metric=metric).fit(X)
    idx, dist = index.search(X[:200], 5, exclude_self=True)
    ref = NearestNeighbors(n_neighbors=6, metric=metric).fit(X)
    ref_dist, ref_idx = ref.kneighbors(X[:200])
    np.testing.assert_array_equal(idx, ref_idx[:, 1:])
    np.testing.assert_allclose(dist, ref_dist[:, 1:], rtol=1e-3, atol=1e-4)


def test_the_ivf_index_finds_nearly_every_true_neighbour():
    X, _ = _blobs(20000, 16, 50, spread=3.0)
    exact = neighbors.Neighbors(exact=True).fit(X)
    ivf = neighbors.Neighbors(exact=False).fit(X)
    assert not ivf.exact_
    true_idx, _ = exact.search(X[:1000], 10)
    got_idx, _ = ivf.search(X[:1000], 10)
    recall = np.mean([len(set(a) & set(b)) / 10
                      for a, b in zip(true_idx, got_idx)])
    assert recall > 0.95


def test_the_ivf_of_wide_rows_searches_a_projection_and_reranks_exactly(
        monkeypatch):
    # 256-D rows that vary mostly along 16 directions, as embeddings do.
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(16, 256))
    X = (rng.normal(size=(20000, 16)) @ basis
         + rng.normal(scale=0.5, size=(20000, 256))).astype(np.float32)
    X[1::50] = X[0::50] + rng.normal(scale=0.05, size=(400, 256))
    exact = neighbors.Neighbors(metric="cosine", exact=True).fit(X)
    true_idx, _ = exact.search(X[:2000], 10, exclude_self=True)

    def recall(index):
        got, _ = index.search(X[:2000], 10, exclude_self=True)
        return np.mean([len(set(a) & set(b)) / 10
                        for a, b in zip(true_idx, got)])

    ivf = neighbors.Neighbors(metric="cosine", exact=False).fit(X)
    assert not ivf.exact_
    assert ivf._index.d == neighbors.COARSE_DIMS
    projected = recall(ivf)
    monkeypatch.setattr(neighbors, "COARSE_DIMS", 256)
    full = recall(neighbors.Neighbors(metric="cosine", exact=False).fit(X))
    assert projected > 0.85
    assert projected >= full - 0.02
    # Distances are the full space's, not the projection's.
    got_idx, got_dist = ivf.search(X[:2000], 1, exclude_self=True)
    unit = neighbors.unit_rows(X)
    full_space = 1 - np.einsum("ij,ij->i", unit[:2000], unit[got_idx[:, 0]])
    np.testing.assert_allclose(got_dist[:, 0], full_space, atol=1e-4)
    # Every planted copy is its original's nearest neighbour.
    copies = np.arange(1, 20000, 50)
    nearest, _ = ivf.search(X[copies - 1], 2)
    assert (nearest[:, 0] == copies - 1).all()
    assert (nearest[:, 1] == copies).all()


def test_knn_graph_puts_each_point_first_even_among_duplicates():
    X = np.zeros((10, 3), np.float32)  # all the same point
    X[5:] += 1
    idx, dist, _ = neighbors.knn_graph(X, 4)
    assert (idx[:, 0] == np.arange(10)).all()
    assert (dist[:, 0] == 0).all()
    assert all(len(set(row)) == 4 for row in idx)


def test_umap_on_a_faiss_graph_transforms_and_pickles():
    from image_clustering.algorithms.reducers import UMAPReducer

    X, labels = _blobs(5000, 20, 4, spread=1.0)
    reducer = UMAPReducer(n_components=2, n_neighbors=10, random_state=1)
    Y = reducer.fit_transform(X)
    model = pickle.loads(pickle.dumps(reducer.model_))
    Z = model.transform(X[:50])
    # new points land beside the points of their own blob
    centres = np.stack([Y[labels == c].mean(0) for c in range(4)])
    nearest = np.argmin(((Z[:, None] - centres[None]) ** 2).sum(-1), 1)
    assert (nearest == labels[:50]).mean() > 0.95


def test_the_map_is_fit_on_a_sample_and_places_the_rest(monkeypatch):
    monkeypatch.setattr(maps, "MAP_SAMPLE", 300)
    X, labels = _blobs(2000, 10, 3, spread=0.3)
    points, facts = maps.map_points(X, "umap", 1)
    assert facts == {"method": "umap", "fitted_on": 300, "epochs": 200,
                     "placed_by_neighbours": 1700}
    assert points.shape == (2000, 2) and np.isfinite(points).all()
    centres = np.stack([points[labels == c].mean(0) for c in range(3)])
    nearest = np.argmin(((points[:, None] - centres[None]) ** 2).sum(-1), 1)
    assert (nearest == labels).mean() > 0.99


def test_umap_kernels_are_compiled_once_per_machine(tmp_path):
    code = """
import json, numpy as np
from image_clustering.algorithms.reducers import UMAPReducer
from image_clustering.algorithms.umap_runtime import load_umap
X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
UMAPReducer(n_components=2, n_neighbors=5, random_state=1).fit_transform(X)
import umap.layouts as layouts
stats = layouts._nb_optimize_layout_euclidean_single_epoch.stats
print(json.dumps({"hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values())}))
"""
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    first = run_python(code, env=env)
    assert first.returncode == 0, first.stderr
    second = run_python(code, env=env)
    assert second.returncode == 0, second.stderr
    got = [json.loads(o.stdout.strip().splitlines()[-1])
           for o in (first, second)]
    assert got[0]["misses"] >= 1
    assert got[1] == {"hits": got[1]["hits"], "misses": 0} and \
        got[1]["hits"] >= 1
    assert os.listdir(tmp_path / "numba")


def test_gpu_preprocessing_gives_the_pil_tensors_on_the_cpu():
    torch = pytest.importorskip("torch")
    from PIL import Image

    from image_clustering.embedders.gpu_decode import TorchPreprocess
    from image_clustering.embedders.torch_runtime import Preprocess

    yy, xx = np.mgrid[0:480, 0:640]
    arr = np.stack([(80 * np.sin(xx / (20 + 7 * c) + yy / 31) + 128)
                    for c in range(3)], -1).astype(np.uint8)
    for config in (
        dict(size={"shortest_edge": 256},
             crop_size={"height": 224, "width": 224},
             mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
        dict(size={"height": 224, "width": 224}, mean=(0.48, 0.45, 0.40),
             std=(0.26, 0.26, 0.27)),
    ):
        pil = Preprocess(**config)
        expected = pil(Image.fromarray(arr))
        got = TorchPreprocess(pil)(torch.from_numpy(arr).permute(2, 0, 1))
        diff = np.abs(expected - got.numpy())
        assert diff.mean() < 0.01 and diff.max() < 0.05


@pytest.mark.parametrize("orientation", range(1, 9))
def test_gpu_orientation_matches_pil(orientation):
    torch = pytest.importorskip("torch")
    from PIL import Image, ImageOps

    from image_clustering.embedders.gpu_decode import orient

    arr = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(im))
    got = orient(torch.from_numpy(arr).permute(2, 0, 1), orientation)
    np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), expected)


def test_decoding_in_processes_gives_the_thread_results(tmp_path):
    from image_clustering.embedders import get_embedder

    paths = [str(write_gray(tmp_path / f"{i}.png", 10 * i, noise=5, seed=i))
             for i in range(40)]
    paths.insert(7, str(tmp_path / "missing.png"))
    embedder = get_embedder({"name": "pixels", "size": 8})
    threads = embedder.embed(paths, batch_size=16, decode="threads")
    processes = embedder.embed(paths, batch_size=16, num_workers=2,
                               decode="processes")
    assert processes.failures == threads.failures == {7: "file not found"}
    np.testing.assert_allclose(processes.vectors[processes.ok],
                               threads.vectors[threads.ok])


def test_chunked_reads_and_writes_keep_ids_aligned(two_groups, monkeypatch):
    from image_clustering.storage import sample_io as columns
    from image_clustering.storage import transaction as store

    monkeypatch.setattr(columns, "READ_CHUNK", 5)
    monkeypatch.setattr(store, "CHUNK", 7)
    view = two_groups.sort_by("filepath", reverse=True)
    run = ic.compute_clusters(view, "chunks", embedder={"name": "pixels",
                                                        "size": 8},
                              reducer="none", method="kmeans", n_clusters=2,
                              map="pca")
    ids, matrix, missing = columns.read_vectors(view, "pixels8_embedding")
    assert not missing and ids == view.values("id")
    stored = dict(zip(*two_groups.values(["id", "pixels8_embedding"])))
    for sid, row in zip(ids, matrix):
        np.testing.assert_allclose(row, stored[sid])
    by_id = dict(zip(*two_groups.values(["id", "chunks_dist"])))
    for sid, row in zip(ids, matrix):
        c = dict(zip(*two_groups.values(["id", "chunks_cluster"])))[sid]
        centre = np.asarray(run.clusters[c]["centre"])
        assert abs(np.linalg.norm(row - centre) - by_id[sid]) < 1e-5
