"""vla/hf_backbone.py on tiny, randomly initialised Hugging Face VLMs of every supported family (no download).

Each family's checkpoint is written by tests/hf_tiny_checkpoints.py as the files a downloaded one has and loaded
back through HFVla(HFVlaConfig(path=...)) like a real checkpoint. Qwen2-VL, Qwen2.5-VL and SmolVLM2 load here
without torchvision (their tokenizer and image processor alone, vla/hf_processing.py).
"""

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("tokenizers")

from hf_tiny_checkpoints import FAMILIES, IMAGE, WITHOUT_FULL_PROCESSOR, write_checkpoint  # noqa: E402

from benchmarks.random_backbones import word_tokenizer  # noqa: E402
from vla.batch import Batch  # noqa: E402
from vla.hf_backbone import HFVla, HFVlaConfig  # noqa: E402
from vla.hf_processing import ImagesOnlyProcessor  # noqa: E402

K, A, N_CAM = 2, 8, 2
MODES = ("autoregressive", "parallel")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: intra-op threads only add contention (seconds per step on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """family -> a saved tiny checkpoint directory (written once per module)."""
    saved = {}

    def get(family: str) -> str:
        if family not in saved:
            saved[family] = write_checkpoint(family, tmp_path_factory.mktemp(family))
        return saved[family]

    return get


@pytest.fixture(params=FAMILIES)
def checkpoint(request, checkpoints):
    return request.param, checkpoints(request.param)


def random_batch(vla: HFVla, seed: int = 0, with_targets: bool = True, chunk: tuple[int, int] = (K, A)) -> Batch:
    """Two samples whose prompts differ in length (the shorter one is left-padded)."""
    g = torch.Generator().manual_seed(seed)
    first, vocab = vla.action_tokenizer.first_id, vla.action_tokenizer.vocab_size
    return Batch(images=torch.randint(0, 256, (2, N_CAM, 3, IMAGE, IMAGE), generator=g, dtype=torch.uint8),
                 state_ids=torch.randint(first, vocab, (2, 8), generator=g),
                 instructions=["pick up the red block", "open the drawer and place it in the bin"],
                 subtasks=["", "grasp"],
                 action_ids=torch.randint(first, vocab, (2, *chunk), generator=g) if with_targets else None)


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
    family, path = checkpoint
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
    family, path = checkpoint
    vla = HFVla(HFVlaConfig(path=path, chunk_size=K, action_dim=A))
    image_id = vla.model.config.image_token_id
    assert image_id < vla.action_tokenizer.first_id
    if family in ("idefics3", "smolvlm2"):  # their image tokens were the last vocabulary ids: grown by n_bins
        assert vla.action_tokenizer.vocab_size == 300 + 256


@pytest.mark.parametrize("mode", MODES)
def test_padding_does_not_change_a_sample(checkpoint, mode):
    """Sample 0 alone and next to a longer prompt (left padding) gets the same action logits."""
    family, path = checkpoint
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


def decode_without_cache(vla: HFVla, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy decoding that re-runs the whole sequence for every token: (B, K*A) ids, (B, K*A, n_bins) logits."""
    tail, step_logits = torch.zeros(batch.size, 0, dtype=torch.long), []
    with torch.no_grad():
        for _ in range(vla.n_actions):
            logits, _ = vla.action_logits(vla.encode(batch, tail), 1, use_cache=False)
            step_logits.append(logits[:, -1])
            tail = torch.cat([tail, logits[:, -1:].argmax(-1) + vla.first_action_id], dim=1)
    return tail, torch.stack(step_logits, dim=1)


def test_cached_decoding_equals_rerunning_the_sequence(checkpoint):
    """Token for token, on a left-padded batch: the KV cache and each step's position (M-RoPE included) are
    those of the full sequence."""
    family, path = checkpoint
    torch.manual_seed(0)
    vla = HFVla(HFVlaConfig(path=path, chunk_size=K, action_dim=A)).eval()
    batch = random_batch(vla, 1, with_targets=False)
    with torch.no_grad():
        cached_ids, cached_logits = vla.decode(batch)
    ids, logits = decode_without_cache(vla, batch)
    assert torch.equal(cached_ids, ids)
    torch.testing.assert_close(cached_logits, logits, atol=1e-4, rtol=1e-4)


def test_both_decoding_modes_give_the_chunk_a_model_was_overfit_to(checkpoint):
    """Trained on one fixed batch in both modes until it has it, parallel decoding (one forward) and
    autoregressive decoding (KV cache) give the same, trained chunk."""
    family, path = checkpoint
    chunk, max_steps = (2, 4), 150
    torch.manual_seed(0)
    vla = HFVla(HFVlaConfig(path=path, chunk_size=chunk[0], action_dim=chunk[1]))
    batch = random_batch(vla, chunk=chunk)
    optimizer = torch.optim.AdamW(vla.parameters(), lr=1e-2)
    for step in range(1, max_steps + 1):
        vla.train()
        loss = sum(vla.loss(batch, mode)[0] for mode in MODES)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            vla.eval()
            decoded = {mode: vla.predict_action_ids(batch, mode) for mode in MODES}
            if all(torch.equal(ids, batch.action_ids) for ids in decoded.values()):
                break
    assert torch.equal(decoded["parallel"], batch.action_ids), f"{family}: parallel decoding after {step} steps"
    assert torch.equal(decoded["autoregressive"], decoded["parallel"]), f"{family}: modes differ after {step} steps"


@pytest.mark.parametrize("family", WITHOUT_FULL_PROCESSOR)
def test_a_processor_that_needs_torchvision_is_replaced_in_one_line(family, checkpoints, capfd, tmp_path):
    """The tokenizer and image processor alone, said in one line; a save keeps the processor's files."""
    path = checkpoints(family)
    capfd.readouterr()
    vla = HFVla(HFVlaConfig(path=path, chunk_size=K, action_dim=A))
    notes = [line for line in capfd.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "torchvision" in notes[0].lower() and "image processor alone" in notes[0], notes
    assert isinstance(vla.processor, ImagesOnlyProcessor)
    vla.save(tmp_path / "saved")
    for name in ("preprocessor_config.json", "chat_template.json", "tokenizer.json"):
        assert (tmp_path / "saved" / name).is_file()
    with open(tmp_path / "saved" / "preprocessor_config.json") as handle:
        assert json.load(handle)["processor_class"].endswith("Processor")


def write_config_only(directory, model_type: str, processor_class: str | None = None) -> str:
    """A checkpoint directory with a default config of model_type (no weights: refused before they load)."""
    transformers.AutoConfig.for_model(model_type).save_pretrained(directory)
    if processor_class:
        word_tokenizer(300, ["<image>", "<video>"]).save_pretrained(directory)
        with open(directory / "preprocessor_config.json", "w") as handle:
            json.dump({"processor_class": processor_class,
                       "image_processor_type": processor_class.replace("Processor", "ImageProcessor")}, handle)
    return str(directory)


@pytest.mark.parametrize("model_type, processor_class, message", [
    ("florence2", None, "florence2 is an encoder-decoder model"),
    ("llama", None, "llama is not an image-text-to-text model"),
    ("llava_onevision", "LlavaOnevisionProcessor", "the llava_onevision processor cannot be built here "
     r"\(LlavaOnevisionVideoProcessor requires the Torchvision library\)"),
])
def test_a_family_that_cannot_work_is_refused_in_one_line(model_type, processor_class, message, tmp_path):
    path = write_config_only(tmp_path, model_type, processor_class)
    with pytest.raises(ValueError, match=message) as refused:
        HFVla(HFVlaConfig(path=path))
    assert "\n" not in str(refused.value) and refused.value.__cause__ is None


def test_lora(checkpoint, tmp_path):
    """Only LoRA weights train; the adapter save restores identical predictions; merged save loads."""
    family, path = checkpoint
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
