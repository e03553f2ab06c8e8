"""The results object of a stored run, in the manner of fiftyone-brain's
results classes: what the run found, and the methods users reach for."""

from . import record


class ClusterRun:
    """A stored clustering run.

    Attributes:
        key: the run key
        timestamp: when the run was written (UTC)
        config: the run's config as a dict (see :mod:`.record`)
        results: the run's results as a dict
        record_id: the id of the run document this object was read from;
            writes through this object fail cleanly if another process has
            changed the run since
    """

    def __init__(self, dataset, key, config, results, timestamp, record_id,
                 view_stages=None):
        self._dataset = dataset
        self.key = key
        self.config = config
        self.results = results
        self.timestamp = timestamp
        self.record_id = record_id
        self._view_stages = view_stages

    # -- what the run holds --------------------------------------------------

    @property
    def dataset(self):
        return self._dataset

    @property
    def run_id(self):
        """Stable identity of the run, kept across renames and updates."""
        return self.config.get("run_id")

    @property
    def fields(self):
        """Suffix -> field path of each field the run wrote."""
        return self.config["fields"]

    @property
    def clusters(self):
        """One dict per cluster, largest first: ``id``, ``size``,
        ``mean_dist`` and ``centre``."""
        return self.results["clusters"]

    @property
    def metrics(self):
        return self.results["metrics"]

    @property
    def skipped(self):
        return self.results["skipped"]

    @property
    def patches_field(self):
        """The label field whose objects were clustered, or ``None``."""
        return record.patches_field_of(self.config)

    @property
    def labels_path(self):
        return record.labels_path_of(self.config)

    # -- views ----------------------------------------------------------------

    def view(self):
        """The samples the run was computed on (samples deleted since are
        simply absent)."""
        from bson import json_util
        import fiftyone.core.view as fov

        if self._view_stages is None:
            return self._dataset.view()
        stages = [json_util.loads(s) for s in self._view_stages]
        return fov.DatasetView._build(self._dataset, stages)

    def members(self, extra=None):
        """Flat lists over everything the run clustered (samples, or objects
        of an object run): ``id``, ``sample_id``, ``filepath``, ``cluster``,
        ``dist`` and one list per ``extra`` name -> field path. Values are
        ``None`` for what could not be embedded."""
        wanted = {"cluster": self.fields["cluster"],
                  "dist": self.fields["dist"], **(extra or {})}
        labels_path = self.labels_path
        if not labels_path:
            cols = self.view().values(["id", "filepath", *wanted.values()])
            out = {"id": cols[0], "sample_id": cols[0], "filepath": cols[1]}
            out.update({name: cols[2 + i] for i, name in enumerate(wanted)})
            return out
        single = labels_path == self.patches_field
        cols = self.view().values(
            ["id", "filepath", f"{labels_path}.id", *wanted.values()]
        )
        out = {"id": [], "sample_id": [], "filepath": []}
        out.update({name: [] for name in wanted})
        for row in zip(*cols):
            sid, path, label_ids, values = row[0], row[1], row[2], row[3:]
            if single:
                label_ids, values = [label_ids], [[v] for v in values]
            for j, label_id in enumerate(label_ids or []):
                if label_id is None:
                    continue
                out["id"].append(label_id)
                out["sample_id"].append(sid)
                out["filepath"].append(path)
                for name, column in zip(wanted, values):
                    out[name].append(column[j] if column else None)
        return out

    def clusters_view(self, cluster=None, include_noise=True):
        """The run's samples grouped by cluster (dynamic groups), largest
        cluster first and noise last, each group ordered by distance to its
        centre; or, with ``cluster``, that one cluster's samples in that
        order. For an object run, the same over the patches."""
        from fiftyone import ViewField as F

        cf, df, sf = (self.fields["cluster"], self.fields["dist"],
                      self.fields["size"])
        view = self.view()
        if self.patches_field:
            pf = self.patches_field
            view = view.to_patches(pf)
            cf, df, sf = (f"{pf}.{f.rsplit('.', 1)[-1]}" for f in (cf, df, sf))
        view = view.exists(cf)
        if cluster is not None:
            return view.match(F(cf) == int(cluster)).sort_by(df)
        if not include_noise:
            view = view.match(F(cf) >= 0)
        # Sorting after grouping orders the groups: largest first (cluster
        # ids are numbered by size), noise last; each group keeps its own
        # order by distance.
        rank = (F(cf) < 0).if_else(1 << 30, F(cf))
        return view.group_by(cf, order_by=df).sort_by(rank)

    def representatives(self, per_cluster=1):
        """``{cluster_id: [(id, filepath), ...]}``: the ``per_cluster``
        members nearest each centre, nearest first (noise has none)."""
        from ..labeling.representatives import nearest_to_centre

        return nearest_to_centre(self.members(), per_cluster)

    # -- change since the run ---------------------------------------------------

    def changes(self):
        """How the run's samples have changed since it was computed:
        ``deleted`` (clustered samples or objects that are gone) and
        ``added`` (samples in the run's view that it never saw)."""
        m = self.metrics
        clustered_then = m["n_samples"]
        skipped_then = self.skipped["count"]
        view = self.view()
        cf = self.fields["cluster"]
        if self.labels_path:
            present = view.count(cf)
            return {"deleted": max(0, clustered_then - present), "added": None}
        present = view.exists(cf).count()
        total_now = len(view)
        added = max(0, total_now - present - skipped_then)
        assigned = self.results.get("assigned", {}).get("count", 0)
        return {
            "deleted": max(0, clustered_then + assigned - present),
            "added": added,
        }

    def info(self):
        """The run as plain JSON: key, timestamp, config, results and the
        changes since."""
        return {
            "key": self.key,
            "timestamp": self.timestamp.isoformat() if self.timestamp
            else None,
            "config": self.config,
            "results": self.results,
            "changes": self.changes(),
        }

    def __repr__(self):
        m = self.metrics
        return (
            f"<ClusterRun '{self.key}': {self.config.get('method')} "
            f"{m['n_clusters']} clusters, "
            f"{m['fraction_clustered']:.1%} clustered>"
        )
