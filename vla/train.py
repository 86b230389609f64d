"""`vla train`: action-token training with AdamW, warmup + cosine decay and checkpoints.

Runs as one process on CPU/GPU, or under `torchrun --nproc_per_node N` (DDP; rank 0 logs
and saves). The data order and torch's random generator (image shifts, teacher noise) are
functions of (seed, rank, step), so --resume continues exactly where a run stopped, on the same
learning-rate schedule.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vla.checkpoint import build_model, load_checkpoint, load_training_state, save_checkpoint
from vla.config import TrainConfig, VlaConfig
from vla.data import ChunkDataset, collate, compute_norm_stats, drop_subtasks, load_demos, random_shift, shift_pixels
from vla.retiming import retimed
from vla.scene_labels import SceneLabels


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.learning_rate, then cosine decay to 10% of it at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self):
        enabled = self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)


def setup_runtime() -> Runtime:
    """Single process, or DDP when launched by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Runtime(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Runtime(device, rank, world)


def sample_batch(dataset: ChunkDataset, cfg: TrainConfig, step: int, rank: int, augment: bool):
    generator = np.random.default_rng([cfg.seed, rank, step])
    if dataset.weights is None:
        indices = generator.integers(len(dataset), size=cfg.batch_size)
    else:
        indices = generator.choice(len(dataset), size=cfg.batch_size, p=dataset.weights)
    rng, relabel, steps = (generator, cfg.relabel_goals, cfg.step_instructions) if augment else (None, 0.0, 0.0)
    batch = collate([dataset.sample(int(i), rng, relabel_goals=relabel, step_instructions=steps) for i in indices])
    if dataset.config.use_subtasks:
        batch = drop_subtasks(batch, dataset.config.subtask_dropout, generator)
    torch.manual_seed(int(generator.integers(2**31)))  # the shifts and the model's own noise: per step too
    if augment and cfg.image_shift:
        batch.images, moved = random_shift(batch.images, cfg.image_shift)
        if batch.goal_pixels is not None:
            batch.goal_pixels = shift_pixels(batch.goal_pixels, moved, dataset.config.image_size)
    return batch


def train_step(model, batch, optimizer, step: int, cfg: TrainConfig, mode: str, runtime: Runtime) -> dict:
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, cfg)
    model.train()
    with runtime.autocast():
        loss, metrics = model(batch.to(runtime.device), mode)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
    optimizer.step()
    metrics["lr"] = optimizer.param_groups[0]["lr"]
    return metrics


@torch.no_grad()
def validate(model, dataset: ChunkDataset, cfg: TrainConfig, mode: str, runtime: Runtime) -> dict:
    model.eval()
    totals: dict[str, float] = {}
    for i in range(cfg.eval_batches):
        batch = sample_batch(dataset, cfg, step=i, rank=10**6, augment=False)
        with runtime.autocast():
            _, metrics = model(batch.to(runtime.device), mode)
        for key in ("loss", "accuracy", "plan_accuracy", "object_error_cm", "keypoint_error_px"):
            if key in metrics:
                totals[key] = totals.get(key, 0.0) + metrics[key] / cfg.eval_batches
    return totals


def prepare(data_paths: list[str], out: Path, config: VlaConfig, cfg: TrainConfig, resume: bool,
            init: Path | None = None, scene_labels: SceneLabels | None = None, replay: tuple[str, ...] = ()):
    """(config, model, stats, train set, valid set, optimizer state) for a fresh, resumed or
    fine-tuning run. Fine-tuning (`init`) starts from that checkpoint's weights, configuration,
    tokenizers and normalization, with a fresh optimizer and learning-rate schedule. The object and
    goal-keypoint losses need the simulator's `scene_labels` (vla.scene_labels). `replay` files (the data a
    fine-tuned checkpoint was trained on) give cfg.replay_share of every training batch, so it keeps its skills."""
    model, stats, state = None, None, None
    if resume:
        model, config, stats = load_checkpoint(out)
        state = load_training_state(out)
    elif init is not None:
        model, config, stats = load_checkpoint(init)
    _check_relabel_goals(cfg.relabel_goals, config)
    _check_step_instructions(cfg.step_instructions)
    needed = _scene_labels_needed(config, scene_labels, cfg.step_instructions)
    labels = _scene_labels_available([*data_paths, *replay], needed)
    train_demos, valid_demos = load_demos(data_paths, config.data, labels)
    train_demos, valid_demos = ([retimed(d, cfg.retime_step) for d in demos] for demos in (train_demos, valid_demos))
    replay_demos = load_demos(list(replay), config.data, labels)[0] if replay else []
    if stats is None:
        stats = compute_norm_stats(train_demos + replay_demos, config.data)
    if model is None:
        config, model = _fresh_model(config, train_demos + valid_demos + replay_demos)
    elif init is not None:
        config, model = _taught_words(model, config, train_demos + valid_demos + replay_demos)
    tokenizer, phrases = model.action_tokenizer, config.tiny.planner_phrases
    train_set = ChunkDataset(train_demos + replay_demos, config.data, stats, tokenizer, phrases, labels)
    if replay_demos:
        train_set.mix_in(len(train_demos), cfg.replay_share)
    valid_set = ChunkDataset(valid_demos or train_demos[:1], config.data, stats, tokenizer, phrases, labels)
    return config, model, stats, train_set, valid_set, state


def _scene_labels_available(data_paths: list[str], labels: SceneLabels | None) -> SceneLabels | None:
    """labels, or None (the side losses off, said in one line) when a file has no MuJoCo states."""
    if labels is None:
        return None
    missing = next((why for path in data_paths if (why := labels.unavailable(path))), None)
    if missing:
        print(f"note: the object and goal-keypoint losses are off for this run: {missing}; the actions "
              "train as usual", file=sys.stderr)
        return None
    return labels


def _scene_labels_needed(config: VlaConfig, scene_labels: SceneLabels | None, step_instructions: float = 0.0
                         ) -> SceneLabels | None:
    """The scene labels when the model trains an object head or goal keypoints, or long-horizon samples are told
    their step (else None: not read)."""
    side_losses = config.backbone == "tiny" and (config.tiny.object_loss > 0 or config.tiny.goal_keypoint_loss > 0)
    if not side_losses and not step_instructions:
        return None
    if scene_labels is None:
        raise ValueError("the object and goal-keypoint losses and train.step_instructions use the simulator's "
                         "scene labels: pass "
                         "scene_labels=sim.scene_labels.SIM_SCENE_LABELS to vla.train.train (`vla train` does)")
    return scene_labels


def _taught_words(model, config: VlaConfig, demos):
    """The init checkpoint grown by the words and subtask phrases of the new data (vla.vocabulary), said in a line."""
    from vla.vocabulary import grow_vocabulary

    phrases = _subtask_phrases(demos, config)
    old_words, old_phrases = config.tiny.text_vocab_size, len(config.tiny.planner_phrases)
    config, model = grow_vocabulary(model, config, [d.instruction for d in demos], phrases)
    if config.tiny.text_vocab_size != old_words or len(config.tiny.planner_phrases) != old_phrases:
        print(f"note: the checkpoint learns {config.tiny.text_vocab_size - old_words} new words and "
              f"{len(config.tiny.planner_phrases) - old_phrases} new subtask phrases from this data", file=sys.stderr)
    return config, model


def _subtask_phrases(demos, config: VlaConfig) -> tuple[str, ...]:
    """The planner's phrases in these demos, sorted (none when the model trains without subtasks)."""
    return tuple(sorted({s for d in demos for s in d.subtasks if s})) if config.data.use_subtasks else ()


def _fresh_model(config: VlaConfig, demos):
    if config.backbone != "tiny":
        return config, build_model(config)
    from dataclasses import replace

    from vla.text_tokenizer import WordTokenizer

    phrases = _subtask_phrases(demos, config)
    text_tokenizer = WordTokenizer.train([d.instruction for d in demos] + list(phrases))
    config = replace(config, tiny=replace(config.tiny, text_vocab_size=text_tokenizer.vocab_size,
                                          planner_phrases=phrases))
    return config, build_model(config, text_tokenizer)


def train(data_paths: list[str], out: str | Path, config: VlaConfig = VlaConfig(),
          cfg: TrainConfig = TrainConfig(), resume: bool = False, progress: bool = True,
          init: str | Path | None = None, scene_labels: SceneLabels | None = None,
          replay: tuple[str, ...] = ()) -> dict:
    """Train (from scratch, or fine-tune the checkpoint `init`) and checkpoint into `out`; returns the final
    metrics. scene_labels: the simulator's training-only labels, for the object and goal-keypoint losses;
    replay: datasets mixed into every batch (cfg.replay_share of it) beside data_paths, e.g. the data the
    `init` checkpoint learned from, so fine-tuning teaches without forgetting."""
    out = Path(out)
    if not resume and (out / "config.json").exists():
        raise FileExistsError(f"{out} already holds a checkpoint: pass --resume to continue it or pick another --out")
    _check_snapshot_options(cfg)
    _check_image_shift(cfg, config.data.image_size)
    runtime = setup_runtime()
    torch.manual_seed(cfg.seed)
    config, model, stats, train_set, valid_set, state = prepare(data_paths, out, config, cfg, resume,
                                                                Path(init) if init is not None else None,
                                                                scene_labels, tuple(replay))
    if state is not None:
        cfg = TrainConfig(**{**state["train_config"], "steps": max(cfg.steps, state["train_config"]["steps"])})
    model.to(runtime.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    start = 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    ema = _make_ema(model, cfg.ema_decay, state)
    wrapped = _wrap_ddp(model, runtime)
    logger = _Logger(out, cfg, start, progress and runtime.is_main) if runtime.is_main else None
    metrics: dict = {}
    for step in range(start, cfg.steps):
        batch = sample_batch(train_set, cfg, step, runtime.rank, cfg.augment)
        metrics = train_step(wrapped, batch, optimizer, step, cfg, config.decoding, runtime)
        done = step + 1
        if ema is not None:
            ema.update_parameters(model)
        if logger:
            logger.log_train(done, metrics, batch.size * runtime.world_size)
        if logger and (done % cfg.eval_every == 0 or done == cfg.steps):
            logger.log_valid(done, validate(model, valid_set, cfg, config.decoding, runtime))  # no DDP collectives
        if runtime.is_main and cfg.snapshot_every and (done % cfg.snapshot_every == 0 or done == cfg.steps):
            _save_snapshots(out, done, model, ema, config, stats)
        if runtime.is_main and (done % cfg.save_every == 0 or done == cfg.steps):
            training_state = {"step": done, "optimizer": optimizer.state_dict(), "train_config": asdict(cfg)}
            if ema is not None:
                training_state["ema"] = ema.state_dict()
            save_checkpoint(out, model, config, stats, training_state)
    if logger:
        metrics = {**metrics, **logger.close()}
    _finish_ddp(runtime)
    return metrics


def snapshot_dir(out: str | Path, step: int, ema: bool = False) -> Path:
    """Where --snapshot-every keeps step `step`'s weights (a complete checkpoint directory)."""
    return Path(out) / "snapshots" / f"step_{step:06d}{'-ema' if ema else ''}"


def _check_snapshot_options(cfg: TrainConfig) -> None:
    if cfg.snapshot_every < 0:
        raise ValueError(f"--snapshot-every must be 0 (off) or a positive number of steps, got {cfg.snapshot_every}")
    if cfg.ema_decay and not cfg.snapshot_every:
        raise ValueError("--ema-decay needs --snapshot-every N: the moving average is saved with the snapshots")


def _check_image_shift(cfg: TrainConfig, image_size: int) -> None:
    if not 0 <= cfg.image_shift < image_size // 2:
        raise ValueError(f"--image-shift is a number of pixels, 0 (off) to {image_size // 2 - 1} for "
                         f"{image_size}-pixel images, got {cfg.image_shift}")


def _check_step_instructions(share: float) -> None:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"train.step_instructions is a share of long-horizon samples, 0 (off) <= it <= 1 (all), got "
                         f"{share}")


def _check_relabel_goals(share: float, config: VlaConfig) -> None:
    if not 0.0 <= share < 1.0:
        raise ValueError(f"train.relabel_goals is a share of samples, 0 (off) <= it < 1, got {share}")
    if share and not (config.backbone == "tiny" and config.tiny.object_loss > 0):
        raise ValueError("train.relabel_goals trains the object head on other goals: the model needs one "
                         "(--object-loss W, tiny backbone; with --init, a checkpoint trained with it)")


def _save_snapshots(out: Path, step: int, model, ema, config: VlaConfig, stats) -> None:
    save_checkpoint(snapshot_dir(out, step), model, config, stats)
    if ema is not None:
        save_checkpoint(snapshot_dir(out, step, ema=True), ema.module, config, stats)


def _make_ema(model, decay: float, state: dict | None):
    """A moving average of the weights (torch's AveragedModel), restored from a resumed run's state."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"--ema-decay must be in (0, 1), got {decay}")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    if state is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    return ema


def _finish_ddp(runtime: Runtime) -> None:
    """Every rank waits for rank 0's last checkpoint before the group goes away."""
    if runtime.world_size > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def _wrap_ddp(model, runtime: Runtime):
    if runtime.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


class _Logger:
    """tqdm progress (loss, action-token accuracy, samples/s) and TensorBoard scalars."""

    def __init__(self, out: Path, cfg: TrainConfig, start: int, progress: bool):
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=start or None)
        self.csv = _MetricsCsv(out / "metrics.csv", start)
        self.bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", disable=not progress)
        self.started, self.samples, self.valid = time.perf_counter(), 0, {}

    def log_train(self, step: int, metrics: dict, samples: int) -> None:
        self.samples += samples
        rate = self.samples / (time.perf_counter() - self.started)
        for key, value in metrics.items():
            self.writer.add_scalar(f"train/{key}", value, step)
        self.writer.add_scalar("train/samples_per_s", rate, step)
        self.csv.add(step, {**metrics, "samples_per_s": rate})
        self.bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.3f}",
                             acc=f"{metrics.get('accuracy', float('nan')):.3f}",
                             samples_s=f"{rate:.0f}", **{f"val_{k}": f"{v:.3f}" for k, v in self.valid.items()})
        self.bar.update(1)

    def log_valid(self, step: int, metrics: dict) -> None:
        self.valid = metrics
        for key, value in metrics.items():
            self.writer.add_scalar(f"valid/{key}", value, step)
        self.csv.add(step, {f"val_{k}": v for k, v in metrics.items()})

    def close(self) -> dict:
        self.bar.close()
        self.writer.close()
        self.csv.close()
        elapsed = time.perf_counter() - self.started
        return {"samples_per_s": self.samples / elapsed if elapsed else 0.0,
                **{f"val_{k}": v for k, v in self.valid.items()}}


CSV_HEADER = "step,name,value\n"


class _MetricsCsv:
    """metrics.csv next to the checkpoint: the training curve as plain text (step, name, value)."""

    def __init__(self, path: Path, start: int):
        if start == 0 and path.exists():
            path.unlink()
        if start > 0 and path.exists():
            _drop_rows_after(path, start)
        self.file = path.open("a")
        if start == 0:
            self.file.write(CSV_HEADER)

    def add(self, step: int, metrics: dict) -> None:
        for name, value in metrics.items():
            self.file.write(f"{step},{name},{value:.6g}\n")

    def close(self) -> None:
        self.file.close()


def _drop_rows_after(path: Path, step: int) -> None:
    """A resumed run starts from its last save: rows a stopped run logged after it would repeat steps."""
    header, *rows = path.read_text().splitlines(keepends=True) or [CSV_HEADER]
    path.write_text(header + "".join(row for row in rows if int(row.split(",", 1)[0]) <= step))
