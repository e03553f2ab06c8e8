"""The commands of a run's hierarchy: its layers and cut, moving the cut,
merge suggestions, and carrying decisions from one run to another."""

from ..clustering.api import carry_over, load_run
from ..clustering.misfits import N_CLUSTERS
from . import output
from .base import Command, CommandError, existing_dataset
from .flags import FlagNames, add_param_flags, given, parse_ids


def existing_run(args):
    return load_run(existing_dataset(args.dataset), args.key)


def _add_dataset_key(p):
    p.add_argument("dataset")
    p.add_argument("key", help="the run key")


# -- layers and the cut ------------------------------------------------------------


def _add_layers(p):
    _add_dataset_key(p)


def _layers(args):
    run = existing_run(args)
    print_layers(run)
    print()
    print_cut(run)
    return 0


def print_layers(run):
    cut = sorted(run.cut)
    rows = [{"layer": layer["layer"], "clusters": layer["n_clusters"],
             "cut": "<- current cut" if sorted(layer["nodes"]) == cut
             else ""} for layer in run.layers]
    print(output.table(rows, {"layer": "layer", "clusters": "clusters",
                              "cut": ""}))


def print_cut(run):
    """The clusters of the cut, largest first, with their parents and
    children, so that the next move can be chosen."""
    tree = run.tree
    rows = []
    for c in run.clusters:
        node = c["id"]
        parent = int(tree.parent[node]) if node < tree.n_nodes else -1
        rows.append({"cluster": node, "size": c["size"],
                     "name": run.name_of(node),
                     "parent": parent if parent >= 0 else None,
                     "children": len(tree.children(node))
                     if node < tree.n_nodes else 0})
    print(output.table(rows, {"cluster": "cluster", "size": "size",
                              "name": "name", "parent": "parent",
                              "children": "children"}))
    print(f"{len(rows)} clusters in the current cut")


def _add_cut(p):
    _add_dataset_key(p)
    move = p.add_mutually_exclusive_group(required=True)
    move.add_argument("--layer", type=int, metavar="N",
                      help="the whole cut to layer N (0 is the finest)")
    move.add_argument("--coarser", action="store_true",
                      help="one layer coarser")
    move.add_argument("--finer", action="store_true", help="one layer finer")
    move.add_argument("--expand", metavar="CLUSTER",
                      help="replace one cluster by its children")
    move.add_argument("--collapse", metavar="IDS",
                      help="comma-separated clusters to join into the "
                      "cluster above them")


def _cut(args):
    run = existing_run(args)
    before = len(run.cut)
    if args.layer is not None:
        run = run.set_cut(layer=args.layer)
    elif args.coarser:
        run = run.coarser()
    elif args.finer:
        run = run.finer()
    elif args.expand is not None:
        (cluster,) = parse_ids(args.expand, "--expand")
        run = run.expand(cluster)
    else:
        run = run.collapse(parse_ids(args.collapse, "--collapse"))
    print(f"Run '{run.key}': the cut went from {before} to {len(run.cut)} "
          "clusters")
    print_cut(run)
    return 0


# -- merges ---------------------------------------------------------------------------


def _add_merges(p):
    _add_dataset_key(p)
    p.add_argument("--n", type=int, default=10, metavar="N",
                   help="suggestions to list (default: 10)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--accept", metavar="IDS",
                     help="merge these clusters (comma-separated): "
                     "siblings collapse into their parent, others form a "
                     "group")
    act.add_argument("--reject", metavar="IDS",
                     help="never suggest these two clusters again")
    p.add_argument("--name", help="the group's name, with --accept")


def _merges(args):
    run = existing_run(args)
    if args.name and not args.accept:
        raise CommandError("--name goes with --accept")
    if args.accept:
        clusters = parse_ids(args.accept, "--accept")
        run = run.accept_merge(clusters, name=args.name)
        print(f"Merged clusters {args.accept} of run '{run.key}'")
        print_cut(run)
        return 0
    if args.reject:
        run = run.reject_merge(parse_ids(args.reject, "--reject"))
        print(f"Clusters {args.reject} of run '{run.key}' will not be "
              "suggested again")
        return 0
    suggestions = run.suggest_merges(n=args.n, per_cluster=0)
    if not suggestions:
        print(f"No merge to suggest for run '{run.key}'")
        return 0
    rows = [{"clusters": " + ".join(map(str, s["clusters"])),
             "score": f"{s['score']:.2f}", "reason": s["reason"]}
            for s in suggestions]
    print(output.table(rows, {"clusters": "clusters", "score": "score",
                              "reason": "reason"}))
    return 0


# -- misfits -----------------------------------------------------------------------


def _add_misfits(p):
    _add_dataset_key(p)
    add_param_flags(p, [N_CLUSTERS])


def _misfits(args):
    run, made = existing_run(args).cluster_misfits(
        **given(args, [N_CLUSTERS]))
    print(f"Run '{run.key}': {len(made)} new cluster(s) made of the "
          "samples that fit no cluster: " + ", ".join(map(str, made)))
    print_cut(run)
    return 0


# -- decisions across runs --------------------------------------------------------------


def _add_carry(p):
    p.add_argument("dataset")
    p.add_argument("from_key", help="the run whose decisions are carried")
    p.add_argument("to_key", help="the run that takes them")


def _carry(args):
    report = carry_over(existing_dataset(args.dataset), args.from_key,
                        args.to_key)
    for line in report["lines"]:
        print(line)
    return 0


def tree_commands():
    return (
        Command("layers", "show a run's layers and its current cut",
                _add_layers, _layers),
        Command("cut", "move a hierarchy run's cut: a layer, coarser, "
                "finer, expand or collapse clusters", _add_cut, _cut,
                FlagNames({"layer": "--layer", "cluster": "--expand",
                           "clusters": "--collapse", "cut": "--layer"})),
        Command("merges", "list merge suggestions for the current cut, or "
                "accept or reject one", _add_merges, _merges,
                FlagNames({"clusters": "--accept"})),
        Command("misfits", "cluster the placed samples that fit no cluster "
                "of a hierarchy into new clusters of it", _add_misfits,
                _misfits),
        Command("carry-over", "carry names, groups and rejected merges from "
                "one run to another by member overlap", _add_carry, _carry,
                FlagNames({"carry_from": "FROM_KEY"})),
    )
