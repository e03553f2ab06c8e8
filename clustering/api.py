"""Clustering runs as users reach them: list, load, rename, delete and
repair, each followed by what the App shows of the runs; and the SDK's
module functions, each a thin wrapper around a method of the run object."""

from ..labeling.naming import estimate
from ..storage import runs as stored
from ..storage import schema
from ..storage.transaction import locked, on_rolled_forward
from . import charts, presentation
from .results import ClusterRun

RunNotFound = stored.RunNotFound


def list_runs(samples, method=None):
    """The keys of the clustering runs on ``samples``' dataset, sorted."""
    dataset = samples._dataset
    keys = ClusterRun.keys(dataset)
    if method is None:
        return keys
    records = stored.records_of(dataset, ClusterRun.KINDS)
    return [k for k in keys if records[k][1].get("method") == method]


def load_run(samples, key):
    """Returns the :class:`.results.ClusterRun` stored under ``key``."""
    return ClusterRun.load(samples, key)


def get_run_info(samples, key):
    """The run's key, timestamp, config, results and the changes to its
    samples since, as plain JSON."""
    return load_run(samples, key).info()


def free_run_key(dataset, base="clusters"):
    """The first of ``clusters``, ``clusters2``, ... not used by a run or a
    field."""
    return stored.free_run_key(dataset, base)


def store_run(plan, config, results, emb, columns, attachments,
              progress=None):
    """Stores a computed run (:mod:`.pipeline`) and shows it in the App;
    returns the :class:`.results.ClusterRun`."""
    dataset = plan.samples._dataset
    replaced = stored.write_run(
        plan.samples, plan.key, config, results, emb.ids, columns,
        plan.expect, owners=emb.owners, progress=progress,
        attachments=attachments,
        check=lambda d: presentation.check_brain_key(
            d, plan.key, schema.brain_key_of(config)))
    run = load_run(dataset, plan.key)
    if replaced:
        charts.remove_charts(dataset, plan.key)
    if progress is not None:
        progress("writing: showing the run in the App")
    presentation.show(run, replaced)
    return run


def rename_run(samples, key, new_key):
    """Renames run ``key`` to ``new_key``. Fields and the map named after the
    key (the default) are renamed with it."""
    def rename_map(config, dataset):
        brain_key = schema.brain_key_of(config)
        if brain_key == schema.map_key(key):
            presentation.check_brain_key(dataset, new_key,
                                         schema.map_key(new_key))
            config["map"] = {**config["map"],
                             "brain_key": schema.map_key(new_key)}
        return config

    dataset = samples._dataset
    old, _ = stored.rename_run(dataset, key, new_key, ClusterRun.KINDS,
                               edit_config=rename_map)
    _hide(dataset, key, old)
    charts.remove_charts(dataset, key)  # their titles name the key
    presentation.show(load_run(dataset, new_key))


def delete_run(samples, key):
    """Deletes run ``key``, the fields it wrote and its map; nothing
    else."""
    dataset = samples._dataset
    config = stored.delete_run(dataset, key, ClusterRun.KINDS)
    _hide(dataset, key, config)
    charts.remove_charts(dataset, key)


def _hide(dataset, key, config):
    with locked(dataset, f"hiding run '{key}'") as lease:
        presentation.hide(lease.dataset, key, config)


@on_rolled_forward
def _show_finished_write(dataset, key, kind):
    """A write that a stopped process left committed, finished by this one:
    the App shows the run as if its writer had lived (its map and sidebar
    group), and forgets what it showed of a run the write removed."""
    if kind in ClusterRun.KINDS:
        presentation.show(load_run(dataset, key))
    elif kind is None:
        runs = {k: load_run(dataset, k) for k in list_runs(dataset)}
        with locked(dataset, f"hiding run '{key}'") as lease:
            presentation.repair(lease.dataset, runs)


def repair(samples):
    """Removes the leftovers of killed runs on ``samples``' dataset and
    brings the App's view of its runs up to date. Returns a list of
    sentences saying what was done (empty when there was nothing)."""
    def present_runs(dataset):
        runs = {}
        for key in stored.records_of(dataset, ClusterRun.KINDS):
            try:
                runs[key] = load_run(dataset, key)
            except RunNotFound:
                continue
        return presentation.repair(dataset, runs) + \
            charts.remove_orphan_charts(dataset, set(runs))

    return stored.repair(samples, after=present_runs)


def load_clusters_view(samples, run_key, cluster=None, include_noise=True):
    """The samples of run ``run_key`` grouped by cluster, each group ordered
    by distance to its centre; or one ``cluster`` in that order."""
    return load_run(samples, run_key).clusters_view(
        cluster=cluster, include_noise=include_noise)


# -- the SDK's verbs on a run: thin wrappers of the run's methods -------------


def assign_clusters(samples, run_key, assigner="auto", embedder=None,
                    num_workers=None, batch_size=None, progress=None):
    """Places the samples of ``samples`` that run ``run_key`` did not
    cluster into its clusters (see :mod:`.assign`); returns the updated
    run."""
    return load_run(samples, run_key).assign(
        samples, assigner=assigner, embedder=embedder,
        num_workers=num_workers, batch_size=batch_size, progress=progress)


def compare_runs(samples, key_a, key_b):
    """Compares runs ``key_a`` and ``key_b`` on what both clustered: a
    :class:`.compare.RunComparison`."""
    return load_run(samples, key_a).compare(key_b)


def carry_over(samples, from_key, to_key):
    """Carries the names, groups and rejected merges of run ``from_key``
    onto the clusters of run ``to_key`` by member overlap; returns the
    report (``carried``, ``split``, ``merged``, ``dropped`` and ``lines``,
    one sentence per cluster)."""
    _, report = load_run(samples, to_key).carry_from(from_key)
    return report


def tag_clusters(samples, run_key, clusters, tags, remove=False):
    """Tags (or untags) every sample of ``clusters``; returns how many."""
    return load_run(samples, run_key).tag(clusters, tags, remove=remove)


def group_clusters(samples, run_key, groups, replace=False):
    """Puts clusters into named groups (group name -> cluster ids)."""
    return load_run(samples, run_key).group(groups, replace=replace)


def ungroup_clusters(samples, run_key, names):
    """Removes the groups ``names``."""
    return load_run(samples, run_key).ungroup(names)


def name_cluster(samples, run_key, cluster, name, description=None):
    """Names (or renames) one cluster by hand."""
    return load_run(samples, run_key).name(cluster, name, description)


def label_clusters(samples, run_key, namer="openai", **kwargs):
    """Names the clusters with a vision LLM or zero-shot CLIP (see
    :func:`..labeling.naming.label_clusters`)."""
    return load_run(samples, run_key).label(namer=namer, **kwargs)


def estimate_labelling(samples, run_key, namer="openai", **kwargs):
    """How many requests and images :func:`label_clusters` would send."""
    return estimate(load_run(samples, run_key), namer=namer, **kwargs)


def export_clusters(samples, run_key, path, **kwargs):
    """Writes a CSV of the members (and their images); see
    :func:`..curation.export.export_clusters`."""
    return load_run(samples, run_key).export(path, **kwargs)
