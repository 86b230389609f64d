"""The image-and-text processing of a local Hugging Face checkpoint, with or without its full processor.

load_processor(path, config) gives the checkpoint's own processor (AutoProcessor) when it can be built.
In transformers 5 the processors of Qwen2-VL, Qwen2.5-VL and SmolVLM/SmolVLM2 hold a video processor that
needs torchvision (and SmolVLM's needs num2words too), which this project does not depend on; their tokenizer
and image processor need neither. For those families (IMAGE_PROMPTS) an ImagesOnlyProcessor is built from the
checkpoint's tokenizer, image processor and chat template, and one line on stderr says what was skipped.
Any other family whose processor cannot be built is refused in one line that names it and why.

ImagesOnlyProcessor does what the full processor does for images and text:
- the image processor turns each sample's images into the model's pixel inputs (Qwen: pixel_values
  (patches, C*T*P*P) + image_grid_thw (images, 3); SmolVLM: pixel_values (B, tiles, 3, H, W) +
  pixel_attention_mask, with rows and cols of the tiling);
- every image placeholder in the text is expanded to the tokens the model fills with image features, by the
  family's rule (ImagePrompt.expand);
- Qwen models also get mm_token_type_ids (1 on image tokens, 0 elsewhere): their M-RoPE positions need it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

# files of a checkpoint's processor besides the tokenizer's: saved as they came
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json",
                   "chat_template.json", "chat_template.jinja")


@dataclass(frozen=True)
class ImagePrompt:
    """How a family's processor writes one image into the text."""

    image_token: str                                      # the placeholder the chat template writes per image
    expand: Callable[["ImagesOnlyProcessor", dict, int], str]  # (processor, image inputs, image index) -> text
    image_kwargs: dict = field(default_factory=dict)     # passed to the image processor
    token_types: bool = False                            # the model reads mm_token_type_ids (M-RoPE)
    unused_image_outputs: tuple[str, ...] = ()          # image processor outputs the model does not take
    tokens_per_tile: Callable[[object], int] | None = None  # model config -> image tokens per tile (SmolVLM)


def qwen_image_text(processor: "ImagesOnlyProcessor", image_inputs: dict, index: int) -> str:
    """Qwen2-VL / Qwen2.5-VL: one image token per merged patch, t*h*w / merge_size**2 of them."""
    grid = image_inputs["image_grid_thw"][index]
    return processor.image_token * (int(grid.prod()) // processor.image_processor.merge_size ** 2)


def smolvlm_image_text(processor: "ImagesOnlyProcessor", image_inputs: dict, index: int) -> str:
    """SmolVLM: each tile as <fake><row_r_col_c> + image_seq_len image tokens (a newline after each row of
    tiles), then the downscaled whole image as <fake><global-img> + image tokens + <fake>."""
    rows = [r for sample in image_inputs["rows"] for r in sample][index]
    cols = [c for sample in image_inputs["cols"] for c in sample][index]
    tokenizer = processor.tokenizer
    fake = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
    image = processor.image_token * processor.image_seq_len
    tiles = "".join("".join(f"{fake}<row_{r + 1}_col_{c + 1}>{image}" for c in range(cols)) + "\n"
                    for r in range(rows))
    whole = f"{fake}{getattr(tokenizer, 'global_image_token', '<global-img>')}{image}{fake}"
    return f"{tiles}\n{whole}" if rows or cols else whole


def smolvlm_image_seq_len(config) -> int:
    """Image tokens per tile: the vision tower's patches, pixel-shuffled by scale_factor in both directions."""
    vision = config.vision_config
    return (vision.image_size // vision.patch_size) ** 2 // config.scale_factor ** 2


QWEN_PROMPT = ImagePrompt("<|image_pad|>", qwen_image_text, token_types=True)
IMAGE_PROMPTS = {
    "qwen2_vl": QWEN_PROMPT,
    "qwen2_5_vl": QWEN_PROMPT,
    "smolvlm": ImagePrompt("<image>", smolvlm_image_text, image_kwargs={"return_row_col_info": True},
                           unused_image_outputs=("rows", "cols"), tokens_per_tile=smolvlm_image_seq_len),
}


class ImagesOnlyProcessor:
    """A checkpoint's tokenizer + image processor + chat template, speaking the processor's call for images
    and text (no video): __call__, apply_chat_template, save_pretrained, image_token, image_token_id."""

    def __init__(self, path: str, config, tokenizer, image_processor, chat_template: str | None):
        self.source, self.prompt = path, IMAGE_PROMPTS[config.model_type]
        self.tokenizer, self.image_processor, self.chat_template = tokenizer, image_processor, chat_template
        self.image_token = getattr(tokenizer, "image_token", None) or self.prompt.image_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.image_seq_len = self.prompt.tokens_per_tile(config) if self.prompt.tokens_per_tile else None
        # the tokens added to the base vocabulary (image, tile and chat tokens): kept out of the action ids
        self.added_token_ids = sorted(tokenizer.added_tokens_decoder)

    def apply_chat_template(self, conversation: list[dict], tokenize: bool = False,
                            add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(conversation, chat_template=self.chat_template, tokenize=tokenize,
                                                  add_generation_prompt=add_generation_prompt)

    def __call__(self, images: list[list], text: list[str], return_tensors: str = "pt", padding: bool = True,
                 add_special_tokens: bool = True) -> dict:
        """images: per sample, its images (H, W, 3) uint8; text: per sample, with one image token per image."""
        image_inputs = dict(self.image_processor(images=images, return_tensors=return_tensors,
                                                 **self.prompt.image_kwargs))
        expanded = self.expand_images(text, image_inputs, sum(len(sample) for sample in images))
        inputs = dict(self.tokenizer(expanded, return_tensors=return_tensors, padding=padding,
                                     add_special_tokens=add_special_tokens))
        if self.prompt.token_types:
            inputs["mm_token_type_ids"] = (inputs["input_ids"] == self.image_token_id).long()
        for key in self.prompt.unused_image_outputs:
            image_inputs.pop(key, None)
        return {**inputs, **image_inputs}

    def expand_images(self, text: list[str], image_inputs: dict, n_images: int) -> list[str]:
        """Each image token, in order over the batch, replaced by that image's tokens."""
        if sum(sample.count(self.image_token) for sample in text) != n_images:
            raise ValueError(f"the prompts hold {sum(s.count(self.image_token) for s in text)} {self.image_token} "
                             f"tokens for {n_images} images: write one per image")
        expanded, index = [], 0
        for sample in text:
            first, *rest = sample.split(self.image_token)
            for part in rest:
                first += self.prompt.expand(self, image_inputs, index) + part
                index += 1
            expanded.append(first)
        return expanded

    def save_pretrained(self, directory: str) -> None:
        """The tokenizer (as used: its padding token may have been set) and the source's processor files as they
        came, so the saved directory loads with the full processor wherever that can be built."""
        self.tokenizer.save_pretrained(directory)
        for name in PROCESSOR_FILES:
            source, target = os.path.join(self.source, name), os.path.join(directory, name)
            if os.path.isfile(source) and not (os.path.exists(target) and os.path.samefile(source, target)):
                shutil.copyfile(source, target)


def load_processor(path: str, config):
    """The checkpoint's processor; its tokenizer and image processor alone when only that can be built here."""
    from transformers import AutoProcessor

    family = config.model_type
    try:
        return AutoProcessor.from_pretrained(path, local_files_only=True)
    except ImportError as error:  # an optional dependency of one part (torchvision for the video processor)
        reason = first_sentence(error)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: the {family} processor does not load: {one_line(error)}") from None
    if family not in IMAGE_PROMPTS:
        raise ValueError(f"{path}: the {family} processor cannot be built here ({reason}) and vla-stack has no "
                         f"images-only processing for {family} (it has for {', '.join(sorted(IMAGE_PROMPTS))}); "
                         "install what it names, or use a supported family")
    processor = images_only_processor(path, config)
    print(f"note: the {family} processor cannot be built here ({reason}); using its tokenizer and image "
          "processor alone (images and text; video input skipped)", file=sys.stderr)
    return processor


def images_only_processor(path: str, config) -> ImagesOnlyProcessor:
    from transformers import AutoImageProcessor, AutoTokenizer, ProcessorMixin

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    except ImportError as error:
        raise ValueError(f"{path}: the {config.model_type} tokenizer or image processor cannot be built here "
                         f"either ({first_sentence(error)}); install what it names") from None
    processor_dict, _ = ProcessorMixin.get_processor_dict(path, local_files_only=True)
    template = processor_dict.get("chat_template") or tokenizer.chat_template
    return ImagesOnlyProcessor(path, config, tokenizer, image_processor, template)


def one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def first_sentence(error: Exception) -> str:
    """'Qwen2VLVideoProcessor requires the Torchvision library' from transformers' multi-line ImportError."""
    return one_line(error).split(" but it was not found")[0].split(". ")[0].rstrip(".")
