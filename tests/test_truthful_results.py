"""Answers that used to look right while being wrong, or crash while the
answer was legitimate: each now tells the truth."""

import os

import numpy as np
import pytest

import fiftyone as fo

import image_clustering as ic
from conftest import write_gray


@pytest.fixture
def twelve(tmp_path, make_dataset):
    """Twelve images, dark and bright by turns."""
    return make_dataset([write_gray(tmp_path / f"img_{i:02d}.png",
                                    40 if i % 2 else 215, noise=10, seed=i)
                         for i in range(12)])


def _vectors(ds, lengths):
    """An ``emb`` vector field with a vector of each length in turn:
    two clean groups whatever the length."""
    ds.add_sample_field("emb", fo.VectorField)
    values = {}
    for i, (sid, d) in enumerate(zip(ds.values("id"), lengths)):
        v = np.zeros(d, dtype=np.float32)
        v[i % 2] = 1.0
        values[sid] = v + 0.01 * i
    ds.set_values("emb", values, key_field="id")


def test_vectors_of_mixed_lengths_follow_the_majority_and_name_the_rest(
        twelve):
    # The first two samples read have the odd length: reading them first
    # must not decide the length.
    _vectors(twelve, [4, 4] + [8] * 10)
    run = ic.compute_clusters(twelve, "k", embeddings_field="emb",
                              reducer="none", method="kmeans", n_clusters=2)

    assert run.metrics["n_samples"] == 10
    odd = twelve.values("filepath")[:2]
    assert sorted(s["filepath"] for s in run.skipped["samples"]) == \
        sorted(odd)
    assert all("4" in s["reason"] and "8" in s["reason"]
               for s in run.skipped["samples"])


def test_vectors_split_evenly_between_two_lengths_are_refused_with_counts(
        twelve):
    _vectors(twelve, [4, 8] * 6)
    with pytest.raises(ValueError, match="6 of length 4.*6 of length 8|"
                       "6 of length 8.*6 of length 4"):
        ic.compute_clusters(twelve, "k", embeddings_field="emb",
                            reducer="none", method="kmeans", n_clusters=2)
    assert ic.list_runs(twelve) == []


def _pairs_of_copies(tmp_path, make_dataset):
    """Three pairs of identical files and two single files."""
    paths = []
    for i, value in enumerate((30, 30, 120, 120, 200, 200, 80, 160)):
        paths.append(write_gray(tmp_path / f"f{i}.png", value, noise=20,
                                seed=value))
    return make_dataset(paths)


def test_leaks_are_found_in_a_classification_split_field(tmp_path,
                                                        make_dataset):
    ds = _pairs_of_copies(tmp_path, make_dataset)
    run = ic.find_exact_duplicates(ds)
    ids = ds.values("id")
    # The first pair straddles train and test; the others stay in train.
    splits = ["train", "test"] + ["train"] * 6
    ds.set_values("split", [fo.Classification(label=s) for s in splits])

    leaks = run.leaks(split_field="split")

    assert leaks.pairs == {"test/train": 1}
    assert set(leaks.ids("test")) == {ids[1]}
    assert set(leaks.ids("train")) == {ids[0]}


def _lose_results(ds, key):
    """Removes a run's stored results from GridFS, as a hand-made cleanup
    of the database might."""
    from image_clustering.storage.mongo import db, fs
    from image_clustering.storage.records import record_id

    doc = db().runs.find_one({"_id": record_id(ds, key)}, {"results": 1})
    fs().delete(doc["results"])


def test_a_run_whose_results_are_missing_is_damaged_not_absent(
        tmp_path, make_dataset):
    from image_clustering.storage.records import StoreError

    ds = _pairs_of_copies(tmp_path, make_dataset)
    ic.compute_clusters(ds, "k", embedder={"name": "pixels", "size": 8},
                        reducer="none", method="kmeans", n_clusters=2,
                        map="none")
    ic.find_exact_duplicates(ds, key="d")
    _lose_results(ds, "k")
    _lose_results(ds, "d")

    with pytest.raises(StoreError, match="missing.*repair"):
        ic.load_run(ds, "k")
    with pytest.raises(StoreError, match="missing.*repair"):
        ic.load_duplicates(ds, "d")
    assert ic.list_runs(ds) == ["k"]

    report = ic.repair(ds)

    assert "removed run 'k', whose results could not be read" in report
    assert "removed run 'd', whose results could not be read" in report
    assert ic.list_runs(ds) == [] and ic.list_analyses(ds) == {}
    ds.reload()
    assert ds.get_field("k_cluster") is None
    assert ds.get_field("d_group") is None


def _kmeans(ds, key="k", **kwargs):
    return ic.compute_clusters(ds, key, embedder={"name": "pixels",
                                                  "size": 8},
                               reducer="none", method="kmeans", n_clusters=2,
                               map="none", **kwargs)


def test_a_copy_export_skips_a_missing_image_reports_it_and_counts_the_rest(
        twelve, tmp_path):
    _kmeans(twelve)
    gone = twelve.values("filepath")[3]
    os.remove(gone)
    out_dir = tmp_path / "out"

    out = ic.export_clusters(twelve, "k", str(out_dir), images="copy")

    assert out["rows"] == 12
    assert out["images"] == 11
    assert out["failed"] == {gone: "file not found"}
    written = [f for _, _, files in os.walk(out_dir / "images")
               for f in files]
    assert len(written) == 11
    assert os.path.basename(gone) not in written


def test_object_crops_that_cannot_be_decoded_are_not_counted(
        tmp_path, make_dataset):
    from PIL import Image

    paths = []
    for i in range(4):
        path = tmp_path / f"scene{i}.png"
        Image.new("RGB", (64, 48), (40 + 50 * i,) * 3).save(path)
        paths.append(path)
    ds = make_dataset(paths)
    box = [0.1, 0.1, 0.5, 0.5]
    ds.set_values("objects", [fo.Detections(detections=[
        fo.Detection(label="a", bounding_box=box),
        fo.Detection(label="b", bounding_box=[0.5, 0.4, 0.4, 0.5])])
        for _ in paths])
    _kmeans(ds, patches_field="objects")
    broken = str(paths[0])
    with open(broken, "wb") as f:
        f.write(b"not an image any more")

    out = ic.export_clusters(ds, "k", str(tmp_path / "out"), images="copy")

    assert out["rows"] == 8
    assert out["images"] == 6
    assert list(out["failed"]) == [broken]
    crops = [f for _, _, files in os.walk(tmp_path / "out" / "images")
             for f in files]
    assert len(crops) == 6


def test_exporting_twice_with_links_replaces_the_links(twelve, tmp_path):
    _kmeans(twelve)
    out_dir = str(tmp_path / "out")
    first = ic.export_clusters(twelve, "k", out_dir, images="symlink")
    second = ic.export_clusters(twelve, "k", out_dir, images="symlink",
                                overwrite=True)

    assert first["images"] == second["images"] == 12
    assert second["failed"] == {}
    links = [os.path.join(d, f) for d, _, files in
             os.walk(os.path.join(out_dir, "images")) for f in files]
    assert len(links) == 12
    assert all(os.path.islink(p) and os.path.exists(p) for p in links)


def test_a_parameter_that_may_not_be_none_refuses_none_even_by_default():
    from image_clustering.embedders import get_embedder
    from image_clustering.units import Param

    required = Param("module", "object", None, "a model", nullable=False)
    assert required.nullable is False
    with pytest.raises(ic.ParamError, match="'module' is required"):
        required.clean("mine", None)
    # A unit that declares one refuses to be built without it.
    with pytest.raises(ic.ParamError, match="torch: 'module' is required"):
        get_embedder("torch")


def _three_points(noise=1e-3, copies=6):
    """Three distinct points, each repeated with a little noise: a mixture
    of six components leaves three of them without members."""
    rng = np.random.default_rng(0)
    X = np.repeat(np.array([[0, 0], [5, 0], [0, 5]], np.float32), copies,
                  axis=0)
    return X + noise * rng.normal(size=X.shape).astype(np.float32)


def test_a_mixture_component_without_members_never_makes_new_samples_noise(
        tmp_path, make_dataset):
    from image_clustering.algorithms import fitted

    X = _three_points()
    ds = make_dataset([write_gray(tmp_path / f"p{i}.png", 10 * i)
                       for i in range(len(X))])
    ds.add_sample_field("emb", fo.VectorField)
    ds.set_values("emb", list(X))
    run = ic.compute_clusters(ds, "g", embeddings_field="emb",
                              reducer="none", method="gmm", n_components=6,
                              covariance_type="diag", seed=0, map="none")
    model = fitted.loads(run.attachment("fitted")).clusterer.model_
    assert len(set(ds.values("g_cluster"))) == 3
    # Points where the mixture's own most probable component is one that
    # no fitted sample belongs to.
    empty = model.weights_ < 1e-3
    assert empty.sum() == 3
    grid = np.stack(np.meshgrid(np.linspace(-1, 6, 29),
                                np.linspace(-1, 6, 29)), -1).reshape(-1, 2)
    lost = grid[empty[model.predict_proba(grid).argmax(axis=1)]][:3]
    assert len(lost)
    new = [fo.Sample(filepath=str(write_gray(tmp_path / f"new{i}.png",
                                             200 + i)), emb=v)
           for i, v in enumerate(lost)]
    new_ids = ds.add_samples(new, progress=False)

    ic.assign_clusters(ds, "g")

    placed = ds.select(new_ids).values("g_cluster")
    assert all(c is not None and c >= 0 for c in placed)


@pytest.mark.parametrize("noise, outlier_is_noise", [("assign", False),
                                                     ("keep", True)])
def test_placing_new_samples_follows_the_runs_noise_policy(
        tmp_path, make_dataset, noise, outlier_is_noise):
    # Two tight groups of grey levels, close together.
    ds = make_dataset([write_gray(tmp_path / f"g{i:02d}.png",
                                  100 if i % 2 else 156, noise=5, seed=i)
                       for i in range(24)])
    run = ic.compute_clusters(
        ds, "h", embedder={"name": "pixels", "size": 8}, reducer="none",
        method="hdbscan", min_cluster_size=5, noise=noise, map="none")
    assert run.metrics["n_clusters"] == 2
    # White: farther from both groups than they are from each other, so
    # HDBSCAN's own prediction calls it noise.
    outlier = ds.add_sample(fo.Sample(filepath=str(write_gray(
        tmp_path / "white.png", 255))))

    ic.assign_clusters(ds, "h", assigner="auto")

    cluster = ds[outlier]["h_cluster"]
    assert (cluster == -1) is outlier_is_noise


def test_two_runs_with_no_sample_in_common_compare_without_crashing(
        twelve):
    import fiftyone.operators as foo

    ids = twelve.values("id")
    _kmeans(twelve.select(ids[:6]), "a")
    _kmeans(twelve.select(ids[6:]), "b")

    c = ic.compare_runs(twelve, "a", "b")

    assert c.shared == 0 and c.ari is None
    assert c.describe() == ("'a' vs 'b': no sample was clustered by both "
                            "runs, so they cannot be compared")
    assert "cannot be compared" in repr(c)
    result = foo.execute_operator(
        "@image-clustering/clustering/compare_clustering_runs",
        dict(dataset=twelve, params={"run_a": "a", "run_b": "b"}))
    assert result.error is None
    assert result.result["ari"] is None
    assert "cannot be compared" in result.result["summary"]


def test_a_conflict_between_writers_renders_as_a_clear_error():
    from image_clustering.cli.flags import FlagNames
    from image_clustering.storage.records import StoreError
    from image_clustering.storage.transaction import ConflictError

    e = ConflictError("run 'k' was changed by another process")

    assert isinstance(e, StoreError) and isinstance(e, ic.ParamError)
    assert e.param == "run_key"
    assert str(e) == FlagNames().render(e) == \
        "run 'k' was changed by another process"


def test_deleting_duplicates_refuses_a_run_changed_since_it_was_read(
        tmp_path, make_dataset):
    from image_clustering.storage.transaction import ConflictError

    ds = _pairs_of_copies(tmp_path, make_dataset)
    read = ic.find_exact_duplicates(ds, key="d")
    counted = read.counts()["duplicates"]
    # Meanwhile another process finds the duplicates again, over one more
    # copy.
    ds.add_sample(fo.Sample(filepath=str(write_gray(
        tmp_path / "f7-copy.png", 160, noise=20, seed=160))))
    ic.find_exact_duplicates(ds, key="d", overwrite=True)

    with pytest.raises(ConflictError, match="changed by another process"):
        read.delete_duplicates(confirm=counted)
    assert len(ds) == 9


def test_an_empty_view_is_refused_as_empty(twelve):
    with pytest.raises(ic.ParamError, match="there are no samples to "
                       "cluster"):
        ic.compute_clusters(twelve.match_tags("nowhere"), "k",
                            embedder={"name": "pixels", "size": 8},
                            reducer="none", method="kmeans", n_clusters=2)
