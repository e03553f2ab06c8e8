"""A million vectors on one small machine: a dataset with an existing
1,000,000 x 512 embeddings field, clustered by k-means with k=1,000 and
every field written (cluster, distance, similarity, size, 2-D map). Prints
the time of each stage, taken from the run's own progress messages, and
the peak resident memory of the process that ran it.

    python benchmarks/million.py [--n 1000000] [--k 1000]

The dataset is written once into the benchmark database and reused.
Goal: it finishes on 2 cores and 24 GB with peak memory at most 6 GB.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))

CHILD = r"""
import json, sys, time
sys.path.insert(0, HERE)
import synthetic
import fiftyone as fo
import image_clustering as ic

ds = fo.load_dataset(NAME)
marks = []
messages = []
def progress(fraction, message):
    messages.append((time.time(), message))
    stage = message.split(" ")[0].rstrip(":")
    if not marks or marks[-1][0] != stage:
        marks.append((stage, time.time(), message))
        print(f"{fraction:5.0%} {message}", file=sys.stderr, flush=True)
t = time.time()
run = ic.compute_clusters(ds, "km", embeddings_field="emb", reducer="none",
                          method="kmeans", n_clusters=K, overwrite=True,
                          progress=progress)
total = time.time() - t
end = time.time()
parts = {}
for (at, m), (nxt, _) in zip(messages, messages[1:] + [(end, None)]):
    part = synthetic.write_part(m)
    if part:
        parts[part] = parts.get(part, 0.0) + nxt - at
print(json.dumps({"total": total, "timings": run.results["timings"],
                  "write_parts": parts,
                  "marks": [(m[0], m[1] - t) for m in marks],
                  "metrics": {k: run.metrics[k] for k in
                              ("n_clusters", "silhouette", "inertia",
                               "sampled")},
                  "map": run.config["map"]["layout"],
                  "peak_rss_gb": synthetic.peak_rss_gb()}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=1000)
    args = parser.parse_args()

    name = f"bench-{args.n // 1000}k"
    print(f"dataset '{name}': {args.n:,} x 512 vectors")
    t = time.time()
    synthetic.embeddings_dataset(name, args.n, n_true=args.k)
    print(f"ready in {time.time() - t:.0f} s")

    code = CHILD.replace("HERE", repr(HERE)).replace(
        "NAME", repr(name)).replace("K,", f"{args.k},")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         text=True, env=dict(os.environ))
    if out.returncode:
        raise SystemExit(f"run failed ({out.returncode})")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nk-means k={args.k} on {args.n:,} x 512, every field written")
    print(f"{'stage':<12}{'seconds':>9}")
    for stage, seconds in r["timings"].items():
        print(f"{stage:<12}{seconds:>9.1f}")
    write = r["total"] - r["timings"]["total"]
    print(f"{'write':<12}{write:>9.1f}")
    for part, seconds in r["write_parts"].items():
        print(f"  {part:<20}{seconds:>9.1f}")
    print(f"{'whole run':<12}{r['total']:>9.1f}")
    print(f"\nquality: {r['metrics']}")
    print(f"map: {r['map']}")
    peak = r["peak_rss_gb"]
    print(f"peak resident memory of the run: {peak:.2f} GB "
          f"(goal <= 6 GB: {'met' if peak <= 6 else 'NOT met'})")


if __name__ == "__main__":
    main()
