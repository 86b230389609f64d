"""`vla collect`: record successful expert demonstrations (or a learner's rollouts labelled by the
expert, DAgger) into an HDF5 dataset."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass

from sim.action_noise import ActionNoise
from sim.backend import joint_position_controller_config
from sim.dataset import DRIVEN_BY_ATTR
from sim.dataset_output import dataset_output
from sim.env import EnvConfig
from sim.parallel import WorkerSpec, run_seeds
from sim.policy_loader import CORRECTIVE_ALIGNS_YAW, PolicyOptions
from sim.takeover import TakeoverRule
from sim.tasks import get_task

MAX_ATTEMPTS_PER_EPISODE = 3


@dataclass
class CollectReport:
    out: str
    kept: int
    failed: int
    attempts: int
    wall_s: float
    written: int  # demos written: one per kept episode, or the expert's stretches of them (--takeover-only)

    @property
    def episodes_per_min(self) -> float:
        return 60.0 * self.kept / self.wall_s if self.wall_s > 0 else 0.0


def env_args(task: str, config: EnvConfig) -> dict:
    """robomimic-style env description stored in /data attrs."""
    spec = get_task(task)
    return {
        "env_name": spec.robosuite_env, "type": 1, "task": task,
        "env_kwargs": {"robots": ["Panda"], "controller_configs": joint_position_controller_config(),
                       "control_freq": config.control_hz, "camera_names": list(config.cameras),
                       "camera_heights": config.image_size, "camera_widths": config.image_size,
                       **spec.suite_kwargs()},
        "vla": asdict(config),
    }


def collect(task: str, episodes: int, out: str, *, seed: int = 0, workers: int = 1, append: bool = False,
            env_config: EnvConfig = EnvConfig(), policy: str = "expert", progress: bool = True,
            noise: ActionNoise | None = None, learner: str | None = None,
            learner_options: PolicyOptions = PolicyOptions(), takeover: TakeoverRule | None = None) -> CollectReport:
    """Keep the first `episodes` successful episodes of seeds seed, seed+1, ... (in seed order,
    whatever the number of workers); each is on disk before the next is written. With `noise`
    the expert's actions are executed perturbed and recorded clean (sim.action_noise).

    With a `learner` (DAgger): the learner drives and `policy`, a corrective expert, labels
    every state it visits; every episode is kept, whether the learner succeeded or not. With a
    `takeover` rule as well, the expert drives whenever the learner is stuck (sim.takeover), and with its
    `expert_only` only the stretches it drove are kept, each a demo of its own."""
    if episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {episodes}")
    get_task(task)
    if learner is not None and policy not in CORRECTIVE_ALIGNS_YAW:
        raise ValueError(f"a learner's states can only be labelled by an expert that acts from the current state "
                         f"({', '.join(CORRECTIVE_ALIGNS_YAW)}), not {policy!r}")
    if takeover is not None and learner is None:
        raise ValueError("--takeover hands control from a learner to the expert: give --learner POLICY")
    attrs = {**env_args(task, env_config), "demonstrator": policy, **({"learner": learner} if learner else {}),
             **({"takeover": asdict(takeover)} if takeover else {})}
    spec = WorkerSpec(task=task, policy=learner or policy, env_config=env_config, record=True, noise=noise,
                      policy_options=learner_options, labeller=policy if learner else None, takeover=takeover)
    max_attempts = episodes if learner else MAX_ATTEMPTS_PER_EPISODE * episodes
    started = time.perf_counter()
    with dataset_output(out, task, attrs, append=append) as writer:
        results = run_seeds(spec, itertools.islice(itertools.count(seed), max_attempts), workers)
        kept, failed, written = _keep_episodes(results, writer, episodes, learner, takeover,
                                               _bar(episodes, progress))
        if kept < episodes:  # raised inside: a file this run created and left empty is removed
            saved = f"{kept} were saved to {out}" if kept else "none was saved"
            raise RuntimeError(f"only {kept} of {episodes} episodes succeeded in {max_attempts} attempts "
                               f"({failed} failed); {saved}")
    if not written:
        raise RuntimeError(f"the expert never took over in {kept} episodes of {learner}, so --takeover-only kept "
                           f"nothing: give a smaller --takeover than {takeover.stuck_steps}")
    attempts = kept if learner else kept + failed
    return CollectReport(out, kept, failed, attempts, time.perf_counter() - started, written)


def _keep_episodes(results, writer, episodes: int, learner: str | None, takeover: TakeoverRule | None,
                   bar) -> tuple[int, int, int]:
    """Write the successful results (every one with a learner; of each, what the `takeover` rule keeps) until
    `episodes` are kept; then stop the workers. -> (kept, failed, demos written)."""
    kept = failed = written = 0
    try:
        for result in results:
            failed += not result.success
            if result.success or learner:
                if learner:
                    result.episode.extra_attrs[DRIVEN_BY_ATTR] = learner
                for episode in takeover.kept(result.episode) if takeover else [result.episode]:
                    writer.write(episode)
                    written += 1
                kept += 1
                bar.update(1)
            bar.set_postfix(failed=failed)
            if kept == episodes:
                break
    finally:
        results.close()
        bar.close()
    return kept, failed, written


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="collect", unit="demo", disable=not enabled)
