"""How a stored run looks in the App: its 2-D map in the Embeddings panel,
its fields in one sidebar group, and a categorical colour per cluster.

All of it follows from the stored run and can be made again from it:
:func:`present` is idempotent, and :func:`repair` re-presents runs whose
presentation a killed process left unfinished and removes presentation
whose run is gone. Callers hold the dataset's lease (it saves the dataset
document).
"""

import logging

import numpy as np

from ..storage import schema
from ..storage.sample_io import read_vectors
from ..storage.transaction import locked
from ..units import ParamError

logger = logging.getLogger(__name__)

# 20 colours, each at least 4.3:1 against the App's dark background and
# 2.3:1 against white (charts), in an order where consecutive ids differ
# by about 144 degrees of hue; clusters beyond 20 reuse the cycle. The App's
# own colour pool has near-black entries that vanish on its dark grid.
PALETTE = (
    "#f47b74", "#1ac095", "#c586e7", "#bea421", "#34aef9",
    "#e78b2e", "#17bac8", "#e87ab3", "#7eb84f", "#8f9bfb",
    "#d25f29", "#239990", "#bb5db2", "#848f02", "#4684e5",
    "#ad7c1c", "#1a94b6", "#d25575", "#18a050", "#8f6edb",
)
NOISE_COLOR = "#9e9e9e"
SIZE_COLOR = "#5b6b7f"

# dataset.info entry: brain key -> run key of each map we registered, so
# that repair removes only maps of ours whose run is gone.
MAPS_INFO = "image_clustering_maps"


def cluster_color(cluster):
    return NOISE_COLOR if cluster < 0 else PALETTE[cluster % len(PALETTE)]


def check_brain_key(dataset, key, brain_key):
    """Raises if the run's map would replace a brain run that is not the
    map of run ``key``."""
    if brain_key is None or not dataset.has_brain_run(brain_key):
        return
    maps = dataset.info.get(MAPS_INFO) or {}
    if maps.get(brain_key) == key:
        return
    raise ParamError(
        f"brain run '{brain_key}' already exists and does not belong to run "
        f"'{key}'; choose another run key, or no map", "map", "none")


def show(run, replaced=None):
    """Shows the stored ``run`` in the App, under the dataset's lock. The
    run is complete whether or not this succeeds: a failure is logged and
    returned as a sentence (``None`` when all went well), and
    :func:`repair` tries again."""
    try:
        with locked(run.dataset, f"showing run '{run.key}'") as lease:
            if replaced and schema.brain_key_of(replaced) != \
                    schema.brain_key_of(run.config):
                hide(lease.dataset, run.key, {"map": replaced.get("map")})
            present(lease.dataset, run)
    except Exception as e:
        message = (f"run '{run.key}' is stored, but showing it in the App "
                   f"failed ({e}); run repair to try again")
        logger.warning(message)
        return message
    return None


def present(dataset, run):
    """Shows ``run`` (a :class:`.results.ClusterRun`) in the App."""
    if not run.patches_field:
        show_fields(dataset, run.key, run.fields, run.cluster_ids(),
                    run_sizes(run), run_names(run))
    brain_key = schema.brain_key_of(run.config)
    if brain_key and "map" in run.fields:
        register_map(dataset, run, brain_key)


def run_sizes(run):
    """The values the run's size field holds: each cluster's size, and the
    noise count."""
    sizes = [c["size"] for c in run.clusters]
    if run.metrics.get("n_noise"):
        sizes.append(run.metrics["n_noise"])
    return sizes


def run_names(run):
    """Cluster id -> name, for the clusters of the run that are named."""
    return {int(c): entry["name"] for c, entry in run.names.items()
            if entry.get("name")}


def hide(dataset, key, config):
    """Removes what :func:`present` added for the run ``key`` whose config
    was ``config``."""
    fields = config.get("fields") or {}
    hide_fields(dataset, key, fields)
    brain_key = schema.brain_key_of(config)
    if brain_key:
        unregister_map(dataset, brain_key)


def register_map(dataset, run, brain_key):
    """Stores the run's map (its ``map`` field) as a brain visualization run,
    which the App's Embeddings panel lists."""
    import fiftyone.brain as fob

    unregister_map(dataset, brain_key)
    view, points = _map_points(run)
    if not points:
        return
    _remember_map(dataset, brain_key, run.key)
    if run.patches_field:
        fob.compute_visualization(view, patches_field=run.patches_field,
                                  points=points, brain_key=brain_key)
    else:
        fob.compute_visualization(view, points=points, brain_key=brain_key)


def _map_points(run):
    map_path = run.fields["map"]
    view = run.view()
    if not run.patches_field:
        # The batched reader: at a million samples, values() and an array
        # per point took most of the App presentation's time.
        view = view.exists(map_path)
        rows = read_vectors(view, map_path)
        return view, dict(zip(rows.ids, rows.matrix))
    m = run.members(extra={"map": map_path})
    points = {i: np.asarray(p, float) for i, p in zip(m["id"], m["map"])
              if p is not None}
    missing = [i for i, p in zip(m["id"], m["map"]) if p is None]
    all_ids = set(m["id"])
    if missing or len(all_ids) != len(points):
        view = view.exclude_labels(ids=missing, fields=run.patches_field)
    return view, points


def unregister_map(dataset, brain_key):
    if dataset.has_brain_run(brain_key):
        dataset.delete_brain_run(brain_key)
    maps = dict(dataset.info.get(MAPS_INFO) or {})
    if brain_key in maps:
        maps.pop(brain_key)
        dataset.info[MAPS_INFO] = maps
        dataset.save()


def _remember_map(dataset, brain_key, run_key):
    maps = dict(dataset.info.get(MAPS_INFO) or {})
    maps[brain_key] = run_key
    dataset.info[MAPS_INFO] = maps
    dataset.save()


def show_fields(dataset, key, fields, clusters, sizes=(), names=None):
    """Gathers the run's fields into one sidebar group and colours its
    ``clusters`` (ids: those of the current cut, which after a move of a
    hierarchy's cut are not 0 to k-1) categorically (noise in grey), and
    each cluster's name
    (``names``: cluster id -> name) in its cluster's colour; the cluster
    sizes ``sizes`` shown on tiles get one quiet colour."""
    import fiftyone as fo

    config = dataset.app_config
    _group_fields(dataset, key, fields)
    scheme = config.color_scheme or fo.ColorScheme()
    ours = {fields["cluster"]: cluster_colors(fields["cluster"], clusters)}
    if "size" in fields and sizes:
        ours[fields["size"]] = size_colors(fields["size"], sizes)
    if "label" in fields and names:
        ours[fields["label"]] = name_colors(fields["label"], names)
    entries = [f for f in (scheme.fields or []) if f.get("path") not in ours]
    scheme.fields = entries + list(ours.values())
    # The App applies a field's value colours only when it colours by
    # value; a choice the user made is kept (the README says what it costs).
    if scheme.color_by is None:
        scheme.color_by = "value"
    config.color_scheme = scheme
    dataset.save()


def cluster_colors(cluster_path, clusters):
    """The colour-scheme entry of a cluster field: one colour per cluster
    id of ``clusters``, noise in grey."""
    return {
        "path": cluster_path,
        "colorByAttribute": cluster_path,
        "valueColors": [{"value": "-1", "color": NOISE_COLOR}] + [
            {"value": str(c), "color": cluster_color(c)}
            for c in sorted(clusters)
        ],
    }


def size_colors(size_path, sizes):
    """The colour-scheme entry of a size field: every size in one colour
    (colouring by value would give each size a colour of the App's pool,
    some too dark to read on the grid)."""
    return {
        "path": size_path,
        "colorByAttribute": size_path,
        "valueColors": [{"value": str(n), "color": SIZE_COLOR}
                        for n in sorted(set(sizes))],
    }


def name_colors(label_path, names):
    """The colour-scheme entry of a name field: each cluster's name in its
    cluster's colour (a name two clusters share takes the first's)."""
    colors = {}
    for cluster, name in sorted(names.items()):
        colors.setdefault(name, cluster_color(cluster))
    return {
        "path": label_path,
        "colorByAttribute": label_path,
        "valueColors": [{"value": n, "color": c} for n, c in colors.items()],
    }


def app_color_scheme(dataset):
    """The dataset's stored colour scheme as the App's ``set_color_scheme``
    operator takes it, so that an open App shows a run's colours at once;
    ``None`` when the dataset has none."""
    scheme = dataset.app_config.color_scheme
    if scheme is None:
        return None
    return {"color_by": scheme.color_by or "field",
            "fields": [dict(f) for f in scheme.fields or []]}


def _group_fields(dataset, key, fields):
    import fiftyone as fo

    config = dataset.app_config
    groups = config.sidebar_groups or \
        fo.DatasetAppConfig.default_sidebar_groups(dataset)
    name = group_name(key)
    paths = list(fields.values())
    groups = [g for g in groups if g.name != name]
    for group in groups:
        group.paths = [p for p in (group.paths or []) if p not in paths]
    groups.insert(
        1, fo.SidebarGroupDocument(name=name, paths=paths, expanded=True)
    )
    config.sidebar_groups = groups


def hide_fields(dataset, key, fields):
    """Removes what :func:`show_fields` added."""
    config = dataset.app_config
    changed = False
    if config.sidebar_groups:
        kept = [g for g in config.sidebar_groups if g.name != group_name(key)]
        changed = len(kept) != len(config.sidebar_groups)
        config.sidebar_groups = kept
    scheme = config.color_scheme
    if scheme is not None and scheme.fields:
        paths = set(fields.values())
        kept = [f for f in scheme.fields if f.get("path") not in paths]
        changed = changed or len(kept) != len(scheme.fields)
        scheme.fields = kept
    if changed:
        dataset.save()


def _brain_records(dataset):
    from fiftyone.core.odm import get_db_conn

    doc = get_db_conn().datasets.find_one({"_id": dataset._doc.id},
                                          {"brain_methods": 1})
    return (doc or {}).get("brain_methods") or {}


def _map_is_whole(dataset, brain_key):
    """Whether the map's brain run is registered with its results (a kill
    inside FiftyOne's registration can leave one without)."""
    from fiftyone.core.odm import get_db_conn

    rid = _brain_records(dataset).get(brain_key)
    if rid is None:
        return False
    doc = get_db_conn().runs.find_one({"_id": rid}, {"results": 1})
    return bool(doc and doc.get("results"))


def _drop_orphan_map_records(dataset, brain_keys):
    """Brain-run documents of our maps that the dataset no longer points
    to: what a kill inside FiftyOne's registration leaves."""
    import gridfs

    from fiftyone.core.odm import get_db_conn

    db = get_db_conn()
    referenced = set(_brain_records(dataset).values())
    out = []
    for doc in db.runs.find({"_dataset_id": dataset._doc.id,
                             "key": {"$in": sorted(brain_keys)}}):
        if doc["_id"] in referenced:
            continue
        if doc.get("results") is not None:
            gridfs.GridFS(db).delete(doc["results"])
        db.runs.delete_one({"_id": doc["_id"]})
        out.append(f"removed an unfinished record of map '{doc['key']}'")
    return out


def group_name(key):
    return f"clusters: {key}"


def repair(dataset, runs):
    """Makes the App's view of ``dataset`` match its stored ``runs`` (a dict
    of key -> :class:`.results.ClusterRun`). Returns what it changed."""
    report = []
    maps = dict(dataset.info.get(MAPS_INFO) or {})
    report += _drop_orphan_map_records(dataset, set(maps))
    for brain_key, run_key in maps.items():
        run = runs.get(run_key)
        if run is None or schema.brain_key_of(run.config) != brain_key:
            unregister_map(dataset, brain_key)
            report.append(f"removed map '{brain_key}' of a deleted run")
    for key, run in runs.items():
        brain_key = schema.brain_key_of(run.config)
        if brain_key and "map" in run.fields and \
                not _map_is_whole(dataset, brain_key):
            register_map(dataset, run, brain_key)
            report.append(f"registered the missing map of run '{key}'")
    report += _show_unshown_runs(dataset, runs)
    names = {group_name(k) for k in runs}
    groups = dataset.app_config.sidebar_groups or []
    stale = [g.name for g in groups
             if g.name.startswith("clusters: ") and g.name not in names]
    for name in stale:
        hide_fields(dataset, name[len("clusters: "):], {})
        report.append(f"removed sidebar group '{name}' of a deleted run")
    report += _drop_stale_colors(dataset, runs)
    return report


def _show_unshown_runs(dataset, runs):
    """Runs whose write a killed process finished without showing them
    (no sidebar group, or no colours): shown now."""
    config = dataset.app_config
    groups = {g.name for g in config.sidebar_groups or []}
    colored = {f.get("path") for f in
               (config.color_scheme.fields or [] if config.color_scheme
                else [])}
    out = []
    for key, run in sorted(runs.items()):
        if run.patches_field:
            continue
        if group_name(key) in groups and run.fields["cluster"] in colored:
            continue
        show_fields(dataset, key, run.fields, run.cluster_ids(),
                    run_sizes(run), run_names(run))
        out.append(f"showed run '{key}' in the App (its sidebar group and "
                   "cluster colours)")
    return out


def _drop_stale_colors(dataset, runs):
    """Cluster colours of ours whose field is gone with its run."""
    scheme = dataset.app_config.color_scheme
    if scheme is None or not scheme.fields:
        return []
    live = {run.fields[s] for run in runs.values()
            for s in ("cluster", "size", "label") if s in run.fields}
    stale = [f["path"] for f in scheme.fields
             if f.get("path") not in live and _is_ours(f)
             and dataset.get_field(f["path"]) is None]
    if not stale:
        return []
    scheme.fields = [f for f in scheme.fields if f.get("path") not in stale]
    dataset.save()
    return [f"removed the colours of '{p}', whose run is gone"
            for p in stale]


def _is_ours(entry):
    colors = entry.get("valueColors") or []
    if not colors:
        return False
    return colors[0] == {"value": "-1", "color": NOISE_COLOR} or \
        all(c.get("color") == SIZE_COLOR for c in colors) or \
        all(c.get("color") in PALETTE for c in colors)
