"""Naming the clusters of a run.

For each cluster a few images stand for it: those nearest its centre, and
as many again spread across it (farthest-point sampling on the run's 2-D
map; without a map, spread along the distance to the centre). A namer
turns them into a name and a description. Names are stored per cluster in
the run's results and as the ``label`` field of every member; cluster ids
never change.

A cluster whose images, namer and settings are the same as when it was
last named is not sent again. One cluster's failure is reported, and the
names already obtained are kept.
"""

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..embedders.images import file_identity
from ..storage import schema
from ..storage.transaction import Column
from ..support import Reporter
from ..units import Param, ParamError
from .namers import get_namer

logger = logging.getLogger(__name__)

PER_CLUSTER = Param("per_cluster", "int", 8,
                    "Images sent per cluster: half nearest the centre, half "
                    "spread across it", min=1, max=32)
MAX_REQUESTS = Param("max_requests", "int", 200,
                     "Refuse to send more requests than this in one call",
                     min=1)
MAX_IMAGES = Param("max_images", "int", 2000,
                   "Refuse to send more images than this in one call", min=1)
INCLUDE_NOISE = Param("include_noise", "bool", False,
                      "Name the noise too")
FORCE = Param("force", "bool", False,
              "Ask again for clusters already named, even when their images "
              "have not changed")
LABEL_PARAMS = (PER_CLUSTER, MAX_REQUESTS, MAX_IMAGES, INCLUDE_NOISE, FORCE)


def choose_images(run, per_cluster, clusters):
    """``{cluster: [(id, filepath), ...]}``: per cluster, the members nearest
    its centre and as many spread across it."""
    extra = {"map": run.fields["map"]} if "map" in run.fields else {}
    m = run.members(extra=extra)
    by_cluster = {}
    for i, c in enumerate(m["cluster"]):
        if c is not None and c in clusters:
            by_cluster.setdefault(c, []).append(i)
    near = (per_cluster + 1) // 2
    out = {}
    for c, rows in by_cluster.items():
        dists = np.array([m["dist"][i] if m["dist"][i] is not None else 0.0
                          for i in rows])
        order = [rows[j] for j in np.argsort(dists, kind="stable")]
        chosen = order[:near]
        rest = order[near:]
        chosen += _spread(rest, chosen, per_cluster - len(chosen), m)
        out[c] = [(m["id"][i], m["filepath"][i]) for i in chosen]
    return out


def _spread(candidates, chosen, k, m):
    """``k`` of ``candidates`` far from each other and from ``chosen``:
    farthest-point sampling on the map, or even steps along the distance
    to the centre without one."""
    if k <= 0 or not candidates:
        return []
    points = m.get("map")
    if points is None or any(points[i] is None for i in candidates + chosen):
        steps = np.linspace(0, len(candidates) - 1, min(k, len(candidates)))
        return [candidates[int(round(s))] for s in steps]
    return [candidates[i] for i in farthest_points(
        np.asarray([points[i] for i in candidates], float),
        np.asarray([points[i] for i in chosen], float).reshape(-1, 2), k)]


def farthest_points(xy, seeds, k):
    """Indices of ``k`` rows of ``xy`` chosen one by one, each the farthest
    from the ``seeds`` and those chosen before it (the first row starts
    when there are no seeds)."""
    if len(seeds):
        nearest = np.min(np.linalg.norm(
            xy[:, None, :] - seeds[None, :, :], axis=2), axis=1)
    else:
        nearest = np.linalg.norm(xy - xy[0], axis=1)
    picked = []
    for _ in range(min(k, len(xy))):
        far = int(np.argmax(nearest))
        picked.append(far)
        nearest = np.minimum(nearest, np.linalg.norm(xy - xy[far], axis=1))
        nearest[picked] = -1.0
    return picked


def _cache_key(namer, images):
    basis = {"namer": namer.fingerprint(),
             "images": [(i, file_identity(p)) for i, p in images]}
    return hashlib.sha1(json.dumps(basis, sort_keys=True,
                                   default=str).encode()).hexdigest()[:20]


def plan_labelling(run, namer, per_cluster=8, clusters=None,
                   include_noise=False, force=False):
    """Which clusters would be sent and with which images; what is cached.
    Returns ``(todo, cached, images)`` where ``todo`` maps cluster ->
    cache key and ``images`` maps cluster -> its images."""
    wanted = set(run.check_clusters(clusters)) if clusters is not None \
        else set(run.cluster_ids())
    if include_noise and run.metrics["n_noise"]:
        wanted.add(-1)
    images = choose_images(run, per_cluster, wanted)
    names = run.results.get("names") or {}
    todo, cached = {}, []
    for c in sorted(images):
        key = _cache_key(namer, images[c])
        if not force and (names.get(str(c)) or {}).get("key") == key:
            cached.append(c)
        else:
            todo[c] = key
    return todo, cached, images


def estimate(run, namer="openai", per_cluster=8, clusters=None,
             include_noise=False, force=False, max_requests=None,
             max_images=None, **namer_params):
    """How many requests and images a labelling of ``run`` would send,
    before sending anything: ``{"requests", "images", "cached"}``."""
    namer = get_namer(namer, **namer_params)
    todo, cached, images = plan_labelling(
        run, namer, PER_CLUSTER.clean("label_clusters", per_cluster),
        clusters, INCLUDE_NOISE.clean("label_clusters", include_noise),
        FORCE.clean("label_clusters", force))
    return {"requests": len(todo),
            "images": sum(len(images[c]) for c in todo),
            "cached": len(cached)}


def check_limits(requests, images, max_requests, max_images):
    """Raises if a labelling would send more requests or images than the
    limits allow."""
    if requests > max_requests or images > max_images:
        raise ParamError(
            f"max_requests/max_images: this would send {requests} "
            f"request(s) with {images} image(s), over the limits of "
            f"{max_requests} and {max_images}; raise them or name fewer "
            "clusters",
            "max_requests" if requests > max_requests else "max_images")


def label_clusters(run, namer="openai", per_cluster=8, clusters=None,
                   include_noise=False, force=False, api_key=None,
                   max_requests=200, max_images=2000, progress=None,
                   **namer_params):
    """Names the clusters of ``run``.

    Args:
        run: a :class:`~image_clustering.ClusterRun`
        namer: ``"openai"`` (a vision LLM behind any OpenAI-compatible API)
            or ``"zero_shot"`` (CLIP/SigLIP and a vocabulary), or a
            ``{"name": ..., **params}`` dict
        per_cluster: images per cluster
        clusters: the cluster ids to name (default: all but noise)
        include_noise: name the noise too
        force: ask again for clusters already named, even when their
            images have not changed
        api_key: for ``openai``; else ``OPENAI_API_KEY`` (never stored)
        max_requests, max_images: refuse a call that would send more
        progress: ``True`` for a bar, or ``progress(fraction, message)``
        **namer_params: the namer's parameters (``model``, ``base_url``,
            ``vocabulary``, ...)

    Returns:
        ``{"named", "cached", "failed", "requests", "images", "run"}``:
        cluster ids named now, those unchanged since the last time, failures
        with their reasons, what was sent, and the updated run
    """
    report = Reporter(progress)
    per_cluster = PER_CLUSTER.clean("label_clusters", per_cluster)
    include_noise = INCLUDE_NOISE.clean("label_clusters", include_noise)
    max_requests = MAX_REQUESTS.clean("label_clusters", max_requests)
    max_images = MAX_IMAGES.clean("label_clusters", max_images)
    namer = get_namer(namer, api_key=api_key, **namer_params)
    todo, cached, images = plan_labelling(
        run, namer, per_cluster, clusters, include_noise,
        FORCE.clean("label_clusters", force))
    n_images = sum(len(images[c]) for c in todo)
    check_limits(len(todo), n_images, max_requests, max_images)
    report(0.0, f"naming {len(todo)} cluster(s): {len(todo)} request(s), "
           f"{n_images} image(s); {len(cached)} unchanged")
    names = {k: dict(v) for k, v in run.names.items()}
    got, failed = _ask(namer, run, todo, images, names, report)
    for c, answer in got.items():
        names[str(c)] = {**answer, "key": todo[c],
                         "namer": namer.fingerprint(),
                         "images": [i for i, _ in images[c]]}
    updated = run
    if got:
        report(0.9, "writing names")
        updated = _store_names(run, names)
    report(1.0, "done")
    return {"named": sorted(got), "cached": cached, "failed": failed,
            "requests": len(todo), "images": n_images, "run": updated}


def _ask(namer, run, todo, images, names, report):
    if not todo:
        return {}, {}
    namer.start()
    centres = {c["id"]: np.asarray(c["centre"]) for c in run.clusters}

    def neighbours(c):
        if c not in centres:
            return []
        near = sorted((np.linalg.norm(centres[c] - centres[o]), o)
                      for o in centres if o != c)
        return [names[str(o)]["name"] for _, o in near[:3]
                if str(o) in names]

    def one(c):
        try:
            return c, namer.name_cluster([p for _, p in images[c]],
                                         neighbours(c)), None
        except Exception as e:
            return c, None, _reason(e)

    got, failed = {}, {}
    workers = namer.params.get("concurrency", 1)
    with ThreadPoolExecutor(workers) as pool:
        for done, (c, answer, reason) in enumerate(
                pool.map(one, sorted(todo)), 1):
            if reason is None:
                got[c] = answer
            else:
                failed[c] = reason
                logger.warning("Cluster %s could not be named: %s", c,
                               reason)
            report(0.9 * done / len(todo), f"named {done} of {len(todo)}")
    return got, failed


def _reason(error):
    """A failure's reason as the user sees it; an API key never appears
    in what the SDK raises, and nothing else is added."""
    return f"{type(error).__name__}: {error}"


def _store_names(run, names, progress=None):
    """Writes ``names`` into the run's results and its members' ``label``
    field, in one transaction."""
    m = run.members()
    labels = [(names.get(str(c)) or {}).get("name") if c is not None
              else None for c in m["cluster"]]
    column = Column("label", schema.owned_path(run.config, "label"), labels)
    results = {**run.results, "names": names}
    return run.amend(m["id"], [column], results, replace=True,
                     progress=progress)


def name_cluster(run, cluster, name, description=None):
    """Names (or renames) cluster ``cluster`` of ``run`` by hand. Returns
    the updated run."""
    (cluster,) = run.check_nodes([cluster], "cluster")
    if not isinstance(name, str) or not name.strip():
        raise ParamError("name: give a non-empty name", "name")
    names = {k: dict(v) for k, v in run.names.items()}
    entry = names.get(str(cluster), {})
    names[str(cluster)] = {
        **entry, "name": name.strip(),
        "description": entry.get("description", "") if description is None
        else description, "key": None, "namer": {"namer": "by hand"}}
    return _store_names(run, names)
