"""The run record, defined in one place: what a clustering run stores, under
which names, and how its config and results are laid out.

A run of key ``K`` is a FiftyOne custom run (generic ``RunConfig`` and
``RunResults``, plain JSON) plus per-sample fields named ``K_<suffix>``
(or ``<labels path>.K_<suffix>`` on each object of an object run). Every
other module asks this one for names, so that the layout can change here
alone.

Config keys (plain JSON):
    kind, record_version, run_id, plugin_version, method, params, embedder,
    embeddings_field, fingerprint, normalize, reducers, seed, preset,
    fields ({suffix: path}), patches ({field, path} or None), map ({method,
    brain_key} or None), noise, libraries

Results keys (plain JSON):
    clusters, metrics, reductions, embedding, timings, skipped, plus what
    later steps add (names, groups, sweep, assigned, fitted)
"""

import uuid

from ..units import ParamError

RUN_KIND = "image_clustering"
DUPLICATES_KIND = "image_clustering_duplicates"
UNIQUENESS_KIND = "image_clustering_uniqueness"
# Every kind of run this plugin writes: fields of any of them are ours.
RUN_KINDS = (RUN_KIND, DUPLICATES_KIND, UNIQUENESS_KIND)
RECORD_VERSION = 2

# Versions before the staging collection staged values in fields with this
# prefix; repair removes any such field a killed write of theirs left, and
# no run key or prefix may take it.
STAGING_PREFIX = "imgclust_tmp_"

class FieldKind:
    """The FiftyOne type of one field suffix and how it is described."""

    def __init__(self, ftype, description, subfield=None):
        self.ftype = ftype
        self.description = description
        self.subfield = subfield

    def describe(self, key):
        return self.description.format(key=key)


FIELD_KINDS = {
    "cluster": FieldKind("IntField", "Cluster of run '{key}' (-1 = noise)"),
    "dist": FieldKind(
        "FloatField", "Euclidean distance to the cluster centre, run '{key}'"
    ),
    "sim": FieldKind(
        "FloatField", "Cosine similarity to the cluster centre, run '{key}'"
    ),
    "size": FieldKind("IntField", "Size of the sample's cluster, run '{key}'"),
    "prob": FieldKind(
        "FloatField", "Cluster membership probability, run '{key}'"
    ),
    "outlier": FieldKind("FloatField", "Outlier score (GLOSH), run '{key}'"),
    "map": FieldKind(
        "ListField", "Position on the 2-D map of run '{key}'", "FloatField"
    ),
    "reassigned": FieldKind(
        "BooleanField", "Moved from noise to a cluster, run '{key}'"
    ),
    "assigned": FieldKind(
        "BooleanField", "Placed into run '{key}' after it was fitted"
    ),
    "label": FieldKind("StringField", "Name of the cluster, run '{key}'"),
    "group": FieldKind("StringField", "Group of the cluster, run '{key}'"),
    "misfit": FieldKind(
        "BooleanField", "Placed after the fit, but farther from every "
        "cluster than its members are (cluster -1), run '{key}'"),
}

LAYER_PREFIX = "layer"


def layer_suffix(layer):
    """The suffix of the field holding each sample's cluster in one layer
    of a hierarchy (``K_layer0`` is the finest)."""
    return f"{LAYER_PREFIX}{layer}"


def _layer_kind(suffix):
    layer = suffix[len(LAYER_PREFIX):]
    return FieldKind("IntField",
                     f"Cluster in layer {layer} of run '{{key}}' (0 is the "
                     "finest; -1 = noise)")

# The fields of a duplicates run (near or exact) and of a uniqueness run.
DUPLICATE_FIELD_KINDS = {
    "group": FieldKind(
        "IntField", "Duplicate group of run '{key}' (unset: no duplicate)"
    ),
    "dist": FieldKind(
        "FloatField",
        "Cosine distance to the representative of the sample's duplicate "
        "group, run '{key}'"
    ),
    "rep": FieldKind(
        "BooleanField",
        "Whether the sample represents its duplicate group, run '{key}'"
    ),
}
UNIQUENESS_FIELD_KINDS = {
    "score": FieldKind(
        "FloatField", "Uniqueness in [0, 1] (1: the most unique), run '{key}'"
    ),
}

# The field kinds of each run kind.
KIND_FIELDS = {
    RUN_KIND: FIELD_KINDS,
    DUPLICATES_KIND: DUPLICATE_FIELD_KINDS,
    UNIQUENESS_KIND: UNIQUENESS_FIELD_KINDS,
}


def field_kind(run_kind, suffix):
    """The :class:`FieldKind` of field ``suffix`` of a run of
    ``run_kind``."""
    if run_kind == RUN_KIND and suffix.startswith(LAYER_PREFIX) and \
            suffix[len(LAYER_PREFIX):].isdigit():
        return _layer_kind(suffix)
    return KIND_FIELDS[run_kind][suffix]


# The fields a clustering writes; later steps add their own.
CLUSTERING_SUFFIXES = ("cluster", "dist", "sim", "size", "prob", "outlier")


def new_run_id():
    return uuid.uuid4().hex


def staging_name(txid, suffix):
    return f"{STAGING_PREFIX}{txid}_{suffix}"


def is_staging_name(name):
    return name.rsplit(".", 1)[-1].startswith(STAGING_PREFIX)


def map_key(run_key):
    """The brain key of the run's 2-D map in the Embeddings panel."""
    return f"{run_key}_map"


def field_path(prefix, suffix, labels_path=None):
    name = f"{prefix}_{suffix}"
    return f"{labels_path}.{name}" if labels_path else name


def field_names(prefix, suffixes, labels_path=None):
    """Suffix -> field path for a run whose fields start with ``prefix``."""
    return {s: field_path(prefix, s, labels_path) for s in suffixes}


def field_info(run_key, run_id, kind=RUN_KIND):
    """What each run-owned field carries in its ``info``: the store deletes a
    field only when it belongs to the run being deleted."""
    return {"run_key": run_key, "run_kind": kind, "run_id": run_id}


def validate_run_key(key):
    """Raises unless ``key`` can name a run."""
    if not isinstance(key, str) or not key:
        raise ParamError(f"run key must be a non-empty string, got {key!r}",
                         "run_key")
    if not key.isidentifier():
        raise ParamError(
            f"run key {key!r} must be a valid Python identifier (letters, "
            "digits and underscores, not starting with a digit)", "run_key")
    if key.startswith("_") or key.startswith(STAGING_PREFIX):
        raise ParamError(
            f"run key {key!r} must not start with '_' or "
            f"'{STAGING_PREFIX}'", "run_key")


def validate_prefix(prefix):
    if not isinstance(prefix, str) or not prefix.isidentifier() or \
            prefix.startswith(STAGING_PREFIX):
        raise ParamError(f"field_prefix {prefix!r} must be an identifier "
                         f"not starting with '{STAGING_PREFIX}'",
                         "field_prefix")


def labels_path_of(config):
    return (config.get("patches") or {}).get("path")


def patches_field_of(config):
    return (config.get("patches") or {}).get("field")


def brain_key_of(config):
    return (config.get("map") or {}).get("brain_key")


def is_single_object(config):
    """Whether an object run clustered a single Detection per sample (the
    labels path is the field itself) rather than a Detections list."""
    path = labels_path_of(config)
    return bool(path) and path == patches_field_of(config)


def prefix_of(config):
    """The prefix of the run's field names (``K`` of ``K_cluster``)."""
    prefix = config.get("field_prefix")
    if prefix:
        return prefix
    cluster = (config.get("fields") or {}).get("cluster", "")
    return cluster.rsplit(".", 1)[-1][: -len("_cluster")]


def owned_path(config, suffix):
    """The path of the run's field ``suffix``: the one it wrote, else where
    it would write it."""
    fields = config.get("fields") or {}
    return fields.get(suffix) or field_path(prefix_of(config), suffix,
                                            labels_path_of(config))
