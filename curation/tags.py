"""Tagging whole clusters in one action."""

from ..clustering import runs
from ..units import ParamError


def _cluster_ids(run, clusters):
    known = {c["id"] for c in run.clusters} | {-1}
    clusters = [int(c) for c in clusters]
    unknown = sorted(set(clusters) - known)
    if unknown:
        raise ParamError(f"clusters: run '{run.key}' has no cluster "
                         + ", ".join(map(str, unknown)))
    return clusters


def clusters_view(run, clusters):
    """The samples (or, for an object run, the patches) of ``clusters``."""
    from fiftyone import ViewField as F

    cf = run.fields["cluster"]
    if run.patches_field:
        pf = run.patches_field
        name = cf.rsplit(".", 1)[-1]
        return run.view().filter_labels(pf, F(name).is_in(clusters))
    return run.clustered().match(F(cf).is_in(clusters))


def clusters_of(samples, run_key, ids):
    """The clusters of run ``run_key`` that the samples (or objects)
    ``ids`` belong to."""
    run = runs.load_run(samples, run_key)
    m = run.members()
    wanted = set(ids)
    found = {c for i, s, c in zip(m["id"], m["sample_id"], m["cluster"])
             if (i in wanted or s in wanted) and c is not None}
    return sorted(found)


def tag_clusters(samples, run_key, clusters, tags, remove=False):
    """Adds (or with ``remove``, removes) ``tags`` on every sample of the
    clusters ``clusters`` of run ``run_key``, or on every object of an
    object run. Returns how many samples (or objects) were tagged."""
    if isinstance(tags, str):
        tags = [tags]
    tags = [t.strip() for t in tags if isinstance(t, str) and t.strip()]
    if not tags:
        raise ParamError("tags: give at least one tag")
    run = runs.load_run(samples, run_key)
    view = clusters_view(run, _cluster_ids(run, clusters))
    if run.patches_field:
        count = view.count(f"{run.labels_path}.id")
        if remove:
            view.untag_labels(tags, label_fields=run.patches_field)
        else:
            view.tag_labels(tags, label_fields=run.patches_field)
        return count
    count = len(view)
    if remove:
        view.untag_samples(tags)
    else:
        view.tag_samples(tags)
    return count
