"""Tiny, randomly initialised Hugging Face VLM checkpoints of every supported family (no download).

write_checkpoint(family, directory) writes the files a downloaded checkpoint of that family has: config.json and
model.safetensors, the tokenizer's files (word-level, benchmarks/random_backbones.py), the image processor's
preprocessor_config.json and the processor's files. Where transformers can build the family's processor here
(LLaVA, PaliGemma, Idefics3) it saves itself; Qwen2-VL, Qwen2.5-VL and SmolVLM2 hold a video processor that needs
torchvision, so their files are written as the Hub has them, by the writers that also make the realistic-size
benchmark checkpoints. Sizes: 1-2 layers, hidden size 32, 32x32 images in 8x8 patches.
"""

from __future__ import annotations

import torch
import transformers

from benchmarks.random_backbones import SMOL_SPECIALS, SMOL_TEMPLATE, word_tokenizer, write_qwen_vl, write_smolvlm

IMAGE = 32
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                   image_size=IMAGE, patch_size=8)
QWEN_ROPE = {"rope_type": "default", "mrope_section": [1, 1, 2], "rope_theta": 10000.0}  # head_dim 8: 4 pairs
QWEN_VISION = dict(hidden_size=32, num_heads=4, out_hidden_size=32, patch_size=8, spatial_merge_size=2,
                   temporal_patch_size=2)


def llava(directory: str) -> None:
    tokenizer = word_tokenizer(320, ["<image>"], specials_last=False)
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": IMAGE},
                                                      crop_size={"height": IMAGE, "width": IMAGE})
    transformers.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                vision_feature_select_strategy="default",
                                num_additional_image_tokens=1).save_pretrained(directory)
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(**TINY_VISION, projection_dim=32),
        text_config=transformers.LlamaConfig(vocab_size=len(tokenizer), head_dim=8, **TINY_TEXT),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=16)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(directory)


def paligemma(directory: str, text_config=transformers.GemmaConfig) -> None:
    tokenizer = word_tokenizer(300, [], specials_last=False)
    image_processor = transformers.SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE})
    image_processor.image_seq_length = 16
    processor = transformers.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    processor.save_pretrained(directory)
    config = transformers.PaliGemmaConfig(
        vision_config=transformers.SiglipVisionConfig(**TINY_VISION),
        text_config=text_config(vocab_size=len(tokenizer), head_dim=8, **TINY_TEXT),
        image_token_index=processor.image_token_id, vocab_size=len(tokenizer), projection_dim=32, hidden_size=32)
    transformers.PaliGemmaForConditionalGeneration(config).save_pretrained(directory)


def paligemma2(directory: str) -> None:
    """PaliGemma 2: the PaliGemma architecture around Gemma 2 (logit soft-capping, sliding-window layers)."""
    paligemma(directory, text_config=transformers.Gemma2Config)


def idefics3(directory: str) -> None:
    tokenizer = word_tokenizer(300, SMOL_SPECIALS)  # like SmolVLM: image ids in the last 256
    image_processor = transformers.Idefics3ImageProcessor(
        size={"longest_edge": IMAGE}, max_image_size={"longest_edge": IMAGE}, do_image_splitting=False)
    processor = transformers.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                               chat_template=SMOL_TEMPLATE)
    processor.save_pretrained(directory)
    config = transformers.Idefics3Config(
        vision_config=transformers.Idefics3VisionConfig(**TINY_VISION),
        text_config=transformers.LlamaConfig(vocab_size=len(tokenizer), head_dim=8, **TINY_TEXT),
        image_token_id=processor.image_token_id, scale_factor=2)
    transformers.Idefics3ForConditionalGeneration(config).save_pretrained(directory)


def smolvlm2(directory: str) -> None:
    """As on the Hub: image tokens last in the vocabulary, images split into 2x2 tiles + the whole image."""
    write_smolvlm(directory, dict(TINY_TEXT, head_dim=8), dict(TINY_VISION), vocab_size=300, scale_factor=2,
                  image_splitting=True)


def qwen2_vl(directory: str) -> None:
    """Like the real one, more embedding rows than tokenizer ids: the action ids are rows no token uses."""
    write_qwen_vl(directory, "2", dict(TINY_TEXT, rope_parameters=QWEN_ROPE),
                  dict(depth=1, embed_dim=32, **{k: v for k, v in QWEN_VISION.items() if k != "out_hidden_size"}),
                  vocab_size=300 + 256, tokenizer_size=300, pixels=(IMAGE * IMAGE, IMAGE * IMAGE))


def qwen2_5_vl(directory: str) -> None:
    """Window attention in the vision tower (windows of 2x2 merged patches, block 1 full), gated MLP, RMSNorm."""
    write_qwen_vl(directory, "2.5", dict(TINY_TEXT, rope_parameters=QWEN_ROPE),
                  dict(depth=2, intermediate_size=64, window_size=32, fullatt_block_indexes=[1], **QWEN_VISION),
                  vocab_size=300 + 256, tokenizer_size=300, pixels=(IMAGE * IMAGE, IMAGE * IMAGE))


WRITERS = {"llava": llava, "paligemma": paligemma, "paligemma2": paligemma2, "idefics3": idefics3,
           "smolvlm2": smolvlm2, "qwen2_vl": qwen2_vl, "qwen2_5_vl": qwen2_5_vl}
FAMILIES = tuple(WRITERS)
WITHOUT_FULL_PROCESSOR = ("smolvlm2", "qwen2_vl", "qwen2_5_vl")  # their processors need torchvision here


def write_checkpoint(family: str, directory) -> str:
    """A tiny random `family` checkpoint in `directory` (the same weights for the same family every time)."""
    torch.manual_seed(0)
    WRITERS[family](str(directory))
    return str(directory)
