"""Where the near-duplicate threshold of the pixels embedder comes from.

On the 40 distinct photographs of ``tests/planted.py`` and their planted
copies (resized, JPEG quality 25, 3% cropped off each side, colour and
brightness shifted, exact), prints for each thumbnail size and centring the
largest cosine distance of each kind of copy to its original, and the
smallest distance between two distinct photos. A threshold works when it
lies between the two; the default (8 x 8, centred per row, 0.10) has the
widest margin.

    python benchmarks/duplicates_threshold.py
"""

import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))


def distances(vectors, centring):
    X = vectors.astype(np.float64)
    if centring == "row":
        X = X - X.mean(axis=1, keepdims=True)
    elif centring == "dataset":
        X = X - X.mean(axis=0, keepdims=True)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    return 1.0 - X @ X.T


def main():
    from planted import write_planted

    from image_clustering.embedders import get_embedder

    paths, truth = write_planted(tempfile.mkdtemp())
    index = {p: i for i, p in enumerate(paths)}
    originals = [i for i, p in enumerate(paths) if truth[p] == p]
    kinds = sorted({p.rsplit("__", 1)[1].split(".")[0]
                    for p in paths if truth[p] != p})
    print(f"{len(originals)} distinct photos, {len(paths) - len(originals)} "
          "planted copies; cosine distances\n")
    print(f"{'size':>4} {'centring':<9}" + "".join(f"{k:>9}" for k in kinds)
          + f"{'distinct':>10}{'margin':>8}")
    for size in (8, 16, 32, 64):
        vectors = get_embedder({"name": "pixels", "size": size}).embed(
            paths).vectors
        for centring in ("none", "row", "dataset"):
            D = distances(vectors, centring)
            worst = {k: 0.0 for k in kinds}
            for p, o in truth.items():
                if p != o:
                    k = p.rsplit("__", 1)[1].split(".")[0]
                    worst[k] = max(worst[k], D[index[p], index[o]])
            sub = D[np.ix_(originals, originals)]
            np.fill_diagonal(sub, np.inf)
            nearest = sub.min()
            print(f"{size:>4} {centring:<9}"
                  + "".join(f"{worst[k]:>9.3f}" for k in kinds)
                  + f"{nearest:>10.3f}{nearest - max(worst.values()):>8.3f}")


if __name__ == "__main__":
    main()
