"""A run where every sample is noise is a legitimate answer (nothing
there is dense enough to be a cluster): it is stored, and every way of
showing it works."""

import os

import numpy as np
import pytest
from PIL import Image

import fiftyone as fo
import fiftyone.operators as foo

import image_clustering as ic
from image_clustering.clustering.charts import KINDS

PLUGIN = "@image-clustering/clustering"


@pytest.fixture
def scattered(tmp_path, make_dataset):
    """Twelve images of independent noise, with ground truth."""
    rng = np.random.default_rng(0)
    items = []
    for i in range(12):
        path = tmp_path / f"noise{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16)).astype(np.uint8),
                        "L").save(path)
        items.append((str(path), "even" if i % 2 == 0 else "odd"))
    return make_dataset(items)


def _all_noise(ds, key, noise):
    run = ic.compute_clusters(
        ds, key, embedder={"name": "pixels", "size": 8}, reducer="none",
        method="dbscan", eps=1e-6, min_samples=3, noise=noise,
        gt_field="ground_truth")
    assert run.metrics["n_clusters"] == 0
    return run


@pytest.mark.parametrize("noise", ["keep", "assign"])
def test_a_run_where_every_sample_is_noise_is_summarised(scattered, noise):
    run = _all_noise(scattered, "void", noise)

    summary = run.summary()
    assert summary["headline"] == "0 clusters, 12 noise, 0.0% of 12 clustered"
    assert [(c["cluster"], c["size"]) for c in summary["clusters"]] == \
        [(-1, 12)]
    assert set(scattered.values("void_cluster")) == {-1}


def test_the_info_operator_and_every_chart_show_an_all_noise_run(scattered):
    _all_noise(scattered, "void", "keep")

    info = foo.execute_operator(f"{PLUGIN}/get_clustering_run_info",
                                dict(dataset=scattered,
                                     params={"run_key": "void"}))
    assert info.error is None
    assert info.result["n_clusters"] == 0
    assert info.result["n_noise"] == 12
    for kind in KINDS:
        path = ic.plot_run(scattered, "void", kind=kind)
        assert os.path.getsize(path) > 0
