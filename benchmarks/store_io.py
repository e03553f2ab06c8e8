"""Reading and writing at scale against FiftyOne's own calls, in the same
run on the same dataset (1,000,000 x 512 by default, the one
``benchmarks/million.py`` uses):

- read: the embeddings field into one float32 matrix
  (:func:`image_clustering.storage.sample_io.read_vectors`) against
  ``samples.values(field)``;
- write: the five fields of a clustering run (cluster, distance,
  similarity, size, 2-D map) stored by the run store (staged, committed,
  merged, stale values removed, verified) against ``set_values`` of the
  same five fields, with where the store's time goes.

    python benchmarks/store_io.py [--n 1000000]

Goals: the read in at most 20 s, the write in at most 60 s.
"""

import argparse
import time

import numpy as np

import synthetic


def read_both(ds):
    from image_clustering.storage.sample_io import read_vectors

    # Both read the same documents: one pass brings them into the
    # database's cache first, so that the one timed first does not pay
    # for it alone.
    ds.count("emb")
    t = time.time()
    rows = read_vectors(ds, "emb")
    ours = time.time() - t
    shape = rows.matrix.shape
    del rows
    t = time.time()
    values = ds.values("emb")
    theirs = time.time() - t
    del values
    return ours, theirs, shape


def run_values(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"cluster": rng.integers(0, 1000, n),
            "dist": rng.random(n) * 30,
            "sim": rng.random(n),
            "size": rng.integers(1, 5000, n),
            "map": list(rng.random((n, 2)) * 10)}


def write_ours(ds, ids, values, key="storebench"):
    from image_clustering.storage import runs, schema
    from image_clustering.storage.transaction import Column

    names = schema.field_names(key, values)
    columns = [Column(s, names[s], v) for s, v in values.items()]
    config = {"kind": schema.RUN_KIND,
              "record_version": schema.RECORD_VERSION,
              "run_id": schema.new_run_id(), "fields": names,
              "patches": None, "map": None}
    expect = runs.check_new_run(ds, key, list(names.values()), True,
                                schema.RUN_KIND)
    marks = []

    def progress(message):
        marks.append((time.time(), _part(message)))

    t = time.time()
    runs.write_run(ds, key, config, {}, ids, columns, expect,
                   progress=progress)
    end = time.time()
    parts = {}
    for (at, part), (nxt, _) in zip(marks, marks[1:] + [(end, None)]):
        parts[part] = parts.get(part, 0.0) + nxt - at
    return end - t, parts


def _part(message):
    for words, part in (("staged", "staging insert"),
                        ("declaring", "schema"),
                        ("merging", "merge"),
                        ("removing values", "strip"),
                        ("checking", "verify")):
        if words in message:
            return part
    return "other steps"


def write_theirs(ds, values, prefix="fo_storebench"):
    t = time.time()
    for suffix, v in values.items():
        if suffix == "map":
            v = [list(map(float, p)) for p in v]
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        ds.set_values(f"{prefix}_{suffix}", v)
    return time.time() - t


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=1000,
                        help="mixture components of the dataset")
    args = parser.parse_args()
    name = f"bench-{args.n // 1000}k"
    ds = synthetic.embeddings_dataset(name, args.n, n_true=args.k)
    print(f"dataset '{name}': {args.n:,} x 512\n")

    ours, theirs, shape = read_both(ds)
    print(f"read {shape[0]:,} x {shape[1]} vectors into numpy")
    print(f"  ours (read_vectors)    {ours:8.1f} s")
    print(f"  samples.values(field)  {theirs:8.1f} s")
    print(f"  ratio {theirs / ours:.1f}x; goal <= 20 s: "
          f"{'met' if ours <= 20 else 'NOT met'}\n")

    ids = ds.values("id")
    values = run_values(len(ids))
    total, parts = write_ours(ds, ids, values)
    theirs = write_theirs(ds, values)
    print(f"write the 5 fields of a run on {len(ids):,} samples")
    print(f"  ours (run store)       {total:8.1f} s")
    for part, seconds in parts.items():
        print(f"    {part:<20} {seconds:8.1f} s")
    print(f"  set_values x 5         {theirs:8.1f} s")
    print(f"  ratio {theirs / total:.1f}x; goal <= 60 s: "
          f"{'met' if total <= 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
