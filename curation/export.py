"""Exporting clusters: a CSV of their members, and optionally their images
copied or linked into one folder per cluster (or group).

Everything is written inside the export folder: names of clusters and
groups become safe folder names, and every destination is checked to lie
inside the folder once links are resolved. Nothing that exists is
overwritten without ``overwrite=True``, and the check is made before
anything is written.
"""

import csv
import os
import shutil

from ..clustering import runs
from ..units import Param, ParamError
from .groups import safe_name
from .tags import _cluster_ids

IMAGES = Param("images", "choice", "none",
               "Also put the images into one folder per cluster (or group)",
               choices=("none", "copy", "symlink"))
FOLDERS = Param("folders", "choice", "cluster",
                "Image folders: one per cluster, or one per group",
                choices=("cluster", "group"))
COLUMNS = ("filepath", "image_name", "cluster", "cluster_name", "tags",
           "group", "distance", "similarity", "cluster_size")


def export_clusters(samples, run_key, path, clusters=None, groups=None,
                    images="none", folders="cluster", csv_name="clusters.csv",
                    overwrite=False):
    """Writes the members of run ``run_key``'s ``clusters`` (default: all,
    noise included) or ``groups`` to ``<path>/<csv_name>``, one row per
    sample (or object), and with ``images`` their images to
    ``<path>/images/<cluster or group>/``. Returns ``{"csv", "rows",
    "images"}``."""
    images = IMAGES.clean("export_clusters", images)
    folders = FOLDERS.clean("export_clusters", folders)
    root = _export_root(path)
    if os.path.basename(csv_name) != csv_name or csv_name in ("", ".", ".."):
        raise ParamError(f"csv_name: {csv_name!r} must be a plain file name")
    run = runs.load_run(samples, run_key)
    rows = _rows(run, _selected(run, clusters, groups))
    targets = _image_targets(root, rows, folders) if images != "none" else []
    csv_path = os.path.join(root, csv_name)
    _check_writable(root, [csv_path] + [t for _, t in targets], overwrite)
    _write_csv(csv_path, rows, run)
    for row, target in targets:
        _place(root, row, target, images, overwrite)
    return {"csv": csv_path, "rows": len(rows), "images": len(targets)}


def _export_root(path):
    if not path or not isinstance(path, str):
        raise ParamError("path: give the folder to export into")
    root = os.path.realpath(os.path.abspath(os.path.expanduser(path)))
    if os.path.exists(root) and not os.path.isdir(root):
        raise ParamError(f"path: {path!r} is a file, not a folder")
    return root


def _selected(run, clusters, groups):
    if groups:
        known = run.results.get("groups") or {}
        missing = [g for g in groups if g not in known]
        if missing:
            raise ParamError("groups: no group " + ", ".join(
                repr(g) for g in missing))
        chosen = {c for g in groups for c in known[g]}
        if clusters is not None:
            chosen |= set(_cluster_ids(run, clusters))
        return chosen
    if clusters is None:
        return None
    return set(_cluster_ids(run, clusters))


def _rows(run, chosen):
    extra = {"sim": run.fields["sim"], "size": run.fields["size"]}
    for suffix in ("label", "group"):
        if suffix in run.fields:
            extra[suffix] = run.fields[suffix]
    tags_path = f"{run.labels_path}.tags" if run.labels_path else "tags"
    extra["tags"] = tags_path
    if run.labels_path:
        extra["box"] = f"{run.labels_path}.bounding_box"
    m = run.members(extra=extra)
    names = run.results.get("names") or {}
    out = []
    for i, c in enumerate(m["cluster"]):
        if c is None or (chosen is not None and c not in chosen):
            continue
        name = (names.get(str(c)) or {}).get("name") or ""
        out.append({
            "id": m["id"][i],
            "filepath": m["filepath"][i],
            "image_name": os.path.basename(m["filepath"][i]),
            "cluster": f"cluster_{c}" if c >= 0 else "noise",
            "cluster_name": name,
            "tags": ";".join(m["tags"][i] or []),
            "group": (m.get("group") or [None] * len(m["id"]))[i] or "",
            "distance": m["dist"][i],
            "similarity": m["sim"][i],
            "cluster_size": m["size"][i],
            "box": m["box"][i] if run.labels_path else None,
        })
    return out


def _image_targets(root, rows, folders):
    folder_root = os.path.join(root, "images")
    taken = set()
    out = []
    for row in rows:
        folder = row["group"] if folders == "group" else (
            row["cluster"] + (f" {row['cluster_name']}"
                              if row["cluster_name"] else ""))
        folder = safe_name(folder or "no group")
        stem, ext = os.path.splitext(row["image_name"])
        name = safe_name(stem) + (ext if ext[1:].isalnum() else "")
        target = os.path.join(folder_root, folder, name)
        if target in taken:
            # Two files of one name in one folder: the id tells them apart.
            target = os.path.join(folder_root, folder,
                                  f"{safe_name(stem)}_{row['id']}{ext}")
        if row["box"] is not None:
            # Objects are exported as their crops.
            target = os.path.splitext(target)[0] + f"_{row['id']}.png"
        taken.add(target)
        _inside(root, target)
        out.append((row, target))
    return out


def _inside(root, target):
    """Refuses a destination that, with links resolved, leaves ``root``."""
    resolved = os.path.realpath(target)
    if resolved != root and not resolved.startswith(root + os.sep):
        raise ParamError(
            f"path: refusing to write {target}, which resolves outside the "
            f"export folder {root}")


def _check_writable(root, paths, overwrite):
    for p in paths:
        _inside(root, p)
    if overwrite:
        return
    existing = [p for p in paths if os.path.lexists(p)]
    if existing:
        raise ParamError(
            f"overwrite: {len(existing)} file(s) already exist in {root} "
            f"(first: {existing[0]}); pass overwrite=True to replace them")


def _write_csv(path, rows, run):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    columns = list(COLUMNS)
    if run.patches_field:
        columns.insert(0, "object_id")
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            values = [row["id"]] if run.patches_field else []
            values += [row[c] for c in COLUMNS]
            writer.writerow(values)
    os.replace(tmp, path)


def _place(root, row, target, mode, overwrite):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    # Checked again now the folders exist: one may have been a link.
    _inside(root, target)
    if overwrite and os.path.lexists(target):
        os.remove(target)
    if row["box"] is not None:
        from ..embedders.images import Crop, ImageDecodeError, load_source

        try:
            load_source(Crop(row["filepath"], tuple(row["box"]))).save(
                target)
        except ImageDecodeError:
            pass
        return
    if mode == "symlink":
        os.symlink(os.path.abspath(row["filepath"]), target)
    else:
        shutil.copy2(row["filepath"], target)
