"""Random-weight Hugging Face VLM checkpoints, written offline as the files a downloaded one has.

    python -m benchmarks.random_backbones smolvlm2-256m --out DIR [--text-layers N] [--vision-layers N]
    python -m benchmarks.random_backbones qwen2-vl-2b --out DIR [--text-layers N] [--vision-layers N]

PRESETS hold the published sizes of real small VLMs, written here by hand (no download): SmolVLM2-256M
(SmolLM2-135M text model + SigLIP base-patch16-512 vision tower, pixel shuffle 4: 64 image tokens per 512x512
tile) and Qwen2-VL-2B (1.5B text model with M-RoPE + 675M ViT, 14-pixel patches merged 2x2). --text-layers and
--vision-layers keep fewer layers of the same width, for a machine where the full depth would take too long.

The tokenizer is word-level (the real ones are byte-level BPE, whose merges would have to be downloaded): the
real vocabulary size, the family's special tokens where the real tokenizer has them (after the base vocabulary),
the words of the VLA prompt as ordinary tokens. A prompt's image tokens are exactly the real count; its text
tokens differ a little from BPE. The processor files are those on the Hub: the image processor's
preprocessor_config.json, chat_template.json, processor_config.json (SmolVLM), the family's processor_class.

The same writers build the tests' tiny checkpoints (tests/hf_tiny_checkpoints.py) at tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field

PROMPT_WORDS = ("In Out What action should the robot take to pick up red block and place it in bin open drawer "
                "Subtask grasp lift move reach : ? . , User Assistant user assistant system").split()
BASE_SPECIALS = ["[PAD]", "[UNK]", "<s>", "</s>"]
SMOL_TEMPLATE = ("<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
                 "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}"
                 "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:"
                 "{% endif %}")
QWEN_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for c in message['content'] %}"
                 "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}"
                 "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                 "{% endif %}")
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
SMOL_SPECIALS = (["<|im_start|>", "<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
                 + ["<fake_token_around_image>", "<image>", "<end_of_utterance>"])


def word_tokenizer(vocab_size: int, specials: list[str], specials_last: bool = True):
    """Word-level fast tokenizer of exactly vocab_size ids: [PAD] [UNK] <s> </s>, the prompt's words, filler
    words, and `specials` after them (or right after [PAD].. when not specials_last)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    filler = [f"w{i}" for i in range(vocab_size - len(BASE_SPECIALS) - len(PROMPT_WORDS) - len(specials))]
    words = PROMPT_WORDS + filler
    tokens = BASE_SPECIALS + words + specials if specials_last else BASE_SPECIALS + specials + words
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(BASE_SPECIALS + specials)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="<s>",
                                  eos_token="</s>")


def write_hub_processor_files(directory: str, tokenizer, image_processor, processor_class: str, template: str,
                              processor_config: dict | None = None) -> None:
    """The processor's files as the Hub has them, for a processor that cannot be built here to save itself."""
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    path = os.path.join(directory, "preprocessor_config.json")
    with open(path) as handle:
        saved = json.load(handle)
    with open(path, "w") as handle:
        json.dump({**saved, "processor_class": processor_class}, handle, indent=2)
    with open(os.path.join(directory, "chat_template.json"), "w") as handle:
        json.dump({"chat_template": template}, handle)
    if processor_config is not None:
        with open(os.path.join(directory, "processor_config.json"), "w") as handle:
            json.dump({**processor_config, "processor_class": processor_class}, handle, indent=2)


def write_smolvlm(directory: str, text: dict, vision: dict, vocab_size: int, scale_factor: int,
                  image_splitting: bool, specials_last: bool = True) -> None:
    """A SmolVLM/SmolVLM2 checkpoint: Llama text model, SigLIP-style vision tower, pixel-shuffle connector.
    image_splitting: tiles of the vision tower's size plus the whole image (the Hub default), or one tile per
    image (as SmolVLA feeds it robot cameras)."""
    import transformers

    tokenizer = word_tokenizer(vocab_size, SMOL_SPECIALS, specials_last)
    tile = vision["image_size"]
    image_processor = transformers.SmolVLMImageProcessorPil(
        size={"longest_edge": 2 * tile if image_splitting else tile}, max_image_size={"longest_edge": tile},
        do_image_splitting=image_splitting)
    config = transformers.SmolVLMConfig(
        vision_config=vision, text_config=dict(model_type="llama", vocab_size=vocab_size, **text),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=scale_factor)
    image_seq_len = (tile // vision["patch_size"]) ** 2 // scale_factor ** 2
    write_hub_processor_files(directory, tokenizer, image_processor, "SmolVLMProcessor", SMOL_TEMPLATE,
                              {"image_seq_len": image_seq_len})
    transformers.SmolVLMForConditionalGeneration(config).save_pretrained(directory)


def write_qwen_vl(directory: str, version: str, text: dict, vision: dict, vocab_size: int, tokenizer_size: int,
                  pixels: tuple[int, int], specials_last: bool = True) -> None:
    """A Qwen2-VL (version "2") or Qwen2.5-VL ("2.5") checkpoint. pixels: the image processor's min and max
    pixels per image (the image is resized to a multiple of patch_size * merge_size in between)."""
    import transformers

    tokenizer = word_tokenizer(tokenizer_size, QWEN_SPECIALS, specials_last)
    ids = {key: tokenizer.convert_tokens_to_ids(token) for key, token in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    image_processor = transformers.Qwen2VLImageProcessorPil(
        min_pixels=pixels[0], max_pixels=pixels[1], patch_size=vision["patch_size"],
        merge_size=vision["spatial_merge_size"], temporal_patch_size=vision["temporal_patch_size"])
    config_class, model_class, processor_class = {
        "2": (transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration, "Qwen2VLProcessor"),
        "2.5": (transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration,
                "Qwen2_5_VLProcessor")}[version]
    config = config_class(vision_config=vision, text_config=dict(vocab_size=vocab_size, **text), **ids)
    write_hub_processor_files(directory, tokenizer, image_processor, processor_class, QWEN_TEMPLATE)
    model_class(config).save_pretrained(directory)


@dataclass(frozen=True)
class Preset:
    """A real VLM's sizes: its family's writer is called with these (and the layer counts asked for)."""

    family: str                  # "smolvlm" | "qwen2_vl"
    text: dict                   # text_config
    vision: dict                 # vision_config
    text_layers_key: str = "num_hidden_layers"
    vision_layers_key: str = "num_hidden_layers"
    extra: dict = field(default_factory=dict)  # the writer's other arguments


PRESETS = {
    "smolvlm2-256m": Preset(
        "smolvlm",
        text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5,
                  rope_parameters={"rope_type": "default", "rope_theta": 100000.0}),
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=512, patch_size=16),
        extra=dict(vocab_size=49280, scale_factor=4, image_splitting=False)),
    "qwen2-vl-2b": Preset(
        "qwen2_vl",
        text=dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                  num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                  rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1e6}),
        vision=dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16, patch_size=14,
                    spatial_merge_size=2, temporal_patch_size=2),
        vision_layers_key="depth",
        extra=dict(version="2", vocab_size=151936, tokenizer_size=151643 + len(QWEN_SPECIALS),
                   pixels=(56 * 56, 28 * 28 * 1280))),
}


def write_random_backbone(preset: str, out: str, text_layers: int | None = None,
                          vision_layers: int | None = None, seed: int = 0) -> str:
    """The preset's checkpoint with random weights in `out`, with fewer layers where asked."""
    import torch

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    if any(n is not None and n < 1 for n in (text_layers, vision_layers)):
        raise ValueError(f"layer counts are positive, got text {text_layers}, vision {vision_layers}")
    text = {**spec.text, **({spec.text_layers_key: text_layers} if text_layers is not None else {})}
    vision = {**spec.vision, **({spec.vision_layers_key: vision_layers} if vision_layers is not None else {})}
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(seed)
    if spec.family == "smolvlm":
        write_smolvlm(out, text, vision, **spec.extra)
    else:
        write_qwen_vl(out, text=text, vision=vision, **spec.extra)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.random_backbones", description=__doc__.split("\n")[0])
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("--out", required=True, help="checkpoint directory to write")
    parser.add_argument("--text-layers", type=int, help="keep this many text layers (default: the real count)")
    parser.add_argument("--vision-layers", type=int, help="keep this many vision layers (default: the real count)")
    args = parser.parse_args(argv)
    out = write_random_backbone(args.preset, args.out, args.text_layers, args.vision_layers)
    print(f"{args.preset} with random weights -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
