"""Growing a trained tiny VLA's vocabulary when it is taught a new task (`vla train --init CKPT`).

The tiny backbone's word tokenizer and its planner's subtask phrases are built from the data it was first
trained on; a new task brings words ("push", "bin") and subtask phrases it has never seen, which would read
as [UNK] and train no planner row. Fine-tuning appends them: the new words get embedding rows (between the
text ids and the action ids, so every action id moves up by the number of new words) drawn about the
known words' mean with their spread per dimension (as Hugging Face's resize_token_embeddings does: new
words that all started at the mean would stay alike, and "bin" would read like "marker"); the new phrases
get planner rows that start neutral (zero weights, the mean bias). Everything the checkpoint knew keeps its
weights.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from vla.checkpoint import build_model
from vla.config import VlaConfig

EMBEDDING_KEYS = ("lm.model.embed_tokens.weight", "lm.lm_head.weight")


def grow_vocabulary(model, config: VlaConfig, instructions: list[str], phrases: list[str]):
    """(config, model) knowing every word of `instructions` and `phrases` and, when the model has a
    planner, every phrase; the same objects when nothing is new (or the backbone is not the tiny one)."""
    if config.backbone != "tiny":
        return config, model
    tokenizer = model.text_tokenizer
    known_phrases = config.tiny.planner_phrases
    new_phrases = tuple(sorted({p for p in phrases if p and p not in known_phrases})) if known_phrases else ()
    grown = tokenizer.extended([*instructions, *phrases])
    added_words = grown.vocab_size - tokenizer.vocab_size
    if not added_words and not new_phrases:
        return config, model
    tiny = replace(config.tiny, text_vocab_size=grown.vocab_size, planner_phrases=known_phrases + new_phrases)
    config = replace(config, tiny=tiny)
    bigger = build_model(config, grown)
    bigger.load_state_dict(_grown_state(model.state_dict(), tokenizer.vocab_size, added_words, len(new_phrases)))
    return config, bigger


def _grown_state(state: dict, text_words: int, added_words: int, added_phrases: int) -> dict:
    state = dict(state)
    for key in EMBEDDING_KEYS:
        if key in state:
            table = state[key]
            state[key] = torch.cat([table[:text_words], _fresh_rows(table[:text_words], added_words),
                                    table[text_words:]])
    if added_phrases and "planner_head.weight" in state:
        weight, bias = state["planner_head.weight"], state["planner_head.bias"]
        state["planner_head.weight"] = torch.cat([weight, weight.new_zeros(added_phrases, weight.shape[1])])
        state["planner_head.bias"] = torch.cat([bias, bias.mean().expand(added_phrases)])
    return state


def _fresh_rows(known: torch.Tensor, count: int) -> torch.Tensor:
    """count embedding rows drawn about the known rows' mean with their standard deviation per dimension, the
    same draw every time (a fixed seed), so a tied embedding and output table grow alike."""
    noise = torch.randn(count, known.shape[1], generator=torch.Generator().manual_seed(0), dtype=known.dtype)
    return known.mean(0, keepdim=True) + noise * known.std(0, keepdim=True)
