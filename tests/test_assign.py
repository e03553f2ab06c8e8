"""Placing new samples into a stored run, and the run's charts."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import image_clustering as ic

from conftest import run_python, write_gray

PIXELS8 = {"name": "pixels", "size": 8}
PIPELINE = dict(embedder=PIXELS8, reducer=[
    {"name": "pca", "n_components": 10},
    {"name": "umap", "n_components": 3, "n_neighbors": 8, "min_dist": 0.0}])


@pytest.fixture
def twins(tmp_path, make_dataset):
    """Three grey levels, 20 images each, tagged "fit"; and for each of
    the first 8 of every level a twin (a copy of the file) tagged "new"."""
    items, twins_of = [], {}
    for level, value in enumerate((30, 128, 225)):
        for i in range(20):
            path = write_gray(tmp_path / f"l{level}_{i}.png", value,
                              noise=12, seed=100 * level + i)
            items.append((str(path), f"level{level}"))
            if i < 8:
                twin = tmp_path / f"twin_l{level}_{i}.png"
                shutil.copy(path, twin)
                items.append((str(twin), f"level{level}"))
                twins_of[str(twin)] = str(path)
    ds = make_dataset(items)
    for sample in ds:
        sample.tags.append("new" if sample.filepath in twins_of else "fit")
        sample.save()
    ds.persistent = True
    return ds, twins_of


def _twins_agree(ds, key, twins_of):
    by_path = dict(zip(*ds.values(["filepath", f"{key}_cluster"])))
    return all(by_path[twin] == by_path[original]
               for twin, original in twins_of.items())


@pytest.mark.parametrize("method,params", [
    ("kmeans", {"n_clusters": 3}),
    ("hdbscan", {"min_cluster_size": 8}),
    ("gmm", {"n_components": 3}),
    ("agglomerative", {"n_clusters": 3}),
])
@pytest.mark.parametrize("assigner", ["auto", "knn", "svm"])
def test_twins_land_in_the_cluster_of_their_twin(twins, method, params,
                                                 assigner):
    ds, twins_of = twins
    run = ic.compute_clusters(ds.match_tags("fit"), "r", method=method,
                              **PIPELINE, **params)
    sizes = [c["size"] for c in run.clusters]
    run = ic.assign_clusters(ds.match_tags("new"), "r", assigner=assigner)
    assert _twins_agree(ds, "r", twins_of)
    assert run.results["assigned"]["count"] == 24
    assert run.results["assigned"]["last"]["assigner"] == assigner
    # the fit's own statistics stay those of the fit
    assert [c["size"] for c in run.clusters] == sizes
    assert set(ds.match_tags("new").values("r_assigned")) == {True}
    assert set(ds.match_tags("fit").values("r_assigned")) == {None}
    assert len(ds.match_tags("new").exists("r_dist")) == 24
    assert len(ds.match_tags("new").exists("r_map")) == 24
    assert run.changes()["assigned"] == 24
    # the grouped view shows the placed samples with the others
    groups = list(run.clusters_view().iter_dynamic_groups())
    assert sum(len(g) for g in groups) == 84


def test_assigning_again_places_only_what_the_fit_did_not_cluster(twins):
    ds, twins_of = twins
    run = ic.compute_clusters(ds.match_tags("fit"), "r", method="kmeans",
                              n_clusters=3, **PIPELINE)
    fit_values = dict(zip(*ds.match_tags("fit").values(["id", "r_cluster"])))
    ic.assign_clusters(ds, "r")            # the whole dataset
    run = ic.assign_clusters(ds, "r")      # and again
    assert run.results["assigned"]["count"] == 24
    assert dict(zip(*ds.match_tags("fit").values(["id", "r_cluster"]))) == \
        fit_values


def test_assign_in_a_fresh_process(twins):
    ds, twins_of = twins
    ic.compute_clusters(ds.match_tags("fit"), "fresh", method="hdbscan",
                        min_cluster_size=8, **PIPELINE)
    code = f"""
import json
import fiftyone as fo
import image_clustering as ic
ds = fo.load_dataset({ds.name!r})
run = ic.assign_clusters(ds.match_tags("new"), "fresh")
print(json.dumps(run.results["assigned"]["last"]))
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    last = json.loads(out.stdout.strip().splitlines()[-1])
    assert last["placed"] == 24
    ds.reload()
    assert _twins_agree(ds, "fresh", twins_of)


def test_the_fitted_stages_load_without_this_package(twins):
    ds, _ = twins
    run = ic.compute_clusters(ds.match_tags("fit"), "plain", method="gmm",
                              n_components=3, **PIPELINE)
    fitted = run.results["fitted"]
    assert fitted["format"] == "pickle-v1" and fitted["bytes"] > 0
    code = f"""
import pickle, sys, gridfs, bson
from fiftyone.core.odm import get_db_conn
blob = gridfs.GridFS(get_db_conn()).get(bson.ObjectId({fitted['file']!r})).read()
state = pickle.loads(blob)
assert "image_clustering" not in sys.modules
print(sorted(state), type(state["clusterer"]["model"]).__name__,
      [type(r["model"]).__name__ for r in state["reducers"]])
"""
    out = run_python(code)
    assert out.returncode == 0, out.stderr
    assert "GaussianMixture ['PCA', 'UMAP']" in out.stdout


def test_the_fitted_stages_go_with_the_run(twins):
    from fiftyone.core.odm import get_db_conn

    ds, _ = twins
    run = ic.compute_clusters(ds.match_tags("fit"), "gone", method="kmeans",
                              n_clusters=3, **PIPELINE)
    file_id = run.results["fitted"]["file"]
    files = get_db_conn()["fs.files"]
    from bson import ObjectId

    ic.rename_run(ds, "gone", "moved")
    assert files.count_documents({"_id": ObjectId(file_id)}) == 1
    ic.assign_clusters(ds.match_tags("new"), "moved")
    assert files.count_documents({"_id": ObjectId(file_id)}) == 1
    ic.delete_run(ds, "moved")
    assert files.count_documents({"_id": ObjectId(file_id)}) == 0


def test_noise_stays_noise_where_the_assigner_says_so(tmp_path,
                                                      make_dataset):
    # two tight groups close together, and one image far from both
    items = [write_gray(tmp_path / f"g{i}.png", 100, noise=5, seed=i)
             for i in range(30)]
    items += [write_gray(tmp_path / f"b{i}.png", 150, noise=5, seed=i)
              for i in range(30)]
    odd = tmp_path / "odd.png"
    arr = np.zeros((16, 16), np.uint8)
    arr[:, :8] = 255  # half white, half black: like neither group
    Image.fromarray(arr).save(odd)
    twin = tmp_path / "odd_twin.png"
    shutil.copy(odd, twin)
    ds = make_dataset([str(p) for p in items] + [str(odd), str(twin)])
    fit = ds.exclude(ds.match({"filepath": str(twin)}).values("id"))
    run = ic.compute_clusters(fit, "n", embedder=PIXELS8, reducer="none",
                              method="hdbscan", min_cluster_size=10,
                              map="pca")
    by_path = dict(zip(*ds.values(["filepath", "n_cluster"])))
    assert by_path[str(odd)] == -1
    run = ic.assign_clusters(ds, "n")
    by_path = dict(zip(*ds.values(["filepath", "n_cluster"])))
    assert by_path[str(twin)] == -1
    assert run.results["assigned"]["last"]["noise"] == 1


def test_assigning_into_a_tsne_run_is_refused(twins):
    ds, _ = twins
    ic.compute_clusters(ds.match_tags("fit"), "ts", embedder=PIXELS8,
                        reducer="tsne", method="kmeans", n_clusters=3)
    with pytest.raises(ic.ParamError, match="t-SNE"):
        ic.assign_clusters(ds.match_tags("new"), "ts")


def _pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("kind,size", [
    ("scatter", (1600, 700)), ("boundaries", (900, 800)),
    ("montage", None), ("axes", None)])
def test_charts_are_drawn_and_not_blank(twins, tmp_path, kind, size):
    ds, _ = twins
    ic.compute_clusters(ds, "c", method="kmeans", n_clusters=3, **PIPELINE)
    path = ic.plot_run(ds, "c", kind=kind, path=str(tmp_path / f"{kind}.png"),
                       gt_field="ground_truth", per_cluster=4)
    pixels = _pixels(path)
    if size:
        assert pixels.shape[1::-1] == size
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    colours = {tuple(c) for c in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 20
    assert pixels.std() > 10


def _hex_rgb(colour):
    colour = colour.lstrip("#")
    return np.array([int(colour[i:i + 2], 16) for i in (0, 2, 4)])


@pytest.mark.parametrize("kind", ["scatter", "boundaries"])
def test_a_known_point_is_drawn_in_its_clusters_colour(twins, tmp_path,
                                                       kind):
    from image_clustering.clustering import charts
    from image_clustering.clustering.presentation import cluster_color

    ds, _ = twins
    run = ic.compute_clusters(ds, "c", method="kmeans", n_clusters=3,
                              **PIPELINE)
    figure = {"scatter": charts._scatter,
              "boundaries": charts._boundaries}[kind](run)
    path = str(tmp_path / f"{kind}.png")
    figure.savefig(path, dpi=100)
    ax = figure.axes[0]
    height = figure.get_size_inches()[1] * 100
    pixels = _pixels(path).astype(int)
    points, clusters, _, _ = charts._map_points(run, None, 0)
    checked = 0
    for c in range(3):
        # The point of the cluster farthest from every other cluster's.
        others = points[clusters != c]
        mine = np.flatnonzero(clusters == c)
        far = mine[np.argmax([np.min(np.linalg.norm(others - points[i],
                                                     axis=1))
                              for i in mine])]
        x, y = ax.transData.transform(points[far])
        row, col = int(round(height - y)), int(round(x))
        patch = pixels[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3)
        want = _hex_rgb(cluster_color(c))
        assert np.abs(patch - want).sum(axis=1).min() < 30, (c, patch, want)
        checked += 1
    assert checked == 3


def test_a_montage_has_one_row_per_cluster(twins, tmp_path):
    ds, _ = twins
    ic.compute_clusters(ds, "m", method="kmeans", n_clusters=3, **PIPELINE)
    three = _pixels(ic.plot_run(ds, "m", kind="montage",
                                path=str(tmp_path / "3.png")))
    ic.compute_clusters(ds, "m6", method="kmeans", n_clusters=6, **PIPELINE)
    six = _pixels(ic.plot_run(ds, "m6", kind="montage",
                              path=str(tmp_path / "6.png")))
    assert six.shape[0] > 1.6 * three.shape[0]


def test_a_chart_of_many_points_says_it_is_sampled(twins, tmp_path,
                                                   monkeypatch):
    from image_clustering.clustering import charts

    monkeypatch.setattr(charts, "MAX_POINTS", 30)
    ds, _ = twins
    ic.compute_clusters(ds, "s", method="kmeans", n_clusters=3, **PIPELINE)
    points, _, _, total = charts._map_points(ic.load_run(ds, "s"), None, 0)
    assert len(points) == 30 and total == 84
    assert "30 of 84" in charts._sampled_note(30, 84)
