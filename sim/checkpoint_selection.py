"""`vla select`: closed-loop success of a training run's snapshots, to choose the checkpoint to ship.

Validation loss and joint-target error do not rank closed-loop success (README, Ablations), so
the snapshots that `vla train --snapshot-every N` keeps are run in simulation on a seed range
kept apart from training and from the final evaluation, and ranked by successes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sim.env import EnvConfig
from sim.evaluate import evaluate
from sim.policy_loader import PolicyOptions
from sim.stats import wilson_interval

SNAPSHOT_NAME = re.compile(r"step_(\d+)(-ema)?$")


def list_snapshots(run_dir: str | Path) -> list[Path]:
    """The complete snapshot checkpoints of a run, by step (raw weights before the moving average)."""
    folder = Path(run_dir) / "snapshots"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: train with `vla train --snapshot-every N` to keep "
                                "snapshots to select from")
    found = [p for p in folder.iterdir() if SNAPSHOT_NAME.match(p.name) and (p / "config.json").is_file()]
    if not found:
        raise FileNotFoundError(f"{folder} holds no complete snapshot (step_NNNNNN/config.json)")
    return sorted(found, key=_sort_key)


def _sort_key(path: Path) -> tuple[int, bool]:
    match = SNAPSHOT_NAME.match(path.name)
    return int(match.group(1)), bool(match.group(2))


def count_successes(episodes: int, *, seed: int, workers: int = 1, options: PolicyOptions = PolicyOptions(),
                    env_config: EnvConfig = EnvConfig()):
    """successes_of(checkpoint, task) for select_checkpoint: `vla eval` on the same seeds every time."""
    def successes_of(checkpoint: Path, task: str) -> int:
        report = evaluate(task, str(checkpoint), episodes, seed=seed, workers=workers, env_config=env_config,
                          progress=False, policy_options=options)
        return report["successes"]

    return successes_of


def select_checkpoint(snapshots: list[Path], tasks: list[str], episodes: int, successes_of, on_row=None) -> dict:
    """Rank snapshots by successes_of(snapshot, task) summed over tasks; the best has the most
    (ties: the later step, then the raw weights)."""
    rows = []
    for snapshot in snapshots:
        successes = {task: successes_of(snapshot, task) for task in tasks}
        rows.append(_row(snapshot, successes, episodes * len(tasks)))
        if on_row is not None:
            on_row(rows[-1])
    best = max(rows, key=lambda row: (row["successes_total"], row["step"], not row["ema"]))
    return {"tasks": list(tasks), "episodes_per_task": episodes, "rows": rows, "best": best["checkpoint"]}


def _row(snapshot: Path, successes: dict[str, int], trials: int) -> dict:
    step, ema = _sort_key(snapshot)
    total = sum(successes.values())
    low, high = wilson_interval(total, trials)
    return {"checkpoint": str(snapshot), "step": step, "ema": ema, "successes": successes,
            "successes_total": total, "success_rate": total / trials, "ci95": [round(low, 4), round(high, 4)]}


def format_row(row: dict) -> str:
    per_task = "  ".join(f"{task} {n}" for task, n in row["successes"].items())
    weights = "ema" if row["ema"] else "raw"
    return (f"step {row['step']:>6} {weights}  {per_task}  total {row['successes_total']} "
            f"({row['success_rate']:.0%}, 95% CI [{row['ci95'][0]:.0%}, {row['ci95'][1]:.0%}])")


def format_best(report: dict) -> str:
    return f"best: {report['best']}  (chosen on these seeds: report its success on others)"


def write_selection(report: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
