"""The Clusters panel: one row per cluster of a run (its image nearest the
centre, name, description, group, size, tags), click to browse it; rename a
cluster or a group; compare with another run; the run's charts; and the
scheduled runs that are queued or running."""

from collections import Counter
from urllib.parse import quote

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering import api as runs
from ..clustering.charts import KINDS, plot_run
from ..storage import runs as stored
from ..storage import schema
from .forms import default_run

SORTS = {
    "size_desc": "Largest first",
    "size_asc": "Smallest first",
    "dist_asc": "Tightest first (mean distance)",
    "id": "Cluster id",
}


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


class ClustersPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="clusters_panel",
            label="Clusters",
            icon="bubble_chart",
            help_markdown="Browse the clusters of a clustering run: click a "
            "cluster to show its images, nearest the centre first. Name, "
            "group, tag and export them with the operators of this plugin.",
        )

    # -- state --------------------------------------------------------------

    def on_load(self, ctx):
        records = stored.records_of(ctx.dataset, (schema.RUN_KIND,))
        key = ctx.panel.state.run_key
        if key not in records:
            ctx.panel.state.run_key = default_run(ctx, records)
        if ctx.panel.state.sort is None:
            ctx.panel.state.sort = "size_desc"

    def on_change_dataset(self, ctx):
        ctx.panel.state.run_key = None
        ctx.panel.state.compare_with = None
        self.on_load(ctx)

    def on_change_run(self, ctx):
        ctx.panel.state.run_key = ctx.params["value"]
        ctx.panel.state.compare_with = None

    def on_change_sort(self, ctx):
        ctx.panel.state.sort = ctx.params["value"]

    def on_change_compare(self, ctx):
        value = ctx.params["value"]
        ctx.panel.state.compare_with = value if value != "-" else None

    def on_change_chart(self, ctx):
        ctx.panel.state.chart = ctx.params["value"]

    def on_refresh(self, ctx):
        self.on_load(ctx)

    # -- actions ------------------------------------------------------------

    def on_show_cluster(self, ctx):
        key = ctx.panel.state.run_key
        cluster = int(ctx.params["cluster"])
        view = runs.load_run(ctx.dataset, key).clusters_view(cluster=cluster)
        ctx.ops.set_view(view=view)

    def on_show_all(self, ctx):
        view = runs.load_run(ctx.dataset,
                             ctx.panel.state.run_key).clusters_view()
        ctx.ops.set_view(view=view)

    def on_show_cell(self, ctx):
        c = runs.compare_runs(ctx.dataset, ctx.panel.state.run_key,
                              ctx.panel.state.compare_with)
        ctx.ops.set_view(view=c.cell_view(int(ctx.params["a"]),
                                          int(ctx.params["b"])))

    def on_rename_cluster(self, ctx):
        ctx.prompt(f"{self.plugin_name}/name_cluster", params={
            "run_key": ctx.panel.state.run_key,
            "cluster": str(ctx.params["cluster"])},
            on_success=self.on_refresh)

    def on_group(self, ctx):
        ctx.prompt(f"{self.plugin_name}/group_clusters", params={
            "run_key": ctx.panel.state.run_key},
            on_success=self.on_refresh)

    def on_label(self, ctx):
        ctx.prompt(f"{self.plugin_name}/label_clusters", params={
            "run_key": ctx.panel.state.run_key},
            on_success=self.on_refresh)

    def on_draw_chart(self, ctx):
        try:
            ctx.panel.state.chart_path = plot_run(
                ctx.dataset, ctx.panel.state.run_key,
                kind=ctx.panel.state.chart or "scatter")
            ctx.panel.state.chart_error = None
        except Exception as e:
            ctx.panel.state.chart_path = None
            ctx.panel.state.chart_error = str(e)
            ctx.ops.notify(f"Chart failed: {e}", variant="error")

    def on_compute(self, ctx):
        ctx.prompt(f"{self.plugin_name}/compute_clusters")

    # -- rendering ----------------------------------------------------------

    def render(self, ctx):
        panel = types.Object()
        keys = runs.list_runs(ctx.dataset)
        self._render_scheduled(ctx, panel)
        if not keys:
            panel.md("### No clustering runs yet\n\nCompute clusters to see "
                     "them here.", name="empty")
            panel.btn("compute", label="Compute clusters",
                      on_click=self.on_compute, variant="contained")
            return types.Property(panel, view=types.GridView(pad=2, gap=2))
        key = ctx.panel.state.run_key
        if key not in keys:
            key = default_run(ctx, stored.records_of(ctx.dataset,
                                                     (schema.RUN_KIND,)))
            ctx.panel.state.run_key = key
        self._render_controls(ctx, panel, keys, key)
        run, rows = cluster_rows(ctx.dataset, key, ctx.panel.state.sort)
        self._render_summary(panel, run)
        if ctx.panel.state.compare_with in keys:
            self._render_comparison(ctx, panel, key,
                                    ctx.panel.state.compare_with)
        self._render_chart(ctx, panel)
        for row in rows:
            self._render_row(panel, row)
        return types.Property(panel, view=types.GridView(pad=2, gap=1))

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
        controls.btn("show_all", label="Show all as groups",
                     on_click=self.on_show_all)
        controls.btn("label", label="Label clusters", on_click=self.on_label)
        controls.btn("group", label="Group clusters", on_click=self.on_group)
        controls.btn("refresh", label="Refresh", icon="refresh",
                     on_click=self.on_refresh)

    def _render_summary(self, panel, run):
        m = run.metrics
        parts = [f"**{run.config['method']}**",
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
        groups = run.results.get("groups") or {}
        if groups:
            parts.append("groups: " + ", ".join(
                f"{g} ({', '.join(map(str, cs))})"
                for g, cs in groups.items()))
        panel.md(" · ".join(parts), name="summary")

    def _render_comparison(self, ctx, panel, key, other):
        c = runs.compare_runs(ctx.dataset, key, other)
        panel.md(c.describe(), name="comparison")
        for a, match in c.best_matches("a").items():
            line = panel.h_stack(f"cell_{a}", gap=2, align_y="center")
            line.md(f"cluster {a} → cluster {match['match']} of {other}: "
                    f"{match['count']} of {match['size']} "
                    f"({match['share']:.0%})", name="text")
            line.btn("show", label="Show", on_click=self.on_show_cell,
                     params={"a": a, "b": match["match"]})

    def _render_chart(self, ctx, panel):
        line = panel.h_stack("charts", gap=2, align_y="center")
        kinds = types.DropdownView()
        for k in KINDS:
            kinds.add_choice(k, label=k)
        line.enum("chart", list(KINDS),
                  default=ctx.panel.state.chart or "scatter", label="Chart",
                  view=kinds, on_change=self.on_change_chart)
        line.btn("draw", label="Draw chart", on_click=self.on_draw_chart)
        path = ctx.panel.state.chart_path
        if path:
            panel.str("chart_image",
                      default=f"/media?filepath={quote(path)}",
                      view=types.ImageView(width="100%"))
        elif ctx.panel.state.chart_error:
            panel.md(f"Chart failed: {ctx.panel.state.chart_error}",
                     name="chart_error")

    def _render_row(self, panel, row):
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
        line.md(text, name="text")
        line.btn("show", label="Show", on_click=self.on_show_cluster,
                 params={"cluster": c})
        line.btn("rename", label="Rename", on_click=self.on_rename_cluster,
                 params={"cluster": c})
