"""`vla bench inference`: latency of one predict call for the tiny default, in one run.

Compares parallel chunk decoding, KV-cache autoregressive decoding (both restricted to
action ids) and a naive Hugging Face `generate` loop on the same weights, and reports the
achieved GFLOP/s of the parallel forward pass.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from vla.config import VlaConfig
from vla.inference import VlaPredictor
from vla.normalization import NormStats
from vla.text_tokenizer import WordTokenizer

CPU_PEAK_GFLOPS = 110.0  # measured fp32 matmul peak of the 2-core machine (DESIGN.md)
INSTRUCTION = "put the red cube on the green cube"


def build_predictor(device: str = "cpu", decoding: str = "parallel", backbone: str = "tiny",
                    lora_rank: int = 0) -> VlaPredictor:
    """The tiny default architecture with random weights (latency does not depend on training), or the Hugging
    Face checkpoint `backbone` (with a fresh LoRA adapter of lora_rank > 0), with the default data config."""
    from dataclasses import replace

    from vla.checkpoint import build_model

    config = VlaConfig(decoding=decoding, backbone=backbone, lora_rank=lora_rank)
    tokenizer = None
    if backbone == "tiny":
        tokenizer = WordTokenizer.train([INSTRUCTION, "pick up the blue cube", "reach grasp lift lower release"])
        config = replace(config, tiny=replace(config.tiny, text_vocab_size=tokenizer.vocab_size))
    torch.manual_seed(0)
    model = build_model(config, tokenizer)
    rng = np.random.default_rng(0)
    stats = NormStats.compute(config.data.robot, rng.uniform(-1, 1, (100, config.data.action_dim)),
                              rng.uniform(-1, 1, (100, 9)))
    return VlaPredictor(model, config, stats, torch.device(device))


def fake_observation(predictor: VlaPredictor) -> dict:
    data = predictor.config.data
    rng = np.random.default_rng(1)
    obs = {f"{c}_image": rng.integers(0, 255, (data.image_size, data.image_size, 3), dtype=np.uint8)
           for c in data.cameras}
    obs.update(robot0_joint_pos=np.zeros(7), robot0_gripper_qpos=np.zeros(2))
    return obs


def latency_ms(call, repeats: int, warmup: int = 3) -> dict:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "repeats": repeats}


def naive_generate(predictor: VlaPredictor, obs: dict):
    """What a first integration does: model.generate over the full vocabulary, default settings."""
    model = predictor.model
    batch = predictor._one(obs, INSTRUCTION)
    with torch.inference_mode():
        prefix = model.prefix_embeddings(batch)
        return model.lm.generate(inputs_embeds=prefix, max_new_tokens=model.chunk_size * model.action_dim,
                                 min_new_tokens=model.chunk_size * model.action_dim, do_sample=False,
                                 pad_token_id=0)


def parallel_gflop(predictor: VlaPredictor, obs: dict) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        predictor.predict(obs, INSTRUCTION, mode="parallel")
    return counter.get_total_flops() / 1e9


def bench_device(device: str, repeats: int) -> dict:
    predictor = build_predictor(device)
    obs = fake_observation(predictor)
    chunk = predictor.chunk_size
    result = {
        "device": device, "chunk_size": chunk, "action_dim": predictor.config.data.action_dim,
        "parallel": latency_ms(lambda: predictor.predict(obs, INSTRUCTION, mode="parallel"), repeats),
        "autoregressive": latency_ms(lambda: predictor.predict(obs, INSTRUCTION, mode="autoregressive"),
                                     max(5, repeats // 5)),
        "naive_generate": latency_ms(lambda: naive_generate(predictor, obs), max(5, repeats // 5)),
    }
    for name in ("parallel", "autoregressive", "naive_generate"):
        result[name]["p50_ms_per_action"] = result[name]["p50_ms"] / chunk
    result["speedup_per_action_vs_naive"] = result["naive_generate"]["p50_ms"] / result["parallel"]["p50_ms"]
    result["speedup_per_action_vs_autoregressive"] = (result["autoregressive"]["p50_ms"]
                                                     / result["parallel"]["p50_ms"])
    if device == "cuda":
        result.update(cuda_precision_and_batching(predictor, obs, repeats))
    gflop = parallel_gflop(predictor, obs)
    result["parallel_gflop_per_call"] = gflop
    result["parallel_gflops_achieved"] = gflop / (result["parallel"]["p50_ms"] / 1000)
    return result


def cuda_precision_and_batching(predictor: VlaPredictor, obs: dict, repeats: int) -> dict:
    """Parallel decoding in float32 vs bf16 autocast, and chunks/s when 32 requests share a pass."""
    result = {}
    for name, bf16 in (("parallel_fp32", False), ("parallel_bf16", True)):
        predictor.bf16 = bf16
        result[name] = latency_ms(lambda: predictor.predict(obs, INSTRUCTION, mode="parallel"), repeats)
    batch = 32
    timed = latency_ms(lambda: predictor.predict_batch([obs] * batch, [INSTRUCTION] * batch, [""] * batch),
                       repeats)
    result["batch32_bf16"] = {**timed, "chunks_per_s": batch / (timed["p50_ms"] / 1000)}
    return result


def bench_inference(repeats: int = 50, threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    report = {"benchmark": "inference", "cpu_threads": threads, "cpu_peak_gflops": CPU_PEAK_GFLOPS,
              "cpu": bench_device("cpu", repeats)}
    report["cpu"]["fraction_of_peak"] = report["cpu"]["parallel_gflops_achieved"] / CPU_PEAK_GFLOPS
    if torch.cuda.is_available():
        report["cuda"] = bench_device("cuda", repeats)
    return report


def format_inference(report: dict) -> str:
    lines = []
    for device in ("cpu", "cuda"):
        if device not in report:
            continue
        r = report[device]
        lines.append(f"{device}: chunk of {r['chunk_size']} actions x {r['action_dim']} dims")
        for name in ("parallel", "autoregressive", "naive_generate"):
            lines.append(f"  {name:<16} p50 {r[name]['p50_ms']:8.2f} ms  p99 {r[name]['p99_ms']:8.2f} ms  "
                         f"({r[name]['p50_ms_per_action']:.2f} ms/action)")
        if "parallel_bf16" in r:
            lines.append(f"  parallel fp32 p50 {r['parallel_fp32']['p50_ms']:.2f} ms, bf16 "
                         f"{r['parallel_bf16']['p50_ms']:.2f} ms; batch of 32: "
                         f"{r['batch32_bf16']['chunks_per_s']:.0f} chunks/s")
        lines.append(f"  parallel vs naive generate: {r['speedup_per_action_vs_naive']:.1f}x per action; "
                     f"vs KV-cache autoregressive: {r['speedup_per_action_vs_autoregressive']:.1f}x")
        lines.append(f"  parallel: {r['parallel_gflop_per_call']:.2f} GFLOP/call, "
                     f"{r['parallel_gflops_achieved']:.1f} GFLOP/s achieved")
    return "\n".join(lines)
