"""What the command line prints: tables and sentences made from the same
summaries the App shows."""


def table(rows, columns):
    """A right-aligned text table of ``rows`` (dicts) under ``columns``
    (key -> heading)."""
    cells = [list(columns.values())]
    for row in rows:
        cells.append(["-" if row.get(k) in (None, "") else str(row[k])
                      for k in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths))
                     for r in cells)


def print_run(summary, truth_name="ground_truth"):
    """Prints a run as :meth:`~image_clustering.ClusterRun.summary` gives
    it: its clusters, metrics, scores, choice of k, skipped files and
    time."""
    print()
    print(f"Run '{summary['run_key']}': {summary['method']} on "
          f"{summary['source']}")
    truth = summary["against_ground_truth"]
    columns = {"cluster": "cluster", "size": "size",
               "mean_dist": "mean dist"}
    if any(r["name"] for r in summary["clusters"]):
        columns["name"] = "name"
    if truth:
        columns.update({"top_class": "top class", "purity": "purity"})
    rows = [{**r, "cluster": "noise" if r["cluster"] < 0 else r["cluster"],
             "mean_dist": None if r["mean_dist"] is None
             else f"{r['mean_dist']:.3f}"} for r in summary["clusters"]]
    print(table(rows, columns))
    print()
    print(summary["headline"])
    if summary["reassigned"]:
        print(f"  {summary['reassigned']} noise sample(s) given their most "
              "probable cluster")
    for name, value in summary["quality"].items():
        print(f"  {name:<18} {value:.4f}")
    for name, value in truth.items():
        label = name.upper() if len(name) == 3 else name
        print(f"  {label + ' vs ' + truth_name:<18} {value:.4f}")
    if summary["sampled"] != "nothing":
        print(f"  sampled: {summary['sampled']}")
    if summary["sweep"]:
        print(f"{summary['choice_of_k']}")
        cells = [f"{s['value']}:{'-' if s['score'] is None else s['score']}"
                 for s in summary["sweep"]]
        for start in range(0, len(cells), 8):
            print("   " + "  ".join(cells[start:start + 8]))
    print("Time: " + ", ".join(f"{k} {v:.1f}s"
                               for k, v in summary["timings"].items()))


def print_hierarchy(results):
    """A hierarchy's layers and how its cut was chosen, and what was
    carried from an earlier run."""
    block = results.get("hierarchy")
    if block:
        counts = [layer["n_clusters"] for layer in block["layers"]]
        print("Layers (finest first): " + ", ".join(map(str, counts))
              + f"; the cut: {len(block['cut'])} clusters ("
              + block["rule"]["rule"] + ")")
    carried = results.get("carried")
    if carried:
        print("Decisions carried " + carried["lines"][0])
        for line in carried["lines"][1:]:
            print("  " + line)


def print_skipped(skipped, limit=20):
    if not skipped["count"]:
        return
    print(f"Skipped {skipped['count']} sample(s):")
    for item in skipped["samples"][:limit]:
        print(f"  {item.get('filepath') or item['id']}: {item['reason']}")
    if skipped["count"] > limit:
        print(f"  ... and {skipped['count'] - limit} more")


def print_comparison(c):
    print(c.describe())
    if not c.shared:
        return
    rows = [{"cluster": k, **v, "share": f"{v['share']:.0%}"}
            for k, v in c.best_matches("a").items()]
    print(table(rows, {"cluster": f"cluster of {c.key_a}", "size": "size",
                       "match": f"best match in {c.key_b}",
                       "count": "in common", "share": "share"}))


def print_leaks(report):
    print(f"Groups across splits: {report['leaking_groups']:,} group(s), "
          f"{report['leaking_samples']:,} sample(s)")
    for pair, n in sorted(report["pairs"].items()):
        a, b = pair.split("/")
        print(f"  {a} and {b}: {n:,} group(s)")
