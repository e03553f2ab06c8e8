"""Tagging whole clusters in one action."""

from ..storage.runs import tag_rows
from ..units import ParamError


def clean_tags(tags):
    """``tags`` as a list of non-empty strings (a single string is one
    tag); raises if none is left."""
    if isinstance(tags, str):
        tags = [tags]
    tags = [t.strip() for t in tags or [] if isinstance(t, str) and t.strip()]
    if not tags:
        raise ParamError("tags: give at least one tag", "tags")
    return tags


def clusters_of(run, ids):
    """The clusters of ``run`` that the samples (or objects) ``ids`` belong
    to."""
    m = run.members()
    wanted = set(ids)
    found = {c for i, s, c in zip(m["id"], m["sample_id"], m["cluster"])
             if (i in wanted or s in wanted) and c is not None}
    return sorted(found)


def tag_clusters(run, clusters, tags, remove=False):
    """Adds (or with ``remove``, removes) ``tags`` on every sample of the
    clusters ``clusters`` of ``run``, or on every object of an object run.
    Returns how many samples (or objects) were tagged."""
    tags = clean_tags(tags)
    view = run.cluster_view(run.check_clusters(clusters))
    return tag_rows(run, view, tags, remove=remove)
