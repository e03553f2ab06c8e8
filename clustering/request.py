"""The one resolver of clustering requests.

Python (:func:`~image_clustering.compute_clusters`), the command line and
the App's form all turn the user's choices into a run the same way:
:func:`resolve_request` takes a preset and what the user said, and returns
one complete, validated :class:`RunSpec`. Nothing else fills in a default,
so the same choices give the same run from every entry point.

The rules: the preset fills in every unit the user does not choose; a unit
the user chooses starts from its own defaults, with what the user gives on
top.

- **Embedder**: the user's, else the preset's, unless an existing
  ``embeddings_field`` is given without one (then no model runs).
- **Reducers**: the user's chain, else the preset's.
- **Method**: the user's, with its own defaults; without one, the preset's
  method and parameters, with the parameters the user gives on top.
- **Normalisation**: the user's; else the embedder's own preference (model
  features are compared by direction, pixels are not); for an existing
  field, the preset's.
- **Noise**: the preset's policy goes with the preset's method and
  parameters (no method given); a method the user chooses keeps noise
  unless told. Only methods that make noise take the ``assign`` policy; a
  budget (``max_noise``) is met by every method, by construction for those
  that leave no noise (k-means, the hierarchy, ...).
- **Seed**: every unit that makes random choices gets the run's seed as
  its ``random_state`` unless it was given one.
- **Ray**: with no address, the address in ``RAY_ADDRESS``, else the Ray
  cluster this machine belongs to; a run never starts a cluster of its
  own.

:data:`RUN_PARAMS` declares the run's own parameters; the App's form and
the command line's flags are built from them and from the units'.
"""

from ..algorithms.clusterers import CLUSTERERS, get_clusterer
from ..algorithms.layout2d import MAP_METHODS
from ..algorithms.noise import MAX_NOISE, NOISE
from ..algorithms.reducers import REDUCERS, get_reducers
from ..embedders import EMBEDDERS, get_embedder
from ..embedders.images import DECODE_MODES
from ..storage import schema
from ..units import Param, ParamError
from .presets import DEFAULT_PRESET, PRESETS

SEED = Param("seed", "int", 51, "Random seed for every step that has one",
             min=0, max=2**32 - 1)
NUM_WORKERS = Param("num_workers", "int", None,
                    "Image decoding workers (default: one per core, at most "
                    "8)", min=1)
BATCH_SIZE = Param("batch_size", "int", None, "Images per embedding batch",
                   min=1)
DECODE = Param("decode", "choice", "auto",
               "Decode images in threads or worker processes (auto: "
               "processes on machines with 8 or more cores)",
               choices=DECODE_MODES)
EXECUTOR = Param("executor", "choice", "local",
                 "Where images are embedded: here, or on a Ray cluster",
                 choices=("local", "ray"))
RAY_ADDRESS = Param("ray_address", "str", None,
                    "The Ray cluster (ray://head:10001 or head:6379); "
                    "empty: RAY_ADDRESS, else the cluster this machine "
                    "belongs to")
PRESET = Param("preset", "choice", DEFAULT_PRESET,
               "Named defaults; anything given beside them wins",
               choices=tuple(PRESETS))
MAP = Param("map", "choice", "auto",
            "The 2-D map shown in the Embeddings panel: the clustered space "
            "if it is 2-D, else UMAP of it (auto), or another method",
            choices=MAP_METHODS)
NORMALIZE = Param("normalize", "bool", None,
                  "L2-normalise the embeddings first (default: the "
                  "embedder's own choice; model features are)")
GT_FIELD = Param("gt_field", "str", None,
                 "A Classification field to score the clusters against "
                 "(ARI, AMI, purity); for objects, 'label'")
FIELD_PREFIX = Param("field_prefix", "str", None,
                     "Prefix of the fields written (default: the run key)")
PATCHES_FIELD = Param("patches_field", "str", None,
                      "A Detections field: cluster its objects instead of "
                      "whole images")
EMBEDDINGS_FIELD = Param("embeddings_field", "str", None,
                         "Cluster the vectors of this existing field (no "
                         "model runs); with an embedder, where its vectors "
                         "are cached")
CARRY_FROM = Param("carry_from", "str", None,
                   "Carry the names, groups and rejected merges of this run "
                   "onto the new run's clusters, by member overlap "
                   "(default: those of the run this one overwrites)")
OVERWRITE = Param("overwrite", "bool", False,
                  "Replace an existing run of the same key (the old run "
                  "stays until the new one is complete)")

#: The run's own parameters, beside those of its units.
RUN_PARAMS = (PRESET, EMBEDDINGS_FIELD, NORMALIZE, NOISE, MAX_NOISE, SEED,
              MAP, GT_FIELD, PATCHES_FIELD, FIELD_PREFIX, OVERWRITE, CARRY_FROM,
              NUM_WORKERS, BATCH_SIZE, DECODE, EXECUTOR, RAY_ADDRESS)


class RunSpec:
    """A complete, validated clustering request.

    Attributes:
        preset: the preset it started from
        embedder: the embedder unit, or ``None`` to read ``embeddings_field``
        embeddings_field: the field read (no embedder) or cached into
        normalize: whether vectors are L2-normalised before reducing
        reducers: the reducer units, in order
        clusterer: the clusterer unit
        noise, max_noise: what becomes of noise (``max_noise`` is the
            share left, ``None`` for as the method leaves it)
        seed, map, gt_field, patches_field, field_prefix, overwrite
        carry_from: the run whose decisions are carried over (``None``:
            the run overwritten, if any)
        num_workers, batch_size, decode: how images are decoded
        executor, ray_address: where images are embedded
    """

    def __init__(self, **values):
        self.__dict__.update(values)

    @property
    def density(self):
        return self.clusterer.density

    @property
    def noise_share(self):
        """The share of samples noise is limited to (``None``: as the
        method leaves it)."""
        if self.noise == "assign":
            return 0.0
        return self.max_noise

    def executor_spec(self):
        if self.executor == "local":
            return {"name": "local"}
        return {"name": self.executor, "address": self.ray_address}

    def config(self):
        """The request as the run's config records it (plain JSON)."""
        return {
            "preset": self.preset,
            "method": self.clusterer.name,
            "params": self.clusterer.spec()["params"],
            "embedder": self.embedder.spec() if self.embedder else None,
            "normalize": self.normalize,
            "reducers": [r.spec() for r in self.reducers],
            "seed": self.seed,
            "noise": self.noise,
            "max_noise": self.max_noise,
            "map_method": self.map,
            "gt_field": self.gt_field,
            "field_prefix": self.field_prefix,
            "executor": self.executor_spec(),
        }

    def __repr__(self):
        return (f"<RunSpec preset={self.preset} embedder="
                f"{self.embedder.name if self.embedder else None} "
                f"reducers={[r.name for r in self.reducers]} "
                f"method={self.clusterer.name}>")


def resolve_request(preset=None, embedder=None, reducer=None, method=None,
                    embeddings_field=None, normalize=None, seed=None,
                    noise=None, max_noise=None, map=None, gt_field=None,
                    patches_field=None, field_prefix=None, overwrite=None,
                    carry_from=None, num_workers=None, batch_size=None, decode=None,
                    executor=None, ray_address=None, **method_params):
    """One complete, validated :class:`RunSpec` from a preset and what the
    user said (see the module for the rules). Raises
    :class:`~image_clustering.ParamError` naming the first bad choice,
    before any work."""
    caller = "compute_clusters"
    preset = DEFAULT_PRESET if preset is None else preset
    if preset not in PRESETS:
        raise ParamError(f"unknown preset {preset!r}; available: "
                         + ", ".join(PRESETS), "preset")
    base = PRESETS[preset]
    seed = SEED.clean(caller, SEED.default if seed is None else seed)
    embedder_unit = _embedder(base, embedder, embeddings_field)
    reducers = _reducers(base, reducer, seed)
    clusterer = _clusterer(base, method, method_params, seed)
    noise, max_noise = _noise(base if method is None else {}, clusterer,
                              noise, max_noise)
    if normalize is None:
        normalize = embedder_unit.normalize if embedder_unit is not None \
            else base["normalize"]
    executor = EXECUTOR.clean(caller, executor or EXECUTOR.default)
    if executor != "ray" and ray_address:
        raise ParamError("ray_address is only used with executor 'ray'",
                         "executor", "ray")
    return RunSpec(
        preset=preset,
        embedder=embedder_unit,
        embeddings_field=EMBEDDINGS_FIELD.clean(caller, embeddings_field),
        normalize=NORMALIZE.clean(caller, normalize),
        reducers=reducers,
        clusterer=clusterer,
        noise=noise,
        max_noise=max_noise,
        seed=seed,
        map=MAP.clean(caller, map or MAP.default),
        gt_field=GT_FIELD.clean(caller, gt_field or None),
        patches_field=PATCHES_FIELD.clean(caller, patches_field or None),
        field_prefix=_field_prefix(field_prefix),
        overwrite=OVERWRITE.clean(caller, bool(overwrite)),
        carry_from=CARRY_FROM.clean(caller, carry_from or None),
        num_workers=NUM_WORKERS.clean(caller, num_workers),
        batch_size=BATCH_SIZE.clean(caller, batch_size),
        decode=DECODE.clean(caller, decode or DECODE.default),
        executor=executor,
        ray_address=RAY_ADDRESS.clean(caller, ray_address or None),
    )


def _embedder(base, embedder, embeddings_field):
    if embedder is None:
        if embeddings_field:
            return None
        embedder = base["embedder"]
    return get_embedder(embedder)


def _reducers(base, reducer, seed):
    units = get_reducers(base["reducer"] if reducer is None else reducer)
    return [_seeded(unit, seed) for unit in units]


def _clusterer(base, method, params, seed):
    if method is None:
        method = base["method"]
        params = {**base["params"], **params}
    if not isinstance(method, (str, dict)):
        if params:
            raise ParamError(
                f"{method.name}: parameters must be given when the method "
                "is built, not beside it", next(iter(params)))
        return _seeded(method, seed)
    return _seeded(get_clusterer(method, **params), seed)


def _seeded(unit, seed):
    """The unit with the run's seed as its ``random_state``, unless it
    declares none or was given one."""
    if "random_state" in unit.params and unit.params["random_state"] is None:
        return unit.replace(random_state=seed)
    return unit


def _noise(base, clusterer, noise, max_noise):
    """``base`` is the preset when its method runs with its parameters
    (else empty): its noise policy goes with them."""
    caller = "compute_clusters"
    if noise is None:
        noise = base.get("noise", "keep") if max_noise is None else "keep"
    noise = NOISE.clean(caller, noise)
    max_noise = MAX_NOISE.clean(caller, max_noise)
    if not clusterer.density:
        if noise == "assign":
            raise ParamError(
                f"noise: {clusterer.name} leaves no noise; a noise policy "
                "applies to methods that make noise ("
                + ", ".join(sorted(n for n, c in CLUSTERERS.items()
                                   if c.density)) + ")", "noise", "keep")
        # A budget is met by a method that leaves no noise, so the same
        # request runs on every method; nothing is left to limit.
        return "keep", None
    if noise == "assign" and max_noise is not None:
        raise ParamError(
            "max_noise: noise 'assign' places every noise sample already; "
            "give noise 'keep' with a max_noise, or no max_noise",
            "max_noise")
    return noise, max_noise


def _field_prefix(prefix):
    if prefix is None or prefix == "":
        return None
    schema.validate_prefix(prefix)
    return prefix


def unit_registries():
    """Kind -> registry of the units a request is made of."""
    return {"embedder": EMBEDDERS, "reducer": REDUCERS, "method": CLUSTERERS}
