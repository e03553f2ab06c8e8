"""Clustering the objects of a Detections field: crops are embedded and
each detection gets the run's fields."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

import fiftyone as fo

import image_clustering as ic


@pytest.fixture
def street(tmp_path, make_dataset):
    """Six 'street photos', each with two or three objects: bright red
    squares and dark blue squares on a grey background."""
    rng = np.random.default_rng(0)
    paths, detections = [], []
    for i in range(6):
        im = Image.new("RGB", (160, 120), (128, 128, 128))
        draw = ImageDraw.Draw(im)
        dets = []
        for j in range(2 + i % 2):
            colour = "red" if (i + j) % 2 == 0 else "blue"
            x, y = 10 + 50 * j, int(rng.integers(5, 60))
            fill = (230, 20, 20) if colour == "red" else (20, 20, 120)
            draw.rectangle([x, y, x + 40, y + 40], fill=fill)
            dets.append(fo.Detection(
                label=colour, bounding_box=[x / 160, y / 120, 40 / 160, 40 / 120]
            ))
        path = tmp_path / f"street{i}.jpg"
        im.save(path, quality=95)
        paths.append(path)
        detections.append(dets)
    dataset = make_dataset(paths)
    dataset.set_values(
        "objects", [fo.Detections(detections=d) for d in detections]
    )
    # one sample with an empty box, one with no objects at all
    sample = dataset.first()
    sample.objects.detections.append(
        fo.Detection(label="red", bounding_box=[0.5, 0.5, 0.0, 0.0])
    )
    sample.save()
    return dataset


def test_objects_cluster_by_what_they_show(street):
    run = ic.compute_clusters(
        street, "obj", patches_field="objects",
        embedder={"name": "pixels", "size": 8}, reducer="none",
        method="kmeans", n_clusters=2,
    )
    assert run.fields["cluster"] == "objects.detections.obj_cluster"
    labels, clusters, dists = street.values(
        ["objects.detections.label", "objects.detections.obj_cluster",
         "objects.detections.obj_dist"]
    )
    pairs = {(l, c) for ls, cs in zip(labels, clusters) for l, c in zip(ls, cs)
             if c is not None}
    assert len(pairs) == 2 and {l for l, _ in pairs} == {"red", "blue"}
    assert run.metrics["n_samples"] == 15
    assert run.skipped["count"] == 1
    assert "empty bounding box" in run.skipped["samples"][0]["reason"]
    assert run.skipped["samples"][0]["filepath"] == street.first().filepath
    # sample-level fields are not touched
    assert street.get_field("obj_cluster") is None
    assert all(d is None or d >= 0 for ds in dists for d in ds)


def test_patches_view_groups_by_cluster_and_map_is_registered(street):
    run = ic.compute_clusters(
        street, "obj", patches_field="objects",
        embedder={"name": "pixels", "size": 8}, reducer="none",
        method="kmeans", n_clusters=2, map="pca",
    )
    grouped = run.clusters_view()
    assert len(grouped) == 2  # two dynamic groups of patches
    one = run.clusters_view(cluster=0)
    assert one._is_patches
    dists = one.values("objects.obj_dist")
    assert dists == sorted(dists) and len(one) == run.clusters[0]["size"]
    assert street.list_brain_runs() == ["obj_map"]
    viz = street.load_brain_results("obj_map")
    assert viz.points.shape == (15, 2)


    reps = run.representatives()
    assert set(reps) == {0, 1}

    ic.rename_run(street, "obj", "things")
    assert street.values("objects.detections.things_cluster")[1]
    assert street.list_brain_runs() == ["things_map"]
    ic.delete_run(street, "things")
    assert street.get_field("objects.detections.things_cluster") is None
    assert street.list_brain_runs() == []


def test_patches_need_a_detections_field(street):
    with pytest.raises(ic.ParamError, match="must be a Detections"):
        ic.compute_clusters(street, "x", patches_field="filepath",
                            method="kmeans", n_clusters=2)


def test_command_line_clusters_objects_of_an_existing_dataset(street):
    import os
    import subprocess
    import sys

    street.persistent = True
    cli = os.path.join(os.path.dirname(sys.executable), "image-clustering")
    out = subprocess.run(
        [cli, "cluster", "--dataset", street.name, "--patches-field",
         "objects", "--embedder-param", "size=8", "--reducer", "none",
         "--method", "kmeans", "--param", "n_clusters=2", "--quiet"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    assert f"Using existing dataset '{street.name}'" in out.stdout
    assert "ARI vs object labels 1.0000" in out.stdout
    assert "empty bounding box" in out.stdout


def test_objects_form_a_hierarchy_whose_cut_moves_and_whose_layers_are_fields(
        tmp_path, make_dataset):
    # Twelve photos, each with four noisy squares of four grey levels.
    rng = np.random.default_rng(1)
    paths, detections = [], []
    for i in range(12):
        pixels = np.full((60, 240), 128, dtype=np.uint8)
        dets = []
        for j, level in enumerate((10, 70, 180, 250)):
            block = np.clip(level + rng.normal(0, 12, (40, 40)), 0, 255)
            pixels[10:50, 60 * j + 10:60 * j + 50] = block
            dets.append(fo.Detection(label=str(level), bounding_box=[
                (60 * j + 10) / 240, 10 / 60, 40 / 240, 40 / 60]))
        path = tmp_path / f"squares{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
        detections.append(dets)
    ds = make_dataset(paths)
    ds.set_values("objects", [fo.Detections(detections=d)
                              for d in detections])

    run = ic.compute_clusters(
        ds, "tree", patches_field="objects",
        embedder={"name": "pixels", "size": 8}, reducer="none",
        method="hierarchy", cut=4, map="none",
    )
    assert run.fields["layer0"] == "objects.detections.tree_layer0"
    labels, clusters = ds.values(["objects.detections.label",
                                  "objects.detections.tree_cluster"])
    pairs = {(l, c) for ls, cs in zip(labels, clusters) for l, c in zip(ls, cs)}
    assert len(pairs) == 4 and len({l for l, _ in pairs}) == 4
    finest = run.set_cut(layer=0)
    assert ds.values("objects.detections.tree_cluster") == \
        ds.values("objects.detections.tree_layer0")
    assert finest.metrics["n_samples"] == 48
    assert ds.get_field("tree_cluster") is None
