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

from ..embedders.images import Crop, ImageDecodeError, load_source
from ..units import Param, ParamError
from .groups import check_groups, safe_name

IMAGES = Param("images", "choice", "none",
               "Also put the images into one folder per cluster (or group)",
               choices=("none", "copy", "symlink"))
FOLDERS = Param("folders", "choice", "cluster",
                "Image folders: one per cluster, or one per group",
                choices=("cluster", "group"))
EXPORT_PARAMS = (IMAGES, FOLDERS)
COLUMNS = ("filepath", "image_name", "cluster", "cluster_name", "tags",
           "group", "distance", "similarity", "cluster_size")


def export_clusters(run, path, clusters=None, groups=None, images="none",
                    folders="cluster", csv_name="clusters.csv",
                    overwrite=False):
    """Writes the members of ``run``'s ``clusters`` (default: all, noise
    included) or ``groups`` to ``<path>/<csv_name>``, one row per sample (or
    object), and with ``images`` their images to
    ``<path>/images/<cluster or group>/``. An image that cannot be read is
    left out of the folders and reported; everything that can be checked
    is checked before anything is written.

    Returns:
        ``{"csv", "rows", "images", "failed"}``: the CSV's path, its rows,
        the images written, and ``{filepath: reason}`` for those that could
        not be
    """
    images = IMAGES.clean("export_clusters", images)
    folders = FOLDERS.clean("export_clusters", folders)
    root = _export_root(path)
    if os.path.basename(csv_name) != csv_name or csv_name in ("", ".", ".."):
        raise ParamError(f"csv_name: {csv_name!r} must be a plain file name",
                         "csv_name")
    rows = _rows(run, _selected(run, clusters, groups))
    targets = _image_targets(root, rows, folders) if images != "none" else []
    csv_path = os.path.join(root, csv_name)
    _check_writable(root, [csv_path] + [t for _, t in targets], overwrite)
    failed = _unreadable(rows) if targets else {}
    _write_csv(csv_path, rows, run)
    written = 0
    for row, target in targets:
        if row["filepath"] in failed:
            continue
        reason = _place(root, row, target, images, overwrite)
        if reason is None:
            written += 1
        else:
            failed[row["filepath"]] = reason
    return {"csv": csv_path, "rows": len(rows), "images": written,
            "failed": failed}


def _export_root(path):
    if not path or not isinstance(path, str):
        raise ParamError("path: give the folder to export into", "path")
    root = os.path.realpath(os.path.abspath(os.path.expanduser(path)))
    if os.path.exists(root) and not os.path.isdir(root):
        raise ParamError(f"path: {path!r} is a file, not a folder", "path")
    return root


def _selected(run, clusters, groups):
    if groups:
        check_groups(run, groups)
        chosen = {c for g in groups for c in run.groups[g]}
        if clusters is not None:
            chosen |= set(run.check_clusters(clusters))
        return chosen
    if clusters is None:
        return None
    return set(run.check_clusters(clusters))


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
    no_groups = [None] * len(m["id"])
    out = []
    for i, c in enumerate(m["cluster"]):
        if c is None or (chosen is not None and c not in chosen):
            continue
        name = run.name_of(c) or ""
        out.append({
            "id": m["id"][i],
            "filepath": m["filepath"][i],
            "image_name": os.path.basename(m["filepath"][i]),
            "cluster": f"cluster_{c}" if c >= 0 else "noise",
            "cluster_name": name,
            "tags": ";".join(m["tags"][i] or []),
            "group": (m.get("group") or no_groups)[i] or "",
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
    """Refuses a destination whose folder, with links resolved, leaves
    ``root``. (The destination itself may be a link written by an earlier
    export, which points outside by design: it is replaced, not
    followed.)"""
    folder = os.path.realpath(os.path.dirname(target))
    if folder != root and not folder.startswith(root + os.sep):
        raise ParamError(
            f"path: refusing to write {target}, which resolves outside the "
            f"export folder {root}", "path")


def _check_writable(root, paths, overwrite):
    for p in paths:
        _inside(root, p)
    if overwrite:
        return
    existing = [p for p in paths if os.path.lexists(p)]
    if existing:
        raise ParamError(
            f"{len(existing)} file(s) already exist in {root} (first: "
            f"{existing[0]})", "overwrite", True)


def _unreadable(rows):
    """File path -> why, for the rows' images that cannot be read."""
    out = {}
    for path in {row["filepath"] for row in rows}:
        if not os.path.isfile(path):
            out[path] = "file not found"
        elif not os.access(path, os.R_OK):
            out[path] = "file not readable"
    return out


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
    """Writes one image (or object crop); returns ``None``, or why it
    could not."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    # Checked again now the folders exist: one may have been a link.
    _inside(root, target)
    if overwrite and os.path.lexists(target):
        os.remove(target)
    try:
        if row["box"] is not None:
            load_source(Crop(row["filepath"], tuple(row["box"]))).save(
                target)
        elif mode == "symlink":
            os.symlink(os.path.abspath(row["filepath"]), target)
        else:
            shutil.copy2(row["filepath"], target)
    except (ImageDecodeError, OSError) as e:
        return str(e) or type(e).__name__
    return None
