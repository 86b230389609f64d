"""`vla bench inference --backbone DIR`: a Hugging Face backbone against the tiny default, on this machine.

Three models, each measured in a fresh process of its own (so that its peak memory is its own): the tiny
default (random weights), DIR fine-tuned in full, and DIR with a LoRA adapter (rank LORA_RANK, the language
model's linear layers: `vla train --lora-rank`). All with the default data config (two 128x128 cameras, chunks
of 8 actions x 8 dimensions). Per model:
- chunk latency p50 / p99 of parallel decoding (one forward pass) and of KV-cache autoregressive decoding
  (K*A forwards), one observation at a time (VlaPredictor.predict, as `vla eval` and `vla serve` call it);
- training samples/s of `vla train`'s step (vla.train.train_step: forward, backward, gradient clipping, AdamW)
  on a fixed batch, after one warm-up step;
- peak memory: the process's peak resident set size, resource.getrusage(RUSAGE_SELF).ru_maxrss, read after
  importing torch and vla (baseline), after the latency runs and after training. It counts every byte the process touched
  (weights, gradients, optimizer state, activations, the runtime); tracemalloc would miss torch's tensors.
"""

from __future__ import annotations

import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context

LORA_RANK = 16


@dataclass(frozen=True)
class Variant:
    name: str
    backbone: str         # "tiny" or a checkpoint directory
    lora_rank: int = 0


@dataclass(frozen=True)
class Settings:
    repeats: int = 10     # parallel chunks timed; autoregressive: max(3, repeats // 5)
    train_steps: int = 3  # timed, after one warm-up step
    batch_size: int = 4
    threads: int = 1


def variants(backbone: str) -> list[Variant]:
    return [Variant("tiny default", "tiny"), Variant("full fine-tuning", backbone),
            Variant(f"LoRA r={LORA_RANK}", backbone, LORA_RANK)]


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(variant: Variant, settings: Settings) -> dict:
    """One model's figures; runs in a process of its own."""
    import torch

    from benchmarks.inference import INSTRUCTION, build_predictor, fake_observation, latency_ms

    torch.set_num_threads(settings.threads)
    result = {"variant": asdict(variant), "peak_rss_mib_baseline": peak_rss_mib()}
    predictor = build_predictor("cpu", backbone=variant.backbone, lora_rank=variant.lora_rank)
    model, obs = predictor.model, fake_observation(predictor)
    result["parameters"] = sum(p.numel() for p in model.parameters())
    result["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    for mode, repeats in (("parallel", settings.repeats), ("autoregressive", max(3, settings.repeats // 5))):
        result[mode] = latency_ms(lambda: predictor.predict(obs, INSTRUCTION, mode=mode), repeats, warmup=1)
    result["peak_rss_mib_inference"] = peak_rss_mib()
    result["train_samples_per_s"] = training_samples_per_s(predictor, settings)
    result["peak_rss_mib_training"] = peak_rss_mib()
    return result


def training_samples_per_s(predictor, settings: Settings) -> float:
    import torch

    from benchmarks.inference import INSTRUCTION, fake_observation
    from vla.config import TrainConfig
    from vla.train import Runtime, train_step

    model, tokenizer = predictor.model, predictor.tokenizer
    prepared = [predictor._prepare(fake_observation(predictor))] * settings.batch_size
    batch = predictor._batch(prepared, [INSTRUCTION] * settings.batch_size, [""] * settings.batch_size)
    data = predictor.config.data
    batch.action_ids = torch.randint(tokenizer.first_id, tokenizer.vocab_size,
                                     (settings.batch_size, data.chunk_size, data.action_dim))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    runtime, cfg = Runtime(torch.device("cpu")), TrainConfig()
    train_step(model, batch, optimizer, 0, cfg, "parallel", runtime)  # warm-up: allocates the optimizer state
    started = time.perf_counter()
    for step in range(1, settings.train_steps + 1):
        train_step(model, batch, optimizer, step, cfg, "parallel", runtime)
    return settings.batch_size * settings.train_steps / (time.perf_counter() - started)


def bench_backbone(backbone: str, settings: Settings = Settings(), progress=None) -> dict:
    """The report: settings and one row per model (variants), each measured in a fresh process."""
    rows = []
    for variant in variants(backbone):
        if progress:
            progress(f"measuring {variant.name} ...")
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            rows.append(pool.submit(measure, variant, settings).result())
    return {"benchmark": "backbone", "backbone": backbone, "settings": asdict(settings),
            "memory": "peak RSS, resource.getrusage(RUSAGE_SELF).ru_maxrss of a fresh process per model", "rows": rows}


def format_backbone(report: dict) -> str:
    settings = report["settings"]
    lines = [f"{report['backbone']} vs the tiny default: CPU, {settings['threads']} thread(s), one observation per "
             f"chunk; training batch {settings['batch_size']}; memory = peak RSS (base: torch imported, no model)",
             f"{'model':<18}{'params':>9}{'trainable':>11}{'parallel p50 / p99 ms':>24}"
             f"{'autoregressive p50 / p99 ms':>30}{'train samples/s':>17}{'peak MiB base/infer/train':>28}"]
    for row in report["rows"]:
        lines.append(
            f"{row['variant']['name']:<18}{row['parameters'] / 1e6:>8.1f}M{row['trainable_parameters'] / 1e6:>10.2f}M"
            f"{row['parallel']['p50_ms']:>14.1f} /{row['parallel']['p99_ms']:>8.1f}"
            f"{row['autoregressive']['p50_ms']:>20.1f} /{row['autoregressive']['p99_ms']:>8.1f}"
            f"{row['train_samples_per_s']:>17.2f}"
            f"{row['peak_rss_mib_baseline']:>12.0f} /{row['peak_rss_mib_inference']:>6.0f} /"
            f"{row['peak_rss_mib_training']:>6.0f}")
    return "\n".join(lines)
