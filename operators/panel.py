"""The Clusters panel: one row per cluster of a run (its image nearest the
centre, name, description, group, size, tags), click to browse it; name,
tag, group and label clusters; compare with another run; the run's charts;
and the scheduled runs that are queued or running.

The panel's state (run key and id, sort, comparison, chart, note) and its
rendered properties share one namespace in the App: no property is named
like a state key, or the App would write the property's value over it.

For a layered run (``method="hierarchy"``) the clusters of the current
cut are shown as a tree: each under the cluster above it, with buttons to
move the cut (finer, coarser, expand one cluster, collapse a parent's
clusters into it), and below them the queue of merge suggestions, each
pair's images nearest their centres side by side, with Accept and
Reject. The buttons run the operators Move cut and Merge suggestions.

The panel follows the data. Every operator of this plugin that changes a
run calls :meth:`ClustersPanel.on_refresh` of each open Clusters panel (see
:mod:`.app`), which reads the runs again. A run is followed by its id,
which a rename keeps: the panel moves to the new key; a deleted run leaves
the panel on the list of runs.
"""

from collections import Counter
from urllib.parse import quote

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering import api as runs
from ..clustering.charts import KINDS, plot_run, saved_charts
from ..clustering.hierarchy import merge_plan
from ..storage import runs as stored
from ..storage import schema
from .words import describe
from . import app
from .forms import cluster_label, default_run
from .hierarchy import cut_description

SORTS = {
    "size_desc": "Largest first",
    "size_asc": "Smallest first",
    "dist_asc": "Tightest first (mean distance)",
    "id": "Cluster id",
}

#: The palette labels of the operators the panel's buttons open.
LABELS = {
    "compute_clusters": "Compute clusters",
    "load_clusters_view": "Load clusters view",
    "label_clusters": "Label clusters",
    "name_cluster": "Name a cluster",
    "tag_clusters": "Tag clusters",
    "group_clusters": "Group clusters",
    "plot_clustering_run": "Plot clustering run",
    "move_cut": "Move cut",
    "merge_suggestions": "Merge suggestions",
}

#: Merge suggestions the panel's queue shows, and images per cluster.
QUEUE = 5
QUEUE_IMAGES = 3
#: What indents a tree line one level (markdown trims plain spaces).
INDENT = "\u2003\u2003"


# -- what the panel shows, read from the database -----------------------------


def cluster_rows(dataset, key, sort="size_desc"):
    """One dict per cluster of run ``key`` (noise last): id, size, mean
    distance, name, description, group, sample tags and a representative
    image."""
    run = runs.load_run(dataset, key)
    reps = run.representatives(per_cluster=1)
    names = run.names
    groups = {c: g for g, cs in run.groups.items() for c in cs}
    tag_counts = {}
    for c, tags in _tags_by_member(run):
        tag_counts.setdefault(c, Counter()).update(tags or [])

    def row(cid, size, mean_dist):
        entry = names.get(str(cid)) or {}
        return {
            "id": cid,
            "size": size,
            "mean_dist": mean_dist,
            "name": entry.get("name"),
            "description": entry.get("description"),
            "group": groups.get(cid),
            "tags": dict(tag_counts.get(cid, {})),
            "thumbnail": reps[cid][0][1] if cid in reps else None,
        }

    rows = [row(c["id"], c["size"], c["mean_dist"]) for c in run.clusters]
    order = {
        "size_desc": lambda r: (-r["size"], r["id"]),
        "size_asc": lambda r: (r["size"], r["id"]),
        "dist_asc": lambda r: (r["mean_dist"], r["id"]),
        "id": lambda r: r["id"],
    }[sort if sort in SORTS else "size_desc"]
    rows.sort(key=order)
    noise = run.metrics["n_noise"]
    if noise:
        rows.append(row(-1, noise, None))
    return run, rows


def _tags_by_member(run):
    """(cluster, tags) per member: sample tags, or label tags in an object
    run."""
    extra = {"tags": f"{run.labels_path}.tags" if run.labels_path
             else "tags"}
    m = run.members(extra=extra)
    return [(c, t) for c, t in zip(m["cluster"], m["tags"]) if c is not None]


def scheduled_runs(dataset, operator_uri):
    """The queued and running delegated runs of ``operator_uri`` on
    ``dataset``: ``[{"id", "state", "run_key", "progress", "label"}]``."""
    from fiftyone.operators.delegated import DelegatedOperationService

    out = []
    service = DelegatedOperationService()
    for state in ("queued", "scheduled", "running"):
        for op in service.list_operations(operator=operator_uri,
                                          dataset_name=dataset.name,
                                          run_state=state):
            params = (op.context.request_params or {}).get("params", {}) \
                if op.context else {}
            status = op.status
            out.append({
                "id": str(op.id),
                "state": state,
                "run_key": params.get("run_key"),
                "progress": getattr(status, "progress", None),
                "label": getattr(status, "label", None),
            })
    return out


def follow_run(records, key, run_id):
    """Where a panel that showed run ``key`` (of id ``run_id``) goes now that
    the runs are ``records`` (key -> (record id, config)): ``(key, note)``,
    the run's key now (``None`` when it is gone) and what changed, if
    anything."""
    if key in records and run_id in (None, records[key][1].get("run_id")):
        return key, None
    for new_key, (_, config) in records.items():
        if run_id is not None and config.get("run_id") == run_id:
            return new_key, f"Run '{key}' is now called '{new_key}'"
    if key in records:
        return key, f"Run '{key}' was computed again"
    return None, f"Run '{key}' was deleted"


class ClustersPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="clusters_panel",
            label="Clusters",
            icon="bubble_chart",
            help_markdown="Browse the clusters of a clustering run: click a "
            "cluster to show its images, nearest the centre first. Name, "
            "group, tag and label them with the buttons, which open the "
            "operators of the same names.",
        )

    # -- state ----------------------------------------------------------------

    def _records(self, ctx):
        return stored.records_of(ctx.dataset, (schema.RUN_KIND,))

    def _settle(self, ctx):
        """Moves the panel off runs that were renamed or deleted since it
        last looked (see :func:`follow_run`)."""
        state = ctx.panel.state
        records = self._records(ctx)
        key = state.run_key
        changes = {}
        if key is None:
            if state.note is None and records:
                changes = self._selection(default_run(ctx, records), records)
        else:
            new_key, note = follow_run(records, key, state.run_id)
            if new_key != key or (new_key is not None and state.run_id !=
                                  records[new_key][1].get("run_id")):
                changes = self._selection(new_key, records, note)
        other = state.compare_with
        if other is not None and (other not in records or
                                  other == changes.get("run_key", key)):
            changes["compare_with"] = None
        # The controls' defaults, in the state before the App reports them
        # back as changes (see _write).
        if state.sort is None:
            changes["sort"] = "size_desc"
        if state.chart is None:
            changes["chart"] = "scatter"
        self._write(ctx, changes)

    @staticmethod
    def _selection(key, records, note=None):
        """The state that shows run ``key`` (``None``: the list of runs)."""
        return {"run_key": key,
                "run_id": records[key][1].get("run_id") if key in records
                else None,
                "note": note, "chart_error": None}

    @staticmethod
    def _write(ctx, changes):
        """Writes ``changes`` to the panel's state in one patch, so that no
        reader ever sees a run key without its id; and only what differs,
        since every write of a panel's state makes the App drop the
        sidebar's filters."""
        state = ctx.panel.state
        changed = {k: v for k, v in changes.items() if state.get(k) != v}
        if changed:
            state.set(changed)

    def _run(self, ctx):
        """The run the panel shows: under its new key if it was renamed
        behind the panel's back; ``None`` (the panel back on the list of
        runs, and a note saying why) if it was deleted."""
        state = ctx.panel.state
        run_id = state.run_id
        try:
            return runs.load_run(ctx.dataset, state.run_key)
        except runs.RunNotFound:
            self._settle(ctx)
        if state.run_key is not None and state.run_id == run_id:
            return runs.load_run(ctx.dataset, state.run_key)
        ctx.ops.notify(state.note or "Choose a run", variant="info")
        return None

    # -- events ---------------------------------------------------------------

    def on_load(self, ctx):
        self._settle(ctx)

    def on_refresh(self, ctx):
        self._settle(ctx)

    def on_change_dataset(self, ctx):
        records = self._records(ctx)
        self._write(ctx, {"compare_with": None, **self._selection(
            default_run(ctx, records), records)})

    def on_change_run(self, ctx):
        # The App also reports the value the panel itself put there.
        if ctx.params["value"] != ctx.panel.state.run_key:
            self._write(ctx, self._selection(ctx.params["value"],
                                             self._records(ctx)))

    def on_open_run(self, ctx):
        self._write(ctx, self._selection(ctx.params["run_key"],
                                         self._records(ctx)))

    def on_show_runs(self, ctx):
        self._write(ctx, self._selection(None, {}, "Choose a run"))

    def on_change_sort(self, ctx):
        self._write(ctx, {"sort": ctx.params["value"]})

    def on_change_compare(self, ctx):
        value = ctx.params["value"]
        self._write(ctx, {"compare_with": value if value != "-" else None})

    def on_change_chart(self, ctx):
        self._write(ctx, {"chart": ctx.params["value"], "chart_error": None})

    # -- actions --------------------------------------------------------------

    def on_show_cluster(self, ctx):
        run = self._run(ctx)
        if run is not None:
            ctx.ops.set_view(view=run.clusters_view(
                cluster=int(ctx.params["cluster"])))
            app.show_on_tiles(ctx, add=app.tile_fields(run))

    def on_show_all(self, ctx):
        run = self._run(ctx)
        if run is not None:
            ctx.ops.set_view(view=run.clusters_view())
            app.show_on_tiles(ctx, add=app.tile_fields(run))

    def on_show_cell(self, ctx):
        run = self._run(ctx)
        other = ctx.panel.state.compare_with
        if run is None or other is None:
            return
        c = run.compare(other)
        ctx.ops.set_view(view=c.cell_view(int(ctx.params["a"]),
                                          int(ctx.params["b"])))

    def on_plot(self, ctx):
        run = self._run(ctx)
        if run is None:
            return
        try:
            plot_run(ctx.dataset, run.key,
                     kind=ctx.panel.state.chart or "scatter")
            self._write(ctx, {"chart_error": None})
        except Exception as e:
            message = describe(e, {"kind": "Chart"})
            self._write(ctx, {"chart_error": message})
            ctx.ops.notify(f"{LABELS['plot_clustering_run']} failed: "
                           f"{message}", variant="error")

    def _prompt(self, ctx, name, **params):
        ctx.prompt(f"{self.plugin_name}/{name}", params={
            "run_key": ctx.panel.state.run_key, **params},
            on_success=self.on_refresh)

    def on_name_cluster(self, ctx):
        self._prompt(ctx, "name_cluster", cluster=str(ctx.params["cluster"]))

    def on_tag(self, ctx):
        self._prompt(ctx, "tag_clusters")

    def on_group(self, ctx):
        self._prompt(ctx, "group_clusters")

    def on_label(self, ctx):
        self._prompt(ctx, "label_clusters")

    def _trigger(self, ctx, name, **params):
        """Runs the operator ``name`` on the panel's run with ``params``,
        as if its form had been filled: one code path, and the operator
        shows the result and refreshes the panel."""
        ctx.trigger(f"{self.plugin_name}/{name}", params={
            "run_key": ctx.panel.state.run_key, **params})

    def on_finer(self, ctx):
        self._trigger(ctx, "move_cut", action="finer")

    def on_coarser(self, ctx):
        self._trigger(ctx, "move_cut", action="coarser")

    def on_expand(self, ctx):
        self._trigger(ctx, "move_cut", action="expand",
                      cluster=str(ctx.params["cluster"]))

    def on_collapse(self, ctx):
        self._trigger(ctx, "move_cut", action="collapse",
                      clusters=[str(c) for c in ctx.params["clusters"]])

    def on_move_cut(self, ctx):
        self._prompt(ctx, "move_cut")

    def on_accept_merge(self, ctx):
        self._trigger(ctx, "merge_suggestions", decision="accept",
                      suggestion=ctx.params["clusters"])

    def on_reject_merge(self, ctx):
        self._trigger(ctx, "merge_suggestions", decision="reject",
                      suggestion=ctx.params["clusters"])

    def on_compute(self, ctx):
        ctx.prompt(f"{self.plugin_name}/compute_clusters",
                   on_success=self.on_refresh)

    # -- rendering ------------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        self._render_scheduled(ctx, panel)
        records = self._records(ctx)
        key = ctx.panel.state.run_key
        if not records:
            self._render_empty(panel)
        elif key not in records:
            self._render_run_list(ctx, panel, records)
        else:
            try:
                run, rows = cluster_rows(ctx.dataset, key,
                                         ctx.panel.state.sort)
            except runs.RunNotFound:
                self._render_run_list(ctx, panel, self._records(ctx))
            else:
                self._render_run(ctx, panel, run, rows, sorted(records))
        return types.Property(panel, view=types.GridView(pad=2, gap=1))

    def _render_run(self, ctx, panel, run, rows, keys):
        self._render_note(ctx, panel)
        self._render_controls(ctx, panel, keys, run.key)
        self._render_summary(panel, run)
        if ctx.panel.state.compare_with in keys:
            self._render_comparison(ctx, panel, run,
                                    ctx.panel.state.compare_with)
        self._render_charts(ctx, panel, run)
        if run.results.get("hierarchy"):
            self._render_cut(panel, run)
            self._render_tree(panel, run, rows)
            self._render_merges(panel, run)
        else:
            self._render_rows(panel, rows)

    def _render_scheduled(self, ctx, panel):
        try:
            pending = scheduled_runs(
                ctx.dataset, f"{self.plugin_name}/compute_clusters")
        except Exception:
            pending = []
        for op in pending:
            progress = "" if op["progress"] is None else \
                f" · {op['progress']:.0%}"
            panel.md(
                f"⏳ Run **{op['run_key']}** is {op['state']}{progress}"
                + (f" · {op['label']}" if op["label"] else "")
                + f" · operation `{op['id']}` (`fiftyone delegated info "
                f"{op['id']}`)", name=f"scheduled_{op['id']}")

    def _render_empty(self, panel):
        panel.md("### No clustering runs yet\n\nCompute clusters to see "
                 "them here.", name="empty")
        panel.btn("compute", label=LABELS["compute_clusters"],
                  on_click=self.on_compute, variant="contained")

    def _render_note(self, ctx, panel):
        note = ctx.panel.state.note
        if note:
            panel.md(f"_{note}_", name="note_text")

    def _render_run_list(self, ctx, panel, records):
        """Every run, one line each, with a button to open it: what the
        panel shows when its run is gone."""
        self._render_note(ctx, panel)
        panel.md("### Clustering runs", name="runs_title")
        for key in sorted(records):
            config = records[key][1]
            line = panel.h_stack(f"run_{key}", gap=2, align_y="center")
            line.md(f"**{key}** · {config.get('method', '')}", name="text")
            line.btn("open", label="Open", on_click=self.on_open_run,
                     params={"run_key": key})

    def _render_controls(self, ctx, panel, keys, key):
        controls = panel.h_stack("controls", gap=2, align_y="center")
        choice = types.DropdownView()
        for k in keys:
            choice.add_choice(k, label=k)
        controls.enum("run_key", keys, default=key, label="Run", view=choice,
                      on_change=self.on_change_run)
        sort = types.DropdownView()
        for value, label in SORTS.items():
            sort.add_choice(value, label=label)
        controls.enum("sort", list(SORTS), default=ctx.panel.state.sort,
                      label="Sort", view=sort, on_change=self.on_change_sort)
        others = ["-"] + [k for k in keys if k != key]
        compare = types.DropdownView()
        for k in others:
            compare.add_choice(k, label="nothing" if k == "-" else k)
        controls.enum("compare_with", others,
                      default=ctx.panel.state.compare_with or "-",
                      label="Compare with", view=compare,
                      on_change=self.on_change_compare)
        actions = panel.h_stack("actions", gap=1, align_y="center")
        actions.btn("show_all", label=LABELS["load_clusters_view"],
                    on_click=self.on_show_all)
        actions.btn("label", label=LABELS["label_clusters"],
                    on_click=self.on_label)
        actions.btn("tag", label=LABELS["tag_clusters"], on_click=self.on_tag)
        actions.btn("group", label=LABELS["group_clusters"],
                    on_click=self.on_group)
        actions.btn("runs", label="All runs", on_click=self.on_show_runs)
        actions.btn("refresh", label="Refresh", icon="refresh",
                    on_click=self.on_refresh)

    def _render_summary(self, panel, run):
        m = run.metrics
        parts = [f"**{run.key}**", f"{run.config['method']}",
                 f"{m['n_clusters']} clusters",
                 f"{m['n_samples'] - m['n_noise']:,} of {m['n_samples']:,} "
                 f"clustered ({m['fraction_clustered']:.1%})"]
        if m.get("silhouette") is not None:
            parts.append(f"silhouette {m['silhouette']:.3f}")
        external = run.results.get("external")
        if external:
            parts.append(f"ARI {external['ari']:.3f}")
        assigned = (run.results.get("assigned") or {}).get("count")
        if assigned:
            parts.append(f"{assigned:,} placed since")
        if run.groups:
            parts.append("groups: " + ", ".join(
                f"{g} ({', '.join(map(str, cs))})"
                for g, cs in run.groups.items()))
        panel.md(" · ".join(parts), name="summary")

    def _render_comparison(self, ctx, panel, run, other):
        try:
            c = run.compare(other)
        except runs.RunNotFound:
            return
        panel.md(c.describe(), name="comparison")
        for a, match in c.best_matches("a").items():
            line = panel.h_stack(f"cell_{a}", gap=2, align_y="center")
            line.md(f"cluster {a} → cluster {match['match']} of {other}: "
                    f"{match['count']} of {match['size']} "
                    f"({match['share']:.0%})", name="text")
            line.btn("show", label="Show", on_click=self.on_show_cell,
                     params={"a": a, "b": match["match"]})

    def _render_charts(self, ctx, panel, run):
        """The chart of the chosen kind, when one was drawn of this run."""
        kind = ctx.panel.state.chart or "scatter"
        line = panel.h_stack("charts", gap=2, align_y="center")
        kinds = types.DropdownView()
        for k in KINDS:
            kinds.add_choice(k, label=k)
        line.enum("chart", list(KINDS), default=kind, label="Chart",
                  view=kinds, on_change=self.on_change_chart)
        line.btn("plot", label=LABELS["plot_clustering_run"],
                 on_click=self.on_plot)
        path = saved_charts(run).get(kind)
        if path:
            panel.str(f"chart_{run.key}_{kind}",
                      default=f"/media?filepath={quote(path)}",
                      view=types.ImageView(width="100%"))
        elif ctx.panel.state.chart_error:
            panel.md(f"Chart failed: {ctx.panel.state.chart_error}",
                     name="chart_error_text")

    def _render_rows(self, panel, rows):
        for row in rows:
            self._render_row(panel, row)

    def _render_cut(self, panel, run):
        panel.md(f"**Clusters of the cut** · {cut_description(run)}",
                 name="cut_title")
        moves = panel.h_stack("cut_moves", gap=1, align_y="center")
        moves.btn("finer", label="Finer", icon="unfold_more",
                  on_click=self.on_finer)
        moves.btn("coarser", label="Coarser", icon="unfold_less",
                  on_click=self.on_coarser)
        moves.btn("move", label=LABELS["move_cut"], on_click=self.on_move_cut)

    def _render_tree(self, panel, run, rows):
        """The cut's clusters under the clusters above them, indented by
        depth, largest first; each cluster above the cut collapses the
        cut's clusters it holds into it; noise last."""
        tree = run.tree
        by_id = {row["id"]: row for row in rows}
        for depth, node, held in tree_lines(run):
            if node in by_id:
                self._render_row(panel, by_id[node], depth,
                                 expandable=bool(tree.children(node)))
            else:
                self._render_parent(panel, run, node, held, depth)
        if -1 in by_id:
            self._render_row(panel, by_id[-1])

    def _render_parent(self, panel, run, parent, held, depth):
        line = panel.h_stack(f"node_{parent}", gap=2, align_y="center")
        line.md(INDENT * depth + f"▾ **{cluster_label(run, parent)}** · "
                "holds " + ", ".join(map(str, held)), name="text")
        line.btn("collapse", label="Collapse", on_click=self.on_collapse,
                 params={"clusters": held})
        line.btn("name", label=LABELS["name_cluster"],
                 on_click=self.on_name_cluster, params={"cluster": parent})

    def _render_merges(self, panel, run):
        """The queue of merge suggestions: each pair's images side by
        side, its score and why, Accept and Reject."""
        panel.md("**Merge suggestions**", name="merges_title")
        try:
            queue = run.suggest_merges(n=QUEUE, per_cluster=QUEUE_IMAGES)
        except Exception as e:
            panel.md(f"_Cannot suggest merges: {describe(e)}_",
                     name="merges_error")
            return
        if not queue:
            panel.md("_No merges to suggest_", name="merges_none")
        for i, suggestion in enumerate(queue):
            self._render_merge(panel, run, i, suggestion)

    def _render_merge(self, panel, run, i, suggestion):
        clusters = suggestion["clusters"]
        how, parent = merge_plan(run, clusters)
        outcome = f"accepting shows Cluster {parent}" if how == \
            "collapse" else "accepting puts them in one group"
        panel.md(f"**{' + '.join(cluster_label(run, c) for c in clusters)}**"
                 f" · score {suggestion['score']:.2f} · {outcome}  \n"
                 f"{suggestion['reason']}", name=f"merge_{i}_text")
        pair = panel.h_stack(f"merge_{i}_images", gap=4, align_y="center")
        for c in clusters:
            side = pair.h_stack(f"side_{c}", gap=0.5, align_y="center")
            side.md(f"**{c}**", name="caption")
            for j, (_, path) in enumerate(suggestion["images"][str(c)]):
                side.str(f"image_{j}",
                         default=f"/media?filepath={quote(path)}",
                         view=types.ImageView(height="64px", width="64px"))
        value = ",".join(map(str, clusters))
        buttons = panel.h_stack(f"merge_{i}_buttons", gap=1,
                                align_y="center")
        buttons.btn("accept", label="Accept", variant="contained",
                    on_click=self.on_accept_merge,
                    params={"clusters": value})
        buttons.btn("reject", label="Reject", on_click=self.on_reject_merge,
                    params={"clusters": value})

    def _render_row(self, panel, row, depth=0, expandable=False):
        c = row["id"]
        line = panel.h_stack(f"cluster_{c}" if c >= 0 else "noise", gap=2,
                             align_y="center")
        if row["thumbnail"]:
            line.str(
                "thumbnail",
                default=f"/media?filepath={quote(row['thumbnail'])}",
                view=types.ImageView(height="64px", width="64px",
                                     operator=self.on_show_cluster,
                                     params={"cluster": c}),
            )
        line.md(INDENT * depth + ("└ " if depth else "") + _row_text(row),
                name="text")
        line.btn("show", label="Show", on_click=self.on_show_cluster,
                 params={"cluster": c})
        if expandable:
            line.btn("expand", label="Expand", on_click=self.on_expand,
                     params={"cluster": c})
        line.btn("name", label=LABELS["name_cluster"],
                 on_click=self.on_name_cluster, params={"cluster": c})


def tree_lines(run):
    """The lines of a layered run's tree down to its cut, depth first:
    ``(depth, node, held)``, where ``held`` lists the clusters of the cut
    under ``node`` (a cluster of the cut holds itself); siblings largest
    first."""
    tree, cut = run.tree, set(run.cut)
    held = {}
    for c in cut:
        for node in tree.ancestors(c):
            held.setdefault(node, []).append(c)
    shown = set(held)

    def below(node):
        return sorted((k for k in tree.children(node) if k in shown),
                      key=lambda k: (-int(tree.size[k]), k))

    roots = sorted((n for n in shown if tree.parent[n] < 0),
                   key=lambda k: (-int(tree.size[k]), k))
    lines, todo = [], [(0, n) for n in reversed(roots)]
    while todo:
        depth, node = todo.pop()
        lines.append((depth, node, sorted(held[node])))
        if node not in cut:
            todo.extend((depth + 1, k) for k in reversed(below(node)))
    return lines


def _row_text(row):
    c = row["id"]
    title = f"Cluster {c}" if c >= 0 else "Noise"
    if row["name"]:
        title += f": {row['name']}"
    parts = [f"**{title}**", f"{row['size']} images"]
    if row["mean_dist"] is not None:
        parts.append(f"mean distance {row['mean_dist']:.3f}")
    if row["group"]:
        parts.append(f"group: {row['group']}")
    if row["tags"]:
        parts.append("tags: " + ", ".join(
            f"{t} ({n})" for t, n in sorted(row["tags"].items())))
    text = " · ".join(parts)
    if row["description"]:
        text += f"  \n{row['description']}"
    return text
