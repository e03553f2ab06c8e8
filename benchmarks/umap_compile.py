"""UMAP's first fit in a new process against a warm fit, with numba's
on-disk cache (``NUMBA_CACHE_DIR``) empty and then filled: each fit in its
own fresh process, 4,000 x 50 into 10-D, as the default pipeline runs it.

    python benchmarks/umap_compile.py

Goal: the first fit in a new process is at most 1.5x a warm fit.
"""

import json
import os
import subprocess
import sys
import tempfile

CHILD = """
import json, time, numpy as np
from image_clustering.algorithms.reducers import UMAPReducer
X = np.random.default_rng(0).normal(size=(N, 50)).astype(np.float32)
X[: N // 2] += 4
t = time.time()
UMAPReducer(n_components=10, n_neighbors=15, min_dist=0.0,
            random_state=51).fit_transform(X)
first = time.time() - t
t = time.time()
UMAPReducer(n_components=10, n_neighbors=15, min_dist=0.0,
            random_state=51).fit_transform(X)
print(json.dumps({"first": first, "warm": time.time() - t}))
"""


def child(cache, n):
    out = subprocess.run(
        [sys.executable, "-c", CHILD.replace("N", str(n))],
        capture_output=True, text=True,
        env={**os.environ, "NUMBA_CACHE_DIR": cache},
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
    cache = tempfile.mkdtemp(prefix="numba-cache-")
    empty = child(cache, n)
    filled = child(cache, n)
    print(f"{n} x 50 -> 10-D UMAP, each line a fresh process")
    print(f"{'numba cache':<14}{'first fit s':>12}{'warm fit s':>12}"
          f"{'ratio':>8}")
    for name, r in (("empty", empty), ("filled", filled)):
        print(f"{name:<14}{r['first']:>12.1f}{r['warm']:>12.1f}"
              f"{r['first'] / r['warm']:>8.2f}")
    ratio = filled["first"] / filled["warm"]
    print(f"\nfirst fit in a new process / warm fit, cache filled: "
          f"{ratio:.2f} (goal <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")


if __name__ == "__main__":
    main()
