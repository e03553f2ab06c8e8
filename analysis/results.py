"""Stored duplicates and uniqueness runs as objects with the methods users
reach for, in the manner of FiftyOne Brain's ``SimilarityIndex``: views,
groups, tagging, deleting and split leaks."""

from collections import defaultdict

from ..storage import runs
from ..storage import schema as record
from ..storage.runs import StoredRun
from ..storage.sample_io import iter_rows
from ..units import ParamError

ANALYSIS_KINDS = (record.DUPLICATES_KIND, record.UNIQUENESS_KIND)


class AnalysisRun(StoredRun):
    """A stored run of one of the analysis kinds."""

    KINDS = ANALYSIS_KINDS
    WHAT = "uniqueness or duplicates run"


class DuplicatesResults(AnalysisRun):
    """Groups of duplicates found by
    :func:`~image_clustering.find_near_duplicates` or
    :func:`~image_clustering.find_exact_duplicates`."""

    KINDS = (record.DUPLICATES_KIND,)
    WHAT = "duplicates run"

    @property
    def method(self):
        return self.config["method"]

    def summary(self):
        r = self.results
        return {**super().summary(), "method": self.method,
                "threshold": self.threshold, "samples": r["samples"],
                "groups": r["groups"], "duplicates": r["duplicates"],
                "headline": (f"{r['duplicates']:,} duplicate(s) in "
                             f"{r['groups']:,} group(s) among "
                             f"{r['samples']:,} samples")}

    @property
    def threshold(self):
        return self.config["params"].get("threshold")

    def groups(self):
        """Group -> ids in it (samples, or objects), the representative
        first, then by distance to it."""
        rows = defaultdict(list)
        for _id, group, dist, rep in self._members():
            rows[group].append((not rep, dist, _id))
        return {g: [m[2] for m in sorted(members)]
                for g, members in sorted(rows.items())}

    def _members(self):
        """``(id, group, dist, is representative)`` of every grouped row."""
        f = self.fields
        if self.labels_path:
            view = self._objects_view()
            path = self.labels_path
            ids, groups, dists, reps = view.values(
                [f"{path}.id", f["group"], f["dist"], f["rep"]],
                unwind=True)
            return [m for m in zip(ids, groups, dists, reps)
                    if m[1] is not None]
        out = []
        view = self.dataset.exists(f["group"])
        for ids, values in iter_rows(view, [f["group"], f["dist"],
                                           f["rep"]]):
            out.extend(zip(ids, values[f["group"]], values[f["dist"]],
                           values[f["rep"]]))
        return out

    def _objects_view(self):
        from fiftyone import ViewField as F

        return self.dataset.filter_labels(
            self.patches_field, F(self.fields["group"].rsplit(".", 1)[-1])
            != None)  # noqa: E711 (a MongoDB comparison, not Python's)

    def view(self):
        """The duplicates as dynamic groups (one per duplicate group, the
        representative first); for objects, a patches view grouped so."""
        f = self.fields
        if self.labels_path:
            patches = self._objects_view().to_patches(self.patches_field)
            name = f["group"].rsplit(".", 1)[-1]
            dist = f["dist"].rsplit(".", 1)[-1]
            return patches.group_by(f"{self.patches_field}.{name}",
                                    order_by=f"{self.patches_field}.{dist}")
        return self.dataset.exists(f["group"]).group_by(
            f["group"], order_by=f["dist"])

    def duplicates_view(self):
        """Every grouped sample but the representatives: what tagging or
        deleting would act on."""
        return self._flat(False)

    def representatives_view(self):
        return self._flat(True)

    def _flat(self, reps):
        from fiftyone import ViewField as F

        f = self.fields
        if self.labels_path:
            name = f["rep"].rsplit(".", 1)[-1]
            return self.dataset.filter_labels(
                self.patches_field, F(name) == reps)
        return self.dataset.match(F(f["rep"]) == reps).sort_by(f["group"])

    def counts(self):
        """``{groups, in_groups, duplicates}`` as the dataset holds them
        now (after any deletion)."""
        members = self._members()
        groups = {m[1] for m in members}
        dups = sum(1 for m in members if not m[3])
        return {"groups": len(groups), "in_groups": len(members),
                "duplicates": dups}

    def _duplicate_ids(self):
        return [m[0] for m in self._members() if not m[3]]

    def tag_duplicates(self, tag="duplicate"):
        """Tags every duplicate but the representatives (objects: their
        labels). Returns how many were tagged."""
        ids = self._duplicate_ids()
        if not ids:
            return 0
        view = self.dataset.select_labels(ids=ids) if self.labels_path \
            else self.dataset.select(ids)
        return runs.tag_rows(self, view, [tag])

    def delete_duplicates(self, confirm):
        """Deletes every duplicate but the representatives from the dataset
        (objects: their labels); files on disk are never touched.
        ``confirm`` must be the number that will be deleted, as
        :meth:`counts` says, so that nothing is deleted by surprise.
        Returns the number deleted."""
        return runs.delete_rows(self, self._duplicate_ids, confirm)

    def leaks(self, split_field=None, splits=None):
        """The duplicate groups whose members fall in more than one split.
        Splits are the values of ``split_field`` (a string field, or a
        Classification), or the sample tags in ``splits`` (e.g.
        ``["train", "test"]``)."""
        return Leaks(self, split_field, splits)


class Leaks:
    """Duplicate groups that cross splits.

    Attributes:
        groups: group -> {split: [ids]} for each leaking group
        pairs: ``"a/b"`` -> the number of leaking groups with members in
            both split a and split b
    """

    def __init__(self, run, split_field=None, splits=None):
        if (split_field is None) == (splits is None):
            raise ParamError("leaks: give either split_field or splits "
                             "(a list of sample tags)", "splits")
        if run.labels_path:
            raise ParamError("leaks: splits are per sample; use a run on "
                             "whole images", "run_key")
        self.run = run
        split_of, path = _split_reader(run.dataset, split_field, splits)
        by_group = defaultdict(lambda: defaultdict(list))
        view = run.dataset.exists(run.fields["group"])
        read = ["tags"] if path is None else [path]
        for ids, values in iter_rows(view, [run.fields["group"], *read]):
            for i, sid in enumerate(ids):
                for split in split_of(values, i):
                    by_group[values[run.fields["group"]][i]][split].append(
                        sid)
        self.groups = {g: dict(s) for g, s in sorted(by_group.items())
                       if len(s) > 1}
        self.pairs = defaultdict(int)
        for members in self.groups.values():
            names = sorted(members)
            for a in range(len(names)):
                for b in range(a + 1, len(names)):
                    self.pairs[f"{names[a]}/{names[b]}"] += 1
        self.pairs = dict(self.pairs)

    def __len__(self):
        return len(self.groups)

    def ids(self, split=None):
        """Ids of the leaking samples (of one ``split``, or all)."""
        return [sid for members in self.groups.values()
                for name, ids in members.items()
                if split is None or name == split for sid in ids]

    def view(self):
        """The leaking groups as dynamic groups."""
        f = self.run.fields
        return self.run.dataset.select(self.ids()).group_by(
            f["group"], order_by=f["dist"])

    def report(self):
        return {"leaking_groups": len(self.groups),
                "leaking_samples": len(self.ids()), "pairs": self.pairs}


def _split_reader(dataset, split_field, splits):
    """``(read, path)``: ``read(values, i)`` gives the splits of row ``i``
    of a chunk of ``path`` (``None``: the tags)."""
    if splits is not None:
        wanted = [str(s) for s in splits]
        if len(wanted) < 2:
            raise ParamError("splits: give at least two tags")

        def read(values, i):
            return [t for t in (values["tags"][i] or []) if t in wanted]
        return read, None
    field = dataset.get_field(split_field)
    if field is None:
        raise ParamError(f"split_field '{split_field}' is not a field of "
                         f"dataset '{dataset.name}'")
    path = split_field
    if getattr(field, "document_type", None) is not None:
        path = f"{split_field}.label"

    def read(values, i):
        value = values[path][i]
        return [] if value is None else [str(value)]
    return read, path


class UniquenessResults(AnalysisRun):
    """Scores stored by :func:`~image_clustering.compute_uniqueness`."""

    KINDS = (record.UNIQUENESS_KIND,)
    WHAT = "uniqueness run"

    def summary(self):
        return {**super().summary(), "samples": self.results["samples"],
                "field": self.field,
                "headline": f"{self.results['samples']:,} samples scored "
                            f"in '{self.field}'"}

    @property
    def field(self):
        return self.fields["score"]

    def most_unique(self, limit=None):
        """The samples from the most unique down."""
        view = self.dataset.exists(self.field).sort_by(self.field,
                                                       reverse=True)
        return view.limit(limit) if limit else view

    def least_unique(self, limit=None):
        view = self.dataset.exists(self.field).sort_by(self.field)
        return view.limit(limit) if limit else view


def load_duplicates(samples, key):
    """The :class:`DuplicatesResults` of run ``key``."""
    return DuplicatesResults.load(samples, key)


def load_uniqueness(samples, key):
    """The :class:`UniquenessResults` of run ``key``."""
    return UniquenessResults.load(samples, key)


def list_analyses(samples, kind=None):
    """Key -> ``"duplicates"`` or ``"uniqueness"`` for each analysis run on
    ``samples``' dataset (of one ``kind`` only, if given)."""
    names = {record.DUPLICATES_KIND: "duplicates",
             record.UNIQUENESS_KIND: "uniqueness"}
    runs.finish_abandoned_write(samples._dataset)
    found = runs.records_of(samples._dataset, ANALYSIS_KINDS)
    return {k: names[c["kind"]] for k, (_, c) in sorted(found.items())
            if kind is None or names[c["kind"]] == kind}


def delete_analysis(samples, key):
    """Deletes duplicates or uniqueness run ``key`` and its fields."""
    runs.delete_run(samples._dataset, key, ANALYSIS_KINDS)
