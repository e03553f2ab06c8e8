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

    def clustered(self):
        """The samples that have a cluster of this run: those it clustered
        and those placed into it since (:meth:`assign`)."""
        return self._dataset.exists(self.fields["cluster"])

    def members(self, extra=None):
        """Flat lists over everything the run clustered (samples, or objects
        of an object run): ``id``, ``sample_id``, ``filepath``, ``cluster``,
        ``dist`` and one list per ``extra`` name -> field path. Values are
        ``None`` for what could not be embedded."""
        wanted = {"cluster": self.fields["cluster"],
                  "dist": self.fields["dist"], **(extra or {})}
        labels_path = self.labels_path
        if not labels_path:
            cols = self.clustered().values(
                ["id", "filepath", *wanted.values()])
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

        cf, df = self.fields["cluster"], self.fields["dist"]
        if self.patches_field:
            pf = self.patches_field
            view = self.view().to_patches(pf)
            cf, df = (f"{pf}.{f.rsplit('.', 1)[-1]}" for f in (cf, df))
            view = view.exists(cf)
        else:
            view = self.clustered()
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

    # -- quality and comparison ------------------------------------------------

    @property
    def sweep(self):
        """The automatic choice of k (or of HDBSCAN's smallest cluster), as
        plain JSON, or ``None`` when it was given."""
        return self.results.get("sweep")

    def score(self, gt_field="ground_truth"):
        """The clusters scored against ground truth (ARI, AMI, homogeneity,
        completeness, V-measure, purity and the top class of each cluster):
        ``gt_field``'s labels, or for an object run the objects' own
        labels. ``None`` when there are none."""
        from .quality import external_quality

        if self.labels_path:
            path = f"{self.labels_path}.label"
        else:
            field = self._dataset.get_field(gt_field) if gt_field else None
            if field is None or not hasattr(field, "document_type") or \
                    "label" not in field.document_type._fields:
                return None
            path = f"{gt_field}.label"
        m = self.members(extra={"truth": path})
        return external_quality(m["cluster"], m["truth"])

    def assign(self, samples, assigner="auto", **kwargs):
        """Places ``samples`` into this run's clusters (see
        :func:`~image_clustering.assign_clusters`); returns the updated
        run."""
        from .assign import assign_clusters

        return assign_clusters(samples, self.key, assigner=assigner,
                               **kwargs)

    def compare(self, other_key):
        """This run against run ``other_key``: a
        :class:`.compare.RunComparison`."""
        from .compare import compare_runs

        return compare_runs(self._dataset, self.key, other_key)

    # -- change since the run ---------------------------------------------------

    def changes(self):
        """How the run's samples have changed since it was computed:
        ``deleted`` (clustered samples or objects that are gone), ``added``
        (samples in the run's view that it never saw nor placed) and
        ``assigned`` (samples placed into it since)."""
        from fiftyone import ViewField as F

        m = self.metrics
        cf = self.fields["cluster"]
        assigned = (self.results.get("assigned") or {}).get("count", 0)
        if self.labels_path:
            present = self.view().count(cf)
            return {"deleted": max(0, m["n_samples"] - present),
                    "added": None, "assigned": 0}
        af = self.fields.get("assigned")
        fit = self.clustered()
        if af is not None:
            fit = fit.match(F(af) != True)  # noqa: E712 (a query)
        view = self.view()
        unseen = view.match(~F(cf).exists()).count()
        return {
            "deleted": max(0, m["n_samples"] - fit.count()),
            "added": max(0, unseen - self.skipped["count"]),
            "assigned": assigned,
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
