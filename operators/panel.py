"""The Clusters panel: one row per cluster of a run, click to browse it."""

from collections import Counter
from urllib.parse import quote

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..clustering import runs

SORTS = {
    "size_desc": "Largest first",
    "size_asc": "Smallest first",
    "dist_asc": "Tightest first (mean distance)",
    "id": "Cluster id",
}


def cluster_rows(dataset, key, sort="size_desc"):
    """One dict per cluster of run ``key`` (noise last): id, size, mean
    distance, sample tags and a representative image."""
    run = runs.load_run(dataset, key)
    reps = run.representatives(per_cluster=1)
    tag_counts = {}
    for c, tags in _tags_by_member(run):
        tag_counts.setdefault(c, Counter()).update(tags or [])

    rows = [
        {
            "id": c["id"],
            "size": c["size"],
            "mean_dist": c["mean_dist"],
            "tags": dict(tag_counts.get(c["id"], {})),
            "thumbnail": reps[c["id"]][0][1] if c["id"] in reps else None,
        }
        for c in run.clusters
    ]
    order = {
        "size_desc": lambda r: (-r["size"], r["id"]),
        "size_asc": lambda r: (r["size"], r["id"]),
        "dist_asc": lambda r: (r["mean_dist"], r["id"]),
        "id": lambda r: r["id"],
    }[sort if sort in SORTS else "size_desc"]
    rows.sort(key=order)
    noise = run.metrics["n_noise"]
    if noise:
        rows.append(
            {
                "id": -1,
                "size": noise,
                "mean_dist": None,
                "tags": dict(tag_counts.get(-1, {})),
                "thumbnail": None,
            }
        )
    return run, rows


def _tags_by_member(run):
    """(cluster, tags) per member: sample tags, or label tags in an object
    run."""
    cf = run.fields["cluster"]
    labels_path = (run.config.get("patches") or {}).get("path")
    if not labels_path:
        return zip(*run.view().exists(cf).values([cf, "tags"]))
    clusters, tags = run.view().values([cf, f"{labels_path}.tags"])
    if labels_path == run.patches_field:
        return zip(clusters, tags)
    return [
        (c, t)
        for cs, ts in zip(clusters, tags)
        for c, t in zip(cs or [], ts or [])
    ]


class ClustersPanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(
            name="clusters_panel",
            label="Clusters",
            icon="bubble_chart",
            help_markdown="Browse the clusters of a clustering run: click a "
            "cluster to show its images, nearest the centre first.",
        )

    def on_load(self, ctx):
        keys = runs.list_runs(ctx.dataset)
        key = ctx.panel.state.run_key
        if key not in keys:
            ctx.panel.state.run_key = keys[-1] if keys else None
        if ctx.panel.state.sort is None:
            ctx.panel.state.sort = "size_desc"

    def on_change_dataset(self, ctx):
        ctx.panel.state.run_key = None
        self.on_load(ctx)

    def on_change_run(self, ctx):
        ctx.panel.state.run_key = ctx.params["value"]

    def on_change_sort(self, ctx):
        ctx.panel.state.sort = ctx.params["value"]

    def on_refresh(self, ctx):
        self.on_load(ctx)

    def on_show_cluster(self, ctx):
        key = ctx.panel.state.run_key
        cluster = int(ctx.params["cluster"])
        view = runs.load_run(ctx.dataset, key).clusters_view(cluster=cluster)
        ctx.ops.set_view(view=view)

    def on_show_all(self, ctx):
        view = runs.load_run(ctx.dataset, ctx.panel.state.run_key).clusters_view()
        ctx.ops.set_view(view=view)

    def on_compute(self, ctx):
        ctx.prompt(f"{self.plugin_name}/compute_clusters")

    def render(self, ctx):
        panel = types.Object()
        keys = runs.list_runs(ctx.dataset)
        key = ctx.panel.state.run_key
        if not keys:
            panel.md(
                "### No clustering runs yet\n\nCompute clusters to see them "
                "here.",
                name="empty",
            )
            panel.btn("compute", label="Compute clusters",
                      on_click=self.on_compute, variant="contained")
            return types.Property(panel, view=types.GridView(pad=2, gap=2))
        if key not in keys:
            key = keys[-1]
            ctx.panel.state.run_key = key

        controls = panel.h_stack("controls", gap=2, align_y="center")
        runs_choice = types.DropdownView()
        for k in keys:
            runs_choice.add_choice(k, label=k)
        controls.enum("run_key", keys, default=key, label="Run",
                      view=runs_choice, on_change=self.on_change_run)
        sort_choice = types.DropdownView()
        for value, label in SORTS.items():
            sort_choice.add_choice(value, label=label)
        controls.enum("sort", list(SORTS), default=ctx.panel.state.sort,
                      label="Sort", view=sort_choice,
                      on_change=self.on_change_sort)
        controls.btn("show_all", label="Show all as groups",
                     on_click=self.on_show_all)
        controls.btn("refresh", label="Refresh", icon="refresh",
                     on_click=self.on_refresh)

        run, rows = cluster_rows(ctx.dataset, key, ctx.panel.state.sort)
        m = run.metrics
        panel.md(
            f"**{run.config['method']}** · {m['n_clusters']} clusters · "
            f"{m['fraction_clustered']:.1%} of {m['n_samples']} clustered"
            + (f" · silhouette {m['silhouette']:.3f}"
               if m.get("silhouette") is not None else ""),
            name="summary",
        )
        for row in rows:
            self._render_row(panel, row)
        return types.Property(panel, view=types.GridView(pad=2, gap=1))

    def _render_row(self, panel, row):
        c = row["id"]
        name = f"cluster_{c}" if c >= 0 else "noise"
        line = panel.h_stack(name, gap=2, align_y="center")
        if row["thumbnail"]:
            line.str(
                "thumbnail",
                default=f"/media?filepath={quote(row['thumbnail'])}",
                view=types.ImageView(
                    height="64px", width="64px",
                    operator=self.on_show_cluster, params={"cluster": c},
                ),
            )
        title = f"Cluster {c}" if c >= 0 else "Noise"
        parts = [f"**{title}**", f"{row['size']} images"]
        if row["mean_dist"] is not None:
            parts.append(f"mean distance {row['mean_dist']:.3f}")
        if row["tags"]:
            parts.append("tags: " + ", ".join(
                f"{t} ({n})" for t, n in sorted(row["tags"].items())
            ))
        line.md(" · ".join(parts), name="text")
        line.btn("show", label="Show", on_click=self.on_show_cluster,
                 params={"cluster": c})
