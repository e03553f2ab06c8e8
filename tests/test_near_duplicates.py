"""Near-duplicates by default: on four kinds of image with planted copies
(photos, faces, textures, digits), every copy is found and no group holds
two distinct images; and the numeric rules behind it (the calibrated
threshold, groups without chains), on vectors."""

import numpy as np
import pytest

import fiftyone as fo

import image_clustering as ic
from image_clustering.algorithms import dedup
from image_clustering.algorithms.thumbnail_distance import (
    ThumbnailDistance,
    prepare_thumbnails,
)
from planted import KINDS, write_kind


def _groups_by_path(run, ds):
    path_of = dict(zip(ds.values("id"), ds.values("filepath")))
    return [{path_of[i] for i in ids} for ids in run.groups().values()]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_planted_copy_is_found_and_no_group_holds_distinct_images(
        kind, tmp_path):
    paths, truth = write_kind(kind, str(tmp_path))
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in paths], progress=False)
    try:
        run = ic.find_near_duplicates(ds)
        groups = _groups_by_path(run, ds)
    finally:
        ds.delete()

    mixed = [sorted(g) for g in groups if len({truth[p] for p in g}) > 1]
    assert mixed == []
    group_of = {p: i for i, g in enumerate(groups) for p in g}
    missed = [p for p, original in truth.items() if p != original and (
        p not in group_of or group_of[p] != group_of.get(original))]
    assert missed == []
    assert run.config["params"]["calibration"]["calibrated"]


def _chain(n, step, dim=64, seed=0):
    """``n`` unit vectors, each ``step`` (in cosine distance) from the one
    before, drifting ever further from the first."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    angle = np.arccos(1 - step)
    rows = [np.cos(i * angle) * basis[0] + np.sin(i * angle) * basis[1]
            for i in range(n)]
    return np.array(rows, dtype=np.float32)


def test_a_chain_of_small_steps_does_not_join_its_far_ends():
    # Each vector is 0.02 from the next; the ends are 0.9 apart. Linked
    # pairs alone (single linkage) would make one group of all twelve.
    X = _chain(12, 0.02)
    X -= X.mean(axis=1, keepdims=True)  # what the grouping subtracts
    found = dedup.near_duplicate_groups(X.copy(), threshold=0.03)

    assert found.groups.max() >= 2
    for g in set(found.groups[found.groups >= 0]):
        rows = np.flatnonzero(found.groups == g)
        # Some member (the centre) is within the threshold of every other.
        within = [all(found.distance([c], [r])[0] <= 0.03 for r in rows)
                  for c in rows]
        assert any(within), rows


def test_linked_pairs_alone_would_chain_the_same_vectors():
    # The contrast the test above relies on: the old rule, connected
    # components of the same links, puts all twelve in one group.
    X = _chain(12, 0.02)
    X -= X.mean(axis=1, keepdims=True)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    d = 1 - unit @ unit.T
    left, right = np.nonzero(np.triu(d <= 0.03, 1))
    assert set(dedup.groups_from_pairs(12, left, right)) == {0}


def _spread_set(scale, copies, n=300, dim=64, seed=1):
    """``n`` distinct vectors at a typical cosine distance that grows with
    ``scale``, and near copies (distance about 0.002) of the first
    ``copies``."""
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=dim)
    X = centre + scale * rng.normal(size=(n, dim))
    noise = 0.02 * np.linalg.norm(X[:copies], axis=1, keepdims=True) / \
        np.sqrt(dim)
    X = np.vstack([X, X[:copies] + noise * rng.normal(size=(copies, dim))])
    return X.astype(np.float32)


def test_the_calibrated_threshold_follows_how_far_apart_the_data_lie():
    tight = dedup.near_duplicate_groups(_spread_set(0.3, 10), ceiling=1.0)
    loose = dedup.near_duplicate_groups(_spread_set(1.0, 10), ceiling=1.0)

    assert tight.calibration["calibrated"] and loose.calibration["calibrated"]
    assert tight.threshold < 0.5 * loose.threshold
    for found in (tight, loose):
        # The ten planted pairs, and nothing else.
        pairs = {frozenset(np.flatnonzero(found.groups == g))
                 for g in range(found.groups.max() + 1)}
        assert pairs == {frozenset((k, 300 + k)) for k in range(10)}


def test_a_given_threshold_is_used_as_it_is_and_the_ceiling_bounds_calibration():
    X = _spread_set(1.0, 10)
    given = dedup.near_duplicate_groups(X.copy(), threshold=0.5)
    capped = dedup.near_duplicate_groups(X.copy(), ceiling=1e-4)

    assert given.threshold == 0.5 and not given.calibration["calibrated"]
    assert capped.threshold == 1e-4


def test_too_few_samples_to_calibrate_use_the_ceiling():
    X = _spread_set(1.0, 2, n=4)
    found = dedup.near_duplicate_groups(X, ceiling=0.05)

    assert found.threshold == 0.05
    assert found.calibration == {"calibrated": False, "ceiling": 0.05,
                                 "reason": "too few samples to calibrate"}


def _thumbs(*images):
    side = images[0].shape[0]
    X = np.array([im.ravel() for im in images], dtype=np.float32)
    prepare_thumbnails(X, side)
    norms = np.linalg.norm(X, axis=1)
    return ThumbnailDistance(X / norms[:, None], norms, side)


def test_thumbnails_compare_blind_to_brightness_and_alive_to_contrast():
    rng = np.random.default_rng(0)
    from scipy.ndimage import gaussian_filter, zoom

    base = gaussian_filter(rng.random((64, 64)), 2)
    image = (base - base.min()) / np.ptp(base)
    small = image[::2, ::2]
    brighter = small + 0.2
    fainter = 0.5 + 0.3 * (small - 0.5)
    # A 6% crop about the centre, resized back: what a small crop does.
    crop = zoom(image[2:62, 2:62], 32 / 60, order=1)
    other = gaussian_filter(rng.random((64, 64)), 2)[::2, ::2]
    d = _thumbs(small, brighter, fainter, crop, other)

    def dist(i, j):
        return float(d([i], [j])[0])

    assert dist(0, 1) < 1e-6            # brightness is ignored
    assert dist(0, 2) > 0.2             # a third of the contrast is not
    assert dist(0, 3) < 0.25 * dist(0, 4)   # a small crop is a copy
    assert dist(0, 4) > 0.5
