"""Guards against quadratic work on per-sample and per-object paths: each
counts the operations a path performs (Python lines executed, loop
iterations included, and calls of Python and C functions) at one size and
at four times that size, and requires the count to grow at most linearly
(never a timing). Forms that list runs must read only the runs' configs:
counted as calls that load a run's results or members."""

import sys

import numpy as np
import pytest

import image_clustering as ic
from image_clustering.curation import export
from image_clustering.labeling.naming import farthest_points

SMALL = 150
GROWTH = 4
# Four times the rows may cost at most this many times the calls: linear
# work and fixed overheads stay under it, a per-row pass over all rows
# (4 x 4 = 16 times) does not.
LINEAR = 5.0


def calls_made(call):
    """``(number of operations, result)`` of ``call()``: lines executed
    (each iteration of a loop or comprehension is one) and calls."""
    count = [0]

    def profile(frame, event, arg):
        if event == "c_call":
            count[0] += 1

    def trace(frame, event, arg):
        count[0] += 1
        return trace

    sys.setprofile(profile)
    sys.settrace(trace)
    try:
        result = call()
    finally:
        sys.settrace(None)
        sys.setprofile(None)
    return count[0], result


def calls_named(call, names):
    """Calls of functions named ``names`` made by ``call()``."""
    seen = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_name in names:
            seen.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return seen


def vectors_dataset(n, d=8, seed=0):
    import fiftyone as fo

    rng = np.random.default_rng(seed)
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=f"/nowhere/{i:05d}.jpg")
                    for i in range(n)], progress=False)
    ds.add_sample_field("emb", fo.VectorField)
    centres = rng.normal(scale=5, size=(3, d))
    ds.set_values("emb", list(centres[rng.integers(0, 3, n)] +
                              rng.normal(size=(n, d))))
    return ds


@pytest.fixture
def datasets():
    made = []

    def make(n, **kwargs):
        made.append(vectors_dataset(n, **kwargs))
        return made[-1]

    yield make
    for ds in made:
        ds.delete()


KMEANS = dict(embeddings_field="emb", reducer="none", method="kmeans",
              n_clusters=3, map="none")


def _grows_linearly(small, large):
    assert large <= LINEAR * small, (small, large)


def test_export_rows_grow_linearly_with_the_members(datasets):
    counts = []
    for n in (SMALL, GROWTH * SMALL):
        run = ic.compute_clusters(datasets(n), "k", **KMEANS)
        calls, rows = calls_made(lambda: export._rows(run, None))
        assert len(rows) == n
        counts.append(calls)
    _grows_linearly(*counts)


def test_assignment_grows_linearly_with_the_samples_placed(datasets):
    counts = []
    for n in (SMALL, GROWTH * SMALL):
        ds = datasets(SMALL + n)
        run = ic.compute_clusters(ds.limit(SMALL), "k", **KMEANS)
        calls, updated = calls_made(lambda: run.assign(ds))
        assert len(ds.exists("k_assigned")) == n
        counts.append(calls)
    _grows_linearly(*counts)


def test_patch_embeddings_grow_linearly_with_the_objects(datasets):
    import fiftyone as fo

    from image_clustering.clustering.embed import get_patch_embeddings

    counts = []
    for n in (SMALL, GROWTH * SMALL):
        ds = datasets(n // 3)
        rng = np.random.default_rng(2)
        ds.set_values("dets", [fo.Detections(detections=[
            fo.Detection(label="x", bounding_box=[0.1, 0.1, 0.5, 0.5],
                         vec=list(rng.normal(size=4)))
            for _ in range(3)]) for _ in range(len(ds))])
        calls, emb = calls_made(
            lambda: get_patch_embeddings(ds, "dets", attribute="vec"))
        assert len(emb.ids) == 3 * len(ds)
        counts.append(calls)
    _grows_linearly(*counts)


def test_farthest_point_sampling_does_not_loop_over_the_points():
    rng = np.random.default_rng(0)
    counts = []
    for n in (500, GROWTH * 500):
        xy = rng.normal(size=(n, 2))
        calls, picked = calls_made(
            lambda: farthest_points(xy, xy[:2], 8))
        assert len(set(picked)) == 8
        counts.append(calls)
    # the loop runs once per point picked, whatever the number of points
    assert counts[1] <= 1.2 * counts[0], counts


def test_the_run_dropdown_reads_configs_only(datasets):
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext

    ds = datasets(60)
    for key in ("a", "b", "c"):
        ic.compute_clusters(ds, key, **KMEANS)
    op = foo.get_operator("@image-clustering/clustering/get_clustering_run_info")
    ctx = ExecutionContext(request_params=dict(
        dataset_name=ds.name, view=ds.view()._serialize(), params={}))
    loads = calls_named(lambda: op.resolve_input(ctx),
                        {"load_record", "members", "read_attachment"})
    assert loads == []
