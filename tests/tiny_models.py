"""Tiny transformers models built from configs and saved with
save_pretrained, so tests load them through the same from_pretrained path a
hub id takes, without any download."""

import os

SMALL_VIT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64,
)


def _save(model, processor, folder):
    os.makedirs(folder, exist_ok=True)
    model.eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def dinov2(folder):
    from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

    config = Dinov2Config(image_size=32, patch_size=8, **SMALL_VIT)
    processor = BitImageProcessorPil(
        size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32},
        do_center_crop=True, image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225], resample=3,
    )
    return _save(Dinov2Model(config), processor, folder)


def dinov2_registers(folder):
    from transformers import (
        BitImageProcessorPil,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
    )

    config = Dinov2WithRegistersConfig(
        image_size=32, patch_size=8, num_register_tokens=4, **SMALL_VIT
    )
    processor = BitImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
        do_center_crop=True,
    )
    return _save(Dinov2WithRegistersModel(config), processor, folder)


def dinov3(folder):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel, ViTImageProcessorPil

    config = DINOv3ViTConfig(
        image_size=32, patch_size=8, num_register_tokens=2, **SMALL_VIT
    )
    processor = ViTImageProcessorPil(
        size={"height": 32, "width": 32}, image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225], resample=2,
    )
    return _save(DINOv3ViTModel(config), processor, folder)


def clip(folder):
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    config = CLIPConfig(
        text_config=dict(vocab_size=64, max_position_embeddings=16,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1,
                         **SMALL_VIT),
        vision_config=dict(image_size=32, patch_size=8, **SMALL_VIT),
        projection_dim=16,
    )
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
    )
    return _save(CLIPModel(config), processor, folder)


def siglip(folder):
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    config = SiglipConfig(
        text_config=dict(vocab_size=64, max_position_embeddings=16,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1,
                         **SMALL_VIT),
        vision_config=dict(image_size=32, patch_size=8, **SMALL_VIT),
    )
    processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    return _save(SiglipModel(config), processor, folder)


def add_word_tokenizer(folder, words):
    """Saves a word-level tokenizer (the tiny CLIP's 64-token vocabulary
    has room for a few dozen words) beside a tiny model, so that its text
    tower can be used through AutoTokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "[UNK]": 2}
    for word in words:
        vocab.setdefault(word.lower(), len(vocab))
    if len(vocab) > 64:
        raise ValueError("too many words for the tiny vocabulary")
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
        pad_token="</s>", unk_token="[UNK]", model_max_length=16)
    fast.save_pretrained(folder)
    return str(folder)


BUILDERS = {
    "dinov2": dinov2,
    "dinov2_registers": dinov2_registers,
    "dinov3": dinov3,
    "clip": clip,
    "siglip": siglip,
}
