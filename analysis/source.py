"""What uniqueness and duplicates share: where the vectors come from, the
checks before any work, and the stored run around the results."""

from ..clustering.embed import (
    check_embeddings_field,
    embed_samples,
    label_list_path,
    skipped_summary,
)
from ..clustering.presets import DEFAULT_PRESET, PRESETS
from ..clustering.request import (
    BATCH_SIZE,
    DECODE,
    EMBEDDINGS_FIELD,
    EXECUTOR,
    NUM_WORKERS,
    RAY_ADDRESS,
)
from ..embedders import get_embedder
from ..embedders.executors import get_executor
from ..storage import schema as record
from ..support import library_versions, plugin_version
from ..support import to_json as plain


#: Where the vectors of a uniqueness or duplicates run come from, beside
#: the embedder.
SOURCE_PARAMS = (EMBEDDINGS_FIELD, NUM_WORKERS, BATCH_SIZE, DECODE, EXECUTOR,
                 RAY_ADDRESS)


class Source:
    """A validated request for vectors: an embedder (cached in its field),
    or an existing vector field, for samples or the objects of a patches
    field."""

    def __init__(self, samples, embedder, embeddings_field, patches_field,
                 num_workers, batch_size, decode, executor, caller,
                 default_embedder=None, ray_address=None):
        if embedder is None and embeddings_field is None:
            embedder = default_embedder or \
                PRESETS[DEFAULT_PRESET]["embedder"]
        self.samples = samples
        self.embedder = get_embedder(embedder) if embedder is not None \
            else None
        self.patches_field = patches_field
        self.labels_path = None
        if patches_field:
            self.labels_path = label_list_path(samples, patches_field)
            self.embeddings_field = embeddings_field
            self.count = samples.count(f"{self.labels_path}.id")
        else:
            self.embeddings_field = check_embeddings_field(
                samples, self.embedder, embeddings_field)
            self.count = len(samples)
        self.common = dict(
            num_workers=NUM_WORKERS.clean(caller, num_workers),
            batch_size=BATCH_SIZE.clean(caller, batch_size),
            decode=DECODE.clean(caller, decode),
            executor=get_executor(executor, ray_address),
        )

    @property
    def single(self):
        return record.is_single_object({"patches": {
            "field": self.patches_field, "path": self.labels_path}})

    def embed(self, report, share, minimum=1):
        return embed_samples(self.samples, self.embedder,
                             self.embeddings_field, self.patches_field,
                             report, share=share, minimum=minimum,
                             **self.common)

    def describe(self):
        return {
            "embedder": self.embedder.spec() if self.embedder else None,
            "patches": {"field": self.patches_field,
                        "path": self.labels_path}
            if self.patches_field else None,
        }


def config_of(kind, method, params, emb, source, fields):
    """The run's config (plain JSON; see :mod:`..clustering.record`);
    ``source`` is a :class:`Source`, or ``None`` for file hashes."""
    return {
        "kind": kind,
        "record_version": record.RECORD_VERSION,
        "run_id": record.new_run_id(),
        "plugin_version": plugin_version(),
        "method": method,
        "params": plain(params),
        "embeddings_field": emb.field if emb is not None else None,
        "fingerprint": emb.source["fingerprint"] if emb is not None
        else None,
        "fields": fields,
        "libraries": library_versions(),
        **(source.describe() if source is not None
           else {"embedder": None, "patches": None}),
    }


def results_of(emb, timings, **facts):
    out = {"timings": timings.as_dict(), **plain(facts)}
    if emb is not None:
        out["skipped"] = skipped_summary(emb)
        out["embedding"] = {"dims": int(emb.vectors.shape[1]),
                            "computed": emb.computed, "reused": emb.reused}
    return out
