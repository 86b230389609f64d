"""vla/hf_backbone.py on three tiny, randomly initialised Hugging Face VLMs (no download).

Each architecture is built from a tiny config with a word-level tokenizer made here, saved with
save_pretrained, and loaded back through HFVla(HFVlaConfig(path=...)) like a real checkpoint.
"""

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("tokenizers")

from vla.batch import Batch  # noqa: E402
from vla.hf_backbone import HFVla, HFVlaConfig  # noqa: E402

K, A, N_CAM, IMAGE = 2, 8, 2, 32
MODES = ("autoregressive", "parallel")
WORDS = ("In Out What action should the robot take to pick up red block and place it in bin open drawer "
         "Subtask grasp lift move reach : ? . , User Assistant").split()
assert len(set(WORDS)) == len(WORDS)
BASE_SPECIALS = ["[PAD]", "[UNK]", "<s>", "</s>"]
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=8, max_position_embeddings=512)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                   image_size=IMAGE, patch_size=8)
SMOL_TEMPLATE = ("{% for message in messages %}User:{% for c in message['content'] %}"
                 "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
                 "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}")


def make_tokenizer(vocab_size: int, specials: list[str], specials_last: bool = False):
    """Word-level fast tokenizer of exactly vocab_size ids; `specials` first (or last, like SmolVLM)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    filler = [f"w{i}" for i in range(vocab_size - len(BASE_SPECIALS) - len(WORDS) - len(specials))]
    middle = BASE_SPECIALS + WORDS + filler
    tokens = middle + specials if specials_last else BASE_SPECIALS + specials + WORDS + filler
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(BASE_SPECIALS + specials)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                                bos_token="<s>", eos_token="</s>")


def build_llava():
    tokenizer = make_tokenizer(320, ["<image>"])
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": IMAGE},
                                                      crop_size={"height": IMAGE, "width": IMAGE})
    processor = transformers.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                            vision_feature_select_strategy="default", num_additional_image_tokens=1)
    config = transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(**TINY_VISION, projection_dim=32),
        text_config=transformers.LlamaConfig(vocab_size=len(tokenizer), **TINY_TEXT),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=16)
    return transformers.LlavaForConditionalGeneration(config), processor


def build_paligemma():
    tokenizer = make_tokenizer(300, [])
    image_processor = transformers.SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE})
    image_processor.image_seq_length = 16
    processor = transformers.PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = transformers.PaliGemmaConfig(
        vision_config=transformers.SiglipVisionConfig(**TINY_VISION),
        text_config=transformers.GemmaConfig(vocab_size=len(tokenizer), **TINY_TEXT),
        image_token_index=processor.image_token_id, vocab_size=len(tokenizer), projection_dim=32, hidden_size=32)
    return transformers.PaliGemmaForConditionalGeneration(config), processor


def build_idefics3():
    specials = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    tokenizer = make_tokenizer(300, specials, specials_last=True)  # like SmolVLM: image ids in the last 256
    image_processor = transformers.Idefics3ImageProcessor(
        size={"longest_edge": IMAGE}, max_image_size={"longest_edge": IMAGE}, do_image_splitting=False)
    processor = transformers.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                               chat_template=SMOL_TEMPLATE)
    config = transformers.Idefics3Config(
        vision_config=transformers.Idefics3VisionConfig(**TINY_VISION),
        text_config=transformers.LlamaConfig(vocab_size=len(tokenizer), **TINY_TEXT),
        image_token_id=processor.image_token_id, scale_factor=2)
    return transformers.Idefics3ForConditionalGeneration(config), processor


BUILDERS = {"llava": build_llava, "paligemma": build_paligemma, "idefics3": build_idefics3}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: intra-op threads only add contention (seconds per step on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """name -> a saved tiny checkpoint directory (built once per module)."""
    saved = {}

    def get(name: str) -> str:
        if name not in saved:
            torch.manual_seed(0)
            directory = tmp_path_factory.mktemp(name)
            model, processor = BUILDERS[name]()
            model.save_pretrained(directory)
            processor.save_pretrained(directory)
            saved[name] = str(directory)
        return saved[name]

    return get


@pytest.fixture(params=list(BUILDERS))
def checkpoint(request, checkpoints):
    return request.param, checkpoints(request.param)


def random_batch(vla: HFVla, seed: int = 0, with_targets: bool = True) -> Batch:
    g = torch.Generator().manual_seed(seed)
    first, vocab = vla.action_tokenizer.first_id, vla.action_tokenizer.vocab_size
    return Batch(images=torch.randint(0, 256, (2, N_CAM, 3, IMAGE, IMAGE), generator=g, dtype=torch.uint8),
                 state_ids=torch.randint(first, vocab, (2, 8), generator=g),
                 instructions=["pick up the red block", "open the drawer and place it in the bin"],
                 subtasks=["", "grasp"],
                 action_ids=torch.randint(first, vocab, (2, K, A), generator=g) if with_targets else None)


def train_steps(vla: HFVla, batch: Batch, mode: str, steps: int = 2) -> list[float]:
    vla.train()
    optimizer = torch.optim.AdamW([p for p in vla.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(steps):
        loss, metrics = vla.loss(batch, mode)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert 0.0 <= metrics["accuracy"] <= 1.0
        losses.append(float(loss.detach()))
    vla.eval()
    return losses


def assert_action_ids(vla: HFVla, ids: torch.Tensor):
    assert ids.shape == (2, K, A) and ids.dtype == torch.long
    assert bool(((ids >= vla.action_tokenizer.first_id) & (ids < vla.action_tokenizer.vocab_size)).all())


def test_train_predict_save_load(checkpoint, tmp_path):
    name, path = checkpoint
    torch.manual_seed(0)
    vla = HFVla(HFVlaConfig(path=path, chunk_size=K, action_dim=A))
    assert (vla.chunk_size, vla.action_dim) == (K, A)
    assert vla.action_tokenizer.vocab_size == vla.model.get_output_embeddings().weight.shape[0]
    batch = random_batch(vla)
    for mode in MODES:
        assert all(np.isfinite(train_steps(vla, batch, mode)))
    before = {mode: vla.predict_action_ids(random_batch(vla, 1, with_targets=False), mode) for mode in MODES}
    for ids in before.values():
        assert_action_ids(vla, ids)
    vla.save(tmp_path / "saved")
    loaded = HFVla.load(tmp_path / "saved", HFVlaConfig(path="unused", chunk_size=K, action_dim=A)).eval()
    for mode in MODES:
        assert torch.equal(loaded.predict_action_ids(random_batch(vla, 1, with_targets=False), mode), before[mode])


def test_multimodal_ids_stay_out_of_the_action_slice(checkpoint):
    name, path = checkpoint
    vla = HFVla(HFVlaConfig(path=path, chunk_size=K, action_dim=A))
    image_id = vla.model.config.image_token_id
    assert image_id < vla.action_tokenizer.first_id
    if name == "idefics3":  # its image tokens were the last vocabulary ids: vocabulary grown by n_bins
        assert vla.action_tokenizer.vocab_size == 300 + 256


@pytest.mark.parametrize("mode", MODES)
def test_padding_does_not_change_a_sample(checkpoint, mode):
    """Sample 0 alone and next to a longer prompt (left padding) gets the same action logits."""
    name, path = checkpoint
    torch.manual_seed(0)
    vla = HFVla(HFVlaConfig(path=path, chunk_size=K, action_dim=A)).eval()
    batch = random_batch(vla)
    alone = Batch(batch.images[:1], batch.state_ids[:1], batch.instructions[:1], batch.subtasks[:1],
                  batch.action_ids[:1])
    n = vla.n_actions

    def logits(b: Batch) -> torch.Tensor:
        tail = b.action_ids.reshape(b.size, n) if mode == "autoregressive" else vla.placeholders(b.size)
        with torch.no_grad():
            return vla.action_logits(vla.encode(b, tail), n, use_cache=False)[0]

    paired = logits(batch)
    assert vla.encode(batch, vla.placeholders(2))["attention_mask"][0, 0] == 0  # sample 0 really is padded
    torch.testing.assert_close(paired[:1], logits(alone), atol=1e-4, rtol=1e-4)
    if mode == "autoregressive":  # the KV-cache decoder agrees with teacher forcing on its own choices
        ids = vla.predict_action_ids(alone, mode).reshape(1, n)
        forced = Batch(alone.images, alone.state_ids, alone.instructions, alone.subtasks, ids.reshape(1, K, A))
        assert torch.equal(logits(forced).argmax(-1)[0, :-1] + vla.action_tokenizer.first_id, ids[0, 1:])


def test_lora(checkpoint, tmp_path):
    """Only LoRA weights train; the adapter save restores identical predictions; merged save loads."""
    name, path = checkpoint
    torch.manual_seed(0)
    vla = HFVla(HFVlaConfig(path=path, chunk_size=K, action_dim=A, lora_rank=4))
    trainable = [n for n, p in vla.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    decoder = vla.model.get_base_model().get_decoder()
    decoder_lora = [n for n, p in decoder.named_parameters() if p.requires_grad]
    assert len(decoder_lora) == len(trainable)  # all of them in the language model (none in vision, lm_head)
    frozen = {n: p.detach().clone() for n, p in vla.named_parameters() if not p.requires_grad}
    batch = random_batch(vla)
    for mode in MODES:
        assert all(np.isfinite(train_steps(vla, batch, mode)))
    assert all(torch.equal(p, frozen[n]) for n, p in vla.named_parameters() if not p.requires_grad)
    test_batch = random_batch(vla, 1, with_targets=False)
    before = {mode: vla.predict_action_ids(test_batch, mode) for mode in MODES}
    vla.save(tmp_path / "adapter")
    loaded = HFVla.load(tmp_path / "adapter", HFVlaConfig(path="unused", chunk_size=K, action_dim=A, lora_rank=4))
    loaded.eval()
    assert sorted(n for n, p in loaded.named_parameters() if p.requires_grad) == sorted(trainable)
    for mode in MODES:
        assert torch.equal(loaded.predict_action_ids(test_batch, mode), before[mode])
    vla.save(tmp_path / "merged", merged=True)
    merged = HFVla.load(tmp_path / "merged", HFVlaConfig(path="unused", chunk_size=K, action_dim=A)).eval()
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    for mode in MODES:
        assert_action_ids(merged, merged.predict_action_ids(test_batch, mode))
