"""Clustering runs stored as FiftyOne custom runs.

The config and results are plain JSON on FiftyOne's own ``RunConfig`` and
``RunResults`` classes, so any FiftyOne process can list, read and delete
them without this package installed.

Writing a run is atomic: per-sample values, the run and its map are first
stored under temporary names; only when all of them are written is the
previous run of the same key (if any) removed and the new one renamed into
its place. A failure before that point removes what was staged and leaves
the dataset as it was.
"""

import uuid

from ..embedders.params import ParamError

RUN_KIND = "image_clustering"

# Field suffix -> (FiftyOne field type name, description template).
FIELD_KINDS = {
    "cluster": ("IntField", "Cluster of run '{key}' (-1 = noise)"),
    "dist": (
        "FloatField",
        "Euclidean distance to the cluster centre, run '{key}'",
    ),
    "sim": (
        "FloatField",
        "Cosine similarity to the cluster centre, run '{key}'",
    ),
    "size": ("IntField", "Size of the sample's cluster, run '{key}'"),
    "prob": ("FloatField", "Cluster membership probability, run '{key}'"),
    "outlier": ("FloatField", "Outlier score (GLOSH), run '{key}'"),
}

_TMP_PREFIX = "imgclust_tmp_"


def field_names(prefix, suffixes):
    return {s: f"{prefix}_{s}" for s in suffixes}


def is_clustering_run(dataset, key):
    try:
        config = dataset.get_run_info(key).config
    except Exception:
        return False
    return getattr(config, "kind", None) == RUN_KIND


def free_run_key(dataset, base="clusters"):
    """The first of ``clusters``, ``clusters2``, ... not used by a run or a
    field."""
    key, i = base, 1
    while dataset.has_run(key) or dataset.get_field(f"{key}_cluster"):
        i += 1
        key = f"{base}{i}"
    return key


def validate_run_key(dataset, key, overwrite=False):
    """Raises unless ``key`` can name a new run (or replace one)."""
    if not isinstance(key, str) or not key.isidentifier():
        raise ParamError(
            f"run key {key!r} must be a valid Python identifier (letters, "
            "digits and underscores, not starting with a digit)"
        )
    if key.startswith("_"):
        raise ParamError(f"run key {key!r} must not start with '_'")
    if dataset.has_run(key):
        if not overwrite:
            raise ParamError(
                f"a run with key '{key}' already exists on dataset "
                f"'{dataset.name}'; pass overwrite=True to replace it"
            )
        if not is_clustering_run(dataset, key):
            raise ParamError(
                f"run '{key}' is not a clustering run; it will not be "
                "overwritten"
            )


def validate_field_names(dataset, key, names, overwrite=False):
    """Raises if a field the run would write belongs to something else."""
    replaced = set()
    if overwrite and dataset.has_run(key):
        replaced = set(_run_fields(dataset, key))
    for name in names.values():
        if dataset.get_field(name) is not None and name not in replaced:
            raise ParamError(
                f"field '{name}' already exists and does not belong to run "
                f"'{key}'; choose another run key or field_prefix"
            )


def validate_brain_key(dataset, key, brain_key, overwrite=False):
    """Raises if the run's map would replace a brain run it does not own."""
    if brain_key is None or not dataset.has_brain_run(brain_key):
        return
    if overwrite and dataset.has_run(key) and _map_key(dataset, key) == brain_key:
        return
    raise ParamError(
        f"brain run '{brain_key}' already exists and does not belong to run "
        f"'{key}'; choose another run key, or map='none'"
    )


def _map_key(dataset, key):
    config = dataset.get_run_info(key).config
    return (getattr(config, "map", None) or {}).get("brain_key")


def write_run(samples, key, config, results, columns, map_points=None):
    """Stores a finished run, replacing a run of the same key (the caller
    has checked that it may be replaced).

    Args:
        samples: the collection the run was computed on
        key: the run key
        config: plain-JSON config (``fields`` maps suffix -> field name)
        results: plain-JSON results
        columns: dict of field suffix -> dict of sample id -> value
        map_points: optional ``(ids, 2-D points, skipped ids)`` stored as the
            brain visualization run ``config["map"]["brain_key"]``
    """
    from . import app

    import fiftyone as fo

    dataset = samples._dataset
    names = config["fields"]
    # Object runs write attributes of each label: "<labels path>.<name>".
    labels_path = (config.get("patches") or {}).get("path")
    tmp = _TMP_PREFIX + uuid.uuid4().hex[:10]
    brain_key = (config.get("map") or {}).get("brain_key")
    tmp_brain_key = f"{tmp}_map"
    field_tmp = f"{labels_path}.{tmp}" if labels_path else tmp
    written = {}

    def discard(run_key, map_key):
        _delete_fields(dataset, written.values())
        if dataset.has_run(run_key):
            dataset.delete_run(run_key)
        if map_key and dataset.has_brain_run(map_key):
            dataset.delete_brain_run(map_key)

    # Stage everything under temporary names, beside the old run.
    try:
        for suffix, values in columns.items():
            ftype, template = FIELD_KINDS[suffix]
            name = f"{field_tmp}_{suffix}"
            dataset.add_sample_field(
                name,
                getattr(fo, ftype),
                description=template.format(key=key),
                info={"run_key": key, "run_kind": RUN_KIND},
            )
            written[suffix] = name
            if labels_path:
                dataset.set_label_values(name, values)
            else:
                dataset.set_values(name, values, key_field="id")
        samples.register_run(tmp, dataset.init_run(**config))
        dataset.save_run_results(tmp, samples.init_run_results(tmp, **results))
        if map_points is not None:
            app.register_map(
                samples, tmp_brain_key, *map_points,
                patches_field=(config.get("patches") or {}).get("field"),
            )
    except BaseException:
        discard(tmp, tmp_brain_key)
        raise

    # Swap: only renames are left, so the old run is replaced last.
    renamed = False
    try:
        if dataset.has_run(key):
            delete_run(dataset, key)
        dataset.rename_sample_fields({written[s]: names[s] for s in written})
        # Renamed field objects keep their old path until the schema is read
        # again, and saving one then fails.
        dataset.reload()
        written = {s: names[s] for s in written}
        dataset.rename_run(tmp, key)
        renamed = True
        if map_points is not None:
            dataset.rename_brain_run(tmp_brain_key, brain_key)
    except BaseException:
        discard(tmp, tmp_brain_key)
        if renamed:
            discard(key, brain_key)
        raise
    if not labels_path:
        app.show_run(dataset, key, names, len(results["clusters"]))


def _delete_fields(dataset, names):
    present = [n for n in names if dataset.get_field(n) is not None]
    if present:
        dataset.delete_sample_fields(present)


def _run_fields(dataset, key):
    config = dataset.get_run_info(key).config
    return list((getattr(config, "fields", None) or {}).values())


def _require_run(samples, key):
    dataset = samples._dataset
    if not dataset.has_run(key) or not is_clustering_run(dataset, key):
        available = ", ".join(list_runs(samples)) or "none"
        raise ValueError(
            f"no clustering run '{key}' on dataset '{dataset.name}' "
            f"(clustering runs: {available})"
        )
    return dataset


def list_runs(samples, method=None):
    """The keys of the clustering runs on ``samples``' dataset."""
    kwargs = {"kind": RUN_KIND}
    if method is not None:
        kwargs["method"] = method
    return samples._dataset.list_runs(**kwargs)


def delete_run(samples, key):
    """Deletes run ``key`` and the fields it wrote; nothing else."""
    from . import app

    dataset = _require_run(samples, key)
    config = dataset.get_run_info(key).config
    fields = dict(config.fields)
    brain_key = _map_key(dataset, key)
    dataset.delete_run(key)
    _delete_fields(dataset, fields.values())
    if brain_key and dataset.has_brain_run(brain_key):
        dataset.delete_brain_run(brain_key)
    app.hide_run(dataset, key, fields)


def rename_run(samples, key, new_key):
    """Renames run ``key`` to ``new_key``. Fields and the map named after the
    key (the default) are renamed with it."""
    from . import app

    dataset = _require_run(samples, key)
    validate_run_key(dataset, new_key)
    config = dataset.get_run_info(key).config
    fields = dict(config.fields)
    labels_path = (getattr(config, "patches", None) or {}).get("path")

    def default_name(k, suffix):
        name = f"{k}_{suffix}"
        return f"{labels_path}.{name}" if labels_path else name

    renames = {
        name: default_name(new_key, suffix)
        for suffix, name in fields.items()
        if name == default_name(key, suffix)
    }
    new_fields = {s: renames.get(n, n) for s, n in fields.items()}
    validate_field_names(
        dataset, new_key, {s: renames[n] for s, n in fields.items() if n in renames}
    )
    brain_key = _map_key(dataset, key)
    new_brain_key = brain_key
    if brain_key == f"{key}_map":
        new_brain_key = f"{new_key}_map"
        validate_brain_key(dataset, new_key, new_brain_key)

    app.hide_run(dataset, key, fields)
    dataset.rename_run(key, new_key)
    for suffix, name in fields.items():
        field = dataset.get_field(name)
        if field is not None:
            field.info = {**(field.info or {}), "run_key": new_key}
            field.description = FIELD_KINDS[suffix][1].format(key=new_key)
            field.save()
    if renames:
        dataset.rename_sample_fields(renames)
        dataset.reload()
    if brain_key != new_brain_key and dataset.has_brain_run(brain_key):
        dataset.rename_brain_run(brain_key, new_brain_key)
        config.map = {**config.map, "brain_key": new_brain_key}
    config.fields = new_fields
    dataset.update_run_config(new_key, config)
    if not labels_path:
        n_clusters = len(ClusterRun(dataset, new_key).clusters)
        app.show_run(dataset, new_key, new_fields, n_clusters)


class ClusterRun:
    """A stored clustering run.

    Attributes:
        key: the run key
        timestamp: when the run was started (UTC)
        config: the run's config as a dict
        results: the run's results as a dict
    """

    def __init__(self, samples, key):
        dataset = _require_run(samples, key)
        info = dataset.get_run_info(key)
        self._dataset = dataset
        self.key = key
        self.timestamp = info.timestamp
        self.config = _config_dict(info.config)
        stored = dataset.load_run_results(key, cache=False, load_view=False)
        self.results = {
            k: v for k, v in vars(stored).items() if not k.startswith("_")
        }

    @property
    def fields(self):
        """Suffix -> field name of each field the run wrote."""
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

    def view(self):
        """The samples the run was computed on."""
        return self._dataset.load_run_view(self.key)

    @property
    def patches_field(self):
        """The label field whose objects were clustered, or ``None``."""
        return (self.config.get("patches") or {}).get("field")

    def members(self):
        """Flat lists over everything the run clustered (samples, or objects
        of an object run): ``id``, ``filepath``, ``cluster``, ``dist``; the
        last two are ``None`` for what could not be embedded."""
        cf, df = self.fields["cluster"], self.fields["dist"]
        labels_path = (self.config.get("patches") or {}).get("path")
        if not labels_path:
            ids, paths, clusters, dists = self.view().values(
                ["id", "filepath", cf, df]
            )
            return {"id": ids, "filepath": paths, "cluster": clusters,
                    "dist": dists}
        single = labels_path == self.patches_field
        cols = self.view().values(
            ["filepath", f"{labels_path}.id", cf, df]
        )
        out = {"id": [], "filepath": [], "cluster": [], "dist": []}
        for path, ids, clusters, dists in zip(*cols):
            if single:
                ids, clusters, dists = [ids], [clusters], [dists]
            for label_id, c, d in zip(ids or [], clusters or [], dists or []):
                if label_id is None:
                    continue
                out["id"].append(label_id)
                out["filepath"].append(path)
                out["cluster"].append(c)
                out["dist"].append(d)
        return out

    def clusters_view(self, cluster=None, include_noise=True):
        """The run's samples grouped by cluster (dynamic groups), largest
        cluster first, each group ordered by distance to its centre; or,
        with ``cluster``, that one cluster's samples in that order. For an object run, the same over
        the patches (one per object)."""
        from fiftyone import ViewField as F

        cf, df, sf = (
            self.fields["cluster"], self.fields["dist"], self.fields["size"]
        )
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
        # Sorting after grouping orders the groups (largest first, noise by
        # its count) and keeps each group's own order by distance.
        return view.group_by(cf, order_by=df).sort_by(
            [(sf, -1), (cf, 1)]
        )

    def __repr__(self):
        m = self.metrics
        return (
            f"<ClusterRun '{self.key}': {self.config.get('method')} "
            f"{m['n_clusters']} clusters, "
            f"{m['fraction_clustered']:.1%} clustered>"
        )


def _config_dict(config):
    d = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    d["method"] = config.method
    return d


def load_run(samples, key):
    """Returns the :class:`ClusterRun` stored under ``key``."""
    return ClusterRun(samples, key)


def get_run_info(samples, key):
    """The run's key, timestamp, config and results as plain JSON."""
    run = ClusterRun(samples, key)
    return {
        "key": run.key,
        "timestamp": run.timestamp.isoformat() if run.timestamp else None,
        "config": run.config,
        "results": run.results,
    }
