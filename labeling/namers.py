"""Namers: a cluster's representative images in, a short name and a
one-sentence description out.

- ``openai``: a vision language model behind any OpenAI-compatible server
  (a hosted API, vLLM, Ollama, LM Studio), through the ``openai`` SDK. The
  SDK retries 429, 5xx and timed-out requests with exponential backoff and
  honours ``Retry-After``; requests run a few at a time.
- ``zero_shot``: no API: a CLIP or SigLIP model scores the images against a
  vocabulary of visual concepts with its text and image towers; the top
  concepts, with their scores, name the cluster.
"""

import base64
import io
import json
import os
import re

from ..embedders import get_embedder
from ..embedders.images import load_image
from ..embedders.transformers_models import (
    ModelNotFoundError,
    checked_model,
)
from ..units import Param, ParamError, Unit, build_unit

PROMPT = (
    "These images were grouped together by an unsupervised clustering "
    "algorithm. Give the group a short name (at most 4 words) that says "
    "what the images have in common, and a one-sentence description. "
    'Answer with JSON only: {"name": "...", "description": "..."}.'
)

TELL_APART = (
    "An unsupervised clustering algorithm made the {n} groups of images "
    "below, and they came back with nearly the same name ({names}). Give "
    "each group a short name (at most 4 words) that tells it apart from the "
    "others, and a one-sentence description. Answer with JSON only: "
    '{{"groups": [{{"name": "...", "description": "..."}}, ...]}}, one '
    "entry per group, in their order."
)

DEFAULT_VOCABULARY = (
    "person", "face", "crowd", "child", "hand", "dog", "cat", "bird", "horse",
    "cow", "sheep", "fish", "insect", "animal", "car", "truck", "bus",
    "bicycle", "motorcycle", "train", "airplane", "boat", "road", "street",
    "building", "house", "bridge", "city", "room", "kitchen", "bedroom",
    "office", "shop", "food", "fruit", "vegetable", "drink", "plate",
    "table", "chair", "sofa", "bed", "window", "door", "screen", "computer",
    "phone", "book", "text", "document", "logo", "sign", "chart", "map",
    "drawing", "painting", "cartoon", "diagram", "handwritten digit",
    "letter", "tree", "flower", "plant", "grass", "forest", "mountain",
    "beach", "sea", "river", "lake", "sky", "cloud", "snow", "desert",
    "night", "sunset", "field", "garden", "sports", "ball", "game",
    "clothing", "shoe", "bag", "jewelry", "toy", "tool", "machine",
    "medical image", "x-ray", "microscope image", "satellite image",
    "texture", "pattern", "stripes", "dots", "geometric shape", "circle",
    "square", "triangle", "blank image", "blurry photo", "dark photo",
)


class Namer(Unit):
    """A unit that names clusters from their images."""

    def fingerprint(self):
        """Plain JSON that identifies the names this namer gives; a cached
        name is reused only for the same fingerprint and images."""
        raise NotImplementedError

    def name_cluster(self, images, neighbours=(), children=()):
        """``{"name", "description", ...}`` for one cluster.

        Args:
            images: file paths of the cluster's representative images
            neighbours: names of nearby clusters, to tell them apart
            children: names of the clusters this one joins (a parent in a
                hierarchy is named after its children)
        """
        raise NotImplementedError

    def tell_apart(self, groups, names):
        """One ``{"name", "description", ...}`` per group of images
        (``groups``: lists of file paths) whose ``names`` came back nearly
        the same, each name telling its group apart from the others."""
        raise NotImplementedError


class OpenAINamer(Namer):
    name = "openai"
    label = "Vision LLM (any OpenAI-compatible API)"
    description = "Asks a vision language model for a name and description"
    PARAMS = (
        Param("model", "str", "gpt-4o-mini", "The model to ask"),
        Param("base_url", "str", None,
              "The server's URL (default: OpenAI's, or OPENAI_BASE_URL); "
              "e.g. http://localhost:11434/v1 for Ollama"),
        Param("prompt", "str", PROMPT, "What the model is asked"),
        Param("max_side", "int", 512,
              "Images are downscaled to at most this many pixels a side",
              min=32, max=2048),
        Param("neighbours", "bool", True,
              "Tell the model the names of nearby clusters already named, "
              "so names tell clusters apart"),
        Param("timeout", "float", 60.0, "Seconds per request", min=1.0),
        Param("max_retries", "int", 5,
              "Retries of a request on 429, 5xx and timeouts", min=0),
        Param("concurrency", "int", 4, "Requests at a time", min=1, max=64),
    )

    def __init__(self, api_key=None, **params):
        super().__init__(**params)
        # Kept apart from the declared parameters: it is never stored,
        # logged or shown.
        self._api_key = api_key

    def fingerprint(self):
        return {"namer": self.name, "model": self.params["model"],
                "base_url": self.params["base_url"],
                "prompt": self.params["prompt"],
                "max_side": self.params["max_side"]}

    def _client(self):
        try:
            from openai import OpenAI
        except ImportError:
            raise ParamError("openai: the openai package is needed "
                             "(pip install openai)") from None
        key = self._api_key or os.environ.get("OPENAI_API_KEY")
        base_url = self.params["base_url"] or \
            os.environ.get("OPENAI_BASE_URL")
        if not key and not base_url:
            raise ParamError(
                "openai: no API key: set OPENAI_API_KEY (in the App, as a "
                "FiftyOne secret; from Python, api_key also takes it), or "
                "give 'base_url', the address of a local server",
                "base_url", owner="openai")
        return OpenAI(api_key=key or "not-needed", base_url=base_url,
                      timeout=self.params["timeout"],
                      max_retries=self.params["max_retries"])

    def start(self):
        """Opens the client once for a whole labelling."""
        self._open = self._client()

    def name_cluster(self, images, neighbours=(), children=()):
        text = self.params["prompt"]
        if children:
            text += (" The group joins smaller groups named: "
                     + "; ".join(children)
                     + ". Name what they have in common.")
        if neighbours and self.params["neighbours"]:
            text += (" Nearby groups are already named: "
                     + "; ".join(neighbours)
                     + ". Choose a name that tells this group apart.")
        return parse_reply(self._ask([{"type": "text", "text": text},
                                      *self._images(images)]))

    def tell_apart(self, groups, names):
        content = [{"type": "text", "text": TELL_APART.format(
            n=len(groups), names="; ".join(names))}]
        for i, images in enumerate(groups, 1):
            content.append({"type": "text", "text": f"Group {i}:"})
            content += self._images(images)
        return parse_groups_reply(self._ask(content), len(groups))

    def _images(self, paths):
        return [{"type": "image_url", "image_url": {
            "url": jpeg_data_url(path, self.params["max_side"])}}
            for path in paths]

    def _ask(self, content):
        client = getattr(self, "_open", None) or self._client()
        reply = client.chat.completions.create(
            model=self.params["model"],
            messages=[{"role": "user", "content": content}],
            temperature=0,
        )
        return reply.choices[0].message.content or ""


def jpeg_data_url(path, max_side):
    """The image as a JPEG data URL, its longest side at most
    ``max_side``, oriented as the App shows it."""
    from PIL import Image

    im = load_image(path, "RGB")
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    im.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(
        buffer.getvalue()).decode("ascii")


# A reply with neither JSON nor a "Name:" line names the cluster only when
# its first line could be a name: this many words at most, not a sentence,
# not the model speaking of itself ("I'm sorry, I can't ...").
NAME_WORDS = 6
_NOT_A_NAME = re.compile(r"^(i|i'm|i’m|we|sorry|as an|unfortunately)\b",
                         re.I)


def parse_reply(text):
    """``{"name", "description"}`` from a model's reply: clean JSON, JSON
    inside prose or a code fence, ``Name: ...`` lines, or a short first line
    that reads as a name. Anything else (a refusal, an explanation) raises
    ``ValueError`` with the reply quoted: storing prose as a cluster's name
    would be a wrong answer that looks right."""
    text = text.strip()
    for candidate in [text] + re.findall(r"\{.*?\}", text, re.S):
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(data, dict) and data.get("name"):
            return {"name": _short(str(data["name"])),
                    "description": str(data.get("description") or "").strip()}
    name = re.search(r"\bname\W*[:=]\s*\"?([^\"\n]+)", text, re.I)
    description = re.search(r"\bdescription\W*[:=]\s*\"?([^\"\n]+)",
                            text, re.I)
    if name:
        return {"name": _short(name.group(1)),
                "description": description.group(1).strip().rstrip('",')
                if description else ""}
    lines = [line.strip(" *#`\"") for line in text.splitlines()
             if line.strip(" *#`\"")]
    if not lines:
        raise ValueError("the model's reply was empty")
    first = lines[0]
    if len(first.split()) > NAME_WORDS or first.endswith((".", "!", "?")) \
            or _NOT_A_NAME.match(first):
        raise ValueError("the model's reply gives no name: "
                         f"{_quoted(text)}")
    return {"name": _short(first), "description": " ".join(lines[1:])}


def parse_groups_reply(text, n):
    """``n`` answers from a reply to :data:`TELL_APART`: a JSON object
    whose ``groups`` list holds one ``{"name", "description"}`` per group
    (or the list itself). Anything else raises ``ValueError`` with the
    reply quoted."""
    for candidate in [text.strip()] + re.findall(r"[\[{].*[\]}]", text,
                                                 re.S):
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, TypeError):
            continue
        entries = data.get("groups") if isinstance(data, dict) else data
        if isinstance(entries, list) and len(entries) == n and all(
                isinstance(e, dict) and e.get("name") for e in entries):
            return [{"name": _short(str(e["name"])),
                     "description": str(e.get("description") or "").strip()}
                    for e in entries]
    raise ValueError(f"the model's reply does not name the {n} groups: "
                     f"{_quoted(text)}")


def _quoted(text, limit=120):
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


def _short(name):
    name = name.strip().strip('".,;:*_` ')
    return " ".join(name.split()[:6])[:60]


class ZeroShotNamer(Namer):
    name = "zero_shot"
    label = "Zero-shot (CLIP/SigLIP, no API)"
    description = "Scores the images against a vocabulary of concepts"
    PARAMS = (
        Param("model", "str", "openai/clip-vit-base-patch32",
              "CLIP or SigLIP model: hub id or local folder"),
        Param("vocabulary", "str", None,
              "Concepts to choose from, comma-separated (default: a "
              "built-in list of common visual concepts)"),
        Param("template", "str", "a photo of a {}",
              "How each concept is put into words"),
        Param("top", "int", 3, "Concepts kept per cluster", min=1, max=20),
    )

    def check(self):
        self.params["model"] = checked_model(self.name, self.params["model"],
                                             self.PARAMS[0].default)

    def concepts(self):
        vocabulary = self.params["vocabulary"]
        if vocabulary:
            words = [w.strip() for w in vocabulary.split(",") if w.strip()]
            if not words:
                raise ParamError("zero_shot: 'vocabulary' names no concept")
            return words
        return list(DEFAULT_VOCABULARY)

    def fingerprint(self):
        return {"namer": self.name, "model": self.params["model"],
                "vocabulary": self.concepts(),
                "template": self.params["template"]}

    def start(self):
        import torch

        self._embedder = get_embedder({"name": "clip",
                                       "model": self.params["model"]})
        device, dtype, (model, _) = self._embedder._loaded()
        tokenizer = _tokenizer(self.params["model"])
        concepts = self.concepts()
        texts = [self.params["template"].format(c) for c in concepts]
        with torch.inference_mode():
            tokens = tokenizer(texts, padding=True, truncation=True,
                               return_tensors="pt").to(device)
            features = model.get_text_features(**tokens)
            features = getattr(features, "pooler_output", features)
        self._text = torch.nn.functional.normalize(features.float(), dim=-1)
        self._scale = float(getattr(model, "logit_scale", torch.tensor(
            4.6052)).exp().item())

    def name_cluster(self, images, neighbours=(), children=()):
        scores = self._scores(images)
        return self._answer(scores, scores)

    def tell_apart(self, groups, names):
        """Each group is named by the concept most particular to it: its
        score less the best score of the other groups."""
        import numpy as np

        scores = np.stack([self._scores(images) for images in groups])
        out = []
        for i, own in enumerate(scores):
            others = np.delete(scores, i, axis=0).max(axis=0)
            out.append(self._answer(own, own - others))
        return out

    def _scores(self, images):
        """The probability of every concept for the images' mean
        feature."""
        import numpy as np
        import torch

        if not hasattr(self, "_text"):
            self.start()
        out = self._embedder.embed(list(images))
        rows = out.vectors[out.ok]
        if not len(rows):
            raise ValueError("none of the cluster's images could be read")
        image = torch.nn.functional.normalize(
            torch.from_numpy(np.asarray(rows)).float(), dim=-1).mean(0)
        image = torch.nn.functional.normalize(image, dim=-1)
        return torch.softmax(self._scale * self._text.cpu() @ image,
                             0).numpy()

    def _answer(self, scores, rank_by):
        """The name and description of the concepts ranked by
        ``rank_by``, each shown with its score."""
        import numpy as np

        order = np.argsort(-rank_by, kind="stable")[:self.params["top"]]
        concepts = self.concepts()
        ranked = [{"concept": concepts[i], "score": round(float(scores[i]), 4)}
                  for i in order]
        return {"name": ranked[0]["concept"],
                "description": "Looks like: " + ", ".join(
                    f"{r['concept']} ({r['score']:.0%})" for r in ranked),
                "concepts": ranked}


def _tokenizer(model_id):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_id)
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(
            f"could not load the text tokenizer of '{model_id}': {e}"
        ) from None


NAMERS = {cls.name: cls for cls in (OpenAINamer, ZeroShotNamer)}


def namer_params():
    """The parameters of every namer, once each by name (``model`` is
    every namer's), for forms and flags that offer them all."""
    seen = {}
    for cls in NAMERS.values():
        for p in cls.PARAMS:
            seen.setdefault(p.name, p)
    return tuple(seen.values())


def get_namer(spec, api_key=None, **params):
    """A namer from a name or ``{"name": ..., **params}``; ``api_key`` is
    kept apart from the stored parameters."""
    if isinstance(spec, Namer):
        return spec
    if spec == "openai" or (isinstance(spec, dict) and
                            spec.get("name") == "openai"):
        if isinstance(spec, dict):
            params = {**{k: v for k, v in spec.items() if k != "name"},
                      **params}
        return OpenAINamer(api_key=api_key, **params)
    return build_unit(NAMERS, "namer", spec, **params)
