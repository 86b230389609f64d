"""Any local Hugging Face image-text-to-text checkpoint as a VLA model (the contract of vla/batch.py).

Sequence (both modes), per sample, left-padded to the longest sample of the batch:

    [processor prompt: images + "In: What action should the robot take to {instruction}?"
     (+ " Subtask: {subtask}.")] [state ids] ["Out:"] [K*A tail]

The prompt goes through the checkpoint's own processor (its chat template when it has one, else its
image token once per camera), so every architecture gets its own image placeholders; where that processor
cannot be built here (Qwen2-VL, Qwen2.5-VL, SmolVLM2 without torchvision) through its tokenizer and image
processor alone (vla/hf_processing.py). Encoder-decoder models (Florence-2) are refused in one line.
- autoregressive (RT-2 / OpenVLA): the tail is the target action ids (teacher forcing, loss on the
  logits that predict them); prediction is greedy decoding with the KV cache, one token per forward,
  restricted to the action-id slice.
- parallel (OpenVLA-OFT style): the tail is K*A copies of one placeholder id (the first action id);
  the K*A logits at those positions are read in one forward pass.

Action ids are the last n_bins ids of the output layer (vla/tokenizer.py). If any multimodal
placeholder id of the processor (image token, ...) falls inside that slice (SmolVLM, LLaVA-1.5 do),
the embeddings are resized by n_bins so the action ids are fresh rows that never collide.

Left padding keeps every sample's tail at the same (last) positions; rotary positions only shift
per sample, which leaves attention between real tokens unchanged. M-RoPE models (Qwen2-VL, Qwen2.5-VL)
compute their 3-D positions (temporal, height, width of each image patch) from mm_token_type_ids and
image_grid_thw over the real tokens only; the KV-cache decoder hands each new token its position itself.

PaliGemma (prefix-LM): its token_type_ids mark the tail as suffix (1), so the prompt attends
bidirectionally and the action tokens causally, as the checkpoint was pretrained.

save(): processor files + model. With LoRA the directory holds the un-merged base weights (a plain
checkpoint) plus the peft adapter (adapter_config.json, adapter_model.safetensors); load()
re-attaches the adapter, so predictions are bit-identical and training can resume. For a single
merged checkpoint (serving) call save(directory, merged=True); load() then gives the merged model
(predictions equal up to float rounding of the merge).
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass, replace

import torch

from vla.batch import DECODING_MODES, Batch, action_token_loss
from vla.hf_processing import load_processor, one_line
from vla.tokenizer import ActionTokenizer

PROMPT = "In: What action should the robot take to {instruction}?"
ADAPTER_DIR = "lora_adapter"  # a subfolder: transformers would auto-load an adapter at the top level
PREFIX_LM_TYPES = ("paligemma",)  # token_type_ids: 0 = bidirectional prefix, 1 = causal suffix
DECODER_ONLY = "LLaVA, PaliGemma (2), Idefics3, SmolVLM/SmolVLM2, Qwen2-VL, Qwen2.5-VL"  # tested: docs/backbones.md


@dataclass(frozen=True)
class HFVlaConfig:
    path: str                 # local checkpoint dir (AutoModelForImageTextToText + AutoProcessor)
    chunk_size: int = 1       # K future actions
    action_dim: int = 8       # A
    n_bins: int = 256
    lora_rank: int = 0        # >0: peft LoRA on the language model's linear layers


def is_peft(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def load_backbone_config(path: str):
    """The checkpoint's config; a checkpoint this module cannot drive is refused in one line naming why."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path} is not a Hugging Face checkpoint directory (no config.json): pass a "
                                "local image-text-to-text checkpoint, e.g. one saved with save_pretrained")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:  # a model type this transformers does not know, a broken config.json
        raise ValueError(f"{path}: its config.json does not load: {one_line(error)}") from None
    family = config.model_type
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"{path}: {family} is an encoder-decoder model; the Hugging Face backbone drives "
                         f"decoder-only VLMs (prompt, state and action tokens in one sequence), e.g. {DECODER_ONLY}")
    if family not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ValueError(f"{path}: {family} is not an image-text-to-text model for this transformers "
                         f"(AutoModelForImageTextToText); use a VLM checkpoint, e.g. {DECODER_ONLY}")
    return config


def load_model(path: str):
    """The checkpoint in `path`; with the adapter re-attached (trainable) when save() wrote one."""
    from transformers import AutoModelForImageTextToText

    try:
        model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:  # missing or mismatched weight files
        raise ValueError(f"{path}: the model does not load: {one_line(error)}") from None
    adapter = os.path.join(path, ADAPTER_DIR)
    if os.path.isdir(adapter):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
    return model


def base_model(model):
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if is_peft(model) else model


def rope_index_function(model):
    """The model's own M-RoPE position function (Qwen2-VL family: 3-D positions from the image grids), or None
    for 1-D rotary positions, which the model counts from the KV cache's length by itself."""
    base = base_model(model)
    return getattr(getattr(base, "model", base), "get_rope_index", None)


def multimodal_ids(processor, model) -> set[int]:
    """Placeholder ids the model treats specially (image token, image boundaries, tile tags)."""
    ids = set()
    values = [v for k, v in vars(processor).items() if k.endswith(("_id", "_ids"))]
    values += [getattr(model.config, k, None) for k in ("image_token_id", "video_token_id")]
    for value in values:
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, int):
                ids.add(item)
    return ids


def reserve_action_ids(model, processor, n_bins: int):
    """Grow the vocabulary by n_bins when a multimodal placeholder id lies in the action slice."""
    vocab = model.get_output_embeddings().weight.shape[0]
    if any(vocab - n_bins <= i < vocab for i in multimodal_ids(processor, model)):
        model.resize_token_embeddings(vocab + n_bins, mean_resizing=False)
    return model


def language_linear_names(model) -> list[str]:
    """Full names of every nn.Linear inside the language model (not the vision tower or lm_head)."""
    decoder = model.get_decoder()
    prefix = next((n for n, m in model.named_modules() if m is decoder), None)
    if not prefix:
        raise ValueError(f"cannot locate the language model of {type(model).__name__} for LoRA")
    return [f"{prefix}.{n}" for n, m in decoder.named_modules() if isinstance(m, torch.nn.Linear)]


def add_lora(model, rank: int):
    from peft import LoraConfig, get_peft_model

    # alpha, dropout and init as OpenVLA's finetune.py (there on "all-linear"; here the language model only)
    lora = LoraConfig(r=rank, lora_alpha=min(rank, 16), lora_dropout=0.0,
                      target_modules=language_linear_names(model), init_lora_weights="gaussian")
    return get_peft_model(model, lora)


def base_state_dict(peft_model) -> dict[str, torch.Tensor]:
    """The un-merged base weights under their original names (LoRA tensors left out)."""
    state = peft_model.get_base_model().state_dict()
    return {k.replace(".base_layer.", "."): v for k, v in state.items() if ".lora_" not in k}


def left_pad(rows: list[torch.Tensor], value: int) -> torch.Tensor:
    out = rows[0].new_full((len(rows), max(len(r) for r in rows)), value)
    for i, row in enumerate(rows):
        out[i, out.shape[1] - len(row):] = row
    return out


class HFVla(torch.nn.Module):
    def __init__(self, config: HFVlaConfig):
        super().__init__()
        self.config = config
        self.chunk_size, self.action_dim = config.chunk_size, config.action_dim
        backbone_config = load_backbone_config(config.path)  # refuses, in one line, before anything heavy loads
        self.processor = load_processor(config.path, backbone_config)
        model = load_model(config.path)
        if not is_peft(model):
            model = reserve_action_ids(model, self.processor, config.n_bins)
            if config.lora_rank > 0:
                model = add_lora(model, config.lora_rank)
        self.model = model
        vocab = model.get_output_embeddings().weight.shape[0]
        self.action_tokenizer = ActionTokenizer(vocab, config.n_bins)
        self.first_action_id = self.action_tokenizer.first_id
        tokenizer = self.processor.tokenizer
        if tokenizer.pad_token is None and (tokenizer.eos_token or tokenizer.unk_token):
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.out_ids = torch.tensor(tokenizer.encode("Out:", add_special_tokens=False), dtype=torch.long)
        self.prefix_lm = getattr(model.config, "model_type", "") in PREFIX_LM_TYPES

    def forward(self, batch: Batch, mode: str):
        """Training entry point (so DDP sees a forward call): same as loss()."""
        return self.loss(batch, mode)

    # ----------------------------------------------------------------- prompt and inputs
    @property
    def n_actions(self) -> int:
        return self.chunk_size * self.action_dim

    @property
    def uses_chat_template(self) -> bool:
        return bool(getattr(self.processor, "chat_template", None))

    def image_token(self) -> str:
        token = getattr(self.processor, "image_token", None) or getattr(self.processor.tokenizer, "image_token", None)
        return token or "<image>"

    def prompt_text(self, instruction: str, subtask: str, n_images: int) -> str:
        text = PROMPT.format(instruction=instruction)
        if subtask:
            text += f" Subtask: {subtask}."
        if not self.uses_chat_template:
            return self.image_token() * n_images + text
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=True)

    def encode(self, batch: Batch, tail: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model inputs for prompt + state + "Out:" + tail (B, T), left-padded."""
        n_images = batch.images.shape[1]
        texts = [self.prompt_text(i, s, n_images) for i, s in zip(batch.instructions, batch.subtasks)]
        pixels = batch.images.detach().cpu().permute(0, 1, 3, 4, 2).numpy()  # (B, N, H, W, 3)
        images = [list(sample) for sample in pixels]
        kwargs = {"add_special_tokens": False} if self.uses_chat_template else {}
        enc = dict(self.processor(images=images, text=texts, return_tensors="pt", padding=True, **kwargs))
        ids, mask = enc.pop("input_ids"), enc.pop("attention_mask").bool()
        enc.pop("labels", None)
        per_token = {k: enc.pop(k) for k in list(enc) if torch.is_tensor(enc[k]) and enc[k].shape == ids.shape}
        tail = tail.detach().cpu().long()
        middle = [torch.cat([s, self.out_ids]) for s in batch.state_ids.detach().cpu().long()]
        rows = [torch.cat([ids[i][mask[i]], middle[i], tail[i]]) for i in range(len(texts))]
        inputs = {"input_ids": left_pad(rows, self.pad_id),
                  "attention_mask": left_pad([torch.ones_like(r) for r in rows], 0)}
        for key, value in per_token.items():
            suffix = self.suffix_value(key)
            inputs[key] = left_pad([torch.cat([value[i][mask[i]], torch.zeros_like(middle[i]).to(value.dtype),
                                               torch.full_like(tail[i], suffix).to(value.dtype)])
                                    for i in range(len(texts))], 0)
        return self.to_device({**enc, **inputs})

    def suffix_value(self, key: str) -> int:
        return 1 if self.prefix_lm and key == "token_type_ids" else 0

    def to_device(self, inputs: dict) -> dict:
        weight = self.model.get_input_embeddings().weight
        return {k: (v.to(weight.device, weight.dtype if v.is_floating_point() else v.dtype)
                    if torch.is_tensor(v) else v) for k, v in inputs.items()}

    def action_logits(self, inputs: dict, n_last: int, **kwargs) -> tuple[torch.Tensor, object]:
        """Logits over the action-id slice at the last n_last positions: (B, n_last, n_bins)."""
        out = self.model(**inputs, logits_to_keep=n_last, **kwargs)
        return out.logits[:, -n_last:, self.first_action_id:], out

    # ----------------------------------------------------------------- VlaModel contract
    def loss(self, batch: Batch, mode: str) -> tuple[torch.Tensor, dict[str, float]]:
        check_mode(mode)
        targets = batch.action_ids.reshape(batch.size, self.n_actions)
        if mode == "autoregressive":
            logits, _ = self.action_logits(self.encode(batch, targets), self.n_actions + 1, use_cache=False)
            logits = logits[:, :-1]  # position t predicts tail token t
        else:
            logits, _ = self.action_logits(self.encode(batch, self.placeholders(batch.size)), self.n_actions,
                                           use_cache=False)
        return action_token_loss(logits, batch.action_ids.to(logits.device), self.first_action_id)

    @torch.no_grad()
    def predict_action_ids(self, batch: Batch, mode: str) -> torch.Tensor:
        check_mode(mode)
        if mode == "autoregressive":
            ids, _ = self.decode(batch)
        else:
            ids = self.parallel_action_logits(batch).argmax(-1) + self.first_action_id
        return ids.reshape(batch.size, self.chunk_size, self.action_dim)

    @torch.no_grad()
    def parallel_action_logits(self, batch: Batch) -> torch.Tensor:
        """(B, K*A, n_bins) logits over the action-id slice, one forward pass."""
        logits, _ = self.action_logits(self.encode(batch, self.placeholders(batch.size)), self.n_actions,
                                       use_cache=False)
        return logits

    def placeholders(self, batch_size: int) -> torch.Tensor:
        return torch.full((batch_size, self.n_actions), self.first_action_id, dtype=torch.long)

    def decode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding over the action slice with the KV cache, one new token per forward: the (B, K*A) ids
        and the (B, K*A, n_bins) logits each was chosen from.

        Each step's token gets the position it has in the full sequence: M-RoPE models (Qwen2-VL family) are
        given it (the prompt's largest position + 1 + step, on all three axes, as their generate() does);
        1-D rotary models count it from the cache's length, as in training's full-sequence forward."""
        inputs = self.encode(batch, torch.zeros(batch.size, 0, dtype=torch.long))
        mask = inputs["attention_mask"]
        step_keys = [k for k, v in inputs.items()
                     if k not in ("input_ids", "attention_mask") and torch.is_tensor(v) and v.shape == mask.shape]
        positions = self.mrope_positions(inputs)
        prompt_positions = {} if positions is None else {"position_ids": positions}
        logits, out = self.action_logits(inputs, 1, use_cache=True, **prompt_positions)
        next_position = None if positions is None else positions.amax(dim=(0, 2)) + 1  # (B,)
        chosen, step_logits = [], []
        for step in range(self.n_actions):
            token = logits[:, -1].argmax(-1) + self.first_action_id
            chosen.append(token)
            step_logits.append(logits[:, -1])
            if step == self.n_actions - 1:
                break
            mask = torch.cat([mask, mask.new_ones(batch.size, 1)], dim=1)
            extra = {k: inputs[k].new_full((batch.size, 1), self.suffix_value(k)) for k in step_keys}
            if next_position is not None:
                extra["position_ids"] = (next_position + step).view(1, -1, 1).expand(3, -1, 1)
            logits, out = self.action_logits({"input_ids": token[:, None], "attention_mask": mask, **extra}, 1,
                                             cache=out.cache, use_cache=True)
        return torch.stack(chosen, dim=1), torch.stack(step_logits, dim=1)

    def mrope_positions(self, inputs: dict) -> torch.Tensor | None:
        """(3, B, T) temporal/height/width positions of a left-padded sequence from the model's own
        get_rope_index, or None for a model with 1-D positions."""
        rope_index = rope_index_function(self.model)
        if rope_index is None:
            return None
        positions, _ = rope_index(inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
                                  image_grid_thw=inputs.get("image_grid_thw"), attention_mask=inputs["attention_mask"])
        return positions

    # ----------------------------------------------------------------- checkpoints
    def save(self, directory, merged: bool = False) -> None:
        directory = str(directory)
        os.makedirs(directory, exist_ok=True)
        shutil.rmtree(os.path.join(directory, ADAPTER_DIR), ignore_errors=True)  # no stale adapter
        self.processor.save_pretrained(directory)
        if not is_peft(self.model):
            self.model.save_pretrained(directory)
        elif merged:
            copy.deepcopy(self.model).merge_and_unload().save_pretrained(directory)
        else:
            self.model.get_base_model().save_pretrained(directory, state_dict=base_state_dict(self.model))
            self.model.save_pretrained(os.path.join(directory, ADAPTER_DIR))

    @classmethod
    def load(cls, directory, config: HFVlaConfig) -> "HFVla":
        return cls(replace(config, path=str(directory)))


TOKEN_MODES = tuple(m for m in DECODING_MODES if m != "regression")  # no regression head here (yet)


def check_mode(mode: str) -> None:
    if mode not in TOKEN_MODES:
        raise ValueError(f"mode must be one of {TOKEN_MODES} for a Hugging Face backbone, got {mode!r}")
