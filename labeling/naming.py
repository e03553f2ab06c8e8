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
import re
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
LAYER = Param("layer", "int", None,
              "Name the clusters of this layer (0 is the finest; default: "
              "the current cut)", min=0)
TELL_APART = Param("tell_apart", "bool", True,
                   "Ask again, in one request, for sibling clusters whose "
                   "names came back nearly the same, to tell them apart")
LABEL_PARAMS = (PER_CLUSTER, MAX_REQUESTS, MAX_IMAGES, INCLUDE_NOISE, FORCE,
                LAYER, TELL_APART)
# Siblings told apart in one request: at most this many, with this many
# images each.
TELL_APART_CLUSTERS = 6
TELL_APART_IMAGES = 4
# Words that say nothing about what a group holds, left out when names are
# compared.
FILLER = {"a", "an", "the", "of", "and", "with", "image", "images", "photo",
          "photos", "picture", "pictures", "group"}


def choose_images(run, per_cluster, clusters):
    """``{cluster: [(id, filepath), ...]}``: per cluster (a node of any
    layer), the members nearest its centre and as many spread across
    it."""
    extra = {"map": run.fields["map"]} if "map" in run.fields else {}
    m, rows_of = run.node_members(sorted(clusters), extra=extra)
    near = (per_cluster + 1) // 2
    out = {}
    for c, (rows, dists) in rows_of.items():
        if not rows:
            continue
        dists = np.array([d if d is not None and d == d else 0.0
                          for d in dists])
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


def _cache_key(namer, images, children=()):
    basis = {"namer": namer.fingerprint(),
             "images": [(i, file_identity(p)) for i, p in images]}
    if children:
        basis["children"] = sorted(children)
    return hashlib.sha1(json.dumps(basis, sort_keys=True,
                                   default=str).encode()).hexdigest()[:20]


def wanted_clusters(run, clusters=None, layer=None, include_noise=False):
    """The clusters a labelling names: ``clusters`` (nodes of any layer),
    else the nodes of ``layer``, else the current cut; and the noise when
    asked."""
    if clusters is not None and layer is not None:
        raise ParamError("layer: give clusters or a layer, not both",
                         "layer")
    if clusters is not None:
        wanted = set(run.check_nodes(clusters))
    elif layer is not None:
        layers = run.layers
        if not isinstance(layer, int) or isinstance(layer, bool) or \
                not 0 <= layer < len(layers):
            raise ParamError(f"layer: run '{run.key}' has layers 0 to "
                             f"{len(layers) - 1}, got {layer!r}", "layer")
        wanted = set(layers[layer]["nodes"])
    else:
        wanted = set(run.cluster_ids())
    if include_noise and run.metrics["n_noise"]:
        wanted.add(-1)
    return wanted


def children_names(run, names, cluster):
    """The names of ``cluster``'s children that have one."""
    if cluster < 0:
        return []
    return [names[str(c)]["name"] for c in run.tree.children(cluster)
            if str(c) in names]


def plan_labelling(run, namer, per_cluster=8, clusters=None,
                   include_noise=False, force=False, layer=None):
    """Which clusters would be sent and with which images; what is cached.
    Returns ``(todo, cached, images)`` where ``todo`` maps cluster ->
    cache key and ``images`` maps cluster -> its images."""
    wanted = wanted_clusters(run, clusters, layer, include_noise)
    images = choose_images(run, per_cluster, wanted)
    names = run.results.get("names") or {}
    todo, cached = {}, []
    for c in sorted(images):
        key = _cache_key(namer, images[c], children_names(run, names, c))
        if not force and (names.get(str(c)) or {}).get("key") == key:
            cached.append(c)
        else:
            todo[c] = key
    return todo, cached, images


def estimate(run, namer="openai", per_cluster=8, clusters=None,
             include_noise=False, force=False, max_requests=None,
             max_images=None, layer=None, tell_apart=True, **namer_params):
    """How many requests and images a labelling of ``run`` would send,
    before sending anything: ``{"requests", "images", "cached",
    "tell_apart"}``. The requests that tell siblings apart depend on the
    names that come back; ``tell_apart`` is the most there can be, within
    ``max_requests`` (one request per set of two siblings or more)."""
    namer = get_namer(namer, **namer_params)
    todo, cached, images = plan_labelling(
        run, namer, PER_CLUSTER.clean("label_clusters", per_cluster),
        clusters, INCLUDE_NOISE.clean("label_clusters", include_noise),
        FORCE.clean("label_clusters", force), layer)
    most = 0
    if TELL_APART.clean("label_clusters", tell_apart):
        limit = MAX_REQUESTS.clean(
            "label_clusters", MAX_REQUESTS.default if max_requests is None
            else max_requests)
        most = max(0, min(most_sibling_sets(run.tree, todo),
                          limit - len(todo)))
    return {"requests": len(todo),
            "images": sum(len(images[c]) for c in todo),
            "cached": len(cached), "tell_apart": most}


def most_sibling_sets(tree, clusters):
    """The most sets of siblings named alike that ``clusters`` can hold:
    per parent, half its children among them."""
    return sum(len(siblings) // 2
               for siblings in _by_parent(tree, clusters).values())


def _by_parent(tree, clusters):
    """Parent -> its children among ``clusters``, in their order (a flat
    run's clusters are all siblings; the noise has a parent of its own)."""
    by_parent = {}
    for c in clusters:
        parent = int(tree.parent[c]) if c >= 0 else -2
        by_parent.setdefault(parent, []).append(c)
    return by_parent


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
                   max_requests=200, max_images=2000, layer=None,
                   tell_apart=True, progress=None, **namer_params):
    """Names the clusters of ``run``, of its current cut or of any layer.

    Clusters are named finest first, so that a parent's request carries
    the names of its children. Siblings whose names come back nearly the
    same are asked again together, in one request that asks the model to
    tell them apart.

    Args:
        run: a :class:`~image_clustering.ClusterRun`
        namer: ``"openai"`` (a vision LLM behind any OpenAI-compatible API)
            or ``"zero_shot"`` (CLIP/SigLIP and a vocabulary), or a
            ``{"name": ..., **params}`` dict
        per_cluster: images per cluster
        clusters: the cluster ids to name, of any layer (default: those of
            ``layer``, else the current cut)
        layer: a layer to name (0 is the finest)
        include_noise: name the noise too
        force: ask again for clusters already named, even when their
            images have not changed
        tell_apart: ask again for siblings named nearly the same
        api_key: for ``openai``; else ``OPENAI_API_KEY`` (never stored)
        max_requests, max_images: refuse a call that would send more
        progress: ``True`` for a bar, or ``progress(fraction, message)``
        **namer_params: the namer's parameters (``model``, ``base_url``,
            ``vocabulary``, ...)

    Returns:
        ``{"named", "cached", "failed", "told_apart", "alike", "requests",
        "images", "run"}``: cluster ids named now, those unchanged since
        the last time, failures with their reasons, the sets of siblings
        told apart, those that could not be (each set, as a string, ->
        the reason; they keep their first names), what was sent, and the
        updated run
    """
    report = Reporter(progress)
    caller = "label_clusters"
    per_cluster = PER_CLUSTER.clean(caller, per_cluster)
    include_noise = INCLUDE_NOISE.clean(caller, include_noise)
    max_requests = MAX_REQUESTS.clean(caller, max_requests)
    max_images = MAX_IMAGES.clean(caller, max_images)
    layer = LAYER.clean(caller, layer)
    tell_apart = TELL_APART.clean(caller, tell_apart)
    namer = get_namer(namer, api_key=api_key, **namer_params)
    todo, cached, images = plan_labelling(
        run, namer, per_cluster, clusters, include_noise,
        FORCE.clean(caller, force), layer)
    n_images = sum(len(images[c]) for c in todo)
    check_limits(len(todo), n_images, max_requests, max_images)
    report(0.0, f"naming {len(todo)} cluster(s): {len(todo)} request(s), "
           f"{n_images} image(s); {len(cached)} unchanged")
    names = {k: dict(v) for k, v in run.names.items()}
    got, failed = _ask(namer, run, todo, images, names,
                       report.part(0.0, 0.8))
    told, alike = [], {}
    budget = _Budget(max_requests, max_images)
    budget.spend(len(todo), n_images)
    if tell_apart and got:
        told, alike = _tell_apart(namer, run, got, images, names, budget,
                                  report.part(0.8, 0.9))
    updated = run
    if got:
        report(0.9, "writing names")
        updated = _store_names(run, names)
    report(1.0, "done")
    return {"named": sorted(got), "cached": cached, "failed": failed,
            "told_apart": told, "alike": alike,
            "requests": budget.sent_requests, "images": budget.sent_images,
            "run": updated}


def _ask(namer, run, todo, images, names, report):
    """Asks for every cluster of ``todo``, finest layer first, so that
    parents are asked with their children's names; the answers go into
    ``names``. Returns ``(got, failed)``."""
    if not todo:
        return {}, {}
    namer.start()
    centres = {c["id"]: np.asarray(c["centre"]) for c in run.clusters}
    tree = run.tree

    def neighbours(c):
        if c not in centres:
            return []
        near = sorted((np.linalg.norm(centres[c] - centres[o]), o)
                      for o in centres if o != c)
        return [names[str(o)]["name"] for _, o in near[:3]
                if str(o) in names]

    def one(c):
        try:
            return c, namer.name_cluster(
                [p for _, p in images[c]], neighbours(c),
                children_names(run, names, c)), None
        except Exception as e:
            return c, None, _reason(e)

    got, failed = {}, {}
    workers = namer.params.get("concurrency", 1)
    waves = {}
    for c in sorted(todo):
        waves.setdefault(int(tree.first_layer[c]) if c >= 0 else -1,
                         []).append(c)
    done = 0
    with ThreadPoolExecutor(workers) as pool:
        for wave in sorted(waves):
            for c, answer, reason in pool.map(one, waves[wave]):
                done += 1
                if reason is None:
                    got[c] = answer
                    names[str(c)] = {**answer, "key": todo[c],
                                     "namer": namer.fingerprint(),
                                     "images": [i for i, _ in images[c]]}
                else:
                    failed[c] = reason
                    logger.warning("Cluster %s could not be named: %s", c,
                                   reason)
                report(done / len(todo), f"named {done} of {len(todo)}")
    return got, failed


class _Budget:
    """What ``max_requests`` and ``max_images`` allow, and what was sent:
    telling siblings apart gets what the first names leave."""

    def __init__(self, requests, images):
        self.requests, self.images = requests, images
        self.sent_requests = self.sent_images = 0

    def spend(self, requests, images):
        """Takes ``requests`` requests with ``images`` images; ``None``
        when they fit, else why not."""
        left = (self.requests - self.sent_requests,
                self.images - self.sent_images)
        if requests > left[0] or images > left[1]:
            return (f"not asked again: it would go over the request or "
                    f"image limit ({left[0]} request(s) and {left[1]} "
                    "image(s) were left)")
        self.sent_requests += requests
        self.sent_images += images
        return None


def _tell_apart(namer, run, got, images, names, budget, report):
    """Asks again, together, for each set of siblings named now whose
    names are nearly the same, while ``budget`` allows; their new names go
    into ``names`` and ``got``. Returns ``(told, alike)``: the sets told
    apart, and those that could not be, with the reason."""
    sets = same_named_siblings(run.tree, {c: got[c]["name"] for c in got})
    told, alike = [], {}
    for i, members in enumerate(sets):
        members = members[:TELL_APART_CLUSTERS]
        shown = [[p for _, p in images[c][:TELL_APART_IMAGES]]
                 for c in members]
        over = budget.spend(1, sum(map(len, shown)))
        if over:
            alike[", ".join(map(str, members))] = over
            continue
        try:
            answers = namer.tell_apart(
                shown, [got[c]["name"] for c in members])
        except Exception as e:
            alike[", ".join(map(str, members))] = _reason(e)
            logger.warning("Clusters %s could not be told apart: %s",
                           members, alike[", ".join(map(str, members))])
            continue
        for c, answer in zip(members, answers):
            got[c] = answer
            names[str(c)] = {**names[str(c)], **answer,
                             "told_apart_from": [o for o in members
                                                 if o != c]}
        told.append(members)
        report((i + 1) / len(sets), f"told apart {i + 1} of {len(sets)}")
    return told, alike


def same_named_siblings(tree, named):
    """Sets of siblings (clusters with one parent; a flat run's clusters
    are all siblings) among ``named`` (cluster -> name) whose names are
    nearly the same, each sorted."""
    sets = []
    for siblings in _by_parent(tree, sorted(named)).values():
        root = {c: c for c in siblings}

        def find(c):
            while root[c] != c:
                c = root[c]
            return c

        for i, a in enumerate(siblings):
            for b in siblings[i + 1:]:
                if nearly_same(named[a], named[b]):
                    root[find(b)] = find(a)
        groups = {}
        for c in siblings:
            groups.setdefault(find(c), []).append(c)
        sets += [g for g in groups.values() if len(g) > 1]
    return sets


def nearly_same(a, b):
    """Whether two names say the same thing: the same words once case,
    plurals and filler words are set aside, or nearly the same letters."""
    import difflib

    def words(name):
        tokens = re.findall(r"[a-z0-9]+", name.lower())
        return {t[:-1] if len(t) > 3 and t.endswith("s") else t
                for t in tokens if t not in FILLER}

    wa, wb = words(a), words(b)
    if wa == wb:
        return True
    return difflib.SequenceMatcher(None, " ".join(sorted(wa)),
                                   " ".join(sorted(wb))).ratio() >= 0.9


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
