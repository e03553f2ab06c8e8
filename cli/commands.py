"""The commands: each reads its flags, makes one SDK call and prints the
result. Their flags are declared beside them in :data:`COMMANDS`."""

import os
import sys

from ..algorithms.clusterers import CLUSTERERS
from ..algorithms.fitted import ASSIGNER
from ..algorithms.reducers import REDUCERS
from ..analysis.duplicates import (
    DEFAULT_EMBEDDER as DUPLICATES_EMBEDDER,
    DUPLICATE_PARAMS,
    find_exact_duplicates,
    find_near_duplicates,
)
from ..analysis.source import SOURCE_PARAMS
from ..analysis.uniqueness import compute_uniqueness
from ..clustering.api import (
    compare_runs,
    delete_run,
    export_clusters,
    free_run_key,
    list_runs,
    load_run,
    name_cluster,
    rename_run,
    repair,
    tag_clusters,
)
from ..clustering.assign import samples_to_place
from ..clustering.charts import KIND as CHART_KIND
from ..clustering.charts import plot_run
from ..clustering.pipeline import compute_clusters
from ..clustering.presets import DEFAULT_PRESET, PRESETS
from ..clustering.request import RUN_PARAMS
from ..clustering.summary import run_summary
from ..curation.export import EXPORT_PARAMS
from ..curation.groups import moves as group_moves
from ..embedders import EMBEDDERS
from ..labeling.namers import NAMERS, namer_params
from ..labeling.naming import LABEL_PARAMS
from . import output
from .folders import dataset_from_folder, sync_with_folder, write_digits
from .base import Command, CommandError, existing_dataset
from .tree import tree_commands
from .flags import (
    FlagNames,
    add_param_flags,
    flag,
    given,
    parse_assignments,
    parse_ids,
    parse_reducer,
)

DEMO_DATASET = "image-clustering-demo"


# -- datasets ------------------------------------------------------------------


def dataset_for_cluster(args):
    """The dataset ``cluster`` works on: an existing one (``--dataset``),
    a folder (built or brought up to date), or the demo set."""
    import fiftyone as fo

    if not args.folder and args.dataset:
        if args.reload:
            raise CommandError("--reload needs a FOLDER to rebuild the "
                               "dataset from")
        print(f"Using existing dataset '{args.dataset}'")
        return existing_dataset(args.dataset)
    if args.folder:
        folder = os.path.abspath(args.folder)
        if not os.path.isdir(folder):
            raise CommandError(f"not a folder: {args.folder}")
        name = args.dataset or os.path.basename(folder.rstrip(os.sep))
    else:
        folder = os.path.join(fo.config.default_dataset_dir,
                              "image-clustering-demo", "digits")
        name = DEMO_DATASET
        print(f"No folder given: using the demo set (digits) in {folder}")
        write_digits(folder)
    if fo.dataset_exists(name) and not args.reload:
        dataset = fo.load_dataset(name)
        change = sync_with_folder(dataset, folder)
        print(f"Using existing dataset '{name}' (--reload rebuilds it)")
        if change:
            print(change[0].upper() + change[1:])
        return dataset
    if fo.dataset_exists(name):
        doomed = list_runs(fo.load_dataset(name))
        print(f"--reload: deleting dataset '{name}' and its "
              f"{len(doomed)} run(s)" + (f": {', '.join(doomed)}"
                                         if doomed else ""),
              file=sys.stderr)
    dataset = dataset_from_folder(folder, name, replace=args.reload)
    print(f"Created dataset '{name}' with {len(dataset)} images")
    return dataset


# -- cluster -------------------------------------------------------------------


def _add_cluster(p):
    p.add_argument("folder", nargs="?", help=(
        "folder of images; subfolder names become ground truth. Without "
        "it, the dataset named by --dataset, else scikit-learn's digits"))
    p.add_argument("--dataset", help="dataset name (default: the folder's "
                   "name)")
    p.add_argument("--reload", action="store_true",
                   help="rebuild the dataset from the folder (its runs are "
                   "deleted, and said so)")
    p.add_argument("--run-key", help="run key (default: a free "
                   "'clustersN')")
    p.add_argument("--embedder", help="embedder: " + ", ".join(
        EMBEDDERS))
    p.add_argument("--embedder-param", action="append", metavar="NAME=VALUE",
                   help="embedder parameter (repeatable); see below")
    p.add_argument("--reducer", help="'none', or reducers joined by '+', "
                   "each with parameters: pca:n_components=50+umap:"
                   "n_components=10,min_dist=0")
    p.add_argument("--method", help="clustering method: " + ", ".join(
        CLUSTERERS))
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="method parameter, e.g. n_clusters=10 or "
                   "n_clusters=auto (repeatable); see below")
    add_param_flags(p, RUN_PARAMS, defaults={
        "noise": "the preset's policy when the method is the preset's, "
                 "else keep"})
    p.add_argument("--label-field", default="ground_truth",
                   help="a Classification field the printed table scores "
                   "the clusters against when it exists (default "
                   "ground_truth); --gt-field also stores the scores")
    p.add_argument("--quiet", action="store_true", help="no progress")
    p.add_argument("--app", action="store_true",
                   help="open the App grouped by cluster afterwards")
    p.add_argument("--port", type=int, default=5151)
    p.add_argument("--address", default=None)
    p.add_argument("--remote", action="store_true",
                   help="serve the App without opening a browser")


def cluster_request(args):
    """The request the flags make, as keywords of
    :func:`~image_clustering.compute_clusters`."""
    request = given(args, RUN_PARAMS)
    if args.embedder or args.embedder_param:
        embedder = parse_assignments(args.embedder_param, "--embedder-param")
        request["embedder"] = {"name": args.embedder or PRESETS[
            request.get("preset") or DEFAULT_PRESET]["embedder"]["name"],
            **embedder}
    if args.reducer is not None:
        request["reducer"] = parse_reducer(args.reducer)
    if args.method:
        request["method"] = args.method
    request.update(parse_assignments(args.param, "--param"))
    return request


def _cluster(args):
    dataset = dataset_for_cluster(args)
    key = free_run_key(dataset) if args.run_key is None else args.run_key
    request = cluster_request(args)
    print(f"Clustering into run '{key}'...")
    run = compute_clusters(dataset, key, progress=not args.quiet,
                               **request)
    output.print_run(run_summary(run, args.label_field),
                     _truth_name(run, args.gt_field or args.label_field))
    output.print_skipped(run.skipped)
    output.print_hierarchy(run.results)
    if args.app:
        _launch_app(dataset, run, args)
    return 0


def _truth_name(run, field):
    return "object labels" if run.patches_field else field


def _unit_flag_names():
    """Method, embedder and reducer parameters are given inside
    ``--param``, ``--embedder-param`` and ``--reducer``."""
    options = {name: "--param" for name in CLUSTERERS}
    options.update({name: "--embedder-param" for name in EMBEDDERS})
    options.update({name: "--reducer" for name in REDUCERS})
    return FlagNames({"method": "--method", "embedder": "--embedder",
                      "reducer": "--reducer"}, options)


def _launch_app(dataset, run, args):
    import fiftyone as fo

    session = fo.launch_app(dataset, view=run.clusters_view(),
                            port=args.port, address=args.address,
                            remote=args.remote)
    print(f"App at http://{args.address or 'localhost'}:{args.port} "
          "(Ctrl-C to stop)")
    session.wait()


def cluster_epilog():
    """The parameters of every embedder, reducer and method, for
    ``cluster --help``."""
    lines = []
    for title, option, registry in (
            ("embedders (--embedder NAME --embedder-param NAME=VALUE)",
             "--embedder-param", EMBEDDERS),
            ("reducers (--reducer NAME:NAME=VALUE,...+...)", "--reducer",
             REDUCERS),
            ("methods (--method NAME --param NAME=VALUE)", "--param",
             CLUSTERERS)):
        lines.append(title + ":")
        for name, cls in registry.items():
            lines.append(f"  {name}: {cls.description}")
            for p in cls.PARAMS:
                if p.kind != "object":
                    lines.append(f"      {p.name}: {p.help()}")
    presets = ", ".join(PRESETS)
    lines.append(f"presets: {presets} (default {DEFAULT_PRESET})")
    return "\n".join(lines)


# -- runs ------------------------------------------------------------------------


def _add_dataset_key(p):
    p.add_argument("dataset")
    p.add_argument("key", help="the run key")


def _list(args):
    dataset = existing_dataset(args.dataset)
    keys = list_runs(dataset)
    if not keys:
        print(f"No clustering runs on '{args.dataset}'")
    for key in keys:
        run = load_run(dataset, key)
        m = run.metrics
        when = run.timestamp.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{key:<20} {run.config['method']:<17} {m['n_clusters']:>4} "
              f"clusters  {m['fraction_clustered'] or 0:6.1%} clustered  "
              f"{when}")
    return 0


def _info(args):
    run = load_run(existing_dataset(args.dataset), args.key)
    summary = run_summary(run, args.label_field)
    output.print_run(summary, _truth_name(run, run.config.get("gt_field")
                                          or args.label_field))
    output.print_skipped(run.skipped)
    output.print_hierarchy(run.results)
    if summary["deleted_since"] or summary["added_since"]:
        print(f"Since the run: {summary['deleted_since']} of its samples "
              f"deleted, {summary['added_since']} added to its view")
    return 0


def _compare(args):
    output.print_comparison(compare_runs(
        existing_dataset(args.dataset), args.key_a, args.key_b))
    return 0


def _add_assign(p):
    _add_dataset_key(p)
    add_param_flags(p, [ASSIGNER])
    p.add_argument("--tag", action="append",
                   help="only samples with this tag (repeatable)")
    p.add_argument("--quiet", action="store_true")


def _assign(args):
    dataset = existing_dataset(args.dataset)
    samples = dataset.match_tags(args.tag) if args.tag else dataset
    run = load_run(dataset, args.key)
    todo = samples_to_place(samples, run)
    what = "samples" if not args.tag else \
        f"samples tagged {', '.join(args.tag)}"
    if not len(samples):
        print(f"Nothing to place: there are no {what}")
        return 0
    if not len(todo):
        print(f"Nothing to place: all {len(samples):,} {what} already have "
              f"a cluster of run '{args.key}'")
        return 0
    run = run.assign(samples, assigner=args.assigner or "auto",
                     progress=not args.quiet)
    last = run.results["assigned"]["last"]
    print(f"Placed {last['placed']} sample(s) into run '{args.key}' with "
          f"the {last['assigner']} assigner: {last['noise']} as noise, "
          f"{last['skipped']} skipped")
    for cluster, n in sorted(last["per_cluster"].items(),
                             key=lambda kv: int(kv[0])):
        print(f"  cluster {cluster}: {n}")
    print(f"{run.results['assigned']['count']} sample(s) assigned since the "
          "run was fitted")
    return 0


def _add_plot(p):
    _add_dataset_key(p)
    add_param_flags(p, [CHART_KIND])
    p.add_argument("--out", help="PNG path (default: the dataset's charts "
                   "folder)")
    p.add_argument("--gt-field", help="also colour the map by this "
                   "Classification field")


def _plot(args):
    path = plot_run(existing_dataset(args.dataset), args.key,
                        kind=args.kind or "scatter", path=args.out,
                        gt_field=args.gt_field)
    print(f"Wrote {path}")
    return 0


def _rename(args):
    rename_run(existing_dataset(args.dataset), args.key, args.new_key)
    print(f"Renamed '{args.key}' to '{args.new_key}'")
    return 0


def _delete(args):
    delete_run(existing_dataset(args.dataset), args.key)
    print(f"Deleted run '{args.key}' and its fields")
    return 0


def _repair(args):
    done = repair(existing_dataset(args.dataset))
    for line in done:
        print(f"- {line}")
    print(f"Repaired '{args.dataset}': " + (f"{len(done)} change(s)" if done
                                             else "nothing to repair"))
    return 0


# -- names and curation ----------------------------------------------------------


def _add_label(p):
    _add_dataset_key(p)
    p.add_argument("--namer", default="openai", choices=tuple(NAMERS),
                   help="openai: a vision LLM behind any OpenAI-compatible "
                   "API (key in OPENAI_API_KEY); zero_shot: CLIP/SigLIP")
    add_param_flags(p, namer_params())
    add_param_flags(p, LABEL_PARAMS)
    p.add_argument("--clusters", help="comma-separated ids (default: all "
                   "but the noise)")
    p.add_argument("--quiet", action="store_true")


def _label(args):
    namer = NAMERS[args.namer]
    own = {p.name for p in namer.PARAMS}
    chosen = given(args, namer_params())
    foreign = sorted(set(chosen) - own)
    if foreign:
        raise CommandError(f"{flag(foreign[0])} is not a parameter of the "
                           f"{args.namer} namer")
    kwargs = {**chosen, **given(args, LABEL_PARAMS)}
    if args.namer == "openai":
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY")
    run = load_run(existing_dataset(args.dataset), args.key)
    out = run.label(namer=args.namer, clusters=parse_ids(args.clusters),
                    progress=not args.quiet, **kwargs)
    named = out["run"]
    for cluster in out["named"] + out["cached"]:
        print(f"  cluster {cluster}: {named.name_of(cluster)}")
    print(f"Named {len(out['named'])} cluster(s); {len(out['cached'])} "
          f"unchanged since named; {len(out['failed'])} failed")
    for told in out["told_apart"]:
        print(f"  clusters {', '.join(map(str, told))} were named alike: "
              "asked again together")
    for clusters, reason in out["alike"].items():
        print(f"  clusters {clusters} keep names alike: {reason}",
              file=sys.stderr)
    for cluster, reason in out["failed"].items():
        print(f"  cluster {cluster} failed: {reason}", file=sys.stderr)
    return 1 if out["failed"] else 0


def _add_name(p):
    _add_dataset_key(p)
    p.add_argument("cluster", help="cluster id")
    p.add_argument("name")
    p.add_argument("--description")


def _name(args):
    (cluster,) = parse_ids(args.cluster, "CLUSTER")
    name_cluster(existing_dataset(args.dataset), args.key, cluster,
                     args.name, args.description)
    print(f"Cluster {cluster} of run '{args.key}' is now '{args.name}'")
    return 0


def _add_tag(p):
    _add_dataset_key(p)
    p.add_argument("--clusters", required=True, help="comma-separated ids")
    p.add_argument("--tags", required=True, help="comma-separated tags")
    p.add_argument("--remove", action="store_true", help="remove the tags")


def _tag(args):
    tags = [t.strip() for t in args.tags.split(",") if t.strip()]
    n = tag_clusters(existing_dataset(args.dataset), args.key,
                         parse_ids(args.clusters), tags, remove=args.remove)
    print(f"{'Untagged' if args.remove else 'Tagged'} {n} sample(s) of "
          f"cluster(s) {args.clusters}: {', '.join(tags)}")
    return 0


def _add_group(p):
    _add_dataset_key(p)
    p.add_argument("group", help="the group's name")
    p.add_argument("--clusters", required=True, help="comma-separated ids")


def _group(args):
    run = load_run(existing_dataset(args.dataset), args.key)
    groups = {args.group: parse_ids(args.clusters)}
    moved = group_moves(run, groups)
    run.group(groups)
    print(f"Group '{args.group}' of run '{args.key}': cluster(s) "
          f"{args.clusters}")
    for cluster, old, _ in moved:
        print(f"  cluster {cluster} moved out of group '{old}'")
    return 0


def _add_export(p):
    _add_dataset_key(p)
    p.add_argument("path", help="folder to write the CSV (and images) into")
    p.add_argument("--clusters", help="comma-separated ids (default: all)")
    p.add_argument("--groups", help="comma-separated group names")
    add_param_flags(p, EXPORT_PARAMS)
    p.add_argument("--overwrite", action="store_true",
                   help="replace files that exist")


def _export(args):
    out = export_clusters(
        existing_dataset(args.dataset), args.key, args.path,
        clusters=parse_ids(args.clusters),
        groups=[g.strip() for g in args.groups.split(",")]
        if args.groups else None,
        images=args.images or "none", folders=args.folders or "cluster",
        overwrite=args.overwrite)
    print(f"Wrote {out['rows']} row(s) to {out['csv']}"
          + (f" and {out['images']} image(s)" if out["images"] else ""))
    for path, reason in out["failed"].items():
        print(f"  could not write {path}: {reason}", file=sys.stderr)
    return 1 if out["failed"] else 0


# -- uniqueness and duplicates ----------------------------------------------------


def _add_source(p):
    p.add_argument("--embedder", help="embedder name, e.g. pixels, dino")
    p.add_argument("--embedder-param", action="append", metavar="NAME=VALUE",
                   help="embedder parameter (repeatable)")
    add_param_flags(p, SOURCE_PARAMS)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run of the same key")
    p.add_argument("--quiet", action="store_true", help="no progress")


def _source_kwargs(args, default_embedder):
    embedder = None
    if args.embedder or args.embedder_param:
        embedder = {"name": args.embedder or default_embedder["name"],
                    **parse_assignments(args.embedder_param,
                                        "--embedder-param")}
    return dict(embedder=embedder, overwrite=args.overwrite,
                progress=not args.quiet, **given(args, SOURCE_PARAMS))


def _add_uniqueness(p):
    p.add_argument("dataset")
    p.add_argument("--run-key", default="uniqueness")
    p.add_argument("--top", type=int, default=10,
                   help="most unique samples to print")
    _add_source(p)


def _uniqueness(args):
    run = compute_uniqueness(
        existing_dataset(args.dataset), key=args.run_key,
        **_source_kwargs(args, PRESETS[DEFAULT_PRESET]["embedder"]))
    print(f"Run '{run.key}': {run.summary()['headline']}. Most unique:")
    for sample in run.most_unique(args.top):
        print(f"  {sample[run.field]:.3f}  {sample.filepath}")
    return 0


def _add_duplicates(p):
    p.add_argument("dataset")
    p.add_argument("--run-key", help="run key (default: near_dups, or "
                   "exact_dups with --exact)")
    p.add_argument("--exact", action="store_true",
                   help="identical files (content hash) instead")
    add_param_flags(p, DUPLICATE_PARAMS)
    p.add_argument("--patches-field",
                   help="find duplicate objects of this Detections field")
    p.add_argument("--split-tags", help="report groups that cross these "
                   "comma-separated tags, e.g. train,test")
    p.add_argument("--split-field", help="report groups that cross the "
                   "values of this field (a string or Classification)")
    p.add_argument("--tag", help="tag every duplicate but the "
                   "representatives")
    p.add_argument("--delete", type=int, metavar="COUNT",
                   help="delete every duplicate but the representatives "
                   "from the dataset; COUNT must be their number")
    _add_source(p)


def _duplicates(args):
    dataset = existing_dataset(args.dataset)
    if args.exact:
        run = find_exact_duplicates(
            dataset, key=args.run_key or "exact_dups",
            overwrite=args.overwrite, num_workers=args.num_workers,
            progress=not args.quiet)
    else:
        run = find_near_duplicates(
            dataset, key=args.run_key or "near_dups",
            patches_field=args.patches_field,
            **given(args, DUPLICATE_PARAMS),
            **_source_kwargs(args, DUPLICATES_EMBEDDER))
    print(f"Run '{run.key}': {run.summary()['headline']}")
    if args.split_tags or args.split_field:
        leaks = run.leaks(
            splits=[t.strip() for t in args.split_tags.split(",")]
            if args.split_tags else None, split_field=args.split_field)
        output.print_leaks(leaks.report())
    if args.tag:
        print(f"Tagged {run.tag_duplicates(args.tag):,} duplicate(s) "
              f"'{args.tag}'")
    if args.delete is not None:
        print(f"Deleted {run.delete_duplicates(confirm=args.delete):,} "
              "duplicate(s) from the dataset (files are kept)")
    return 0


def _add_rename(p):
    _add_dataset_key(p)
    p.add_argument("new_key")


def _add_compare(p):
    p.add_argument("dataset")
    p.add_argument("key_a")
    p.add_argument("key_b")


def _add_info(p):
    _add_dataset_key(p)
    p.add_argument("--label-field", default="ground_truth",
                   help="a Classification field to score the clusters "
                   "against when the run stored no scores")


def _add_dataset(p):
    p.add_argument("dataset")


COMMANDS = (
    Command("cluster", "cluster a folder of images (or the demo set, or a "
            "dataset)", _add_cluster, _cluster, _unit_flag_names()),
    Command("list", "list a dataset's clustering runs", _add_dataset, _list),
    Command("info", "show a run's clusters and metrics", _add_info, _info),
    Command("compare", "compare two runs (ARI, AMI, which clusters become "
            "which)", _add_compare, _compare,
            FlagNames({"run_b": "KEY_B"})),
    Command("assign", "place samples the run has not seen into its "
            "clusters", _add_assign, _assign),
    Command("plot", "draw a run as a PNG chart", _add_plot, _plot),
    Command("rename", "rename a run and its fields", _add_rename, _rename,
            FlagNames({"new_run_key": "NEW_KEY"})),
    Command("delete", "delete a run and its fields", _add_dataset_key,
            _delete),
    Command("repair", "remove what killed runs left behind, and say what",
            _add_dataset, _repair),
    Command("label", "name a run's clusters with a vision LLM "
            "(OPENAI_API_KEY) or zero-shot CLIP", _add_label, _label,
            FlagNames({"clusters": "--clusters"})),
    Command("name", "name one cluster by hand", _add_name, _name,
            FlagNames({"cluster": "CLUSTER", "name": "NAME"})),
    Command("tag", "tag every sample of some clusters", _add_tag, _tag),
    Command("group", "merge clusters into a named group", _add_group,
            _group, FlagNames({"group": "GROUP", "groups": "GROUP"})),
    Command("export", "write a CSV of the clusters (and their images in "
            "folders)", _add_export, _export, FlagNames({"path": "PATH"})),
    Command("uniqueness", "score how unique each image is (field <run "
            "key>_score)", _add_uniqueness, _uniqueness,
            FlagNames({"run_key": "--run-key"}, {
                name: "--embedder-param" for name in EMBEDDERS})),
    *tree_commands(),
    Command("duplicates", "find near-duplicate (or, with --exact, "
            "identical) images", _add_duplicates, _duplicates,
            FlagNames({"run_key": "--run-key", "confirm": "--delete",
                       "splits": "--split-tags"}, {
                name: "--embedder-param" for name in EMBEDDERS})),
)
