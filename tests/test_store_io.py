"""Sample I/O at scale on the real database: values staged as raw BSON
land exactly as the generic path would write them, whatever their type
and whichever are missing; merges split across parallel parts cover every
row; stale values of samples a new run did not cover are removed; vectors
read through the batched reader equal FiftyOne's own reading."""

import math

import numpy as np
import pytest

from image_clustering.clustering.embed import get_embeddings
from image_clustering.storage import runs, schema, steps, transaction
from image_clustering.storage.sample_io import (
    raw_batches,
    read_vectors,
    vector_docs,
)
from image_clustering.storage.transaction import Column


@pytest.fixture
def many(make_dataset, tmp_path):
    """300 samples (their files need not exist: nothing is decoded)."""
    return make_dataset([tmp_path / f"s{i:03d}.png" for i in range(300)])


def _write(samples, key, values, kinds=None, overwrite=False):
    names = {s: f"{key}_{s}" for s in values}
    columns = [Column(s, names[s], v, (kinds or {}).get(s))
               for s, v in values.items()]
    config = {"kind": schema.RUN_KIND, "record_version":
              schema.RECORD_VERSION, "run_id": schema.new_run_id(),
              "fields": names, "patches": None, "map": None}
    expect = runs.check_new_run(samples._dataset, key, list(names.values()),
                                overwrite, schema.RUN_KIND)
    runs.write_run(samples, key, config, {}, samples.values("id"), columns,
                   expect)
    return names


def test_values_of_every_type_land_as_the_generic_path_writes_them(
        many, monkeypatch):
    # small chunks and a split into parts: several record layouts per
    # chunk, merged in parallel
    monkeypatch.setattr(transaction, "CHUNK", 64)
    monkeypatch.setattr(transaction, "SPLIT_SAMPLE", 8)
    monkeypatch.setattr(steps, "MERGE_PARTS", 3)
    n = len(many)
    rng = np.random.default_rng(0)
    dist = rng.random(n)
    dist[::7] = np.nan
    dist[1::11] = np.inf
    prob = [None if i % 5 == 0 else float(i) / n for i in range(n)]
    moved = [None if i % 13 == 0 else bool(i % 2) for i in range(n)]
    points = [None if i % 17 == 0 else np.array([i, -i], float)
              for i in range(n)]
    big = np.full(n, 2 ** 40)
    labels = [None if i % 3 == 0 else f"name {i}" for i in range(n)]
    names = _write(many, "t", {
        "cluster": rng.integers(-1, 9, n), "dist": dist, "prob": prob,
        "reassigned": moved, "map": points, "size": big, "label": labels})

    got = {s: many.values(path) for s, path in names.items()}
    ids = many.values("id")
    for i in range(n):
        assert got["dist"][i] == (None if not math.isfinite(dist[i])
                                  else dist[i])
        assert got["prob"][i] == prob[i]
        assert got["reassigned"][i] == moved[i]
        assert got["map"][i] == (None if points[i] is None
                                 else list(points[i]))
        assert got["size"][i] == 2 ** 40
        assert got["label"][i] == labels[i]
    # every row landed by id, and the run verified its counts
    assert len(set(ids)) == n and None not in got["cluster"]


def test_a_run_on_fewer_samples_removes_the_values_it_no_longer_has(many):
    n = len(many)
    _write(many, "k", {"cluster": np.arange(n), "dist": np.ones(n)})
    half = many.limit(n // 2)
    kept = set(half.values("id"))
    _write(half, "k", {"cluster": np.zeros(n // 2, int),
                       "dist": np.zeros(n // 2)}, overwrite=True)
    for sid, c, d in zip(*many.values(["id", "k_cluster", "k_dist"])):
        if sid in kept:
            assert (c, d) == (0, 0.0)
        else:
            assert (c, d) == (None, None)
    assert len(many.exists("k_cluster")) == n // 2


def test_the_stamps_of_merges_never_repeat_in_one_process():
    # The strip tells the rows a merge wrote by its stamp: two writes in one
    # clock tick must still get two stamps, each as the database keeps it.
    stamps = [steps.stamp_now() for _ in range(50)]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))
    assert all(s.microsecond % 1000 == 0 for s in stamps)


def test_vectors_read_in_batches_equal_fiftyones_reading(many):
    import fiftyone as fo

    rng = np.random.default_rng(1)
    n = len(many)
    vectors = [rng.normal(size=16).astype(np.float32) for _ in range(n)]
    vectors[3] = None
    vectors[5] = np.full(16, np.nan, np.float32)
    vectors[8] = rng.normal(size=9).astype(np.float32)
    # finite values whose sum overflows: a usable vector all the same
    vectors[10] = np.full(16, 3e38, np.float32)
    many.add_sample_field("v", fo.VectorField)
    many.set_values("v", vectors)
    # one vector stored as a plain list, as FiftyOne stores list fields
    many.add_sample_field("w", fo.ListField, subfield=fo.FloatField)
    view = many.sort_by("filepath", reverse=True)
    rows = read_vectors(view, "v")
    expected = dict(zip(*view.values(["id", "v"])))
    order = [i for i in view.values("id")
             if expected[i] is not None and len(expected[i]) == 16 and
             np.isfinite(expected[i]).all()]
    assert rows.ids == order
    np.testing.assert_array_equal(
        rows.matrix, np.stack([expected[i] for i in order]))
    ids = many.values("id")
    assert rows.missing[ids[3]] == "no embedding in field 'v'"
    assert "NaN" in rows.missing[ids[5]]
    assert "has 9 values" in rows.missing[ids[8]]
    assert rows.lengths == {16: n - 3, 9: 1}
    assert ids[10] in rows.ids and ids[10] not in rows.missing

    # a batch without nulls or lists is read from its fixed layout
    clean = many.exists("v").limit(50)
    batch = next(iter(raw_batches(clean, ["v"])))
    ids, stored = vector_docs(batch, "v")
    assert ids == clean.values("id") and len(stored) == 50
    assert vector_docs(next(iter(raw_batches(many, ["v"]))), "v") is None

    many.set_values("w", [list(map(float, v)) if v is not None and
                          len(v) == 16 else None for v in vectors])
    listed = read_vectors(many, "w")
    assert len(listed.ids) == n - 3
    np.testing.assert_allclose(listed.matrix[0], vectors[0])


def test_the_embeddings_cache_is_read_through_the_same_reader(two_groups):
    first = get_embeddings(two_groups, embedder={"name": "pixels",
                                                 "size": 8})
    again = get_embeddings(two_groups, embedder={"name": "pixels",
                                                 "size": 8})
    assert first.computed == len(two_groups) and again.computed == 0
    assert again.ids == first.ids
    np.testing.assert_array_equal(again.vectors, first.vectors)
