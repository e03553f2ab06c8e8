"""Near-duplicates by default, old rule against new, on four kinds of image
with planted copies (``tests/planted.py``: photos, faces, textures,
digits; each copied resized, as JPEG quality 25, 3% cropped off each side
and colour-shifted, and some exactly).

For each kind, summed over three choices of which images get copies
(seeds 0, 1, 2), it prints the groups that hold two distinct images
(false groups: deleting their duplicates deletes distinct images) and the
planted copies found in their original's group:

- old: an 8 x 8 thumbnail, each row minus its mean, each sample linked to
  its 8 nearest neighbours within a cosine distance of 0.10, groups the
  connected components of the links;
- old, 64 x 64: the same rule on the clustering default's thumbnail;
- new: the default now (a 32 x 32 thumbnail compared as an image, the
  threshold calibrated on the data, groups as stars; see
  ``algorithms/dedup.py``);
- new, 64 x 64: the new rule on a 64 x 64 thumbnail.

Then, for the new default on seed 0, how close each kind comes to going
wrong: the nearest pair of distinct images, and the widest planted set
(the largest distance from the set's best centre to one of its members),
each as a multiple of the calibrated threshold (a distinct pair over 1
stays apart; a set under 1 is found whole).

Both rules run on the same vectors through the numeric layer (the SDK
path around it is covered by ``tests/test_near_duplicates.py``).

    python benchmarks/duplicates_threshold.py
"""

import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

SEEDS = (0, 1, 2)
OLD_THRESHOLD = 0.10
OLD_NEIGHBORS = 8


def old_rule(vectors):
    """Groups as the old default made them."""
    from image_clustering.algorithms.dedup import groups_from_pairs

    X = vectors.astype(np.float64)
    X -= X.mean(axis=1, keepdims=True)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    D = 1 - X @ X.T
    np.fill_diagonal(D, np.inf)
    nearest = np.argsort(D, axis=1)[:, :OLD_NEIGHBORS]
    rows = np.repeat(np.arange(len(X)), OLD_NEIGHBORS)
    cols = nearest.ravel()
    close = D[rows, cols] <= OLD_THRESHOLD
    return groups_from_pairs(len(X), rows[close], cols[close])


def new_rule(vectors, side):
    from image_clustering.algorithms.dedup import near_duplicate_groups
    from image_clustering.analysis.duplicates import THRESHOLD_CEILINGS

    return near_duplicate_groups(vectors.copy(), None,
                                 THRESHOLD_CEILINGS["pixels"], side)


def score(groups, truth_rows):
    """``(false groups, copies found, copies planted)``."""
    false = sum(len(set(truth_rows[groups == g])) > 1
                for g in range(groups.max() + 1))
    copies = np.flatnonzero(truth_rows != np.arange(len(truth_rows)))
    found = sum(groups[c] >= 0 and groups[c] == groups[truth_rows[c]]
                for c in copies)
    return int(false), int(found), len(copies)


def margins(found, truth_rows):
    """The nearest pair of distinct images, and the widest planted set
    (an original and its copies) measured from its best centre, each over
    the threshold: a set whose radius is under 1 is found whole."""
    n = len(truth_rows)
    left, right = np.triu_indices(n, 1)
    d = found.distance(left, right)
    distinct = truth_rows[left] != truth_rows[right]
    widest = 0.0
    for original in np.unique(truth_rows):
        rows = np.flatnonzero(truth_rows == original)
        if len(rows) < 2:
            continue
        a, b = np.meshgrid(rows, rows)
        within = found.distance(a.ravel(), b.ravel()).reshape(a.shape)
        widest = max(widest, float(within.max(axis=0).min()))
    return (float(d[distinct].min() / found.threshold),
            widest / found.threshold)


def main():
    from planted import KINDS, write_kind

    from image_clustering.embedders import get_embedder

    embed = {size: get_embedder({"name": "pixels", "size": size})
             for size in (8, 32, 64)}
    rules = {
        "old (8x8, 0.10)": lambda v: old_rule(v[8]),
        "old (64x64, 0.10)": lambda v: old_rule(v[64]),
        "new (32x32)": lambda v: new_rule(v[32], 32).groups,
        "new (64x64)": lambda v: new_rule(v[64], 64).groups,
    }
    print("false groups: groups holding two distinct images; found: planted "
          f"copies in their original's group (seeds {SEEDS})\n")
    print(f"{'kind':<9} {'images':>6} {'copies':>6}  " +
          "".join(f"{name:>22}" for name in rules))
    print(f"{'':<9} {'':>6} {'':>6}  " +
          "".join(f"{'false  found':>22}" for _ in rules))
    margin_rows = []
    for kind in KINDS:
        totals = {name: [0, 0, 0] for name in rules}
        for seed in SEEDS:
            paths, truth = write_kind(kind, tempfile.mkdtemp(prefix=kind),
                                      seed)
            index = {p: i for i, p in enumerate(paths)}
            truth_rows = np.array([index[truth[p]] for p in paths])
            vectors = {size: e.embed(paths).vectors
                       for size, e in embed.items()}
            for name, rule in rules.items():
                totals[name] = [a + b for a, b in zip(
                    totals[name], score(rule(vectors), truth_rows))]
            if seed == 0:
                found = new_rule(vectors[32], 32)
                margin_rows.append((kind, found.threshold,
                                    *margins(found, truth_rows)))
        images = int((truth_rows == np.arange(len(paths))).sum())
        planted = totals[next(iter(rules))][2]
        print(f"{kind:<9} {images:>6} {planted // len(SEEDS):>6}  " + "".join(
            f"{f:>14} {c:>3}/{t:<3}" for f, c, t in totals.values()))
    print("\nnew default, seed 0: the calibrated threshold, then the nearest "
          "distinct pair and the widest planted set over it")
    print(f"{'kind':<9} {'threshold':>9} {'distinct/t':>11} {'set/t':>6}")
    for kind, threshold, distinct, widest in margin_rows:
        print(f"{kind:<9} {threshold:>9.4f} {distinct:>11.2f} {widest:>6.2f}")


if __name__ == "__main__":
    main()
