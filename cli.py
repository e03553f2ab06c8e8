"""The ``image-clustering`` command: input, one SDK call, output.

    image-clustering cluster [FOLDER]    cluster a folder (or the demo set)
    image-clustering list DATASET        list a dataset's clustering runs
    image-clustering info DATASET KEY    show a run's clusters and metrics
    image-clustering rename DATASET KEY NEW_KEY
    image-clustering delete DATASET KEY
    image-clustering repair DATASET      remove what killed runs left behind
    image-clustering compare DATASET KEY_A KEY_B
    image-clustering assign DATASET KEY  place new samples into a run
    image-clustering plot DATASET KEY --kind scatter|boundaries|montage|axes
"""

import argparse
import os
import sys

DEMO_DATASET = "image-clustering-demo"


def _parse_assignments(items, what):
    params = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"{what} must look like name=value, got {item!r}")
        name, value = item.split("=", 1)
        params[name.strip()] = value.strip()
    return params


def _parse_reducer(text):
    """``pca:n_components=30+umap:n_components=10,min_dist=0`` -> specs."""
    if text is None or text.strip() == "none":
        return text and "none"
    specs = []
    for part in text.split("+"):
        name, _, args = part.partition(":")
        spec = {"name": name.strip()}
        spec.update(
            _parse_assignments(
                [a for a in args.split(",") if a.strip()], "reducer parameters"
            )
        )
        specs.append(spec)
    return specs


def _open_dataset(args):
    import fiftyone as fo

    from .clustering.datasets import (
        dataset_from_folder,
        sync_with_folder,
        write_digits,
    )

    if not args.folder and args.dataset:
        if not fo.dataset_exists(args.dataset):
            names = ", ".join(fo.list_datasets()) or "none"
            raise SystemExit(
                f"error: no dataset named '{args.dataset}' (datasets: "
                f"{names}); give a FOLDER to build it from"
            )
        if args.reload:
            raise SystemExit("error: --reload needs a folder to rebuild from")
        print(f"Using existing dataset '{args.dataset}'")
        return fo.load_dataset(args.dataset)
    if args.folder:
        folder = os.path.abspath(args.folder)
        if not os.path.isdir(folder):
            raise SystemExit(f"error: not a folder: {args.folder}")
        name = args.dataset or os.path.basename(folder.rstrip(os.sep))
    else:
        folder = os.path.join(
            fo.config.default_dataset_dir, "image-clustering-demo", "digits"
        )
        name = DEMO_DATASET
        print(f"No folder given: using the demo set (digits) in {folder}")
        write_digits(folder)

    if fo.dataset_exists(name) and not args.reload:
        dataset = fo.load_dataset(name)
        change = sync_with_folder(dataset, folder)
        print(f"Using existing dataset '{name}' (--reload rebuilds it)")
        if change:
            print(change.capitalize())
        return dataset
    dataset = dataset_from_folder(folder, name, replace=args.reload)
    print(f"Created dataset '{name}' with {len(dataset)} images")
    return dataset


def _gt_field(dataset, args):
    """What the run is scored against: the objects' own labels, or the
    label field when the dataset has that Classification field."""
    import fiftyone as fo

    if args.patches_field:
        return "label"
    field = dataset.get_field(args.label_field) if args.label_field else None
    if getattr(field, "document_type", None) is fo.Classification:
        return args.label_field
    return None


def _cmd_cluster(args):
    from .clustering import pipeline, runs
    from .clustering.presets import DEFAULT_PRESET, PRESETS

    dataset = _open_dataset(args)
    key = runs.free_run_key(dataset) if args.run_key is None else args.run_key
    embedder = None
    if args.embedder or args.embedder_param:
        preset = PRESETS.get(args.preset or DEFAULT_PRESET, {})
        embedder = {
            "name": args.embedder or preset.get("embedder", {}).get("name"),
            **_parse_assignments(args.embedder_param, "embedder parameters"),
        }
    print(f"Clustering into run '{key}'...")
    run = pipeline.compute_clusters(
        dataset,
        key,
        embedder=embedder,
        reducer=_parse_reducer(args.reducer),
        method=args.method,
        embeddings_field=args.embeddings_field,
        normalize=args.normalize,
        seed=args.seed,
        preset=args.preset,
        patches_field=args.patches_field,
        overwrite=args.overwrite,
        num_workers=args.num_workers,
        batch_size=args.batch_size,
        noise=args.noise,
        gt_field=_gt_field(dataset, args),
        executor=args.executor,
        ray_address=args.ray_address,
        progress=not args.quiet,
        **_parse_assignments(args.param, "method parameters"),
    )
    _print_run(dataset, run, args.label_field)
    if args.app:
        _launch_app(dataset, run, args)
    return 0


def _print_run(dataset, run, label_field="ground_truth"):
    print()
    print(
        f"Run '{run.key}': {run.config['method']} on "
        f"{_describe_source(run.config)}"
    )
    external = run.results.get("external") or run.score(label_field)
    print(_cluster_table(run, external))
    print()
    m = run.metrics
    print(
        f"{m['n_clusters']} clusters, {m['n_noise']} noise, "
        f"{m['fraction_clustered']:.1%} of {m['n_samples']} clustered"
    )
    if run.results.get("reassigned"):
        print(f"  {run.results['reassigned']} noise sample(s) assigned to "
              "their most probable cluster")
    for name in ("silhouette", "davies_bouldin", "calinski_harabasz", "dbcv",
                 "inertia", "bic"):
        if m.get(name) is not None:
            print(f"  {name:<18} {m[name]:.4f}")
    if external is not None:
        gt = "object labels" if run.patches_field else label_field
        for name in ("ari", "ami", "homogeneity", "completeness",
                     "v_measure", "purity"):
            label = name.upper() if len(name) == 3 else name
            print(f"  {label + ' vs ' + gt:<18} {external[name]:.4f}")
    if m.get("sampled"):
        print("  sampled: " + ", ".join(
            f"{k} on {v:,}" for k, v in m["sampled"].items()))
    _print_sweep(run.sweep)
    skipped = run.skipped
    if skipped["count"]:
        print(f"Skipped {skipped['count']} sample(s):")
        for item in skipped["samples"][:20]:
            print(f"  {item['filepath']}: {item['reason']}")
    t = run.results["timings"]
    print(
        "Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items())
    )


def _print_sweep(sweep):
    if not sweep:
        return
    print(f"{sweep['parameter']} chosen automatically: {sweep['chosen']} "
          f"(best {sweep['criterion']} of {len(sweep['candidates'])} tried "
          f"on {sweep['fitted_on']:,} samples in {sweep['seconds']:.1f}s)")
    cells = [f"{c}:{'-' if s is None else f'{s:.3f}'}"
             for c, s in zip(sweep["candidates"], sweep["scores"])]
    for start in range(0, len(cells), 8):
        print("   " + "  ".join(cells[start:start + 8]))


def _describe_source(config):
    if config.get("embedder"):
        spec = config["embedder"]
        args = ", ".join(f"{k}={v}" for k, v in spec["params"].items())
        source = f"{spec['name']}({args})"
    else:
        source = f"field '{config['embeddings_field']}'"
    steps = [r["name"] for r in config.get("reducers", [])]
    if config.get("normalize"):
        steps.insert(0, "l2")
    return source + "".join(f" -> {s}" for s in steps)


def _cluster_table(run, external=None):
    per_cluster = (external or {}).get("per_cluster", {})
    rows = [("cluster", "size", "mean dist")]
    if external is not None:
        rows[0] += ("top class", "purity")

    def purity(cluster):
        # Among the members that have a label; unlabelled ones do not count.
        entry = per_cluster.get(str(cluster))
        if not entry:
            return ("-", "-")
        return (entry["top_class"], f"{entry['purity']:.1%}")

    for c in run.clusters:
        row = (str(c["id"]), str(c["size"]), f"{c['mean_dist']:.3f}")
        if external is not None:
            row += purity(c["id"])
        rows.append(row)
    noise = run.metrics["n_noise"]
    if noise:
        row = ("noise", str(noise), "-")
        if external is not None:
            row += purity(-1)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows
    )


def _launch_app(dataset, run, args):
    import fiftyone as fo

    view = run.clusters_view()
    session = fo.launch_app(
        dataset,
        view=view,
        port=args.port,
        address=args.address,
        remote=args.remote,
    )
    print(f"App at http://{args.address or 'localhost'}:{args.port} "
          "(Ctrl-C to stop)")
    session.wait()


def _load(name):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        names = ", ".join(fo.list_datasets()) or "none"
        raise SystemExit(f"error: no dataset named '{name}' (datasets: "
                         f"{names})")
    return fo.load_dataset(name)


def _cmd_list(args):
    from .clustering.runs import list_runs, load_run

    dataset = _load(args.dataset)
    keys = list_runs(dataset)
    if not keys:
        print(f"No clustering runs on '{args.dataset}'")
    for key in keys:
        run = load_run(dataset, key)
        m = run.metrics
        when = run.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{key:<20} {run.config['method']:<17} {m['n_clusters']:>4} "
            f"clusters  {m['fraction_clustered']:6.1%} clustered  {when}"
        )
    return 0


def _cmd_info(args):
    from .clustering.runs import load_run

    dataset = _load(args.dataset)
    run = load_run(dataset, args.key)
    _print_run(dataset, run, args.label_field)
    changes = run.changes()
    if changes["deleted"] or changes["added"]:
        print(f"Since the run: {changes['deleted']} of its samples deleted, "
              f"{changes['added'] or 0} added to its view")
    return 0


def _cmd_compare(args):
    from .clustering.compare import compare_runs

    c = compare_runs(_load(args.dataset), args.key_a, args.key_b)
    print(f"'{c.key_a}' vs '{c.key_b}': {c.shared} shared, ARI {c.ari:.4f}, "
          f"AMI {c.ami:.4f}")
    print(f"{'cluster of ' + c.key_a:>16}  {'size':>6}  "
          f"{'best match in ' + c.key_b:>20}  {'count':>6}  share")
    for cluster, m in c.best_matches("a").items():
        print(f"{cluster:>16}  {m['size']:>6}  {m['match']:>20}  "
              f"{m['count']:>6}  {m['share']:.0%}")
    return 0


def _cmd_assign(args):
    from .clustering.assign import assign_clusters

    dataset = _load(args.dataset)
    samples = dataset
    if args.tag:
        samples = dataset.match_tags(args.tag)
    run = assign_clusters(samples, args.key, assigner=args.assigner,
                          progress=not args.quiet)
    last = (run.results.get("assigned") or {}).get("last")
    if not last:
        print(f"Nothing to place: every sample already has a cluster of "
              f"run '{args.key}'")
        return 0
    print(f"Placed {last['placed']} sample(s) into run '{args.key}' with "
          f"the {last['assigner']} assigner: {last['noise']} as noise, "
          f"{last['skipped']} skipped")
    for cluster, n in sorted(last["per_cluster"].items(),
                             key=lambda kv: int(kv[0])):
        print(f"  cluster {cluster}: {n}")
    print(f"{run.results['assigned']['count']} sample(s) assigned since the "
          "run was fitted")
    return 0


def _cmd_plot(args):
    from .clustering.charts import plot_run

    path = plot_run(_load(args.dataset), args.key, kind=args.kind,
                    path=args.out, gt_field=args.gt_field)
    print(f"Wrote {path}")
    return 0


def _cmd_rename(args):
    from .clustering.runs import rename_run

    rename_run(_load(args.dataset), args.key, args.new_key)
    print(f"Renamed '{args.key}' to '{args.new_key}'")
    return 0


def _cmd_delete(args):
    from .clustering.runs import delete_run

    delete_run(_load(args.dataset), args.key)
    print(f"Deleted run '{args.key}' and its fields")
    return 0


def _cluster_ids(text):
    if not text:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise SystemExit(f"error: --clusters takes comma-separated cluster "
                         f"ids, got {text!r}") from None


def _cmd_label(args):
    from .labeling.label import label_clusters

    kwargs = {"namer": args.namer, "per_cluster": args.per_cluster}
    for name in ("model", "base_url", "vocabulary"):
        if getattr(args, name):
            kwargs[name] = getattr(args, name)
    if args.namer == "openai":
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY")
    out = label_clusters(_load(args.dataset), args.key,
                         clusters=_cluster_ids(args.clusters),
                         progress=not args.quiet, **kwargs)
    run = _load_run(args.dataset, args.key)
    names = run.results.get("names") or {}
    for cluster in out["named"] + out["cached"]:
        entry = names.get(str(cluster)) or {}
        print(f"  cluster {cluster}: {entry.get('name')}")
    print(f"Named {len(out['named'])} cluster(s); {len(out['cached'])} "
          f"unchanged since named; {len(out['failed'])} failed")
    for cluster, reason in out["failed"].items():
        print(f"  cluster {cluster} failed: {reason}")
    return 0


def _load_run(dataset_name, key):
    from .clustering.runs import load_run

    return load_run(_load(dataset_name), key)


def _cmd_name(args):
    from .labeling.label import name_cluster

    name_cluster(_load(args.dataset), args.key, args.cluster, args.name)
    print(f"Cluster {args.cluster} of run '{args.key}' is now "
          f"'{args.name}'")
    return 0


def _cmd_tag(args):
    from .curation.tags import tag_clusters

    tags = [t.strip() for t in args.tags.split(",")]
    n = tag_clusters(_load(args.dataset), args.key,
                     _cluster_ids(args.clusters), tags, remove=args.remove)
    print(f"{'Untagged' if args.remove else 'Tagged'} {n} sample(s) of "
          f"cluster(s) {args.clusters}: {', '.join(tags)}")
    return 0


def _cmd_group(args):
    from .curation.groups import group_clusters

    group_clusters(_load(args.dataset), args.key,
                   {args.group: _cluster_ids(args.clusters)})
    print(f"Group '{args.group}' of run '{args.key}': cluster(s) "
          f"{args.clusters}")
    return 0


def _cmd_export(args):
    from .curation.export import export_clusters

    out = export_clusters(_load(args.dataset), args.key, args.path,
                          clusters=_cluster_ids(args.clusters),
                          images=args.images, folders=args.folders,
                          overwrite=args.overwrite)
    print(f"Wrote {out['rows']} row(s) to {out['csv']}")
    return 0


def _source_kwargs(args):
    embedder = None
    if args.embedder or args.embedder_param:
        embedder = {"name": args.embedder or "pixels",
                    **_parse_assignments(args.embedder_param,
                                         "embedder parameters")}
    return dict(embedder=embedder, embeddings_field=args.embeddings_field,
                executor=args.executor, ray_address=args.ray_address,
                num_workers=args.num_workers, batch_size=args.batch_size,
                overwrite=args.overwrite, progress=not args.quiet)


def _cmd_uniqueness(args):
    from .analysis.uniqueness import compute_uniqueness

    dataset = _load(args.dataset)
    run = compute_uniqueness(dataset, key=args.run_key,
                             **_source_kwargs(args))
    print(f"Run '{run.key}': {run.results['samples']:,} samples scored in "
          f"'{run.field}'. Most unique:")
    for sample in run.most_unique(args.top):
        print(f"  {sample[run.field]:.3f}  {sample.filepath}")
    return 0


def _cmd_duplicates(args):
    from .analysis import duplicates

    dataset = _load(args.dataset)
    if args.exact:
        run = duplicates.find_exact_duplicates(
            dataset, key=args.run_key or "exact_dups",
            overwrite=args.overwrite, num_workers=args.num_workers,
            progress=not args.quiet)
    else:
        run = duplicates.find_near_duplicates(
            dataset, key=args.run_key or "near_dups",
            threshold=args.threshold, patches_field=args.patches_field,
            representative=args.representative, **_source_kwargs(args))
    r = run.results
    print(f"Run '{run.key}': {r['duplicates']:,} duplicate(s) in "
          f"{r['groups']:,} group(s) among {r['samples']:,} samples")
    if args.split_tags:
        leaks = run.leaks(splits=[t.strip() for t in
                                  args.split_tags.split(",")])
        print(f"Groups across splits: {leaks.report()}")
    if args.tag:
        print(f"Tagged {run.tag_duplicates(args.tag):,} duplicate(s) "
              f"'{args.tag}'")
    if args.delete is not None:
        print(f"Deleted {run.delete_duplicates(confirm=args.delete):,} "
              "duplicate(s) from the dataset (files are kept)")
    return 0


def _cmd_repair(args):
    from .clustering.runs import repair

    done = repair(_load(args.dataset))
    for line in done:
        print(f"- {line}")
    print(f"Repaired '{args.dataset}': " + (f"{len(done)} change(s)" if done
                                             else "nothing to repair"))
    return 0


def _add_executor_args(p):
    p.add_argument("--executor", choices=("local", "ray"), default=None,
                   help="where images are embedded (default: local)")
    p.add_argument("--ray-address", help="Ray cluster, e.g. "
                   "ray://head:10001 or head:6379 (with --executor ray)")


def _add_source_args(p):
    p.add_argument("--embedder", help="embedder name, e.g. pixels, dino")
    p.add_argument("--embedder-param", action="append", metavar="NAME=VALUE",
                   help="embedder parameter (repeatable)")
    p.add_argument("--embeddings-field",
                   help="use this existing vector field instead")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--num-workers", type=int, help="image decoding workers")
    p.add_argument("--batch-size", type=int, help="images per batch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_executor_args(p)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="image-clustering",
        description="Cluster images into FiftyOne runs you can browse.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser(
        "cluster", help="cluster a folder of images (or the demo set)"
    )
    c.add_argument(
        "folder",
        nargs="?",
        help="folder of images; subfolder names become ground truth. "
        "Without it, the dataset named by --dataset if it exists, else "
        "scikit-learn's digits",
    )
    c.add_argument("--dataset", help="dataset name (default: folder name)")
    c.add_argument("--reload", action="store_true",
                   help="rebuild the dataset if it exists")
    c.add_argument("--run-key", help="run key (default: a free 'clustersN')")
    c.add_argument("--overwrite", action="store_true",
                   help="replace an existing run of the same key")
    c.add_argument("--preset", help="named defaults (default: pixels)")
    c.add_argument("--embedder", help="embedder name, e.g. pixels")
    c.add_argument("--embedder-param", action="append", metavar="NAME=VALUE",
                   help="embedder parameter, e.g. size=32 (repeatable)")
    c.add_argument("--embeddings-field",
                   help="cluster an existing vector field instead")
    c.add_argument("--patches-field",
                   help="cluster the objects of this Detections field")
    c.add_argument(
        "--reducer",
        help="'none', or reducers joined by '+', each with optional "
        "parameters: pca:n_components=50+umap:n_components=10,min_dist=0",
    )
    c.add_argument("--method", help="clustering method, e.g. kmeans, hdbscan")
    c.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="method parameter, e.g. n_clusters=10 (repeatable)")
    c.add_argument("--noise", choices=("keep", "assign"),
                   help="keep noise as -1, or assign it to the most "
                   "probable cluster (the presets assign it)")
    c.add_argument("--normalize", action=argparse.BooleanOptionalAction,
                   default=None, help="L2-normalise embeddings first")
    c.add_argument("--seed", type=int, default=51)
    c.add_argument("--num-workers", type=int, help="image decoding workers")
    c.add_argument("--batch-size", type=int, help="images per batch")
    _add_executor_args(c)
    c.add_argument("--label-field", default="ground_truth",
                   help="classification field to score clusters against")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--app", action="store_true",
                   help="open the App grouped by cluster afterwards")
    c.add_argument("--port", type=int, default=5151)
    c.add_argument("--address", default=None)
    c.add_argument("--remote", action="store_true",
                   help="serve the App without opening a browser")
    c.set_defaults(func=_cmd_cluster)

    ls = sub.add_parser("list", help="list a dataset's clustering runs")
    ls.add_argument("dataset")
    ls.set_defaults(func=_cmd_list)

    info = sub.add_parser("info", help="show a run's clusters and metrics")
    info.add_argument("dataset")
    info.add_argument("key")
    info.add_argument("--label-field", default="ground_truth")
    info.set_defaults(func=_cmd_info)

    cmp = sub.add_parser("compare", help="compare two runs (ARI, AMI, "
                         "which clusters become which)")
    cmp.add_argument("dataset")
    cmp.add_argument("key_a")
    cmp.add_argument("key_b")
    cmp.set_defaults(func=_cmd_compare)

    asg = sub.add_parser("assign", help="place samples the run has not "
                         "seen into its clusters")
    asg.add_argument("dataset")
    asg.add_argument("key")
    asg.add_argument("--assigner", default="auto",
                     choices=("auto", "knn", "svm"))
    asg.add_argument("--tag", action="append",
                     help="only samples with this tag (repeatable)")
    asg.add_argument("--quiet", action="store_true")
    asg.set_defaults(func=_cmd_assign)

    pl = sub.add_parser("plot", help="draw a run as a PNG chart")
    pl.add_argument("dataset")
    pl.add_argument("key")
    pl.add_argument("--kind", default="scatter",
                    choices=("scatter", "boundaries", "montage", "axes"))
    pl.add_argument("--out", help="PNG path (default: the dataset's charts "
                    "folder)")
    pl.add_argument("--gt-field", help="also colour the map by this "
                    "Classification field")
    pl.set_defaults(func=_cmd_plot)

    rn = sub.add_parser("rename", help="rename a run and its fields")
    rn.add_argument("dataset")
    rn.add_argument("key")
    rn.add_argument("new_key")
    rn.set_defaults(func=_cmd_rename)

    rm = sub.add_parser("delete", help="delete a run and its fields")
    rm.add_argument("dataset")
    rm.add_argument("key")
    rm.set_defaults(func=_cmd_delete)

    lb = sub.add_parser("label", help="name a run's clusters with a vision "
                        "LLM (OPENAI_API_KEY) or zero-shot CLIP")
    lb.add_argument("dataset")
    lb.add_argument("key")
    lb.add_argument("--namer", default="openai",
                    choices=("openai", "zero_shot"))
    lb.add_argument("--model", help="LLM or CLIP model")
    lb.add_argument("--base-url", help="any OpenAI-compatible server, e.g. "
                    "http://localhost:11434/v1")
    lb.add_argument("--vocabulary", help="zero-shot: comma-separated "
                    "concepts")
    lb.add_argument("--per-cluster", type=int, default=8,
                    help="images sent per cluster")
    lb.add_argument("--clusters", help="comma-separated ids (default: all "
                    "but the noise)")
    lb.add_argument("--quiet", action="store_true")
    lb.set_defaults(func=_cmd_label)

    nm = sub.add_parser("name", help="name one cluster by hand")
    nm.add_argument("dataset")
    nm.add_argument("key")
    nm.add_argument("cluster", type=int)
    nm.add_argument("name")
    nm.set_defaults(func=_cmd_name)

    tg = sub.add_parser("tag", help="tag every sample of some clusters")
    tg.add_argument("dataset")
    tg.add_argument("key")
    tg.add_argument("--clusters", required=True, help="comma-separated ids")
    tg.add_argument("--tags", required=True, help="comma-separated tags")
    tg.add_argument("--remove", action="store_true", help="remove the tags")
    tg.set_defaults(func=_cmd_tag)

    gr = sub.add_parser("group", help="merge clusters into a named group")
    gr.add_argument("dataset")
    gr.add_argument("key")
    gr.add_argument("group")
    gr.add_argument("--clusters", required=True, help="comma-separated ids")
    gr.set_defaults(func=_cmd_group)

    ex = sub.add_parser("export", help="write a CSV of the clusters (and "
                        "their images in folders)")
    ex.add_argument("dataset")
    ex.add_argument("key")
    ex.add_argument("path")
    ex.add_argument("--clusters", help="comma-separated ids (default: all)")
    ex.add_argument("--images", default="none",
                    choices=("none", "copy", "symlink"))
    ex.add_argument("--folders", default="cluster",
                    choices=("cluster", "group"))
    ex.add_argument("--overwrite", action="store_true")
    ex.set_defaults(func=_cmd_export)

    un = sub.add_parser("uniqueness", help="score how unique each image "
                        "is (field <run key>_score)")
    un.add_argument("dataset")
    un.add_argument("--run-key", default="uniqueness")
    un.add_argument("--top", type=int, default=10,
                    help="most unique samples to print")
    _add_source_args(un)
    un.set_defaults(func=_cmd_uniqueness)

    du = sub.add_parser("duplicates", help="find near-duplicate (or, with "
                        "--exact, identical) images")
    du.add_argument("dataset")
    du.add_argument("--run-key", help="run key (default: near_dups or "
                    "exact_dups)")
    du.add_argument("--exact", action="store_true",
                    help="identical files (content hash) instead")
    du.add_argument("--threshold", type=float,
                    help="cosine distance (default: the embedder's)")
    du.add_argument("--representative", default="centre",
                    choices=("centre", "largest"))
    du.add_argument("--patches-field",
                    help="find duplicate objects of this Detections field")
    du.add_argument("--split-tags", help="report groups that cross these "
                    "comma-separated tags, e.g. train,test")
    du.add_argument("--tag", help="tag every duplicate but the "
                    "representatives")
    du.add_argument("--delete", type=int, metavar="COUNT",
                    help="delete every duplicate but the representatives "
                    "from the dataset; COUNT must be their number")
    _add_source_args(du)
    du.set_defaults(func=_cmd_duplicates)

    rp = sub.add_parser(
        "repair", help="remove what killed runs left behind, and say what"
    )
    rp.add_argument("dataset")
    rp.set_defaults(func=_cmd_repair)
    return parser


def main(argv=None):
    from .clustering.store import StoreError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, StoreError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
