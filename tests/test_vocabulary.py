"""Fine-tuning grows a checkpoint's words and planner phrases without changing what it knew (vla/vocabulary.py)."""

import torch

from vla.checkpoint import build_model
from vla.config import DataConfig, TinyModelConfig, VlaConfig
from vla.text_tokenizer import UNK, WordTokenizer
from vla.vocabulary import grow_vocabulary

OLD_TEXTS = ["pick up the red cube", "grasp", "lift"]


def _small_model():
    words = WordTokenizer.train(OLD_TEXTS)
    config = VlaConfig(tiny=TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                            vision_channels=(8, 16), image_grid=2, text_vocab_size=words.vocab_size,
                                            planner_phrases=("grasp", "lift")),
                       data=DataConfig(image_size=32, chunk_size=2))
    torch.manual_seed(0)
    return config, build_model(config, words)


def test_new_words_and_phrases_are_appended_and_old_weights_kept():
    config, model = _small_model()
    old_state = {key: value.clone() for key, value in model.state_dict().items()}
    old_words = model.text_tokenizer.vocab_size
    assert model.text_tokenizer.encode("push it onto the yellow marker")[0] == UNK

    config2, grown = grow_vocabulary(model, config, ["push the red cube onto the yellow marker"],
                                     ["push it onto the yellow marker", "grasp"])

    new_words = {"push", "onto", "yellow", "marker", "it"}
    assert grown.text_tokenizer.vocab_size == old_words + len(new_words)
    assert UNK not in grown.text_tokenizer.encode("push it onto the yellow marker")
    assert grown.text_tokenizer.encode("pick up the red cube") == model.text_tokenizer.encode("pick up the red cube")
    assert config2.tiny.planner_phrases == ("grasp", "lift", "push it onto the yellow marker")
    table = grown.state_dict()["lm.model.embed_tokens.weight"]
    old_table = old_state["lm.model.embed_tokens.weight"]
    assert torch.equal(table[:old_words], old_table[:old_words])  # the words it knew
    assert torch.equal(table[old_words + len(new_words):], old_table[old_words:])  # every action token, moved up
    assert grown.action_tokenizer.first_id == model.action_tokenizer.first_id + len(new_words)
    planner = grown.state_dict()["planner_head.weight"]
    assert torch.equal(planner[:2], old_state["planner_head.weight"])
    assert torch.count_nonzero(planner[2]) == 0
    unchanged = [key for key in old_state if key not in ("lm.model.embed_tokens.weight", "lm.lm_head.weight",
                                                         "planner_head.weight", "planner_head.bias")]
    assert all(torch.equal(grown.state_dict()[key], old_state[key]) for key in unchanged)


def test_new_words_start_apart_spread_like_the_known_ones():
    config, model = _small_model()
    old_words = model.text_tokenizer.vocab_size
    _, grown = grow_vocabulary(model, config, ["drop the red cube into the bin", "push it onto the marker"], [])
    table = grown.state_dict()["lm.model.embed_tokens.weight"]
    added = grown.text_tokenizer.vocab_size - old_words
    known, fresh = table[:old_words], table[old_words:old_words + added]
    bin_id, marker_id = grown.text_tokenizer.encode("bin marker")
    assert torch.dist(table[bin_id], table[marker_id]) > 0.5 * torch.pdist(known).mean()
    assert torch.allclose(fresh.std(0).mean(), known.std(0).mean(), rtol=0.5)
    assert torch.equal(grown.state_dict()["lm.lm_head.weight"], table)  # tied: the output rows are the same


def test_data_with_known_words_and_phrases_leaves_the_model_as_it_is():
    config, model = _small_model()
    config2, same = grow_vocabulary(model, config, ["lift the red cube"], ["lift"])
    assert same is model and config2 == config
