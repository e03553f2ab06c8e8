"""Uniqueness and near-duplicates against FiftyOne Brain on the same
embeddings, in the same run: time, peak memory, rank agreement of the
uniqueness scores and the planted duplicates each finds. Then ours alone at
a million vectors, where Brain's all-pairs search does not go.

    python benchmarks/duplicates.py [--sizes 10000,50000] [--million 1000000]

Each dataset holds 512-D mixture vectors in which every 100th row is a
near copy of the row before it (a planted duplicate). Every measurement
runs in a fresh process, so that its peak resident memory is its own.
Brain's near-duplicates only find pairs (no fields are written); ours
write the group, distance and representative fields. Goal at a million:
peak memory at most 6 GB on this 2-core machine.
"""

import argparse
import json
import os
import subprocess
import sys

import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))
THRESHOLD = 0.02

CHILD = r"""
import json, sys, time
sys.path.insert(0, HERE)
import synthetic
import fiftyone as fo
ds = fo.load_dataset(NAME)
t = time.time()
out = {}
if WHAT == "ours_uniqueness":
    import image_clustering as ic
    ic.compute_uniqueness(ds, embeddings_field="emb", key="u",
                          overwrite=True, progress=PROGRESS)
elif WHAT == "brain_uniqueness":
    import fiftyone.brain as fob
    fob.compute_uniqueness(ds, embeddings="emb", uniqueness_field="brain_u",
                           progress=False)
elif WHAT == "ours_near":
    import image_clustering as ic
    run = ic.find_near_duplicates(ds, embeddings_field="emb", key="nd",
                                  threshold=THRESHOLD, overwrite=True,
                                  progress=PROGRESS)
    out["duplicates"] = run.results["duplicates"]
elif WHAT == "brain_near":
    import fiftyone.brain as fob
    index = fob.compute_near_duplicates(ds, embeddings="emb",
                                        threshold=THRESHOLD, progress=False)
    out["duplicates"] = sum(len(v) for v in index.neighbors_map.values())
out["seconds"] = time.time() - t
out["peak_rss_gb"] = synthetic.peak_rss_gb()
print(json.dumps(out))
"""


def measure(name, what, progress=False):
    code = (CHILD.replace("HERE", repr(HERE)).replace("NAME", repr(name))
            .replace("WHAT", repr(what)).replace("THRESHOLD", repr(THRESHOLD))
            .replace("PROGRESS", repr(progress)))
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                         text=True, env=dict(os.environ))
    if out.returncode:
        raise SystemExit(f"{what} on {name} failed ({out.returncode})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def dataset(n):
    name = f"bench-dups-{n // 1000}k"
    ds = synthetic.embeddings_dataset(name, n, n_true=100, copies_every=100,
                                      log=lambda m: None)
    return name, ds


def rank_agreement(ds):
    """Spearman agreement of our scores with Brain's, and with ours from
    an exact search of the same vectors (what the IVF's approximation
    costs, apart from the difference in meaning)."""
    import numpy as np
    from scipy.stats import spearmanr

    from image_clustering.algorithms import dedup, neighbors

    ours, brain = ds.values("u_score"), ds.values("brain_u")
    vectors = np.stack(ds.values("emb")).astype(np.float32)
    neighbors.EXACT_COST = float("inf")  # exact at every size
    exact = dedup.uniqueness_scores(vectors).values
    return (spearmanr(ours, brain).statistic,
            spearmanr(exact, brain).statistic,
            spearmanr(ours, exact).statistic)


def against_brain(sizes):
    print(f"{'n':>9} {'task':<16}{'ours s':>9}{'Brain s':>9}{'ratio':>7}"
          f"{'ours GB':>9}{'Brain GB':>9}{'found (ours/Brain/planted)':>30}")
    for n in sizes:
        name, ds = dataset(n)
        planted = n // 100
        for task in ("uniqueness", "near"):
            ours = measure(name, f"ours_{task}")
            brain = measure(name, f"brain_{task}")
            found = (f"{ours['duplicates']}/{brain['duplicates']}/{planted}"
                     if task == "near" else "")
            print(f"{n:>9,} {task:<16}{ours['seconds']:>9.1f}"
                  f"{brain['seconds']:>9.1f}"
                  f"{brain['seconds'] / ours['seconds']:>6.1f}x"
                  f"{ours['peak_rss_gb']:>9.2f}{brain['peak_rss_gb']:>9.2f}"
                  f"{found:>30}")
        ds.reload()
        with_brain, exact_with_brain, with_exact = rank_agreement(ds)
        print(f"{'':>9} uniqueness rank agreement (Spearman): with Brain "
              f"{with_brain:.4f} (an exact search: {exact_with_brain:.4f}),"
              f" with an exact search {with_exact:.4f}")


def planted_pairs_found(ds):
    """``(found, planted, stray)``: planted copies grouped with their
    original, planted copies in all, and grouped samples that are neither
    a planted copy nor its original."""
    import numpy as np

    ds.reload()
    truth, group = ds.values(["truth", "nd_group"])
    truth = np.array(truth)
    group = np.array([-1 if g is None else g for g in group])
    copies = np.flatnonzero(truth < 0)
    originals = -truth[copies] - 1
    found = (group[copies] >= 0) & (group[copies] == group[originals])
    planted = np.zeros(len(truth), dtype=bool)
    planted[copies] = planted[originals] = True
    stray = int(((group >= 0) & ~planted).sum())
    return int(found.sum()), len(copies), stray


def at_scale(n):
    name, ds = dataset(n)
    print(f"\nours alone on {n:,} x 512 ({n // 100:,} planted duplicates)")
    for task in ("uniqueness", "near"):
        r = measure(name, f"ours_{task}", progress=True)
        extra = ""
        if task == "near":
            found, planted, stray = planted_pairs_found(ds)
            extra = (f", {found:,} of {planted:,} planted copies grouped "
                     f"with their original, {stray} other samples grouped")
        print(f"  {task:<12}{r['seconds']:>8.0f} s, peak "
              f"{r['peak_rss_gb']:.2f} GB (goal <= 6 GB: "
              f"{'met' if r['peak_rss_gb'] <= 6 else 'NOT met'}){extra}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,50000")
    parser.add_argument("--million", type=int, default=1_000_000,
                        help="size of the run without Brain (0: skip)")
    args = parser.parse_args()
    against_brain([int(s) for s in args.sizes.split(",") if s])
    if args.million:
        at_scale(args.million)


if __name__ == "__main__":
    main()
