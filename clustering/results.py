"""The results object of a stored clustering run, in the manner of
fiftyone-brain's results classes: what the run found, and the methods
users reach for. Every write (names, groups, tags, placing new samples)
goes through the object, so that it fails cleanly if another process has
changed the run since it was read."""

from ..algorithms.geometry import nearest_to_centre
from ..algorithms.quality import external_quality
from ..curation import export
from ..curation import groups as grouping
from ..curation import tags as tagging
from ..labeling import naming
from ..storage import schema
from ..storage.runs import StoredRun
from ..units import ParamError
from . import carry, hierarchy, misfits, presentation
from .assign import place_samples
from .compare import compare
from .summary import run_summary


class ClusterRun(StoredRun):
    """A stored clustering run.

    Attributes:
        key: the run key
        timestamp: when the run was written (UTC)
        config: the run's config as a dict (see :mod:`..storage.schema`)
        results: the run's results as a dict
        record_id: the id of the run document this object was read from
    """

    KINDS = (schema.RUN_KIND,)
    WHAT = "clustering run"

    # -- what the run holds --------------------------------------------------

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
    def sweep(self):
        """The automatic choice of k (or of HDBSCAN's smallest cluster), as
        plain JSON, or ``None`` when it was given."""
        return self.results.get("sweep")

    @property
    def names(self):
        """Cluster id (a string) -> ``{"name", "description", ...}``."""
        return self.results.get("names") or {}

    @property
    def groups(self):
        """Group name -> the cluster ids in it."""
        return self.results.get("groups") or {}

    def name_of(self, cluster):
        """The cluster's name, or ``None``."""
        return (self.names.get(str(cluster)) or {}).get("name")

    def group_of(self, cluster):
        for name, members in self.groups.items():
            if cluster in members:
                return name
        return None

    def cluster_ids(self):
        """The ids of the run's clusters (noise, −1, not included)."""
        return [c["id"] for c in self.clusters]

    def check_clusters(self, clusters, param="clusters"):
        """``clusters`` as a list of ints, each a cluster of this run (or
        −1, the noise); raises naming the first that is not."""
        known = set(self.cluster_ids()) | {-1}
        try:
            ids = [int(c) for c in clusters]
        except (TypeError, ValueError):
            raise ParamError(f"{param}: cluster ids are integers, got "
                             f"{list(clusters)!r}", param) from None
        unknown = sorted(set(ids) - known)
        if unknown:
            raise ParamError(f"{param}: run '{self.key}' has no cluster "
                             + ", ".join(map(str, unknown)), param)
        return ids

    # -- views ----------------------------------------------------------------

    def clustered_view(self):
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
            cols = self.clustered_view().values(
                ["id", "filepath", *wanted.values()])
            out = {"id": cols[0], "sample_id": cols[0], "filepath": cols[1]}
            out.update({name: cols[2 + i] for i, name in enumerate(wanted)})
            return out
        single = self.single_object
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

    def patches_path(self, suffix):
        """The path of field ``suffix`` in the run's patches view."""
        return f"{self.patches_field}." + \
            self.fields[suffix].rsplit(".", 1)[-1]

    def clusters_view(self, cluster=None, include_noise=True):
        """The run's samples grouped by cluster (dynamic groups), largest
        cluster first and noise last, each group ordered by distance to its
        centre; or, with ``cluster``, that one cluster's samples in that
        order. For an object run, the same over the patches."""
        from fiftyone import ViewField as F

        cf, df = self.fields["cluster"], self.fields["dist"]
        if self.patches_field:
            view = self.view().to_patches(self.patches_field)
            cf, df = self.patches_path("cluster"), self.patches_path("dist")
            view = view.exists(cf)
        else:
            view = self.clustered_view()
        if cluster is not None:
            return view.match(F(cf) == int(cluster)).sort_by(df)
        if not include_noise:
            view = view.match(F(cf) >= 0)
        # Sorting after grouping orders the groups: largest first (cluster
        # ids are numbered by size), noise last; each group keeps its own
        # order by distance.
        rank = (F(cf) < 0).if_else(1 << 30, F(cf))
        return view.group_by(cf, order_by=df).sort_by(rank)

    def cluster_view(self, clusters):
        """The samples (or, for an object run, the objects within their
        samples) of ``clusters``."""
        from fiftyone import ViewField as F

        clusters = self.check_clusters(clusters)
        if self.patches_field:
            name = self.fields["cluster"].rsplit(".", 1)[-1]
            return self.view().filter_labels(self.patches_field,
                                             F(name).is_in(clusters))
        return self.clustered_view().match(
            F(self.fields["cluster"]).is_in(clusters))

    def representatives(self, per_cluster=1):
        """``{cluster_id: [(id, filepath), ...]}``: the ``per_cluster``
        members nearest each centre, nearest first (noise has none)."""
        return nearest_to_centre(self.members(), per_cluster)

    # -- quality and comparison ------------------------------------------------

    def score(self, gt_field="ground_truth"):
        """The clusters scored against ground truth (ARI, AMI, homogeneity,
        completeness, V-measure, purity and the top class of each cluster):
        ``gt_field``'s labels, or for an object run the objects' own
        labels. ``None`` when there are none."""
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

    def compare(self, other_key):
        """This run against run ``other_key``: a
        :class:`.compare.RunComparison`."""
        return compare(self, type(self).load(self._dataset, other_key))

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
        fit = self.clustered_view()
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
        return {**super().info(), "changes": self.changes()}

    def summary(self):
        """The facts of the run that the command line, the info operator
        and the Clusters panel show, as plain JSON (see
        :func:`.summary.run_summary`)."""
        return run_summary(self)

    # -- writes through the run --------------------------------------------------

    def amend(self, rows, columns, results, config=None, replace=False,
              progress=None, attachments=None):
        """Writes through the run (see
        :meth:`~..storage.runs.StoredRun.amend`) and shows the result in
        the App."""
        updated = super().amend(rows, columns, results, config=config,
                                replace=replace, progress=progress,
                                attachments=attachments)
        presentation.show(updated)
        return updated

    def tag(self, clusters, tags, remove=False):
        """Adds (or with ``remove``, removes) ``tags`` on every sample (or
        object) of ``clusters``; returns how many were tagged."""
        return tagging.tag_clusters(self, clusters, tags, remove=remove)

    def group(self, groups, replace=False):
        """Puts clusters into named groups (group name -> cluster ids);
        returns the updated run."""
        return grouping.group_clusters(self, groups, replace=replace)

    def ungroup(self, names):
        """Removes the groups ``names``; returns the updated run."""
        return grouping.ungroup_clusters(self, names)

    def rename_group(self, name, new_name):
        return grouping.rename_group(self, name, new_name)

    def groups_view(self, names):
        """The samples (or patches) of the groups ``names``, grouped by
        group."""
        return grouping.groups_view(self, names)

    def name(self, cluster, name, description=None):
        """Names (or renames) one cluster by hand; returns the updated
        run."""
        return naming.name_cluster(self, cluster, name, description)

    def label(self, namer="openai", **kwargs):
        """Names the clusters with a namer (see
        :func:`..labeling.naming.label_clusters`)."""
        return naming.label_clusters(self, namer=namer, **kwargs)

    def export(self, path, **kwargs):
        """Writes a CSV of the members (and their images); see
        :func:`..curation.export.export_clusters`."""
        return export.export_clusters(self, path, **kwargs)

    # -- the hierarchy ---------------------------------------------------------

    @property
    def layers(self):
        """One entry per layer, finest first: ``{"layer", "n_clusters",
        "nodes"}`` (a flat run has one layer)."""
        return hierarchy.layers_of(self)

    @property
    def cut(self):
        """The node ids of the current cut (the clusters the fields hold)."""
        return hierarchy.cut_of(self)

    @property
    def tree(self):
        """The :class:`~..algorithms.tree.Tree` of the run's clusters."""
        return hierarchy.tree_of(self)

    def node(self, cluster):
        """A cluster's record: parent, children, layers, size, centre."""
        records = hierarchy.node_records_of(self)
        (cluster,) = self.check_nodes([cluster], "cluster")
        return records[cluster]

    def node_members(self, nodes, extra=None):
        """``(members, rows)``: :meth:`members`, and per node of ``nodes``
        (of any layer) the indices of its members and their distances to
        its centre."""
        return hierarchy.node_members(self, nodes, extra=extra)

    def check_nodes(self, clusters, param="clusters"):
        """``clusters`` as ints, each a node of the run's tree (or −1, the
        noise)."""
        tree = self.tree
        try:
            ids = [int(c) for c in clusters]
        except (TypeError, ValueError):
            raise ParamError(f"{param}: cluster ids are integers, got "
                             f"{list(clusters)!r}", param) from None
        unknown = [c for c in ids if not (0 <= c < tree.n_nodes or c == -1)]
        if unknown:
            raise ParamError(f"{param}: run '{self.key}' has no cluster "
                             f"{unknown[0]}", param)
        return ids

    def set_cut(self, layer=None, clusters=None, progress=None):
        """Moves the cut to a whole ``layer`` (0 is the finest), or to the
        given ``clusters`` (tree node ids that together hold every
        clustered sample once). One transaction; returns the updated
        run."""
        if (layer is None) == (clusters is None):
            raise ParamError("set_cut: give a layer or a list of clusters",
                             "layer")
        hierarchy.check_layered(self)
        if layer is not None:
            layers = self.layers
            if not isinstance(layer, int) or not 0 <= layer < len(layers):
                raise ParamError(f"layer: run '{self.key}' has layers 0 to "
                                 f"{len(layers) - 1}, got {layer!r}",
                                 "layer")
            clusters = layers[layer]["nodes"]
        return hierarchy.move_cut(self, self.check_nodes(clusters),
                                  progress)

    def expand(self, cluster):
        """Replaces ``cluster`` in the cut by its children."""
        hierarchy.check_layered(self)
        (cluster,) = self.check_nodes([cluster], "cluster")
        return hierarchy.move_cut(self, self.tree.expand(self.cut, cluster))

    def collapse(self, clusters):
        """Replaces ``clusters`` (siblings, or any clusters of one subtree)
        by the node above them all; other clusters under that node join
        it too."""
        hierarchy.check_layered(self)
        cut, _, _ = self.tree.collapse(self.cut, self.check_nodes(clusters))
        return hierarchy.move_cut(self, cut)

    def coarser(self):
        """The next coarser layer (or each cluster's parent)."""
        hierarchy.check_layered(self)
        return hierarchy.move_cut(self, self.tree.coarser(self.cut))

    def finer(self):
        """The next finer layer (or each cluster's children)."""
        hierarchy.check_layered(self)
        return hierarchy.move_cut(self, self.tree.finer(self.cut))

    def suggest_merges(self, n=10, per_cluster=4):
        """Pairs of clusters of the current cut that are probably one
        concept, best first: ``[{"clusters", "score", "reason",
        "evidence", "images"}]``; ``images`` maps each cluster to its
        ``per_cluster`` members nearest its centre. Rejected pairs are never
        suggested again."""
        out = hierarchy.suggest_merges(self, n=n)
        if out and per_cluster:
            reps = self.representatives(per_cluster)
            for suggestion in out:
                suggestion["images"] = {str(c): reps.get(c, [])
                                        for c in suggestion["clusters"]}
        return out

    def accept_merge(self, clusters, name=None):
        """Merges ``clusters`` of the cut: siblings that are all of their
        parent's children collapse into it; any other set becomes a group
        (``name``, else their names joined). Returns the updated run."""
        clusters = self.check_clusters(clusters)
        how, _ = hierarchy.merge_plan(self, clusters)
        if how == "collapse" and self.results.get("hierarchy"):
            return self.collapse(clusters)
        return self.group({name or hierarchy.merge_name(self, clusters):
                           clusters})

    def reject_merge(self, clusters):
        """Remembers that ``clusters`` are not one concept: the pair is never
        suggested again for this run. Returns the updated run."""
        clusters = self.check_clusters(clusters)
        if len(clusters) != 2:
            raise ParamError("clusters: a merge joins two clusters",
                             "clusters")
        pairs = [sorted(p) for p in hierarchy.rejected_pairs(self)]
        if sorted(clusters) not in pairs:
            pairs.append(sorted(clusters))
        results = {**self.results, "rejected_merges": sorted(pairs)}
        return self.amend([], [], results)

    def carry_from(self, other_key, progress=None):
        """Carries the names, groups and rejected merges of run
        ``other_key`` onto this run's clusters by member overlap (see
        :mod:`.carry`); returns ``(updated run, report)``: the report lists
        what was carried, split, merged and dropped."""
        other = type(self).load(self._dataset, other_key)
        return carry.carry_over(other, self, progress=progress)

    def cluster_misfits(self, n_clusters=None, embedder=None,
                        progress=None):
        """Clusters the placed samples that fit no cluster into new
        clusters of this run (new roots of its tree, in every layer).
        Returns ``(updated run, new cluster ids)``."""
        return misfits.cluster_misfits(self, n_clusters=n_clusters,
                                       embedder=embedder, progress=progress)

    def assign(self, samples, assigner="auto", **kwargs):
        """Places ``samples`` the run has not seen into its clusters (see
        :func:`.assign.assign_clusters`); returns the updated run."""
        return place_samples(self, samples, assigner=assigner, **kwargs)

    def __repr__(self):
        m = self.metrics
        return (
            f"<ClusterRun '{self.key}': {self.config.get('method')} "
            f"{m['n_clusters']} clusters, "
            f"{m['fraction_clustered'] or 0:.1%} clustered>"
        )
